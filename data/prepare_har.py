"""Build (or reuse) the UCI HAR cache and print what it holds.

Usage: python data/prepare_har.py [--source auto|official|hapt]
"""
import argparse
import time

import numpy as np

from ground.errors import exit_on_user_error
from data_processing.har import ACTIVITY_NAMES, SOURCES, SPLITS, VAL_SUBJECTS, load_har, load_har_arrays


@exit_on_user_error
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="auto", choices=SOURCES)
    args = parser.parse_args(argv)

    start = time.time()
    _, source = load_har_arrays(args.source, verbose=True)
    print(f"source: {source}   (val subjects held out of train: {', '.join(map(str, VAL_SUBJECTS))})")
    print(f"{'split':6s} {'windows':>8s} " + " ".join(f"{name[:10]:>10s}" for name in ACTIVITY_NAMES))
    for split in SPLITS:
        data = load_har(split, args.source)
        counts = np.bincount(data.y, minlength=len(ACTIVITY_NAMES))
        print(f"{split:6s} {len(data):8d} " + " ".join(f"{c:10d}" for c in counts))
    print(f"windows: {data.x.shape[1:]} float32   expert features: {data.features.shape[1]}")
    print(f"ready in {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
