"""STL-10 at full size: memory-mapped reading, the descriptor cache, pretext batches and memory.

Usage:
    python benchmarks/stl10_data_check.py                       # the real data in data/stl10_binary
    python benchmarks/stl10_data_check.py --generate            # offline: a generated folder of the real size
    python benchmarks/stl10_data_check.py --generate --batches 100 --batch_size 256
--generate writes uniformly random uint8 images in the official binary layout and sizes (100,000 unlabeled,
5,000 train, 8,000 test, 10 folds of 1,000) to a temporary folder first: speed and memory of reading do not
depend on pixel content, and STL-10 cannot be downloaded where there is no network.
Prints: opening the files, the content hash that keys the caches, the descriptors of the unlabeled split
(computed, then read back from the cache), the classifier splits, pretext batches made on the fly from the
memory map (on the GPU when there is one), and memory: the process's own (anonymous) memory, which is what
the memory map keeps small, beside its peak resident set, which also counts file pages read through the map.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from data_processing.images import cached_descriptors, load_stl10_splits
from data_processing.pretext import PretextBatches, PretextSpec, content_digest
from data_processing.stl10 import STL10_DIR, read_stl10

SIZES = {"train": 5000, "test": 8000, "unlabeled": 100_000}


def memory_gib(field):
    """A field of /proc/self/status (VmHWM: peak resident set; RssAnon: own memory now), in GiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def generate(root, chunk=5000):
    """Random images and labels in the official layout and sizes; returns the stl10_binary folder."""
    rng = np.random.default_rng(0)
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    for split, n in SIZES.items():
        with open(folder / f"{split}_X.bin", "wb") as f:
            for start in range(0, n, chunk):
                f.write(rng.integers(0, 256, size=(min(chunk, n - start), 3, 96, 96), dtype=np.uint8).tobytes())
        if split != "unlabeled":
            (folder / f"{split}_y.bin").write_bytes((rng.integers(0, 10, n) + 1).astype(np.uint8).tobytes())
    (folder / "fold_indices.txt").write_text("".join(" ".join(map(str, rng.permutation(5000)[:1000])) + "\n"
                                                     for _ in range(10)))
    return folder


def timed(label, fn):
    start = time.perf_counter()
    result = fn()
    print(f"{label}: {time.perf_counter() - start:.1f} s   (own memory {memory_gib('RssAnon'):.2f} GiB)")
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data_dir", default=str(STL10_DIR), help="an stl10_binary folder")
    parser.add_argument("--generate", action="store_true", help="generate a folder of the real size first")
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--batch_size", type=int, default=256)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = timed("generating the files", lambda: generate(tmp)) if args.generate else Path(args.data_dir)
        unlabeled = timed("opening the unlabeled split (memory map)", lambda: read_stl10("unlabeled", folder)).images
        print(f"  {unlabeled.shape} {unlabeled.dtype}, {unlabeled.nbytes / 2**30:.2f} GiB on disk")
        timed("content hash of the unlabeled split (keys the caches)", lambda: content_digest(unlabeled))
        cache = tmp / "cache"
        features = timed("descriptors of 100,000 images, computed", lambda: cached_descriptors(unlabeled, cache))
        timed("descriptors again, from the cache (hash included)", lambda: cached_descriptors(unlabeled, cache))
        print(f"  {features.shape} {features.dtype}")
        splits, folds = timed("classifier splits (train/val/test + folds; descriptors computed)",
                              lambda: load_stl10_splits(folder))
        print(f"  train {len(splits['train']['y'])}, val {len(splits['val']['y'])}, test {len(splits['test']['y'])}; "
              f"fold sizes {min(map(len, folds))}-{max(map(len, folds))}")

        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        spec = PretextSpec.for_images(mask_ratio=0.25, mask_span=16, seed=0)
        batches = PretextBatches(unlabeled, features, args.batch_size, spec, "on_the_fly", device=device)
        iterator = batches.epoch(0)
        next(iterator)
        start = time.perf_counter()
        for _ in range(args.batches):
            batch = next(iterator)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        print(f"pretext batches on the fly from the memory map ({device}): "
              f"{args.batches * args.batch_size / seconds:.0f} images/s over {args.batches} batches of "
              f"{args.batch_size}; keys {', '.join(batch)}")
        print(f"own memory now {memory_gib('RssAnon'):.2f} GiB; peak resident set {memory_gib('VmHWM'):.2f} GiB "
              f"(file pages read through the map count there and are the kernel's to drop)")


if __name__ == "__main__":
    sys.exit(main())
