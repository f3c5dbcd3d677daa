"""A run's folder, written in one place: config, git commit, metrics rows, checkpoints, encoder, summary.

Every writer of run records (the pretraining loop, the federated server, the Flower app, the classifier
study) goes through RunFolder, so every folder has the same files and every summary names the commit
that produced it. Only the writer (rank 0, the server) writes; other processes get a RunFolder that
reads. Every file is written atomically (ground/io.py).
"""
import functools
import json
import subprocess
from pathlib import Path

from common.checkpoint import atomic_torch_save, load_checkpoint, save_encoder
from common.config import config_to_dict
from common.runtime import runtime_record
from ground.errors import UserError
from ground.io import atomic_write_json, atomic_write_text, strict_json
from ground.paths import REPO_ROOT


def _git(*args):
    return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5).stdout.strip()


def git_commit():
    """HEAD's hash, with "+modified" when tracked or new files differ from it (the code is not that commit)."""
    try:
        commit = _git("rev-parse", "HEAD")
        return (commit + ("+modified" if _git("status", "--porcelain") else "")) if commit else None
    except (OSError, subprocess.SubprocessError):
        return None


class RunFolder:
    CONFIG, METRICS, CHECKPOINT = "config.json", "metrics.jsonl", "checkpoint.pt"
    RUNTIME = "runtime"  # config.json's record of the torch build and thread count: recorded, never compared
    ENCODER, SUMMARY = "encoder.pt", "summary.json"

    def __init__(self, path, writer=True):
        self.path, self.writer = Path(path), writer

    @functools.cached_property
    def commit(self):
        return git_commit()

    def __truediv__(self, name):
        return self.path / name

    def start(self, config, resume=False):
        """Create the folder and record the config with what else its weights depend on (RUNTIME: the torch build
        and thread count); a fresh run (an --overwrite) clears the old records."""
        if not self.writer:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        if not resume:
            for name in (self.METRICS, self.SUMMARY, self.ENCODER, self.CHECKPOINT, self.CHECKPOINT + ".prev"):
                if (self / name).exists():
                    (self / name).unlink()
        atomic_write_json(self / self.CONFIG, {**config_to_dict(config), self.RUNTIME: runtime_record()})

    def holds_a_run(self):
        """Whether an earlier run left records here (a checkpoint, an encoder or a summary)."""
        return self.has_checkpoint() or (self / self.ENCODER).exists() or (self / self.SUMMARY).exists()

    def check_can_start(self, resume, overwrite):
        """Refuse, before anything is touched, to replace an earlier run that was not asked to be replaced."""
        if self.holds_a_run() and not resume and not overwrite:
            raise UserError(f"{self.path} already holds a run: --resume 1 continues it, --overwrite 1 replaces it, "
                            f"or choose another --experiment_name")

    def resumes(self, resume):
        """Whether a run resumes from this folder's checkpoint (centralized and federated alike). --resume 1
        without a checkpoint starts fresh where nothing was recorded yet (no folder, or a run killed before its
        first checkpoint: config.json only); a folder holding metrics, an encoder or a summary is refused in
        one line, deleting nothing (a fresh start would replace them)."""
        if not resume:
            return False
        if self.has_checkpoint():
            return True
        if any((self / name).exists() for name in (self.METRICS, self.ENCODER, self.SUMMARY)):
            finished = " a finished run but" if (self / self.SUMMARY).exists() else " records but"
            raise UserError(f"{self.path} holds{finished} no {self.CHECKPOINT} to resume from: --overwrite 1 "
                            f"replaces it, or choose another --experiment_name")
        return False

    def open(self, config, total, unit, restore, log=print):
        """The one resume rule of a pretraining (unit "epoch") and a federated server ("round"). With --resume 1
        and a checkpoint, restore() reads it (writing nothing) and returns the next epoch or round; a run that
        already did all `total` of them is not opened (None; the message says how to go on). Otherwise an
        earlier run is replaced only under --overwrite 1. The folder is touched only once the run can start;
        a resumed run drops the metrics rows of what it redoes. Returns the first epoch or round to run."""
        start = 0
        if self.resumes(config.resume):
            start = restore()
            if start >= total and (self / self.SUMMARY).exists() and (self / self.ENCODER).exists():
                log(f"{self.path} has finished all {total} {unit}s: nothing to resume (--{unit}s N continues it "
                    f"further, --overwrite 1 replaces it)")
                return None
        elif config.resume:
            log(f"--resume 1 but nothing in {self.path} yet: starting fresh")
        else:
            self.check_can_start(resume=False, overwrite=config.overwrite)
        self.start(config, resume=start > 0)
        if start > 0:
            self.prune_metrics(unit, start)
        return start

    def prune_metrics(self, key, last):
        """Keep the metrics rows up to `last` (by `key`, epoch or round): rows of work a resume redoes go."""
        path = self / self.METRICS
        if not self.writer or not path.exists():
            return
        rows = [line for line in path.read_text().splitlines() if line.strip()]
        kept = [line for line in rows if json.loads(line).get(key, 0) <= last]
        if len(kept) != len(rows):
            atomic_write_text(path, "".join(line + "\n" for line in kept))

    def has_checkpoint(self):
        checkpoint = self / self.CHECKPOINT
        return checkpoint.exists() or checkpoint.with_name(checkpoint.name + ".prev").exists()

    def load_checkpoint(self):
        return load_checkpoint(self / self.CHECKPOINT)

    def save_checkpoint(self, state):
        if self.writer:
            atomic_torch_save(state, self / self.CHECKPOINT)

    def log(self, row):
        """One JSON row per epoch or round, for programs."""
        if self.writer:
            with open(self / self.METRICS, "a") as f:
                f.write(strict_json(row, self / self.METRICS) + "\n")

    def save_encoder(self, encoder, input_shape, data_record=None):
        """encoder.pt: weights, model_args, input shape and what the encoder keeps of its data (split, input
        standardisation: see har_task/task.py's HARTask.encoder_record)."""
        if self.writer:
            extra = {"input_shape": list(input_shape)}
            if data_record is not None:
                extra["data"] = data_record
            save_encoder(encoder, self / self.ENCODER, extra)

    def write_summary(self, summary, name=SUMMARY):
        """summary.json with the git commit of the code that produced it."""
        if self.writer:
            atomic_write_json(self / name, {**summary, "git_commit": self.commit})

    def write_text(self, name, text):
        if self.writer:
            atomic_write_text(self / name, text)
