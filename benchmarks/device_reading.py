"""Reading speed of each recording format into the corpus: windows/s, samples/s and peak memory per file.

Usage:
    python benchmarks/device_reading.py                       # a 24-hour file of each format at 100 Hz
    python benchmarks/device_reading.py --hours 6 --formats cwa gt3x
Each format's file (data/make_example_devices.py: the same synthetic wrist signal, worn with a table stretch)
is written under --work_dir (not in git), then prepared alone into a fresh corpus in a child process, as
`python data/prepare_corpus.py --datasets devices:DIR` (or large_csv:DIR for the CSV) does it: read, calibration
check, non-wear detection, resampling to 50 Hz, windows of 128 at a step of 64, shards written. The child
reports its wall time and its peak resident memory (ru_maxrss).
"""
import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from data_processing.corpus import Corpus, LargeCsv, prepare
from data_processing.devices import DeviceOptions
from data_processing.recordings import WindowSettings

REPO = Path(__file__).resolve().parents[1]


def child(fmt, folder, corpus):
    settings = WindowSettings(100.0, 50.0, 128, 64)
    start = time.time()
    if fmt == "csv":
        mapping = Path(folder) / "annotation-label-dictionary.csv"  # beside the recordings, as Capture-24's
        options = LargeCsv(label_column="annotation", label_map=str(mapping), subject_pattern=r"P(\d+)")
        prepare(corpus, [f"large_csv:{folder}"], settings, log=lambda *a: None, large_csv=options)
    else:
        prepare(corpus, [f"devices:{folder}"], settings, log=lambda *a: None,
                devices=DeviceOptions(subject_pattern=r"P(\d+)"))
    seconds = time.time() - start
    windows = len(Corpus(corpus))
    print(json.dumps({"seconds": seconds, "windows": windows,
                      "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--formats", nargs="+", default=["cwa", "bin", "gt3x", "csv"])
    parser.add_argument("--work_dir", default="/tmp/device_reading")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)
    work = Path(args.work_dir)
    print("| format | file MB | write s | prepare s | windows | windows/s | samples/s | peak RSS GiB |")
    print("|---|---|---|---|---|---|---|---|")
    for fmt in args.formats:
        folder = work / fmt / "files"
        shutil.rmtree(work / fmt, ignore_errors=True)
        start = time.time()
        subprocess.run([sys.executable, str(REPO / "data" / "make_example_devices.py"), "--out", str(folder),
                        "--formats", fmt, "--hours", str(args.hours), "--rate_hz", "100"], check=True,
                       capture_output=True)
        written = time.time() - start
        (path,) = [p for p in folder.iterdir() if p.name.startswith("P")]
        result = subprocess.run([sys.executable, __file__, "--child", fmt, str(folder), str(work / fmt / "corpus")],
                                capture_output=True, text=True)
        if result.returncode:
            sys.exit(f"{fmt}: {result.stderr.strip().splitlines()[-1]}")
        row = json.loads(result.stdout.strip().splitlines()[-1])
        samples = args.hours * 3600 * 100
        print(f"| {fmt} | {path.stat().st_size / 1e6:.0f} | {written:.0f} | {row['seconds']:.1f} | "
              f"{row['windows']:,} | {row['windows'] / row['seconds']:,.0f} | {samples / row['seconds'] / 1e6:.2f} M | "
              f"{row['peak_rss_gib']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
