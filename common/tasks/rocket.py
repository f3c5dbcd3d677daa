"""MiniRocket regression: predict the clean window's MiniRocket representation from its embedding (MSE).

MiniRocket (Dempster et al. 2021: 10,000 random dilated kernels, pooled as proportions of positive values)
is the strongest training-free baseline on this data; its kernels see every scale at once, which three
conv blocks and a 128-d embedding do not. The targets are its features' first --rocket_dim principal
components, the transform and the PCA fit on the pretraining windows without labels (data_processing/
minirocket.py, cached; in a federation the server fixes one transform and PCA for every client from their
statistics, data_processing/federated_minirocket.py). The expert-features task's idea
with a stronger target. Sensor windows only.
"""
import torch.nn.functional as F

from common.heads import build_mlp
from common.tasks.base import PretextTask, register_task
from data_processing.minirocket import minirocket_pca


@register_task
class RocketRegressionTask(PretextTask):
    name = "rocket"
    inputs = ("x",)
    loss_label = "MSE"
    dataset_target_keys = ("rocket",)

    @classmethod
    def dataset_targets(cls, data, config):
        return {"rocket": minirocket_pca(data.x, config.rocket_dim, config.rocket_kernels, config.seed,
                                         data.cache_dir)}

    def __init__(self, context):
        super().__init__(context)
        self.head = build_mlp(context.embedding_dim, [context.config.features_hidden], context.config.rocket_dim)

    def forward(self, embeddings, batch):
        return F.mse_loss(self.head(embeddings["x"]), batch["rocket"])
