"""Contrastive: a projection head and NT-Xent between two random augmented views of each input.
Windows: random compositions of the sensor transformations; images: SimCLR views."""
from common.heads import build_mlp
from common.losses import NTXentLoss
from common.tasks.base import PretextTask, register_task
from data_processing.augmentations import random_view
from data_processing.image_augmentations import simclr_view


@register_task
class ContrastiveTask(PretextTask):
    name = "contrastive"
    inputs = ("view1", "view2")
    stored = {"view1": "input", "view2": "input"}
    loss_label = "NT-Xent"

    @staticmethod
    def sensor_targets(x, generator, spec):
        return {"view1": random_view(x, generator, spec.view_transforms),
                "view2": random_view(x, generator, spec.view_transforms)}

    @staticmethod
    def image_targets(x, generator, spec):
        return {"view1": simclr_view(x, generator), "view2": simclr_view(x, generator)}

    def __init__(self, context):
        super().__init__(context)
        config = context.config
        self.head = build_mlp(context.embedding_dim, [config.contrastive_hidden], config.projection_dim)
        self.loss = NTXentLoss(context.config.temperature)

    def forward(self, embeddings, batch):
        return self.loss(self.head(embeddings["view1"]), self.head(embeddings["view2"]))
