"""The four pretext tasks, keyed by name, and the multi-task model that owns their heads.

A task is a small module: which batch inputs it encodes (`inputs`), its head, and its loss given the
embeddings and the batch. The data side produces every target under the keys below; `MODEL_HEADS`
switches choose which tasks count. Adding a task = one class here + its targets in the batch producer.

Batch keys (produced by data_processing.pretext, for sensor windows and images alike):
  x (B, *S) clean input; features (B, F) expert features of x
  aug_x (B, *S) one transformation applied; aug_label (B,) which one
  view1, view2 (B, *S) two random augmented views of x, for the contrastive task
  masked_x (B, *S) x with masked spans zeroed; mask (B, *S) True where masked
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from common.heads import build_mlp
from common.losses import MaskedMSELoss, NTXentLoss

# the order of the four MODEL_HEADS switches
TASK_NAMES = ("augmentation", "reconstruction", "contrastive", "features")


class AugmentationClassificationTask(nn.Module):
    """Which of K transformations produced aug_x: cross-entropy."""

    inputs = ("aug_x",)

    def __init__(self, embedding_dim, num_transforms, hidden_dim=128):
        super().__init__()
        self.head = build_mlp(embedding_dim, [hidden_dim], num_transforms)

    def forward(self, embeddings, batch):
        return F.cross_entropy(self.head(embeddings["aug_x"]), batch["aug_label"])


class MaskedReconstructionTask(nn.Module):
    """Reconstruct the clean input from the embedding of its masked version: MSE on masked positions."""

    inputs = ("masked_x",)

    def __init__(self, embedding_dim, input_shape, hidden_dim=256):
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.head = build_mlp(embedding_dim, [hidden_dim], math.prod(self.input_shape))
        self.loss = MaskedMSELoss()

    def forward(self, embeddings, batch):
        reconstruction = self.head(embeddings["masked_x"]).view(-1, *self.input_shape)  # (B, *S)
        return self.loss(reconstruction, batch["x"], batch["mask"])


class ContrastiveTask(nn.Module):
    """Projection head + NT-Xent between two augmented views."""

    inputs = ("view1", "view2")

    def __init__(self, embedding_dim, projection_dim=64, hidden_dim=128, temperature=0.1):
        super().__init__()
        self.head = build_mlp(embedding_dim, [hidden_dim], projection_dim)
        self.loss = NTXentLoss(temperature)

    def forward(self, embeddings, batch):
        return self.loss(self.head(embeddings["view1"]), self.head(embeddings["view2"]))


class FeatureRegressionTask(nn.Module):
    """Regress the expert features of the clean input: MSE."""

    inputs = ("x",)

    def __init__(self, embedding_dim, feature_dim, hidden_dim=256):
        super().__init__()
        self.head = build_mlp(embedding_dim, [hidden_dim], feature_dim)

    def forward(self, embeddings, batch):
        return F.mse_loss(self.head(embeddings["x"]), batch["features"])


def build_tasks(active, embedding_dim, input_shape, num_transforms, feature_dim, temperature=0.1):
    """nn.ModuleDict of the active tasks, in TASK_NAMES order."""
    factories = {
        "augmentation": lambda: AugmentationClassificationTask(embedding_dim, num_transforms),
        "reconstruction": lambda: MaskedReconstructionTask(embedding_dim, input_shape),
        "contrastive": lambda: ContrastiveTask(embedding_dim, temperature=temperature),
        "features": lambda: FeatureRegressionTask(embedding_dim, feature_dim),
    }
    unknown = set(active) - set(factories)
    if unknown:
        raise ValueError(f"unknown tasks {sorted(unknown)}; known: {', '.join(TASK_NAMES)}")
    return nn.ModuleDict({name: factories[name]() for name in TASK_NAMES if name in active})


def active_tasks(model_heads):
    """Four 0/1 switches (MODEL_HEADS order) -> the names of the active tasks."""
    return [name for name, on in zip(TASK_NAMES, model_heads) if on]


class MultiTaskModel(nn.Module):
    """Encoder + task heads. forward(batch) -> {task name: loss}; one encoder pass over all inputs."""

    def __init__(self, encoder, tasks):
        super().__init__()
        self.encoder = encoder
        self.tasks = tasks

    def input_keys(self):
        return list(dict.fromkeys(key for task in self.tasks.values() for key in task.inputs))

    def forward(self, batch):
        keys = self.input_keys()
        inputs = torch.cat([batch[k] for k in keys])  # (len(keys) * B, *S)
        embeddings = dict(zip(keys, self.encoder(inputs).float().chunk(len(keys))))
        return {name: task(embeddings, batch) for name, task in self.tasks.items()}

    def shared_parameters(self):
        return list(self.encoder.parameters())

    def last_shared_layer(self):
        """The encoder's last parameterised layer, where GradNorm measures per-task gradient norms."""
        layer = getattr(self.encoder, "projection", None)
        return list(layer.parameters()) if layer is not None else self.shared_parameters()[-2:]
