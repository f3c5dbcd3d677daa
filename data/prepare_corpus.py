r"""Prepare a corpus of unlabelled windows on disk that pretraining streams (--pretrain_corpus DIR).

Usage:
    python data/prepare_corpus.py --out data/corpus/hapt_step32 --datasets uci_har --step 32
    python data/prepare_corpus.py --out data/corpus/mine --datasets npz:a.npz csv:more/ --window 128 --step 32
    python data/prepare_corpus.py --out data/corpus/c24 --datasets large_csv:capture24/ --sample_rate_hz 100 \
        --columns x y z --label_column annotation --label_map capture24/annotation-label-dictionary.csv \
        --label_scheme label:Willetts2018 --subject_pattern "P(\d+)"
    python data/prepare_corpus.py --out data/corpus/wrist --datasets devices:raw/ --sample_rate_hz 100 \
        --subject_pattern "P(\d+)"                 # Axivity .cwa, GENEActiv .bin, ActiGraph .gt3x files
Then: python HAR_centralized/train_encoder.py --pretrain_corpus data/corpus/hapt_step32 ...

The corpus (data_processing/corpus.py): float32 window shards, memory-mapped, with each window's subject and
recording, the channel sums per subject, and an index. A rerun goes on where a killed one stopped and adds the
datasets not yet in; a dataset that cannot be read is one line, the others are prepared (exit status 1).
"""
import argparse
import sys
import time
from pathlib import Path

from data_processing.corpus import SHARD_WINDOWS, Corpus, LargeCsv, prepare
from data_processing.devices import DeviceOptions
from data_processing.recordings import WindowSettings
from ground.errors import UserError, exit_on_user_error


def disk_bytes(folder):
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@exit_on_user_error
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="the corpus folder (made, or resumed)")
    parser.add_argument("--datasets", nargs="+", default=["uci_har"],
                        help="uci_har (the raw HAPT recordings of every subject), npz:PATH, csv:DIR, large_csv:DIR, "
                             "devices:DIR (unlabelled; after a labelled large_csv: in one corpus)")
    parser.add_argument("--step", type=int, default=32, help="samples between window starts")
    parser.add_argument("--window", type=int, default=128, help="own recordings: samples per window")
    parser.add_argument("--target_rate_hz", type=float, default=50.0, help="own recordings: resampled to this rate")
    parser.add_argument("--sample_rate_hz", type=float, default=0.0,
                        help="own recordings: their rate; 0: from the file (npz sample_rate_hz, CSV timestamps)")
    parser.add_argument("--shard_windows", type=int, default=SHARD_WINDOWS, help="windows per shard (at least)")
    parser.add_argument("--verify", type=int, default=0, choices=(0, 1),
                        help="1: read every shard back and check its digest and statistics against the index")
    large = parser.add_argument_group("large_csv:DIR (one large, possibly gzipped CSV per recording, read in chunks)")
    large.add_argument("--columns", nargs="+", default=["x", "y", "z"], help="the sensor columns, in channel order")
    large.add_argument("--time_column", default="time", help="time stamps (date-times) or seconds")
    large.add_argument("--label_column", default="", help="a column of free-text annotations (empty: none)")
    large.add_argument("--label_map", default="", help="CSV mapping each annotation (first column) to a class")
    large.add_argument("--label_scheme", default="", help="the --label_map column of classes (default: its second)")
    parser.add_argument("--subject_pattern", default=r"(\d+)",
                        help="large_csv: and devices: regular expression, the subject in a file name")
    large.add_argument("--chunk_rows", type=int, default=500_000, help="rows read at a time")
    device = parser.add_argument_group("devices:DIR (Axivity .cwa, GENEActiv .bin, ActiGraph .gt3x files)")
    device.add_argument("--subjects_table", default="", help="a CSV of file,subject (instead of --subject_pattern)")
    device.add_argument("--nonwear_window_min", type=int, default=60,
                        help="non-wear detection's window in minutes (van Hees: 60, moved on by a quarter)")
    device.add_argument("--nonwear_rescore", type=int, default=1, choices=(0, 1),
                        help="1: van Hees 2013's rescoring (short wear stretches between non-wear count as non-wear; "
                             "for recordings of days: 0 for a few hours)")
    args = parser.parse_args(argv)
    if not 1 <= args.step <= args.window or args.shard_windows < 1:
        raise UserError("--step must be in 1..--window and --shard_windows positive")
    start = time.time()
    settings = WindowSettings(args.sample_rate_hz, args.target_rate_hz, args.window, args.step)
    large_csv = LargeCsv(tuple(args.columns), args.time_column, args.label_column, args.label_map, args.label_scheme,
                         args.subject_pattern, args.chunk_rows)
    if args.nonwear_window_min < 1:
        raise UserError("--nonwear_window_min must be at least 1")
    devices = DeviceOptions(args.subject_pattern, args.subjects_table, args.nonwear_window_min, args.nonwear_rescore)
    index, failures = prepare(Path(args.out), args.datasets, settings, args.shard_windows, large_csv=large_csv,
                              devices=devices)
    if args.verify:
        Corpus(args.out).verify()
        print(f"verified: every shard matches {Path(args.out) / 'corpus.json'}")
    windows = sum(s["windows"] for s in index["shards"])
    subjects = sorted({int(k) for s in index["shards"] for k in s["subjects"]})
    print(f"corpus {args.out}: {windows} windows of {len(subjects)} subjects in {len(index['shards'])} shards, "
          f"{disk_bytes(Path(args.out)) / 2**30:.2f} GiB, ready in {time.time() - start:.1f} s")
    if failures:
        print(f"{len(failures)} dataset(s) left out (above); fix them and rerun: the rest stays", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
