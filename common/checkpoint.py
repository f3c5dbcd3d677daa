"""Checkpoints: written atomically, read with weights_only=True, failures named in one line.

A save writes a temporary file, fsyncs it, moves the previous file to `<name>.prev` and renames the new one
into place (ground/io.py): a kill at any point leaves a complete checkpoint behind. `load_checkpoint` falls
back to the previous file when the latest one is corrupt.
"""
from pathlib import Path

import torch

from ground.errors import UserError
from ground.io import atomic_open


def atomic_torch_save(obj, path, keep_previous=True):
    with atomic_open(path, "wb", keep_previous=keep_previous) as f:
        torch.save(obj, f)


def safe_torch_load(path):
    """torch.load(weights_only=True); a missing or unreadable file is a UserError naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a truncated or foreign file
        raise UserError(f"{path} is corrupt or not a checkpoint of this project ({type(err).__name__})") from None


def load_checkpoint(path):
    """The latest checkpoint, or the previous one (with a warning) when the latest is corrupt."""
    path = Path(path)
    try:
        return safe_torch_load(path)
    except UserError as latest_error:
        previous = path.with_name(path.name + ".prev")
        if not previous.is_file():
            raise
        print(f"warning: {latest_error}; resuming from the previous checkpoint {previous}")
        return safe_torch_load(previous)


def save_encoder(encoder, path, extra=None):
    """Encoder weights + the model_args that rebuild it (what train_classifier.py needs)."""
    state = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
    atomic_torch_save({"model_args": dict(encoder.model_args), "state_dict": state, **(extra or {})}, path,
                      keep_previous=False)
