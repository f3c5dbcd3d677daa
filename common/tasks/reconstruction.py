"""Masked reconstruction: rebuild the clean input from the embedding of its masked version (MSE on the
masked positions). Windows: random spans per channel; images: random square patches."""
import math

from common.heads import build_mlp
from common.losses import MaskedMSELoss
from common.tasks.base import PretextTask, register_task
from data_processing.augmentations import span_mask
from data_processing.image_augmentations import patch_mask


@register_task
class MaskedReconstructionTask(PretextTask):
    name = "reconstruction"
    inputs = ("masked_x",)
    stored = {"mask": "bool"}
    loss_label = "masked MSE"

    @staticmethod
    def sensor_targets(x, generator, spec):  # (B, C, T) True = masked: random spans per channel
        return {"mask": span_mask(x.shape, generator, spec.mask_ratio, spec.mask_span)}

    @staticmethod
    def image_targets(x, generator, spec):  # (B, 3, H, W): random square patches
        return {"mask": patch_mask(x.shape, generator, spec.mask_ratio, spec.mask_span)}

    @staticmethod
    def complete(batch):
        batch["masked_x"] = batch["x"].masked_fill(batch["mask"], 0.0)

    def __init__(self, context):
        super().__init__(context)
        self.input_shape = tuple(context.input_shape)
        self.head = build_mlp(context.embedding_dim, [context.config.reconstruction_hidden],
                              math.prod(self.input_shape))
        self.loss = MaskedMSELoss()

    def forward(self, embeddings, batch):
        reconstruction = self.head(embeddings["masked_x"]).view(-1, *self.input_shape)  # (B, *S)
        return self.loss(reconstruction, batch["x"], batch["mask"])
