"""Augmentation classification: which of K labelled transformations produced aug_x (cross-entropy)."""
import torch.nn.functional as F

from common.heads import build_mlp
from common.tasks.base import PretextTask, register_task
from data_processing.augmentations import apply_labelled_transforms
from data_processing.image_augmentations import IMAGE_TRANSFORMS


@register_task
class AugmentationClassificationTask(PretextTask):
    name = "augmentation"
    inputs = ("aug_x",)
    stored = {"aug_x": "input", "aug_label": "int8"}
    loss_label = "cross-entropy"

    @staticmethod
    def sensor_targets(x, generator, spec, registry=None):
        # windows: jitter, scaling, rotation, ... (HAR_TRANSFORMS, the default registry)
        aug_x, aug_label = apply_labelled_transforms(x, spec.transforms, generator,
                                                     **({"transforms": registry} if registry else {}))
        return {"aug_x": aug_x, "aug_label": aug_label}

    @classmethod
    def image_targets(cls, x, generator, spec):
        return cls.sensor_targets(x, generator, spec, IMAGE_TRANSFORMS)  # rotations, grayscale, inversion

    def __init__(self, context):
        super().__init__(context)
        self.head = build_mlp(context.embedding_dim, [context.config.augmentation_hidden], len(context.spec.transforms))

    def forward(self, embeddings, batch):
        return F.cross_entropy(self.head(embeddings["aug_x"]), batch["aug_label"])
