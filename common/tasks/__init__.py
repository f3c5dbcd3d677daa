"""The pretext tasks, one file each, keyed by name in TASKS (common/tasks/base.py says what a task is).

Batch keys every pipeline provides: x (B, *S) clean input, features (B, F) its expert features; each task
adds its own targets (augmentation: aug_x, aug_label; reconstruction: mask, masked_x; contrastive: view1,
view2; rocket, beyond the thesis's four: its MiniRocket targets). `--model_heads` switches the thesis's four
tasks in THESIS_TASKS order; `--tasks` names any registered ones; neither: the experiment's default list.
"""
from common.tasks import augmentation, contrastive, features, reconstruction, rocket  # noqa: F401 (registers them)
from common.tasks.base import TASKS, PretextTask, TaskContext, register_task  # noqa: F401 (the package's API)

# the order of the four --model_heads switches
THESIS_TASKS = ("augmentation", "reconstruction", "contrastive", "features")


def active_task_names(model_heads, tasks=(), default=THESIS_TASKS):
    """The tasks a run trains: `tasks` by name when given, else the thesis's four switched by model_heads when
    given, else the experiment's default list."""
    if tasks:
        return list(dict.fromkeys(tasks))
    if model_heads:
        return [name for name, on in zip(THESIS_TASKS, model_heads) if on]
    return list(default)
