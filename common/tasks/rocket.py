"""MiniRocket regression: predict the clean window's MiniRocket representation from its embedding (MSE).

MiniRocket (Dempster et al. 2021: 10,000 random dilated kernels, pooled as proportions of positive values)
is the strongest training-free baseline on this data; its kernels see every scale at once, which three
conv blocks and a 128-d embedding do not. The targets are its features' first --rocket_dim principal
components, the transform and the PCA fit on the pretraining windows without labels (data_processing/
minirocket.py, cached; in a federation the server fixes one transform and PCA for every client from their
statistics, data_processing/federated_minirocket.py). The expert-features task's idea
with a stronger target. Sensor windows only.

`rocket_views` is function matching (Beyer et al. 2022, "Knowledge distillation: a good teacher is patient and
consistent"): the student sees an augmented view and regresses MiniRocket's representation of that same view,
not of the clean window. Regressing fixed targets of the clean windows, the student reproduces them on the
train subjects (R^2 0.93) better than on new ones (0.91; benchmarks/distillation_gap.py): the teacher's
answers on views show it the function around each window, not one point.
"""
import torch
import torch.nn.functional as F

from common.heads import build_mlp
from common.tasks.base import PretextTask, register_task
from data_processing.minirocket import minirocket_pca, minirocket_view_targets


@register_task
class RocketRegressionTask(PretextTask):
    name = "rocket"
    inputs = ("x",)
    loss_label = "MSE"
    dataset_target_keys = ("rocket",)

    @classmethod
    def dataset_targets(cls, data, config):
        return {"rocket": minirocket_pca(data.x, config.rocket_dim, config.rocket_kernels, config.seed,
                                         data.cache_dir, fit_windows=getattr(config, "rocket_fit_windows", None))}

    def __init__(self, context):
        super().__init__(context)
        self.head = build_mlp(context.embedding_dim, [context.config.features_hidden], context.config.rocket_dim)

    def forward(self, embeddings, batch):
        return F.mse_loss(self.head(embeddings["x"]), batch["rocket"])


@register_task
class RocketViewsTask(RocketRegressionTask):
    name = "rocket_views"
    inputs = ("rocket_view",)
    dataset_target_keys = ("rocket_views_x", "rocket_views")

    @classmethod
    def dataset_targets(cls, data, config):
        views, targets = minirocket_view_targets(data.x, data.spec.view_transforms, config.n_variants,
                                                 config.rocket_dim, config.rocket_kernels, config.seed, data.cache_dir)
        return {"rocket_views_x": views, "rocket_views": targets}

    @staticmethod
    def complete(batch):
        # one of the window's views, drawn from torch's generator (seeded by the run's seed)
        targets = batch["rocket_views"]
        rows = torch.arange(len(targets), device=targets.device)
        pick = torch.randint(targets.shape[1], (len(targets),)).to(targets.device)
        batch["rocket_view"] = batch["rocket_views_x"][rows, pick].float()
        batch["rocket_view_target"] = targets[rows, pick]

    def forward(self, embeddings, batch):
        return F.mse_loss(self.head(embeddings["rocket_view"]), batch["rocket_view_target"])
