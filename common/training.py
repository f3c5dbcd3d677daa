"""The one multi-task pretraining loop: HAR, images and federated clients all train through `pretrain`.

Story of a run: config -> device and seeds -> pretext data (precomputed views or on the fly) -> model
(encoder + the active task heads) and task weighting -> optimiser and cosine schedule -> resume if asked ->
epochs (progress bar, one JSON row per epoch, atomic checkpoint) -> encoder + summary.
Only rank 0 prints and writes; under torchrun the model is wrapped in DistributedDataParallel.
"""
import dataclasses
import json
import math
import random
import subprocess
import time
from collections import defaultdict
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from common.checkpoint import atomic_torch_save, load_checkpoint, save_encoder
from common.config import config_to_dict, field, save_config
from common.distributed import all_reduce_mean, average_gradients, cleanup_distributed, init_distributed
from common.encoders import ENCODERS, build_encoder, count_parameters
from common.errors import UserError
from common.paths import REPO_ROOT
from common.tasks import TASK_NAMES, MultiTaskModel, active_tasks, build_tasks
from common.weighting import WEIGHTINGS, CAGradWeighting, ModelParameters, build_weighting
from data_processing.pretext import PrecomputedViews, PretextBatches, PretextSpec


@dataclasses.dataclass
class PretrainConfig:
    """Fields shared by every pretraining experiment; each experiment's config.py sets its own defaults."""

    seed: int = field(42, "fixes data order, augmentations, masks and initialisation")
    experiment_name: str = field("mtl", "first part of the run folder's name")
    output_dir: str = field("outputs", "run folders go here (relative paths: to the repository root)")
    model_heads: tuple[int, ...] = field((1, 1, 1, 1), "0/1 switches: augmentation, reconstruction, contrastive, features")
    use_weighted_loss: int = field(1, "0: equal task weights whatever --weighting says")
    weighting: str = field("uncertainty", "dynamic task weighting", choices=WEIGHTINGS)
    encoder: str = field("cnn1d", "encoder architecture (common/encoders.py)")
    encoder_width: int = field(32, "channels of the first conv block")
    encoder_depth: int = field(3, "conv blocks")
    embedding_dim: int = field(128, "size of the embedding the classifier sees")
    epochs: int = field(30, "pretraining epochs")
    batch_size: int = field(128, "windows per step (per process under torchrun)")
    lr: float = field(2e-3, "peak AdamW learning rate")
    min_lr_ratio: float = field(0.05, "cosine schedule ends at lr * this")
    warmup_epochs: float = field(1.0, "linear warm-up before the cosine decay")
    weight_decay: float = field(1e-4, "AdamW weight decay (not on task-weighting parameters)")
    grad_clip: float = field(5.0, "max gradient norm; 0 disables clipping")
    temperature: float = field(0.1, "NT-Xent temperature")
    mask_ratio: float = field(0.15, "share of each channel masked for reconstruction")
    mask_span: int = field(8, "length of one masked span, in samples")
    precompute: int = field(1, "1: precomputed views (fast); 0: augment each batch on the fly")
    n_variants: int = field(8, "precomputed augmented variants per window")
    dwa_temperature: float = field(2.0, "DWA softmax temperature")
    gradnorm_alpha: float = field(1.5, "GradNorm restoring-force strength")
    cagrad_c: float = field(0.5, "CAGrad conflict-aversion radius")
    device: str = field("auto", "auto picks cuda, then mps, then cpu", choices=("auto", "cuda", "mps", "cpu"))
    resume: int = field(0, "1: continue from the run folder's last checkpoint")

    def validate(self):
        if len(self.model_heads) != 4 or any(v not in (0, 1) for v in self.model_heads):
            raise UserError(f"--model_heads takes four 0/1 values ({', '.join(TASK_NAMES)}), got {list(self.model_heads)}")
        if not any(self.model_heads):
            raise UserError("--model_heads turns every task off: at least one must be 1")
        if self.encoder not in ENCODERS:
            raise UserError(f"unknown --encoder {self.encoder!r}; known: {', '.join(sorted(ENCODERS))}")
        for name in ("epochs", "batch_size", "encoder_width", "encoder_depth", "embedding_dim", "n_variants", "mask_span"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name} must be at least 1, got {getattr(self, name)}")
        for name in ("lr", "temperature"):
            if not getattr(self, name) > 0:
                raise UserError(f"--{name} must be positive, got {getattr(self, name)}")
        if not 0 < self.mask_ratio < 1:
            raise UserError(f"--mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if self.use_weighted_loss not in (0, 1) or self.precompute not in (0, 1) or self.resume not in (0, 1):
            raise UserError("--use_weighted_loss, --precompute and --resume take 0 or 1")
        if not self.experiment_name or "/" in self.experiment_name:
            raise UserError(f"--experiment_name must be a plain name, got {self.experiment_name!r}")

    def run_name(self):
        return f"{self.experiment_name}_seed{self.seed}_heads{''.join(map(str, self.model_heads))}"

    def run_dir(self):
        out = Path(self.output_dir)
        return (out if out.is_absolute() else REPO_ROOT / out) / self.run_name()


def select_device(name="auto"):
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but no CUDA device is available")
    return torch.device(name)


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def lr_factor(step, total_steps, warmup_steps, min_ratio):
    """Linear warm-up to 1, then cosine decay to min_ratio."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


@dataclasses.dataclass
class PretrainData:
    """What the loop needs from a dataset: clean inputs, expert features, how to make pretext inputs."""

    x: np.ndarray  # (N, *input_shape): float32 windows, or uint8 images (a memory map is read batch by batch)
    features: np.ndarray  # (N, F) float32
    spec: PretextSpec
    info: dict  # recorded in the run's summary (source, split, ...)


def build_model(config, input_shape, num_transforms, feature_dim):
    encoder = build_encoder(config.encoder, in_channels=input_shape[0], width=config.encoder_width,
                            depth=config.encoder_depth, embedding_dim=config.embedding_dim)
    tasks = build_tasks(active_tasks(config.model_heads), config.embedding_dim, input_shape, num_transforms,
                        feature_dim, temperature=config.temperature)
    return MultiTaskModel(encoder, tasks)


def _architecture(model):
    return {"model_args": model.encoder.model_args, "tasks": list(model.tasks)}


class _Logger:
    def __init__(self, run_dir, enabled):
        self.path, self.enabled = run_dir / "metrics.jsonl", enabled

    def row(self, values):
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(values) + "\n")


class MultiTaskTrainer:
    """Model + task weighting + optimiser, and one epoch of multi-task steps: what every experiment shares.

    Centralized runs call train_epoch once per epoch; federated clients call it for their local epochs.
    """

    def __init__(self, config, model, device, world_size=1):
        self.config, self.model, self.device, self.world_size = config, model, device, world_size
        self.weighting = build_weighting(config.weighting, list(model.tasks), bool(config.use_weighted_loss),
                                         config.dwa_temperature, config.gradnorm_alpha, config.cagrad_c).to(device)
        self.params = ModelParameters(model.shared_parameters(), model.last_shared_layer(),
                                      [p for task in model.tasks.values() for p in task.parameters()])
        self.optimizer = torch.optim.AdamW([
            {"params": model.parameters(), "weight_decay": config.weight_decay},
            {"params": list(self.weighting.parameters()), "weight_decay": 0.0},
        ], lr=config.lr)
        self.net = DistributedDataParallel(model) if world_size > 1 else model
        self.manipulates_gradients = isinstance(self.weighting, CAGradWeighting)
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext

    def train_epoch(self, batches, epoch, lr_at_step, show_progress=False, desc="", proximal_to=None, proximal_mu=0.0):
        """One pass over `batches.epoch(epoch)`; lr_at_step(i) sets the lr of step i of the epoch.

        proximal_to: {name: tensor} global weights for FedProx's term mu/2 ||w - w_global||^2.
        Returns the epoch's mean losses and weights ({"loss/<task>": .., "weight/<task>": ..}), averaged
        over ranks, plus the number of steps and the seconds taken.
        """
        self.net.train()
        sums, count, start = defaultdict(float), 0, time.time()
        progress = tqdm(batches.epoch(epoch), total=len(batches), disable=not show_progress, leave=False,
                        mininterval=2, desc=desc)
        for step_in_epoch, batch in enumerate(progress):
            for group in self.optimizer.param_groups:
                group["lr"] = lr_at_step(step_in_epoch)
            batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
            # gradient-manipulating weightings combine per-task gradients themselves, so DDP must not
            # reduce them: forward and backward both run under no_sync, then average_gradients reduces
            sync = self.net.no_sync() if self.manipulates_gradients and self.world_size > 1 else nullcontext()
            with sync:
                with self.autocast():
                    losses = self.net(batch)
                bad = [name for name, loss in losses.items() if not torch.isfinite(loss)]
                if bad:
                    raise UserError(f"non-finite loss in task(s) {', '.join(bad)} at epoch {epoch + 1}, step "
                                    f"{step_in_epoch}: lower --lr or check the data")
                self.optimizer.zero_grad(set_to_none=True)
                weights = self.weighting.backward(losses, self.params)
            if self.manipulates_gradients:
                average_gradients(self.model.parameters())
            average_gradients(self.weighting.parameters())
            if proximal_to is not None and proximal_mu > 0:
                with torch.no_grad():  # gradient of mu/2 ||w - w_global||^2
                    for name, p in self.model.named_parameters():
                        if p.grad is not None:
                            p.grad.add_(proximal_mu * (p - proximal_to[name]))
            if self.config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
            self.optimizer.step()
            self.weighting.after_step()
            for name, loss in losses.items():
                sums[f"loss/{name}"] += loss.item()
                sums[f"weight/{name}"] += weights[name]
            count += 1
            if show_progress:
                progress.set_postfix({name: f"{loss.item():.3f}" for name, loss in losses.items()})
        means = all_reduce_mean({k: v / max(count, 1) for k, v in sums.items()}, self.device)
        self.weighting.end_epoch({name: means[f"loss/{name}"] for name in self.model.tasks})
        return means, count, time.time() - start


def make_batches(config, data, rank=0, world_size=1, verbose=False, device="cpu"):
    """PretextBatches of `data` on `device`, reading (building once) the precomputed views when
    config.precompute, else augmenting each batch on `device`."""
    views = None
    if config.precompute:
        if rank == 0:
            views = PrecomputedViews(data.x, data.spec, verbose=verbose)
        if world_size > 1:
            torch.distributed.barrier()  # rank 0 builds the cache, the others then open it
        if rank != 0:
            views = PrecomputedViews(data.x, data.spec)
    mode = "precomputed" if config.precompute else "on_the_fly"
    return PretextBatches(data.x, data.features, config.batch_size, data.spec, mode, views, rank, world_size, device)


def pretrain(config, data, on_epoch_end=None):
    """Pretrain the multi-task model of `config` on `data`; returns the summary dict (rank 0 writes it)."""
    # ------------------------------------------------------------------ setup
    device = select_device(config.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # input shapes are fixed: let cuDNN pick its fastest kernels
    rank, world_size = init_distributed(device)
    is_main = rank == 0
    seed_everything(config.seed)
    run_dir = config.run_dir()
    checkpoint_path = run_dir / "checkpoint.pt"
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not config.resume and (run_dir / "metrics.jsonl").exists():
            (run_dir / "metrics.jsonl").unlink()  # a fresh run replaces an old run of the same name
        save_config(config, run_dir / "config.json")
        print(f"run folder: {run_dir}  (device {device}, {world_size} process(es), commit {git_commit()})")

    # ------------------------------------------------------------------ data
    start = time.time()
    batches = make_batches(config, data, rank, world_size, verbose=is_main, device=device)
    cache_seconds = time.time() - start

    # ------------------------------------------------------------------ model, weighting, optimiser
    model = build_model(config, data.x.shape[1:], len(data.spec.transforms), data.features.shape[1]).to(device)
    trainer = MultiTaskTrainer(config, model, device, world_size)
    steps_per_epoch = len(batches)
    total_steps, warmup_steps = config.epochs * steps_per_epoch, int(config.warmup_epochs * steps_per_epoch)

    # ------------------------------------------------------------------ resume
    start_epoch = 0
    if config.resume and (checkpoint_path.exists() or checkpoint_path.with_name("checkpoint.pt.prev").exists()):
        state = load_checkpoint(checkpoint_path)
        if state.get("architecture") != _architecture(model):
            raise UserError(f"{checkpoint_path} holds another architecture ({state.get('architecture')}); "
                            f"use another --experiment_name or the same model flags")
        model.load_state_dict(state["model"])
        trainer.weighting.load_state_dict(state["weighting"])
        trainer.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        start_epoch = state["epoch"] + 1
        if is_main:
            print(f"resumed from {checkpoint_path} after epoch {start_epoch}")
    elif config.resume and is_main:
        print(f"--resume 1 but no checkpoint in {run_dir}: starting fresh")
    logger = _Logger(run_dir, is_main)
    if is_main:
        print(f"tasks: {', '.join(model.tasks)}; weighting: {type(trainer.weighting).__name__}; "
              f"encoder parameters: {count_parameters(model.encoder):,}; {len(data.x)} inputs, "
              f"{steps_per_epoch} steps/epoch")

    # ------------------------------------------------------------------ loop
    train_start = time.time()
    mean_losses = {}
    for epoch in range(start_epoch, config.epochs):
        def lr_at_step(i, epoch=epoch):
            return config.lr * lr_factor(epoch * steps_per_epoch + i, total_steps, warmup_steps, config.min_lr_ratio)

        means, count, seconds = trainer.train_epoch(batches, epoch, lr_at_step, show_progress=is_main,
                                                    desc=f"epoch {epoch + 1}/{config.epochs}")
        mean_losses = {name: means[f"loss/{name}"] for name in model.tasks}
        row = {"epoch": epoch + 1, **{k: round(v, 6) for k, v in means.items()},
               "lr": lr_at_step(steps_per_epoch - 1), "seconds": round(seconds, 3),
               "inputs_per_s": round(count * config.batch_size * world_size / seconds, 1)}
        if is_main:
            logger.row(row)
            print(f"epoch {epoch + 1}/{config.epochs} " + " ".join(f"{n}={v:.4f}" for n, v in mean_losses.items())
                  + f" ({seconds:.1f} s)")
            atomic_torch_save({
                "model": model.state_dict(), "weighting": trainer.weighting.state_dict(),
                "optimizer": trainer.optimizer.state_dict(), "epoch": epoch, "torch_rng": torch.get_rng_state(),
                "architecture": _architecture(model), "config": config_to_dict(config),
            }, checkpoint_path)
            save_encoder(model.encoder, run_dir / "encoder.pt", {"input_shape": list(data.x.shape[1:])})
        if on_epoch_end is not None:
            on_epoch_end(epoch, model)

    # ------------------------------------------------------------------ save
    summary = {
        "run": config.run_name(), "tasks": list(model.tasks), "weighting": type(trainer.weighting).__name__,
        "final_losses": mean_losses, "epochs": config.epochs, "train_seconds": round(time.time() - train_start, 2),
        "cache_seconds": round(cache_seconds, 2), "world_size": world_size, "device": str(device),
        "encoder_parameters": count_parameters(model.encoder), "git_commit": git_commit(), **data.info,
    }
    if is_main:
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    cleanup_distributed()
    return summary
