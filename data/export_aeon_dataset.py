"""Write a multivariate data set that the `aeon` package bundles (BasicMotions by default: a smartwatch's
accelerometer and gyroscope, 6 channels, 10 s at 10 Hz, 4 activities, 40 train + 40 test recordings) in the
two own-recording formats, to try `--dataset` on real recordings that no one here made.

Usage (aeon is no dependency of this project: run this with a Python that has it, e.g. a separate venv):
    python -m venv /tmp/aeon && /tmp/aeon/bin/pip install aeon
    /tmp/aeon/bin/python data/export_aeon_dataset.py --out data/basicmotions
Writes data/basicmotions.npz (x, y, subject, sample_rate_hz) and data/basicmotions_csv/ (one CSV per
recording: timestamp, the channels, label, subject). Each recording is its own subject; aeon's train
recordings are subjects 0..39 and its test recordings 40..79, so `--test_subjects 40 41 ... 79` keeps
aeon's split. The classes map to 0..K-1 in sorted name order (printed).
"""
import argparse
import sys
from pathlib import Path

import numpy as np

# BasicMotions: rate from its description (UEA archive: "sampled at 10 Hz"); channels acc x y z, gyro x y z
DATASETS = {"BasicMotions": (10.0, ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="BasicMotions", choices=sorted(DATASETS))
    parser.add_argument("--out", default="data/basicmotions", help="path stem: <out>.npz and <out>_csv/")
    args = parser.parse_args(argv)
    try:
        from aeon.datasets import load_classification
    except ImportError:
        sys.exit("this script needs the aeon package: pip install aeon (in a separate environment)")
    rate, channels = DATASETS[args.name]
    parts = [load_classification(args.name, split=split) for split in ("train", "test")]
    x = np.concatenate([p[0] for p in parts]).astype(np.float32)  # (N, C, T)
    names = np.concatenate([p[1] for p in parts])
    classes = sorted(set(names.tolist()))
    y = np.array([classes.index(n) for n in names])
    subject = np.arange(len(x))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out.with_suffix(".npz"), x=x, y=y, subject=subject, sample_rate_hz=rate)
    folder = out.with_name(out.name + "_csv")
    folder.mkdir(exist_ok=True)
    t = np.arange(x.shape[2]) / rate
    for i in range(len(x)):
        rows = np.column_stack([t, x[i].T, np.full(len(t), y[i]), np.full(len(t), subject[i])])
        np.savetxt(folder / f"recording{i:03d}.csv", rows, delimiter=",", comments="",
                   header=",".join(("timestamp", *channels, "label", "subject")),
                   fmt=["%.3f"] + ["%.6f"] * len(channels) + ["%d", "%d"])
    print(f"{args.name}: {len(x)} recordings of {x.shape[1]} channels x {x.shape[2]} samples at {rate:g} Hz, "
          f"classes {dict(enumerate(classes))}; train recordings = subjects 0..{len(parts[0][0]) - 1}")
    print(f"-> {out.with_suffix('.npz')} and {folder}/")


if __name__ == "__main__":
    main(sys.argv[1:])
