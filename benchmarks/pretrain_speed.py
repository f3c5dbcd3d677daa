"""Pretraining speed on this machine: precomputed vs on-the-fly pretext data, cache build, epoch, memory.

Usage:
    python benchmarks/pretrain_speed.py [--experiment har|ir] [--repeats 3] [--steps 20] [--full]
    python benchmarks/pretrain_speed.py --experiment ir --preset cpu_smoke          # the digits demo
    python benchmarks/pretrain_speed.py --experiment ir --random_images 2048 --train_steps 10 --encoder_width 16
Any other flag is a flag of the experiment's config (train_encoder.py's flags). Prints, with the config's
tasks (all four by default):
- cache build time of the precomputed views (fresh temporary cache, median over repeats);
- training inputs/s on the config's device, precomputed vs on the fly (the real loop,
  MultiTaskTrainer.train_epoch: batch production, forward, weighting backward, clipping, optimiser step; one
  epoch, or its first --train_steps steps), runs interleaved, medians and ratio;
- the data pipeline alone, and the time of one default epoch;
- with --full, the wall time of the default full pretraining (train_encoder.py defaults, run here);
- peak resident memory of this process (and peak GPU memory on cuda).
--random_images N replaces the dataset by N uniformly random uint8 images of the config's shape (STL-10's
3 x 96 x 96 by default): throughput does not depend on pixel content, and STL-10 cannot be downloaded offline.
"""
import argparse
import itertools
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common.config import parse_config
from har_task import HARTask
from common.model import build_model, task_classes
from common.runtime import resolve_precision, seed_everything, select_device
from common.training import MultiTaskTrainer, pretrain
from data_processing.pretext import PrecomputedViews, PretextBatches, PretextSpec, PretrainData
from HAR_centralized.config import HARPretrainConfig
from IR_centralized.config import IRPretrainConfig
from IR_centralized.train_encoder import image_pretrain_data

EXPERIMENTS = {"har": (HARPretrainConfig, lambda config: HARTask(config).pretrain_data()),
               "ir": (IRPretrainConfig, image_pretrain_data)}


class FirstSteps:
    """The first `steps` batches of each epoch of `batches` (a long epoch timed in part)."""

    def __init__(self, batches, steps):
        self.batches, self.steps = batches, min(steps, len(batches)) if steps else len(batches)

    def __len__(self):
        return self.steps

    def epoch(self, epoch):
        return itertools.islice(self.batches.epoch(epoch), self.steps)


def random_image_data(config, count):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(count, 3, config.image_size, config.image_size), dtype=np.uint8)
    features = rng.standard_normal((count, 60)).astype(np.float32)
    spec = PretextSpec.for_images(mask_ratio=config.mask_ratio, mask_span=config.mask_span,
                                  n_variants=config.n_variants, seed=config.seed)
    return PretrainData(x, features, spec, {"data_source": "random uint8 images"})


def time_steps(config, data, mode, views, device, train_steps, targets):
    """Seconds per step of one epoch (or its first train_steps) of the real loop, and steps per epoch."""
    seed_everything(config.seed)
    model = build_model(config, data.x.shape[1:], data.spec, data.features.shape[1]).to(device)
    trainer = MultiTaskTrainer(config, model, device)
    batches = PretextBatches(data.x, data.features, config.batch_size, data.spec, task_classes(config), mode, views,
                             device=device, targets=targets)
    _, steps, seconds = trainer.train_epoch(FirstSteps(batches, train_steps), 0, lambda step: config.lr)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seconds / steps, len(batches)


def time_data_only(config, data, mode, views, steps, device, targets):
    """Seconds per batch of producing pretext batches alone (no model)."""
    batches = PretextBatches(data.x, data.features, config.batch_size, data.spec, task_classes(config), mode, views,
                             device=device, targets=targets)
    steps = min(steps, len(batches) - 1)  # a small dataset has fewer batches in an epoch
    iterator = batches.epoch(0)
    next(iterator)
    start = time.perf_counter()
    for _ in range(steps):
        next(iterator)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20, help="batches timed for the data pipeline alone")
    parser.add_argument("--train_steps", type=int, default=0, help="training steps timed per run; 0: one epoch")
    parser.add_argument("--random_images", type=int, default=0,
                        help="ir: this many random uint8 images instead of the data")
    parser.add_argument("--full", action="store_true", help="also time the default full pretraining")
    parser.add_argument("--experiment", default="har", choices=sorted(EXPERIMENTS))
    args, config_args = parser.parse_known_args()

    config_cls, make_data = EXPERIMENTS[args.experiment]
    config = parse_config(config_cls, config_args)
    data = random_image_data(config, args.random_images) if args.random_images else make_data(config)
    device = select_device(config.device)
    print(f"{args.experiment}: torch {torch.__version__}, device {device}, precision "
          f"{resolve_precision(config.precision, device)}, {torch.get_num_threads()} CPU threads; "
          f"{len(data.x)} inputs of shape {tuple(data.x.shape[1:])} ({data.info['data_source']}, {data.x.dtype}), "
          f"batch {config.batch_size}, encoder {config.encoder} width {config.encoder_width} depth "
          f"{config.encoder_depth}, tasks {', '.join(t.name for t in task_classes(config))}")

    build_times, views = [], None
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            PrecomputedViews(data.x, data.spec, task_classes(config), cache_dir=Path(tmp))
            build_times.append(time.perf_counter() - start)
    # the persistent cache the training runs use; random images get a throw-away one
    scratch = tempfile.TemporaryDirectory() if args.random_images else None
    views = PrecomputedViews(data.x, data.spec, task_classes(config), cache_dir=Path(scratch.name) if scratch else None)
    print(f"precomputed views: {config.n_variants} variants, {views.nbytes() / 2**20:.0f} MiB on disk; "
          f"build median {statistics.median(build_times):.1f} s over {args.repeats} runs")

    targets = data.dataset_targets(task_classes(config), config)  # e.g. the rocket task's, made once
    per_step = {"precomputed": [], "on_the_fly": []}
    for _ in range(args.repeats):
        for mode in per_step:  # interleaved, so machine noise hits both alike
            seconds, steps_per_epoch = time_steps(config, data, mode, views if mode == "precomputed" else None,
                                                  device, args.train_steps, targets)
            per_step[mode].append(seconds)
    medians = {mode: statistics.median(v) for mode, v in per_step.items()}
    for mode, seconds in medians.items():
        runs = ", ".join(f"{config.batch_size / s:.0f}" for s in per_step[mode])
        print(f"{mode:12s}: {config.batch_size / seconds:7.0f} inputs/s median (runs: {runs})")
    ratios = [b / a for a, b in zip(per_step["precomputed"], per_step["on_the_fly"])]
    print(f"precomputed / on the fly: {statistics.median(ratios):.2f}x (median of per-repeat ratios)")
    data_only = {mode: statistics.median(time_data_only(config, data, mode, views if mode == "precomputed" else None,
                                                        args.steps, device, targets) for _ in range(args.repeats))
                 for mode in per_step}
    print(f"data pipeline alone: precomputed {config.batch_size / data_only['precomputed']:.0f} inputs/s, "
          f"on the fly {config.batch_size / data_only['on_the_fly']:.0f} inputs/s "
          f"({data_only['on_the_fly'] / data_only['precomputed']:.1f}x)")
    print(f"one default epoch ({steps_per_epoch} steps): {steps_per_epoch * medians['precomputed']:.1f} s "
          f"precomputed, {steps_per_epoch * medians['on_the_fly']:.1f} s on the fly")

    if args.full:
        with tempfile.TemporaryDirectory() as tmp:
            full = parse_config(config_cls, [*config_args, "--output_dir", tmp, "--experiment_name", "bench"])
            start = time.perf_counter()
            pretrain(full, data)
            print(f"default full pretraining ({full.epochs} epochs): {time.perf_counter() - start:.0f} s wall")
    print(f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    if device.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


if __name__ == "__main__":
    sys.exit(main())
