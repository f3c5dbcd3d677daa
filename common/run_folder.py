"""A run's folder, written in one place: config, git commit, metrics rows, checkpoints, encoder, summary.

Every writer of run records (the pretraining loop, the federated server, the Flower app, the classifier
study) goes through RunFolder, so every folder has the same files and every summary names the commit
that produced it. Only the writer (rank 0, the server) writes; other processes get a RunFolder that
reads. Every file is written atomically (common/io.py).
"""
import json
import subprocess
from pathlib import Path

from common.checkpoint import atomic_torch_save, load_checkpoint, save_encoder
from common.config import config_to_dict
from common.io import atomic_write_json, atomic_write_text
from common.paths import REPO_ROOT


def git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


class RunFolder:
    CONFIG, METRICS, CHECKPOINT, ENCODER, SUMMARY = "config.json", "metrics.jsonl", "checkpoint.pt", "encoder.pt", "summary.json"

    def __init__(self, path, writer=True):
        self.path, self.writer = Path(path), writer
        self.commit = git_commit()

    def __truediv__(self, name):
        return self.path / name

    def start(self, config, resume=False):
        """Create the folder and record the config; a fresh (not resumed) run starts a new metrics log."""
        if not self.writer:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        if not resume and (self / self.METRICS).exists():
            (self / self.METRICS).unlink()  # a fresh run replaces an old run of the same name
        atomic_write_json(self / self.CONFIG, config_to_dict(config))

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
                f.write(json.dumps(row) + "\n")

    def save_encoder(self, encoder, input_shape):
        if self.writer:
            save_encoder(encoder, self / self.ENCODER, {"input_shape": list(input_shape)})

    def write_summary(self, summary, name=SUMMARY):
        """summary.json with the git commit of the code that produced it."""
        if self.writer:
            atomic_write_json(self / name, {**summary, "git_commit": self.commit})

    def write_text(self, name, text):
        if self.writer:
            atomic_write_text(self / name, text)
