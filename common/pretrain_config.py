"""The field groups every pretraining experiment shares; each experiment's config.py composes them with its
own (common/config.py, compose_config) and sets its defaults.

SSLConfig: the run, model, tasks, weighting, optimiser and pretext fields, used by centralized runs and
federated clients alike. ScheduleConfig: the centralized schedule (epochs, warm-up, monitor). PretrainConfig:
the two, the generic pretraining config (tests, benchmarks).
"""
import dataclasses
import json
import math
from pathlib import Path
from typing import ClassVar

from common.config import Config, compose_config, config_to_dict, field
from common.encoders import check_encoder_args
from ground.errors import UserError
from ground.io import check_writable_folder
from common.monitor import check_tensorboard
from ground.paths import REPO_ROOT, cache_folder
from common.run_folder import RunFolder
from common.runtime import DEVICES, PRECISIONS, select_device
from common.tasks import THESIS_TASKS, TASKS, active_task_names
from common.weighting import WEIGHTINGS


# what a run's config may differ in and still be the same recipe: where it is written, its name, how it is
# resumed or watched (a shipped encoder, a reused study run, a resumed checkpoint), and config.json's runtime
# record (the thread count and torch build: the study pools runs from machines that differ in them)
RUN_ONLY_FIELDS = ("experiment_name", "output_dir", "cache_dir", "resume", "overwrite", "device", "precision",
                   "monitor_every", "tensorboard", "runtime")


def recipe_differences(recorded, config, allowed=()):
    """{field: (recorded value, config's value)} where a run's recorded config (config.json's or a checkpoint's
    dict) computes something else than `config`, the RUN_ONLY_FIELDS and `allowed` aside. A field the record
    lacks (newer than the run) counts at its default, which reproduces what the run did."""
    default_tasks = getattr(config, "DEFAULT_TASKS", THESIS_TASKS)
    now = with_trained_tasks(json.loads(json.dumps(config_to_dict(config))), default_tasks)
    then = with_trained_tasks(json.loads(json.dumps({**config_to_dict(type(config)()), **recorded})),
                              default_tasks)  # JSON values (a checkpoint's tuples, config.json's lists)
    return {k: (then.get(k), v) for k, v in now.items()
            if k not in RUN_ONLY_FIELDS + tuple(allowed) and then.get(k) != v}


def with_trained_tasks(values, default_tasks=THESIS_TASKS):
    """A saved pretraining config (config.json's dict) with the tasks it trains in place of how its flags named
    them (--model_heads, --tasks): two runs of one recipe compare equal however they were asked for."""
    if "model_heads" not in values:
        return values
    tasks = active_task_names(values["model_heads"], values["tasks"], default_tasks)
    return {**{k: v for k, v in values.items() if k != "model_heads"}, "tasks": tasks}


@dataclasses.dataclass
class SSLConfig(Config):
    # the run: what fixes it, where it goes, how it resumes
    seed: int = field(42, "fixes data order, augmentations, masks and initialisation")
    experiment_name: str = field("mtl", "first part of the run folder's name")
    output_dir: str = field("outputs", "run folders go here (relative paths: to the repository root)")
    cache_dir: str = field("", "precomputed pretext views and dataset caches; empty: data/cache under the "
                               "checkout, or $MTSSL_DATA_DIR/cache when that is set")
    resume: int = field(0, "1: continue from the run folder's last checkpoint")
    overwrite: int = field(0, "1: replace an earlier run of the same name (otherwise such a run is refused)")
    device: str = field("auto", "auto picks cuda, then mps, then cpu", choices=DEVICES)
    precision: str = field("auto", "auto: bf16 autocast on cuda, fp32 elsewhere; bf16 works on CPU too",
                           choices=PRECISIONS)

    # which tasks train (--tasks by name, else the thesis's --model_heads switches, else DEFAULT_TASKS) and how
    # they are weighed
    DEFAULT_TASKS: ClassVar[tuple] = THESIS_TASKS
    model_heads: tuple[int, ...] = field((), "0/1 switches: augmentation, reconstruction, contrastive, features; "
                                             "empty: the experiment's default tasks")
    tasks: tuple[str, ...] = field((), "registered task names to train instead of the --model_heads switches")
    use_weighted_loss: int = field(1, "0: equal task weights whatever --weighting says")
    weighting: str = field("uncertainty", "dynamic task weighting", choices=WEIGHTINGS)
    task_weights: tuple[float, ...] = field((), "static weighting: one weight per active task, in their order")

    # the weightings' own settings
    dwa_temperature: float = field(2.0, "DWA softmax temperature")
    gradnorm_alpha: float = field(1.5, "GradNorm restoring-force strength")
    cagrad_c: float = field(0.5, "CAGrad conflict-aversion radius")
    famo_lr: float = field(0.025, "FAMO: Adam learning rate of the task logits")
    famo_gamma: float = field(0.01, "FAMO: weight decay of the task logits")

    # the encoder and the task heads
    encoder: str = field("cnn1d", "encoder architecture (common/encoders.py)")
    encoder_width: int = field(32, "channels of the first conv block")
    encoder_depth: int = field(3, "conv blocks")
    embedding_dim: int = field(128, "size of the embedding the classifier sees")
    augmentation_hidden: int = field(128, "augmentation head: hidden units")
    reconstruction_hidden: int = field(256, "reconstruction head: hidden units")
    contrastive_hidden: int = field(128, "contrastive head: hidden units")
    projection_dim: int = field(64, "contrastive head: size of the projection NT-Xent compares")
    features_hidden: int = field(256, "expert-feature head: hidden units (also the rocket head's)")
    rocket_dim: int = field(256, "rocket task (--tasks ... rocket): principal components of MiniRocket's features "
                                 "it regresses")
    rocket_kernels: int = field(10_000, "rocket task: MiniRocket features before the PCA (multiples of 84)")
    rocket_fit_windows: int = field(32_768, "rocket task: MiniRocket and its PCA are fit on this many windows drawn "
                                            "by --seed (on all when there are fewer); every window's targets are "
                                            "then computed in chunks into a memory-mapped file")

    # the optimiser
    batch_size: int = field(128, "windows per step (per process under torchrun)")
    lr: float = field(2e-3, "peak AdamW learning rate")
    min_lr_ratio: float = field(0.05, "cosine schedule ends at lr * this")
    weight_decay: float = field(1e-4, "AdamW weight decay (not on task-weighting parameters)")
    grad_clip: float = field(5.0, "max gradient norm; 0 disables clipping")

    # the pretext tasks' inputs
    temperature: float = field(0.1, "NT-Xent temperature")
    mask_ratio: float = field(0.15, "share of each channel masked for reconstruction")
    mask_span: int = field(8, "length of one masked span, in samples")
    precompute: int = field(1, "1: precomputed views (fast); 0: augment each batch on the fly")
    n_variants: int = field(8, "precomputed augmented variants per window")

    def check_values(self):
        if self.model_heads and (len(self.model_heads) != len(THESIS_TASKS)
                                 or any(v not in (0, 1) for v in self.model_heads)):
            raise UserError(f"--model_heads takes four 0/1 values ({', '.join(THESIS_TASKS)}), "
                            f"got {list(self.model_heads)}")
        unknown = [name for name in self.tasks if name not in TASKS]
        if unknown:
            raise UserError(f"--tasks: unknown task(s) {', '.join(unknown)}; registered: {', '.join(TASKS)}")
        if not self.active_tasks():
            raise UserError("--model_heads turns every task off: at least one must be 1")
        try:
            check_encoder_args(self.encoder, width=self.encoder_width, depth=self.encoder_depth,
                               embedding_dim=self.embedding_dim)
        except ValueError as err:
            raise UserError(f"{err} (flags --encoder, --encoder_width, --encoder_depth, --embedding_dim)") from None
        if self.batch_size < 2:  # batch norm needs two inputs per step
            raise UserError(f"--batch_size must be at least 2, got {self.batch_size}")
        for name in ("n_variants", "mask_span", "augmentation_hidden", "reconstruction_hidden", "contrastive_hidden",
                     "projection_dim", "features_hidden", "rocket_dim"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name} must be at least 1, got {getattr(self, name)}")
        for name in ("lr", "temperature", "dwa_temperature"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise UserError(f"--{name} must be a positive number, got {value}")
        if self.weighting == "static" and self.use_weighted_loss:
            active = self.active_tasks()
            if len(self.task_weights) != len(active) or min(self.task_weights, default=0) < 0:
                raise UserError(f"--weighting static takes {len(active)} non-negative --task_weights "
                                f"({', '.join(active)}), got {list(self.task_weights)}")
        if self.rocket_fit_windows < 2:
            raise UserError(f"--rocket_fit_windows must be at least 2, got {self.rocket_fit_windows}")
        if self.rocket_kernels < 84:
            raise UserError(f"--rocket_kernels must be at least 84 (MiniRocket's kernels), got {self.rocket_kernels}")
        for name in ("famo_lr",):
            if not getattr(self, name) > 0:
                raise UserError(f"--{name} must be positive, got {getattr(self, name)}")
        for name in ("weight_decay", "grad_clip", "gradnorm_alpha", "cagrad_c", "famo_gamma"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise UserError(f"--{name} must be a non-negative number, got {value}")
        if not 0 < self.min_lr_ratio <= 1:
            raise UserError(f"--min_lr_ratio must be in (0, 1], got {self.min_lr_ratio}")
        if not 0 < self.mask_ratio < 1:
            raise UserError(f"--mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if any(getattr(self, name) not in (0, 1) for name in ("use_weighted_loss", "precompute", "resume",
                                                              "overwrite")):
            raise UserError("--use_weighted_loss, --precompute, --resume and --overwrite take 0 or 1")
        if self.resume and self.overwrite:
            raise UserError("--resume 1 and --overwrite 1 contradict each other: choose one")
        if not self.experiment_name or "/" in self.experiment_name:
            raise UserError(f"--experiment_name must be a plain name, got {self.experiment_name!r}")

    def check_machine(self):
        """The start-up step, after every value is valid: the device is there (an accelerator that is not is a
        config error, found before any work), the output folder can be written and holds no run this would
        replace."""
        select_device(self.device)
        check_writable_folder(self.run_dir().parent, "--output_dir")
        if self.cache_dir:
            check_writable_folder(cache_folder(self.cache_dir), "--cache_dir")
        RunFolder(self.run_dir(), writer=False).check_can_start(self.resume, self.overwrite)

    def active_tasks(self):
        return active_task_names(self.model_heads, self.tasks, self.DEFAULT_TASKS)

    def run_name(self):
        """<experiment>_seed<seed>_<tasks>: the thesis's four as their switches (heads1011), others by name."""
        active = self.active_tasks()
        if self.tasks or not set(active) <= set(THESIS_TASKS):
            heads = "tasks" + "+".join(active)
        else:
            heads = "heads" + "".join("1" if name in active else "0" for name in THESIS_TASKS)
        return f"{self.experiment_name}_seed{self.seed}_{heads}"

    def run_dir(self):
        out = Path(self.output_dir)
        return (out if out.is_absolute() else REPO_ROOT / out) / self.run_name()


@dataclasses.dataclass
class ScheduleConfig(Config):
    epochs: int = field(30, "pretraining epochs")
    warmup_epochs: float = field(1.0, "linear warm-up before the cosine decay")
    monitor_every: int = field(5, "epochs between kNN and logistic probes of the val subjects' embeddings (and "
                                  "the last epoch); 0: no monitor")
    tensorboard: int = field(0, "1: also write metrics.jsonl's numbers for TensorBoard under <run>/tensorboard")

    def check_machine(self):
        if self.tensorboard:
            check_tensorboard()

    def check_values(self):
        if self.epochs < 1:
            raise UserError(f"--epochs must be at least 1, got {self.epochs}")
        if self.monitor_every < 0 or self.tensorboard not in (0, 1):
            raise UserError("--monitor_every must be >= 0 (0: off) and --tensorboard 0 or 1")
        if not (math.isfinite(self.warmup_epochs) and self.warmup_epochs >= 0):
            raise UserError(f"--warmup_epochs must be a non-negative number, got {self.warmup_epochs}")


PretrainConfig = compose_config("PretrainConfig", __name__, (SSLConfig, ScheduleConfig))
