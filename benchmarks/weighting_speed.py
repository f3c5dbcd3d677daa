"""What each task weighting costs per epoch: the real training step with every weighting, in one run.

Usage:
    python benchmarks/weighting_speed.py                          # all weightings, 3 interleaved repeats
    python benchmarks/weighting_speed.py --weightings equal cagrad --train_steps 49
Times the first --train_steps steps of an epoch of the default HAR recipe (precomputed views) for each
weighting, the weightings interleaved within each repeat so that machine noise hits them alike; prints the
median seconds per step, the seconds of a default epoch (49 steps) and the ratio to equal weighting.
The study's own per-epoch seconds (resources/results.md) were taken while other jobs shared the cores.
"""
import argparse
import itertools
import statistics
import sys

import torch

from common.config import parse_config
from har_task import HARTask
from common.model import build_model, task_classes
from common.runtime import seed_everything, select_device
from common.training import MultiTaskTrainer
from common.weighting import WEIGHTINGS
from data_processing.pretext import PrecomputedViews, PretextBatches
from HAR_centralized.config import HARPretrainConfig

STATIC_WEIGHTS = ("1", "10", "2", "30")  # the study's choice on the val subjects (any weights cost the same)


class FirstSteps:
    """The first `steps` batches of an epoch, as train_epoch reads batches."""

    def __init__(self, batches, steps):
        self.batches, self.steps = batches, min(steps, len(batches))

    def __len__(self):
        return self.steps

    def epoch(self, epoch):
        return itertools.islice(self.batches.epoch(epoch), self.steps)


def seconds_per_step(config, data, views, device, steps):
    """Seconds per training step (forward, weighting, backward, step) over the first `steps` of an epoch."""
    seed_everything(config.seed)
    model = build_model(config, data.x.shape[1:], data.spec, data.features.shape[1]).to(device)
    trainer = MultiTaskTrainer(config, model, device)
    batches = PretextBatches(data.x, data.features, config.batch_size, data.spec, task_classes(config), "precomputed",
                             views, device=device)
    _, count, seconds = trainer.train_epoch(FirstSteps(batches, steps), 0, lambda step: config.lr)
    return seconds / count, len(batches)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Seconds per epoch of each task weighting")
    parser.add_argument("--weightings", nargs="+", default=list(WEIGHTINGS), choices=WEIGHTINGS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train_steps", type=int, default=20)
    args = parser.parse_args(argv)
    configs = {w: parse_config(HARPretrainConfig, ["--weighting", w, "--output_dir", "unused"]
                               + (["--task_weights", *STATIC_WEIGHTS] if w == "static" else []))
               for w in args.weightings}
    base = next(iter(configs.values()))
    data = HARTask(base).pretrain_data()
    device = select_device(base.device)
    views = PrecomputedViews(data.x, data.spec, task_classes(base))
    seconds = {w: [] for w in configs}
    for _ in range(args.repeats):
        for weighting, config in configs.items():
            per_step, steps_per_epoch = seconds_per_step(config, data, views, device, args.train_steps)
            seconds[weighting].append(per_step)
    print(f"\n{torch.get_num_threads()} torch threads, {args.train_steps} steps x {args.repeats} interleaved repeats\n")
    print("| weighting | s/step (median) | s/epoch (x{}) | x equal |\n|---|---|---|---|".format(steps_per_epoch))
    reference = statistics.median(seconds.get("equal", next(iter(seconds.values()))))
    for weighting, values in seconds.items():
        median = statistics.median(values)
        print(f"| {weighting} | {median:.4f} | {median * steps_per_epoch:.2f} | {median / reference:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
