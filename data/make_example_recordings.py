"""Write generated recordings in the two own-data formats, to try `--dataset` without data of your own.

Usage:
    python data/make_example_recordings.py --format csv --out data/example_csv   # a folder of CSV files
    python data/make_example_recordings.py --format npz --out data/example.npz   # one npz of windows
The signals are synthetic: 6 channels (a wrist accelerometer and gyroscope, x y z) at 100 Hz, 8 subjects,
each recording a sequence of activities (class 0..3: still, walking, running, cycling: different rhythms and
intensities) separated by unlabelled stretches. Nothing here is UCI HAR data.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
CLASSES = {0: (0.0, 0.05), 1: (1.8, 0.4), 2: (2.4, 0.6), 3: (1.4, 0.35)}  # class: (rhythm Hz, intensity)


def activity(label, seconds, rate, rng, tempo=1.0, gain=1.0):
    """(T, 6) samples of one activity: a rhythm on every axis, the subject's tempo and gain, noise, and
    gravity on z."""
    hz, intensity = CLASSES[label]
    t = np.arange(int(seconds * rate)) / rate
    phases = rng.uniform(0, 2 * np.pi, 6)
    rhythm = np.stack([np.sin(2 * np.pi * hz * tempo * (1 + 0.05 * i) * t + p) for i, p in enumerate(phases)], axis=1)
    signal = gain * intensity * rhythm + 0.15 * rng.normal(size=(len(t), 6))
    signal[:, 2] += 1.0  # gravity, in g
    return signal


def recording(subject, index, rate, rng):
    """One session: 4 activities of 20-40 s with 5 s unlabelled transitions between them -> (T, 6), labels."""
    parts, labels = [], []
    person = np.random.default_rng(subject)  # each subject moves at their own tempo and strength
    tempo, gain = person.uniform(0.85, 1.15), person.uniform(0.7, 1.3)
    for label in rng.permutation(len(CLASSES)):
        seconds = rng.uniform(20, 40)
        parts.append(activity(int(label), seconds, rate, rng, tempo, gain))
        labels.append(np.full(len(parts[-1]), int(label)))
        parts.append(activity(0, 5, rate, rng) + 0.3 * rng.normal(size=(5 * rate, 6)))
        labels.append(np.full(5 * rate, -1))
    return np.concatenate(parts), np.concatenate(labels)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--format", choices=("csv", "npz"), default="csv")
    parser.add_argument("--out", required=True, help="folder (csv) or file (npz) to write")
    parser.add_argument("--subjects", type=int, default=8)
    parser.add_argument("--rate_hz", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--channels", type=int, choices=(3, 6), default=6,
                        help="3: the accelerometer only (as wrist devices record: beside a devices: corpus)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    channels = CHANNELS[:args.channels]
    sessions = [(s, i, samples[:, :args.channels], labels) for s in range(1, args.subjects + 1) for i in range(2)
                for samples, labels in [recording(s, i, args.rate_hz, rng)]]
    if args.format == "csv":
        out.mkdir(parents=True, exist_ok=True)
        for subject, index, samples, labels in sessions:
            timestamps = np.arange(len(samples)) / args.rate_hz
            header = ",".join(("timestamp", *channels, "label", "subject"))
            rows = np.column_stack([timestamps, samples, labels, np.full(len(labels), subject)])
            np.savetxt(out / f"subject{subject:02d}_session{index}.csv", rows, delimiter=",", header=header,
                       comments="", fmt=["%.3f"] + ["%.5f"] * len(channels) + ["%d", "%d"])
        print(f"{len(sessions)} recordings of {args.subjects} subjects at {args.rate_hz} Hz -> {out}/*.csv")
    else:
        # the npz format holds equal-length windows (or recordings): 2.56 s windows of the labelled stretches
        window = int(2.56 * args.rate_hz)
        xs, ys, subjects = [], [], []
        for subject, _, samples, labels in sessions:
            for start in range(0, len(samples) - window + 1, window // 2):
                span = labels[start : start + window]
                xs.append(samples[start : start + window].T)
                ys.append(span[0] if (span == span[0]).all() else -1)
                subjects.append(subject)
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(out, x=np.stack(xs).astype(np.float32), y=np.array(ys), subject=np.array(subjects),
                 sample_rate_hz=float(args.rate_hz))
        print(f"{len(xs)} windows ({len(channels)} x {window} at {args.rate_hz} Hz) of {args.subjects} subjects "
              f"-> {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
