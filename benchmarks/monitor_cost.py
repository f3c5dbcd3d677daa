"""What the training monitor costs: seconds of its kNN + logistic probes against seconds of an epoch.

Usage:
    python benchmarks/monitor_cost.py                 # 6 epochs of the default recipe, probed every epoch
    python benchmarks/monitor_cost.py --epochs 4 -- --encoder_width 64
Pretrains the default HAR recipe with --monitor_every 1 in a temporary folder and prints, per epoch, the
training seconds and the monitor's seconds, then the medians, their ratio (measured in the same run, so
machine noise hits both) and the overhead at the default --monitor_every.
"""
import argparse
import json
import sys
import tempfile

import numpy as np

from common.config import parse_config
from har_task import HARTask
from common.training import pretrain
from HAR_centralized.config import HARPretrainConfig


def main(argv=None):
    parser = argparse.ArgumentParser(description="Training-monitor cost per epoch")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("flags", nargs="*", help="extra train_encoder.py flags, after --")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as out:
        config = parse_config(HARPretrainConfig, ["--epochs", str(args.epochs), "--monitor_every", "1",
                                                  "--output_dir", out, "--experiment_name", "monitor_cost",
                                                  *args.flags])
        pretrain(config, HARTask(config).pretrain_data())
        rows = [json.loads(line) for line in (config.run_dir() / "metrics.jsonl").read_text().splitlines()]
    print("\n| epoch | training s | monitor s | kNN F1 | logistic F1 |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['epoch']} | {r['seconds']:.2f} | {r['monitor/seconds']:.2f} | {r['monitor/knn_f1']:.3f} | "
              f"{r['monitor/logistic_f1']:.3f} |")
    steady = rows[1:] or rows  # the first epoch also builds the pretext cache
    epoch, probe = np.median([r["seconds"] for r in steady]), np.median([r["monitor/seconds"] for r in steady])
    every = HARPretrainConfig().monitor_every
    print(f"\nmedian epoch {epoch:.2f} s, median monitor {probe:.2f} s: {probe / epoch:.2f} of an epoch when probing "
          f"every epoch; {probe / (every * epoch):.1%} of training time at the default --monitor_every {every}")


if __name__ == "__main__":
    main(sys.argv[1:])
