"""Prepare a corpus of unlabelled windows on disk that pretraining streams (--pretrain_corpus DIR).

Usage:
    python data/prepare_corpus.py --out data/corpus/hapt_step32 --datasets uci_har --step 32
    python data/prepare_corpus.py --out data/corpus/mine --datasets npz:a.npz csv:more/ --window 128 --step 32
Then: python HAR_centralized/train_encoder.py --pretrain_corpus data/corpus/hapt_step32 ...

The corpus (data_processing/corpus.py): float32 window shards, memory-mapped, with each window's subject and
recording, the channel sums per subject, and an index. A rerun goes on where a killed one stopped and adds the
datasets not yet in; a dataset that cannot be read is one line, the others are prepared (exit status 1).
"""
import argparse
import sys
import time

from data_processing.corpus import SHARD_WINDOWS, prepare
from data_processing.recordings import WindowSettings
from ground.errors import UserError, exit_on_user_error


def disk_bytes(folder):
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@exit_on_user_error
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="the corpus folder (made, or resumed)")
    parser.add_argument("--datasets", nargs="+", default=["uci_har"],
                        help="uci_har (the raw HAPT recordings of every subject), npz:PATH, csv:DIR")
    parser.add_argument("--step", type=int, default=32, help="samples between window starts")
    parser.add_argument("--window", type=int, default=128, help="own recordings: samples per window")
    parser.add_argument("--target_rate_hz", type=float, default=50.0, help="own recordings: resampled to this rate")
    parser.add_argument("--sample_rate_hz", type=float, default=0.0,
                        help="own recordings: their rate; 0: from the file (npz sample_rate_hz, CSV timestamps)")
    parser.add_argument("--shard_windows", type=int, default=SHARD_WINDOWS, help="windows per shard (at least)")
    args = parser.parse_args(argv)
    if not 1 <= args.step <= args.window or args.shard_windows < 1:
        raise UserError("--step must be in 1..--window and --shard_windows positive")
    start = time.time()
    settings = WindowSettings(args.sample_rate_hz, args.target_rate_hz, args.window, args.step)
    from pathlib import Path
    index, failures = prepare(Path(args.out), args.datasets, settings, args.shard_windows)
    windows = sum(s["windows"] for s in index["shards"])
    subjects = sorted({int(k) for s in index["shards"] for k in s["subjects"]})
    print(f"corpus {args.out}: {windows} windows of {len(subjects)} subjects in {len(index['shards'])} shards, "
          f"{disk_bytes(Path(args.out)) / 2**30:.2f} GiB, ready in {time.time() - start:.1f} s")
    if failures:
        print(f"{len(failures)} dataset(s) left out (above); fix them and rerun: the rest stays", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
