"""Pretraining at corpus scale: memory, preparation time and epoch throughput from 21k to millions of windows.

Usage:
    python benchmarks/pretrain_scale.py                                  # 21k, 300k, 1M; both recipes
    python benchmarks/pretrain_scale.py --sizes 21372 4000000 --recipes default --steps 400
Corpora (on disk under --work_dir, not in git; 4.6 KB a window) are the train subjects' real HAPT windows
(step 32, the default recipe's data) tiled with small jitter (1% of each channel's std), written through the
corpus writer as `prepare` writes them. Each (size, recipe) then runs in a fresh process: the pretraining data
from the corpus (HARTask, --pretrain_corpus), the tasks' dataset-wide targets (the rocket task's MiniRocket fit
on --rocket_fit_windows windows and every window's targets chunked to disk), and --steps steps of the training
loop's epoch (MultiTaskTrainer.train_epoch, the same loop as a run; batches drawn by index over the whole
corpus), on the --threads the run would use.

The child process samples /proc/self/status every 0.2 s and prints its peak anonymous memory (the process's
own: what a bigger corpus must not grow) and peak file-backed resident memory (mapped corpus and target pages,
which the kernel reclaims under pressure), and stops itself when the anonymous part passes --stop_gib. The
thesis's four tasks run with --precompute 0 (their views made per batch: precomputed views of 8 variants
would take ~55 KB a window on disk) and their expert features computed once, chunked, to disk.
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

from common.config import parse_config
from common.model import build_model, task_classes
from common.training import MultiTaskTrainer
from data_processing.corpus import CorpusWriter, uci_har_settings
from data_processing.har import load_har, load_har_recordings
from har_task import HARTask
from HAR_centralized.config import HARPretrainConfig

REPO = Path(__file__).resolve().parents[1]
RECIPES = {"default": [], "thesis4": ["--model_heads", "1", "1", "1", "1", "--precompute", "0"]}


# --------------------------------------------------------------------------- memory watch
def status_gib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 2**20
    return 0.0


class MemoryWatch(threading.Thread):
    """Peak RssAnon and RssFile of this process, sampled; exits the process past stop_gib of anonymous memory."""

    def __init__(self, stop_gib, interval=0.2):
        super().__init__(daemon=True)
        self.stop_gib, self.interval, self.anon, self.file = stop_gib, interval, 0.0, 0.0

    def run(self):
        while True:
            anon, file = status_gib("RssAnon"), status_gib("RssFile")
            self.anon, self.file = max(self.anon, anon), max(self.file, file)
            if anon > self.stop_gib:
                print(json.dumps({"stopped": f"anonymous memory {anon:.2f} GiB passed --stop_gib {self.stop_gib}"}),
                      flush=True)
                os._exit(3)
            time.sleep(self.interval)


# --------------------------------------------------------------------------- corpora
def build_corpus(folder, size, seed=0):
    """A corpus of `size` windows: the train subjects' HAPT windows at step 32, tiled with 1% jitter. Returns the
    seconds taken (nothing when it is already there and complete)."""
    if (folder / "corpus.json").exists() and json.loads((folder / "corpus.json").read_text()).get("complete"):
        return None
    start = time.time()
    subjects = np.unique(load_har("train").subject)
    arrays = load_har_recordings(subjects, 32)
    base, subject, recording = arrays["x"], arrays["subject"], arrays["recording"]
    scale = 0.01 * base.std(axis=(0, 2))[None, :, None].astype(np.float32)
    writer = CorpusWriter(folder, uci_har_settings(32))
    rng = np.random.default_rng(seed)
    tile, written = 0, 0
    while written < size:
        n = min(len(base), size - written)
        source = f"tile{tile}"
        if not writer.done(source):
            x = base[:n] + scale * rng.standard_normal((n, *base.shape[1:]), dtype=np.float32) if tile else base[:n]
            writer.add(source, x, subject[:n], recording[:n] + 1000 * tile)
        written, tile = written + n, tile + 1
    writer.close()
    return time.time() - start


def disk_gib(path):
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 2**30


# --------------------------------------------------------------------------- one measurement (child process)
class Steps:
    """The first `steps` batches of an epoch of `batches` (the loop sees a shorter epoch, nothing else)."""

    def __init__(self, batches, steps):
        self.batches, self.steps = batches, min(steps, len(batches))

    def __len__(self):
        return self.steps

    def epoch(self, epoch):
        for i, batch in enumerate(self.batches.epoch(epoch)):
            if i == self.steps:
                return
            yield batch


def measure(args):

    watch = MemoryWatch(args.stop_gib)
    watch.start()
    config = parse_config(HARPretrainConfig, ["--pretrain_corpus", str(args.corpus), "--cache_dir", str(args.cache),
                                              "--output_dir", str(args.cache / "runs"), *RECIPES[args.recipe],
                                              *args.flags.split()])
    torch.manual_seed(config.seed)
    start = time.time()
    data = HARTask(config).pretrain_data()
    tasks = task_classes(config)
    batches = data.batches(tasks, config.batch_size, bool(config.precompute), config=config)
    if any(t.reads_features for t in tasks):
        data.features.array()  # computed once, chunked, before the epoch
    targets_s = time.time() - start
    model = build_model(config, data.x.shape[1:], data.spec, data.features.shape[1])
    trainer = MultiTaskTrainer(config, model, torch.device("cpu"))
    epoch = Steps(batches, args.steps)
    trainer.train_epoch(Steps(batches, 5), 99, lambda i: config.lr)  # warm-up: allocator, first pages
    means, count, seconds = trainer.train_epoch(epoch, 0, lambda i: config.lr)
    start = time.time()
    for _ in Steps(batches, args.steps).epoch(1):  # the batches alone: what reading them from disk costs
        pass
    read_ms = 1000 * (time.time() - start) / count
    print(json.dumps({"windows": len(data.x), "targets_s": round(targets_s, 1),
                      "read_ms_per_batch": round(read_ms, 2),
                      "step_ms": round(1000 * seconds / count, 2),
                      "windows_per_s": round(count * config.batch_size / seconds, 1), "steps": count,
                      "peak_anon_gib": round(watch.anon, 3), "peak_file_gib": round(watch.file, 3),
                      "threads": torch.get_num_threads()}), flush=True)


# --------------------------------------------------------------------------- the table
def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[21372, 300_000, 1_000_000])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--work_dir", default="/tmp/pretrain_scale", help="corpora and targets (not in git)")
    parser.add_argument("--steps", type=int, default=300, help="training steps timed per case (after 5 warm-up)")
    parser.add_argument("--stop_gib", type=float, default=12.0, help="a case stops itself past this anonymous memory")
    parser.add_argument("--flags", default="", help="more train_encoder.py flags for every case (e.g. "
                                                     "\"--rocket_kernels 840\": a cheaper teacher, the same path)")
    parser.add_argument("--out", default="", help="append each case's JSON row to this file")
    parser.add_argument("--child", nargs=3, metavar=("CORPUS", "CACHE", "RECIPE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.corpus, args.cache, args.recipe = Path(args.child[0]), Path(args.child[1]), args.child[2]
        return measure(args)
    work = Path(args.work_dir)
    print(f"| windows | recipe | corpus prep s | corpus GiB | targets s | targets+views GiB | peak anon GiB | "
          f"peak file GiB | windows/s ({args.steps} steps) | batch read ms / step ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        corpus = work / f"corpus_{size}"
        prep = build_corpus(corpus, size)
        for recipe in args.recipes:
            cache = work / f"cache_{size}_{recipe}{'_' + '_'.join(args.flags.split()) if args.flags else ''}"
            child = subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--stop_gib",
                                    str(args.stop_gib), "--flags", args.flags, "--child", str(corpus), str(cache),
                                    recipe],
                                   cwd=REPO, capture_output=True, text=True)
            rows = [json.loads(line) for line in child.stdout.splitlines() if line.startswith("{")]
            if child.returncode != 0 or not rows or "stopped" in rows[-1]:
                reason = rows[-1].get("stopped") if rows else child.stderr.strip().splitlines()[-1:]
                print(f"| {size:,} | {recipe} | failed: {reason} |")
                continue
            row = {**rows[-1], "size": size, "recipe": recipe, "flags": args.flags, "prep_s": prep,
                   "corpus_gib": disk_gib(corpus), "cache_gib": disk_gib(cache) if cache.exists() else 0.0}
            prep_text = f"{prep:.0f}" if prep is not None else "(reused)"
            print(f"| {size:,} | {recipe} | {prep_text} | {row['corpus_gib']:.2f} | {row['targets_s']:.0f} | "
                  f"{row['cache_gib']:.2f} | {row['peak_anon_gib']:.2f} | {row['peak_file_gib']:.2f} | "
                  f"{row['windows_per_s']:,.0f} | {row['read_ms_per_batch']:.1f} / {row['step_ms']:.0f} |", flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
