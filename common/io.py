"""Atomic writes: every file the project writes appears whole under its final name or not at all.

A writer fills `<name>.tmp<pid>` beside the target, flushes and fsyncs it, then renames it into place
(`os.replace` is atomic on one file system). A kill at any point leaves the previous file or the new one,
never half of one. Part of the ground floor: data code and training code both write through it.
"""
import contextlib
import json
import os
from pathlib import Path


@contextlib.contextmanager
def atomic_open(path, mode="wb", keep_previous=False, **kwargs):
    """Open a temporary file for writing; on a clean exit it replaces `path` (the old file kept as
    `<name>.prev` when keep_previous), on an exception it is removed and `path` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if keep_previous and path.exists():
            os.replace(path, path.with_name(path.name + ".prev"))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path, text):
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)


def atomic_write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")
