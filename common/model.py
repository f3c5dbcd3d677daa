"""The multi-task model: one encoder, the active tasks' heads, one encoder pass over all inputs a batch needs."""
import torch
from torch import nn

from common.encoders import build_encoder
from common.tasks import TASKS, TaskContext


class MultiTaskModel(nn.Module):
    """Encoder + task heads. forward(batch) -> {task name: loss}."""

    def __init__(self, encoder, tasks):
        super().__init__()
        self.encoder = encoder
        self.tasks = tasks  # nn.ModuleDict {name: PretextTask}

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

    def architecture(self):
        """What a checkpoint must match to be resumed into this model."""
        return {"model_args": self.encoder.model_args, "tasks": list(self.tasks)}


def task_classes(config):
    """The registered task classes a config trains, in its order."""
    return [TASKS[name] for name in config.active_tasks()]


def build_model(config, input_shape, spec, feature_dim):
    """Encoder of `config` for inputs of `input_shape` + the heads of its active tasks."""
    encoder = build_encoder(config.encoder, in_channels=input_shape[0], width=config.encoder_width,
                            depth=config.encoder_depth, embedding_dim=config.embedding_dim)
    context = TaskContext(config.embedding_dim, tuple(input_shape), spec, feature_dim, config)
    return MultiTaskModel(encoder, nn.ModuleDict({cls.name: cls(context) for cls in task_classes(config)}))
