"""Atomic writes: every file the project writes appears whole under its final name or not at all.

A writer fills `<name>.tmp<pid>` beside the target, flushes and fsyncs it, then renames it into place
(`os.replace` is atomic on one file system). A kill at any point leaves the previous file or the new one,
never half of one. Part of the ground floor: data code and training code both write through it.
"""
import contextlib
import json
import os
from pathlib import Path

from ground.errors import UserError


def check_writable_folder(path, flag):
    """Fail in one line naming `flag` unless the folder `path` can be written (an existing folder, or one that
    can be made). Leaves nothing behind: folders made to prove it are removed again, so a run that fails
    before writing leaves no folder."""
    path = Path(path)
    missing = []
    while not path.exists() and path.parent != path and len(missing) < 64:
        missing.append(path)
        path = path.parent
    target = missing[0] if missing else path
    try:
        for folder in reversed(missing):
            folder.mkdir()
        if not target.is_dir():
            raise NotADirectoryError(20, "not a folder")
        if not os.access(target, os.W_OK | os.X_OK):
            raise UserError(f"{flag} {target}: that folder is not writable")
    except OSError as err:
        raise UserError(f"{flag} {target}: cannot create that folder ({err.strerror or err})") from None
    finally:
        for folder in missing:
            if folder.is_dir():
                folder.rmdir()


@contextlib.contextmanager
def atomic_open(path, mode="wb", keep_previous=False, **kwargs):
    """Open a temporary file for writing; on a clean exit it replaces `path` (the old file kept as
    `<name>.prev` when keep_previous), on an exception it is removed and `path` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        if path.is_dir():
            raise IsADirectoryError(21, "a folder is in the way", str(path))
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if keep_previous and path.exists():
            os.replace(path, path.with_name(path.name + ".prev"))
        os.replace(tmp, path)
    except OSError as err:  # a folder in the way, no permission, a full disk: the user can fix each
        raise UserError(f"cannot write {path}: {err.strerror or err}") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path, text):
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)


def strict_json(obj, where, **kwargs):
    """json.dumps refusing NaN and infinities (they are not JSON): a UserError naming `where` instead."""
    try:
        return json.dumps(obj, allow_nan=False, **kwargs)
    except ValueError as err:
        raise UserError(f"refusing to write {where}: {err} (a non-finite number reached the records)") from None


def atomic_write_json(path, obj):
    atomic_write_text(path, strict_json(obj, path, indent=2) + "\n")
