"""Pretraining speed on this machine: precomputed vs on-the-fly pretext data, cache build, epoch, memory.

Usage: python benchmarks/pretrain_speed.py [--experiment har|ir] [--repeats 3] [--steps 20] [--full]
Prints, with the experiment's default config (HAR windows, or the image demo's digits) and all four heads:
- cache build time of the precomputed views (fresh temporary cache, median over repeats);
- training inputs/s, precomputed vs on the fly (one epoch of the real loop, MultiTaskTrainer.train_epoch:
  batch production, forward, weighting backward, clipping, optimiser step), runs interleaved, medians and ratio;
- the time of one default epoch;
- with --full, the wall time of the default full pretraining (train_encoder.py defaults, run here);
- peak resident memory of this process.
"""
import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from common.config import parse_config
from common.tasks import TASK_NAMES
from common.training import MultiTaskTrainer, build_model, pretrain, seed_everything
from data_processing.pretext import PrecomputedViews, PretextBatches
from HAR_centralized.config import HARPretrainConfig
from HAR_centralized.train_encoder import har_pretrain_data
from IR_centralized.config import IRPretrainConfig
from IR_centralized.train_encoder import image_pretrain_data

EXPERIMENTS = {"har": (HARPretrainConfig, har_pretrain_data), "ir": (IRPretrainConfig, image_pretrain_data)}


def time_steps(config, data, mode, views):
    """Seconds per step of one epoch of the real loop (MultiTaskTrainer.train_epoch), and steps per epoch."""
    seed_everything(config.seed)
    model = build_model(config, data.x.shape[1:], len(data.spec.transforms), data.features.shape[1])
    trainer = MultiTaskTrainer(config, model, torch.device("cpu"))
    batches = PretextBatches(data.x, data.features, config.batch_size, data.spec, mode, views)
    _, steps, seconds = trainer.train_epoch(batches, 0, lambda step: config.lr)
    return seconds / steps, steps


def time_data_only(config, data, mode, views, steps):
    """Seconds per batch of producing pretext batches alone (no model)."""
    batches = PretextBatches(data.x, data.features, config.batch_size, data.spec, mode, views)
    steps = min(steps, len(batches) - 1)  # a small dataset has fewer batches in an epoch
    iterator = batches.epoch(0)
    next(iterator)
    start = time.perf_counter()
    for _ in range(steps):
        next(iterator)
    return (time.perf_counter() - start) / steps


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--full", action="store_true", help="also time the default full pretraining")
    parser.add_argument("--experiment", default="har", choices=sorted(EXPERIMENTS))
    args = parser.parse_args()

    config_cls, make_data = EXPERIMENTS[args.experiment]
    config = parse_config(config_cls, [])
    data = make_data(config)
    device = "cuda" if torch.cuda.is_available() else "cpu"  # the loop picks the same; the benchmark runs on cpu
    print(f"{args.experiment}: torch {torch.__version__}, {torch.get_num_threads()} threads ({device} available); "
          f"{len(data.x)} inputs of shape {tuple(data.x.shape[1:])}, "
          f"batch {config.batch_size}, encoder width {config.encoder_width}, heads {', '.join(TASK_NAMES)}")

    build_times, views = [], None
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            PrecomputedViews(data.x, data.spec, cache_dir=Path(tmp))
            build_times.append(time.perf_counter() - start)
    views = PrecomputedViews(data.x, data.spec)  # the persistent cache the training runs use
    print(f"precomputed views: {config.n_variants} variants, {views.nbytes() / 2**20:.0f} MiB on disk; "
          f"build median {statistics.median(build_times):.1f} s over {args.repeats} runs")

    per_step = {"precomputed": [], "on_the_fly": []}
    for _ in range(args.repeats):
        for mode in per_step:  # interleaved, so machine noise hits both alike
            seconds, steps_per_epoch = time_steps(config, data, mode, views if mode == "precomputed" else None)
            per_step[mode].append(seconds)
    medians = {mode: statistics.median(v) for mode, v in per_step.items()}
    for mode, seconds in medians.items():
        runs = ", ".join(f"{config.batch_size / s:.0f}" for s in per_step[mode])
        print(f"{mode:12s}: {config.batch_size / seconds:7.0f} inputs/s median (runs: {runs})")
    ratios = [b / a for a, b in zip(per_step["precomputed"], per_step["on_the_fly"])]
    print(f"precomputed / on the fly: {statistics.median(ratios):.2f}x (median of per-repeat ratios)")
    data_only = {mode: statistics.median(time_data_only(config, data, mode, views if mode == "precomputed" else None,
                                                        args.steps) for _ in range(args.repeats))
                 for mode in per_step}
    print(f"data pipeline alone: precomputed {config.batch_size / data_only['precomputed']:.0f} inputs/s, "
          f"on the fly {config.batch_size / data_only['on_the_fly']:.0f} inputs/s "
          f"({data_only['on_the_fly'] / data_only['precomputed']:.1f}x)")
    print(f"one default epoch ({steps_per_epoch} steps): {steps_per_epoch * medians['precomputed']:.1f} s "
          f"precomputed, {steps_per_epoch * medians['on_the_fly']:.1f} s on the fly")

    if args.full:
        with tempfile.TemporaryDirectory() as tmp:
            full = parse_config(config_cls, ["--output_dir", tmp, "--experiment_name", "bench"])
            start = time.perf_counter()
            pretrain(full, data)
            print(f"default full pretraining ({full.epochs} epochs): {time.perf_counter() - start:.0f} s wall")
    print(f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    sys.exit(main())
