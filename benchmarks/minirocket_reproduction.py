"""MiniRocket on our UCI HAR rebuild as the field runs it, against its published-here figures.

Usage:
    python benchmarks/minirocket_reproduction.py --encoder HAR_centralized/outputs/my_run_seed42_heads1111
Runs train_classifier's `minirocket` method (aeon 1.6's MiniRocket, 10,000 kernels fit on the train windows
without labels, standardised) on label draws 0..draws-1 at 1% and 10% and once at 100%, with MiniRocket's
own classifier (RidgeClassifierCV, alphas logspace(-3, 3, 10)) and with the project's earlier probe
(logistic, C = 1). Prints macro-F1 (mean +- sd over draws) beside the figures it should reproduce within
noise, the transform's seconds (numba compilation included) and each fit's median seconds. The encoder only
supplies the splits' record: MiniRocket does not use it. ~10 min on 2 cores.
"""
import argparse
import json

import numpy as np

from common.classification import run_classification
from common.config import parse_config
from har_task import HARTask
from HAR_centralized.config import HARClassifierConfig

EXPECTED = {"ridge": {0.01: 0.896, 0.1: 0.963, 1.0: 0.969}, "logistic:1": {0.01: 0.875, 0.1: 0.959}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", required=True, help="a HAR run folder (for the splits' record only)")
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--output_dir", default="", help="results folders; empty: <encoder>/minirocket_<probe>")
    args = parser.parse_args()
    print("| classifier | labels | macro-F1 (mean ± sd over draws) | expected | median fit seconds |")
    print("|---|---|---|---|---|")
    for probe, expected in EXPECTED.items():
        out = f"{args.output_dir or args.encoder}/minirocket_{probe.split(':')[0]}"
        config = parse_config(HARClassifierConfig, [
            "--encoder", args.encoder, "--methods", "minirocket", "--modes", "linear", "--probe", probe,
            "--subject_norm", "none",  # the protocol of the figures it reproduces
            "--seeds", str(args.draws), "--full_seeds", "1", "--label_fractions", "0.01", "0.1", "1.0",
            "--output_dir", out])
        rows, _, folder = run_classification(config, HARTask(config).labelled_splits(None, args.encoder))
        for fraction in (0.01, 0.1, 1.0):
            at = [r for r in rows if abs(r["fraction"] - fraction) < 1e-9]
            scores = [r["macro_f1"] for r in at]
            seconds = [r["seconds"] for r in at][1:] or [at[0]["seconds"]]  # the first draw also transforms
            spread = np.std(scores, ddof=1) if len(scores) > 1 else 0.0
            print(f"| {probe} | {100 * fraction:g}% | {np.mean(scores):.3f} ± {spread:.3f} ({len(scores)}) | "
                  f"{expected.get(fraction, '')} | {np.median(seconds):.1f} |")
        transform = json.loads((folder / "summary.json").read_text())["info"]["representation_seconds"]["minirocket"]
        print(f"transform of every window ({probe} run): {transform:.1f} s")


if __name__ == "__main__":
    main()
