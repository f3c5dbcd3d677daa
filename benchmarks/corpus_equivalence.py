"""The default recipe streamed from a corpus is the in-memory run: the same windows, targets and weights.

Usage:
    python benchmarks/corpus_equivalence.py              # 5 epochs of the default recipe, seed 42
    python benchmarks/corpus_equivalence.py --epochs 60 --seed 43
Prepares a corpus of UCI HAR's raw HAPT recordings (every subject, step 32, under --work_dir), pretrains the
default recipe once from the in-memory windows (--pretrain_data all) and once from the corpus
(--pretrain_corpus), in this process at the same thread count, and prints the windows compared, the largest
difference of the rocket targets and whether every tensor of the two encoders is bit-identical. Bit-identical
weights mean the default's study results (its val and test probes) hold for the streamed path unchanged.
"""
import argparse
import time
from pathlib import Path

import numpy as np
import torch

from common.config import parse_config
from common.model import task_classes
from common.training import pretrain
from data_processing.corpus import prepare
from data_processing.recordings import WindowSettings
from HAR_centralized.config import HARPretrainConfig
from har_task import HARTask


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--work_dir", default="/tmp/corpus_equivalence")
    args = parser.parse_args(argv)
    work = Path(args.work_dir)
    start = time.time()
    index, _ = prepare(work / "corpus", ["uci_har"], WindowSettings(step=32), log=lambda *a: None)
    print(f"corpus: {sum(s['windows'] for s in index['shards'])} windows of every subject, "
          f"{time.time() - start:.1f} s")
    common = ["--epochs", str(args.epochs), "--seed", str(args.seed), "--output_dir", str(work / "runs"),
              "--overwrite", "1", "--monitor_every", "0"]
    configs = {"in memory": parse_config(HARPretrainConfig, [*common, "--experiment_name", "memory"]),
               "streamed": parse_config(HARPretrainConfig, [*common, "--experiment_name", "streamed",
                                                            "--pretrain_corpus", str(work / "corpus")])}
    data = {name: HARTask(config).pretrain_data() for name, config in configs.items()}
    memory, streamed = data["in memory"], data["streamed"]
    same_windows = len(memory.x) == len(streamed.x) and np.array_equal(memory.x, streamed.x[:])
    print(f"windows: {len(memory.x)} in memory, {len(streamed.x)} streamed; identical: {same_windows}")
    tasks = task_classes(configs["in memory"])
    targets = [d.dataset_targets(tasks, configs["in memory"])["rocket"] for d in (memory, streamed)]
    print(f"rocket targets: largest difference {np.abs(np.asarray(targets[0]) - targets[1]).max():.3g}")
    weights = {}
    for name, config in configs.items():
        summary = pretrain(config, data[name])
        weights[name] = torch.load(config.run_dir() / "encoder.pt", weights_only=True)["state_dict"]
        print(f"{name}: {args.epochs} epochs in {summary['train_seconds']:.0f} s")
    first, second = weights.values()
    identical = first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    print(f"encoders bit-identical: {identical} ({len(first)} tensors, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__})")


if __name__ == "__main__":
    main()
