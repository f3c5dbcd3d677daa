"""How close the offline HAR rebuild is to the official UCI HAR, in figures.

Usage: python benchmarks/har_data_check.py [--reference ../shared/reference/uci_har] [--repeats 3]
Prints: windows per split and class against the official counts, the share of the official
(subject, activity) window sequence reproduced in order, the 561-feature computation time (median),
agreement of the 79 mean/std/meanFreq features with the official per (subject, activity) means through a
per-feature linear fit (the official min-max bounds are unknown), and logistic regression on the features.
"""
import argparse
import re
import statistics
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

from ground.paths import REPO_ROOT
from data_processing.expert_features import compute_expert_features_batched, official_feature_names
from data_processing.har import ACTIVITY_NAMES, load_har_arrays, sequence_agreement


def official_means(reference):
    lines = (reference / "derived" / "tidy_subject_activity_means_79feat.txt").read_text().splitlines()
    rows = [line.split() for line in lines[1:]]
    subject = np.array([int(r[0]) for r in rows])
    activity = np.array([ACTIVITY_NAMES.index(r[1].strip('"')) for r in rows])
    return subject, activity, np.array([[float(v) for v in r[2:]] for r in rows])


def linear_fit_r2(x, y):
    design = np.c_[x, np.ones_like(x)]
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return 1 - ((y - design @ coef) ** 2).sum() / ((y - y.mean()) ** 2).sum()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reference", type=Path, default=REPO_ROOT.parent / "shared" / "reference" / "uci_har")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    arrays, source = load_har_arrays("hapt")
    print(f"source: {source}")
    for split, mask in (("train", ~arrays["is_test"]), ("test", arrays["is_test"])):
        y_off = np.loadtxt(args.reference / split / f"y_{split}.txt", dtype=np.int64)
        s_off = np.loadtxt(args.reference / split / f"subject_{split}.txt", dtype=np.int64)
        ours, theirs = np.bincount(arrays["y"][mask], minlength=6), np.bincount(y_off - 1, minlength=6)
        print(f"{split}: {mask.sum()} windows (official {len(y_off)}); per class ours/official: "
              + ", ".join(f"{n[:8]} {a}/{b}" for n, a, b in zip(ACTIVITY_NAMES, ours, theirs)))
        agreement = sequence_agreement(arrays["y"][mask] + 1, arrays["subject"][mask], y_off, s_off)
        print(f"{split}: {100 * agreement:.1f}% of the official (subject, activity) sequence reproduced in order")

    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        raw = compute_expert_features_batched(arrays["x"])
        times.append(time.perf_counter() - start)
    print(f"561 features of {len(raw)} windows: median {statistics.median(times):.1f} s over {args.repeats} runs")

    names = official_feature_names()
    selected = [i for i, n in enumerate(names) if re.search(r"mean\(\)|std\(\)|meanFreq\(\)", n)]
    subject, activity, official = official_means(args.reference)
    ours = np.array([arrays["features"][(arrays["subject"] == s) & (arrays["y"] == a)][:, selected].mean(0)
                     for s, a in zip(subject, activity)])
    r2 = np.array([linear_fit_r2(ours[:, j], official[:, j]) for j in range(len(selected))])
    print(f"79 official mean/std/meanFreq features, per (subject, activity) means, linear-fit R^2: "
          f"median {np.median(r2):.3f}, {np.sum(r2 > 0.9)}/79 above 0.9")
    for j in np.argsort(r2)[:6]:
        print(f"  lowest: {names[selected[j]]:34s} R^2 {r2[j]:.3f}")

    train, test = ~arrays["is_test"], arrays["is_test"]
    clf = LogisticRegression(max_iter=3000).fit(arrays["features"][train], arrays["y"][train])
    pred = clf.predict(arrays["features"][test])
    print(f"logistic regression on the 561 features (train -> test): accuracy "
          f"{accuracy_score(arrays['y'][test], pred):.4f}, "
          f"macro-F1 {f1_score(arrays['y'][test], pred, average='macro'):.4f}")


if __name__ == "__main__":
    main()
