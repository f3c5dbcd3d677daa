"""What a pretext task is, and the registry that keys tasks by name.

A task is one class in one file: the batch inputs its head sees (`inputs`), the targets it makes from
clean inputs for sensor windows and for images (`sensor_targets`, `image_targets`; images get the
windows' unless a task has its own) and how the precomputed cache stores them (`stored`), or the targets
it makes once from the whole pretraining set (`dataset_targets`), its head (built
in `__init__` from a TaskContext) and its loss (`forward`). Everything else (the loop, the precomputed
views, the switches, the figures, the checkpoints) learns the task list from TASKS. `@register_task` a
subclass anywhere, a test file included, and it can be trained by name.
"""
from dataclasses import dataclass

from torch import nn

TASKS = {}  # name -> task class, in registration order


def register_task(cls):
    if not getattr(cls, "name", None):
        raise ValueError(f"{cls.__name__} needs a name")
    TASKS[cls.name] = cls
    return cls


@dataclass(frozen=True)
class TaskContext:
    """What a task's head may depend on."""

    embedding_dim: int
    input_shape: tuple  # one clean input, (C, T) window or (3, H, W) image
    spec: object  # data_processing.pretext.PretextSpec: transforms, masks, modality
    feature_dim: int  # expert features per input
    config: object  # the run's config: task hyper-parameters such as `temperature`


class PretextTask(nn.Module):
    """Base class. forward(embeddings, batch) -> scalar loss; embeddings[key] is the encoder's output on
    batch[key] for every key in `inputs`."""

    name = ""
    inputs = ("x",)  # batch keys the encoder embeds for this task
    # targets made per input and kept by the precomputed cache: {batch key: "input" (stored like the input:
    # float16 windows, uint8 images) or a numpy dtype}; keys the dataset already has (x, features) are not
    stored = {}
    loss_label = "loss"  # for the architecture figure
    reads_features = False  # whether batches carry the inputs' expert features (batch["features"]) for this task
    version = 1  # bump when make_targets changes: cached targets are then rebuilt

    @classmethod
    def make_targets(cls, x, generator, spec):
        """{batch key: tensor} for a batch of clean float inputs x (B, *S), drawn from `generator`: the producer
        of the spec's modality (sensor_targets for windows, image_targets for images)."""
        return getattr(cls, f"{spec.modality}_targets")(x, generator, spec)

    @staticmethod
    def sensor_targets(x, generator, spec):
        return {}

    @classmethod
    def image_targets(cls, x, generator, spec):
        """Images get the windows' targets unless the task has its own."""
        return cls.sensor_targets(x, generator, spec)

    dataset_target_keys = ()  # the batch keys dataset_targets makes

    @classmethod
    def dataset_targets(cls, data, config):
        """{batch key: (N, D) float32 array}: targets made once from the whole pretraining set (a PretrainData)
        before training, indexed into each batch like `features`. Most tasks have none."""
        return {}

    @staticmethod
    def complete(batch):
        """Derived batch keys, added once stored or fresh targets are in the batch (in place)."""

    def __init__(self, context):
        super().__init__()
        self.context = context
