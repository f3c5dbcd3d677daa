"""The one multi-task pretraining loop: HAR, images and federated clients all train through MultiTaskTrainer.

Story of a run (`pretrain`): device, precision and seeds -> pretext batches from the dataset -> model
(encoder + the active task heads) and task weighting -> optimiser and cosine schedule -> resume if asked ->
epochs (progress bar, one JSON row per epoch, atomic checkpoint) -> encoder + summary.
Only rank 0 prints and writes; under torchrun the model is wrapped in DistributedDataParallel.
"""
import json
import math
import sys
import time
from collections import defaultdict
from contextlib import nullcontext

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from common.config import config_to_dict
from common.distributed import all_reduce_mean, average_gradients, cleanup_distributed, init_distributed
from common.encoders import count_parameters
from ground.errors import UserError
from common.model import build_model, task_classes
from common.monitor import ProbeMonitor, TensorBoardLog
from common.pretrain_config import recipe_differences
from common.run_folder import RunFolder
from common.runtime import autocast, resolve_precision, seed_everything, select_device
from common.weighting import ModelParameters, build_weighting


def lr_factor(step, total_steps, warmup_steps, min_ratio):
    """Linear warm-up to 1, then cosine decay to min_ratio."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class MultiTaskTrainer:
    """Model + task weighting + optimiser, and one epoch of multi-task steps: what every experiment shares.

    Centralized runs call train_epoch once per epoch; federated clients call it for their local epochs.
    `gradient_hooks`: callables hook(model) run after each backward pass, before clipping and the step
    (a federated client adds FedProx's proximal term this way).
    """

    def __init__(self, config, model, device, world_size=1):
        self.config, self.model, self.device, self.world_size = config, model, device, world_size
        self.weighting = build_weighting(config, list(model.tasks)).to(device)
        self.params = ModelParameters(model.shared_parameters(), model.last_shared_layer(),
                                      [p for task in model.tasks.values() for p in task.parameters()])
        self.optimizer = torch.optim.AdamW([
            {"params": model.parameters(), "weight_decay": config.weight_decay},
            {"params": list(self.weighting.parameters()), "weight_decay": 0.0},
        ], lr=config.lr)
        self.net = DistributedDataParallel(model) if world_size > 1 else model
        self.precision = resolve_precision(config.precision, device)
        self.gradient_hooks = []

    def train_epoch(self, batches, epoch, lr_at_step, show_progress=False, desc=""):
        """One pass over `batches.epoch(epoch)`; lr_at_step(i) sets the lr of step i of the epoch.

        Returns the epoch's mean losses and weights ({"loss/<task>": .., "weight/<task>": ..}), averaged
        over ranks, plus the number of steps and the seconds taken.
        """
        self.net.train()
        sums, count, start = defaultdict(float), 0, time.time()
        # a weighting that combines per-task gradients itself must not have DDP reduce them: forward and
        # backward both run under no_sync, then average_gradients reduces the combined gradient
        combines = self.weighting.combines_task_gradients and self.world_size > 1
        # a bar for people at a terminal; in a log file the loop's one line per epoch is enough
        progress = tqdm(batches.epoch(epoch), total=len(batches), disable=not (show_progress and sys.stderr.isatty()),
                        leave=False, mininterval=2, desc=desc)
        for step_in_epoch, batch in enumerate(progress):
            for group in self.optimizer.param_groups:
                group["lr"] = lr_at_step(step_in_epoch)
            batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
            with self.net.no_sync() if combines else nullcontext():
                with autocast(self.precision, self.device):
                    losses = self.net(batch)
                bad = [name for name, loss in losses.items() if not torch.isfinite(loss)]
                if bad:
                    raise UserError(f"non-finite loss in task(s) {', '.join(bad)} at {desc or f'epoch {epoch}'}, step "
                                    f"{step_in_epoch}: lower --lr or check the data")
                self.optimizer.zero_grad(set_to_none=True)
                weights = self.weighting.backward(losses, self.params)
            if combines:
                average_gradients(self.model.parameters())
            average_gradients(self.weighting.parameters())
            for hook in self.gradient_hooks:
                hook(self.model)
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

    def gradient_shares(self, batch, weights):
        """{"grad_share/<task>": share}: each task's weighted loss gradient on the shared encoder, as its norm's
        share of the tasks' summed norms, on one batch (eval mode: the batch-norm statistics stay as they are).
        Which task drives the representation, measured rather than read off the loss weights. Every rank
        measures its own batch (the contrastive loss gathers across ranks); the shares are averaged."""
        self.model.eval()
        batch = {k: v.to(self.device) for k, v in batch.items()}
        with autocast(self.precision, self.device):
            losses = self.model(batch)
        shared = self.model.shared_parameters()
        norms = {}
        for name, loss in losses.items():
            grads = torch.autograd.grad(weights[name] * loss.float(), shared, retain_graph=True, allow_unused=True)
            norms[name] = float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None)))
        total = sum(norms.values()) or 1.0
        self.model.train()
        return all_reduce_mean({f"grad_share/{name}": norm / total for name, norm in norms.items()}, self.device)


def pretrain(config, data, on_epoch_end=None):
    """Pretrain the multi-task model of `config` on `data` (a PretrainData); returns the summary dict."""
    # ------------------------------------------------------------------ setup
    device = select_device(config.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # input shapes are fixed: let cuDNN pick its fastest kernels
    rank, world_size = init_distributed(device)
    is_main = rank == 0
    seed_everything(config.seed)
    run = RunFolder(config.run_dir(), writer=is_main)
    precision = resolve_precision(config.precision, device)
    if is_main:
        print(f"run folder: {run.path}  (device {device}, {precision}, {world_size} process(es), commit {run.commit})")

    # ------------------------------------------------------------------ data
    if len(data.x) // world_size < 2:  # batch norm needs two inputs per step
        raise UserError(f"{len(data.x)} pretraining input(s) for {world_size} process(es): at least 2 per process "
                        f"are needed")
    start = time.time()
    tasks = task_classes(config)
    batches = data.batches(tasks, config.batch_size, bool(config.precompute), rank, world_size, device, verbose=is_main,
                           config=config)
    cache_seconds = time.time() - start

    # ------------------------------------------------------------------ model, weighting, optimiser
    input_shape = data.x.shape[1:]
    model = build_model(config, input_shape, data.spec, data.features.shape[1]).to(device)
    trainer = MultiTaskTrainer(config, model, device, world_size)
    steps_per_epoch = len(batches)
    total_steps, warmup_steps = config.epochs * steps_per_epoch, int(config.warmup_epochs * steps_per_epoch)

    # ------------------------------------------------------------------ resume
    checkpoint = {}

    def restore():
        checkpoint.update(run.load_checkpoint())
        # a resume continues the same recipe (--epochs may grow): another one would mix two runs' weights
        differs = recipe_differences(checkpoint.get("config") or {}, config, allowed=("epochs",))
        if checkpoint.get("config") and differs:
            raise UserError(f"{run / run.CHECKPOINT} was written by another recipe ("
                            + ", ".join(f"--{k} {then} there, {now} here" for k, (then, now) in differs.items())
                            + "): resume with its flags, or --overwrite 1 replaces it")
        if checkpoint.get("architecture") != model.architecture():
            raise UserError(f"{run / run.CHECKPOINT} holds another architecture ({checkpoint.get('architecture')}); "
                            f"use another --experiment_name or the same model flags")
        return checkpoint["epoch"] + 1

    start_epoch = run.open(config, config.epochs, "epoch", restore, log=print if is_main else lambda *a: None)
    if start_epoch is None:
        cleanup_distributed()
        return json.loads((run / run.SUMMARY).read_text())
    mean_losses = checkpoint.get("mean_losses", {})
    if start_epoch > 0:
        model.load_state_dict(checkpoint["model"])
        trainer.weighting.load_state_dict(checkpoint["weighting"])
        trainer.optimizer.load_state_dict(checkpoint["optimizer"])
        torch.set_rng_state(checkpoint["torch_rng"])
        if is_main:
            print(f"resumed from {run / run.CHECKPOINT} after epoch {start_epoch}")
        # a kill may have left a newer or older encoder than the checkpoint's
        run.save_encoder(model.encoder, input_shape, data.record)
    if is_main:
        print(f"tasks: {', '.join(model.tasks)}; weighting: {type(trainer.weighting).__name__}; "
              f"encoder parameters: {count_parameters(model.encoder):,}; {len(data.x)} inputs, "
              f"{steps_per_epoch} steps/epoch")

    # the monitor probes the val subjects' embeddings every --monitor_every epochs (rank 0 only)
    monitor = ProbeMonitor(data.probe) if is_main and config.monitor_every and data.probe is not None else None
    board = TensorBoardLog(run / "tensorboard") if is_main and config.tensorboard else None

    # ------------------------------------------------------------------ loop
    train_start = time.time()
    for epoch in range(start_epoch, config.epochs):
        def lr_at_step(i, epoch=epoch):
            return config.lr * lr_factor(epoch * steps_per_epoch + i, total_steps, warmup_steps, config.min_lr_ratio)

        means, count, seconds = trainer.train_epoch(batches, epoch, lr_at_step, show_progress=is_main,
                                                    desc=f"epoch {epoch + 1}/{config.epochs}")
        mean_losses = {name: means[f"loss/{name}"] for name in model.tasks}
        row = {"epoch": epoch + 1, **{k: round(v, 6) for k, v in means.items()},
               "lr": lr_at_step(steps_per_epoch - 1), "seconds": round(seconds, 3),
               "inputs_per_s": round(count * config.batch_size * world_size / seconds, 1)}
        probed = {}
        if config.monitor_every and ((epoch + 1) % config.monitor_every == 0 or epoch + 1 == config.epochs):
            # every rank: the contrastive loss gathers across them
            row.update({k: round(v, 4) for k, v in trainer.gradient_shares(
                next(iter(batches.epoch(epoch))), {name: means[f"weight/{name}"] for name in model.tasks}).items()})
            if monitor is not None:
                probed = monitor(model.encoder, device, precision)
        run.log({**row, **probed})
        if board is not None:
            board.log({**row, **probed})
        if is_main:
            print(f"epoch {epoch + 1}/{config.epochs} " + " ".join(f"{n}={v:.4f}" for n, v in mean_losses.items())
                  + f" ({seconds:.1f} s)" + "".join(f" {k.split('/')[1]}={v:.3f}" for k, v in probed.items()
                                                    if k != "monitor/seconds"))
        # the encoder first, the checkpoint last: a checkpoint marks an epoch done only when all its records are
        run.save_encoder(model.encoder, input_shape, data.record)
        run.save_checkpoint({
            "model": model.state_dict(), "weighting": trainer.weighting.state_dict(),
            "optimizer": trainer.optimizer.state_dict(), "epoch": epoch, "torch_rng": torch.get_rng_state(),
            "architecture": model.architecture(), "config": config_to_dict(config), "mean_losses": mean_losses,
        })
        if on_epoch_end is not None:
            on_epoch_end(epoch, model)

    # ------------------------------------------------------------------ save
    summary = {
        "run": config.run_name(), "tasks": list(model.tasks), "weighting": type(trainer.weighting).__name__,
        "final_losses": mean_losses, "epochs": config.epochs, "train_seconds": round(time.time() - train_start, 2),
        "cache_seconds": round(cache_seconds, 2), "world_size": world_size, "device": str(device),
        "precision": precision, "encoder_parameters": count_parameters(model.encoder), "git_commit": run.commit,
        **data.info,
    }
    run.write_summary(summary)
    if board is not None:
        board.close()
    cleanup_distributed()
    return summary
