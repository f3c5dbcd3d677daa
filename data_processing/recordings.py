"""A researcher's own recordings -> windows at the encoder's rate, split by subject.

`--dataset npz:PATH`: one .npz file (numpy.savez) with
    x        (N, C, T) float: N recordings of C channels and T samples (windows are recordings with T = --window)
    y        (N,) integers, optional: each recording's class; -1 = unlabelled
    subject  (N,) integers, optional: who was recorded; without it each recording is its own subject
    sample_rate_hz  a number, or (N,) numbers: the sampling rate; without it --sample_rate_hz is required
`--dataset csv:DIR`: one CSV file per recording (*.csv, header row), every file with the same columns:
    timestamp  seconds, optional: the sampling rate is read from it (else --sample_rate_hz is required)
    label      integers, optional, per sample: empty or -1 = unlabelled
    subject    integer, optional, the same on every row: without it each file is its own subject
    any other column: a channel (any number of them, in the file's order)

Every recording is resampled from its rate (the file's, --sample_rate_hz, or the timestamps; a rate is never
assumed) to --target_rate_hz (the
encoder's rate, 50 Hz for the shipped HAR encoder), then cut into windows of --window samples every
--window_step samples. A window is labelled when all its samples carry the same label (as UCI HAR's windows
lie inside one activity), else it is unlabelled and serves pretraining only. Class values are mapped to
0..K-1 in sorted order (info["classes"] keeps the values).
"""
import dataclasses
import fractions
import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import signal

from ground.errors import UserError

RESERVED_COLUMNS = ("timestamp", "label", "subject")
DATASET_KINDS = ("uci_har", "npz", "csv")


@dataclasses.dataclass(frozen=True)
class WindowSettings:
    sample_rate_hz: float = 0.0  # the recordings' rate; 0: from the npz's sample_rate_hz or the CSV timestamps
    target_rate_hz: float = 50.0
    window: int = 128
    step: int = 64


@dataclasses.dataclass
class Recording:
    name: str
    x: np.ndarray  # (C, T) float64
    labels: np.ndarray  # (T,) int64, -1 = unlabelled
    subject: int
    rate_hz: float


@dataclasses.dataclass
class Windows:
    """x (N, C, W) float32, y (N,) int64 in 0..K-1 or -1, subject (N,) int64, recording (N,) int64 (the index of
    the recording a window was cut from, into info["recording_names"]), and what they came from."""

    x: np.ndarray
    y: np.ndarray
    subject: np.ndarray
    recording: np.ndarray
    channels: tuple
    info: dict


def parse_dataset(text):
    """"uci_har" -> ("uci_har", None); "npz:PATH" / "csv:DIR" -> (kind, Path). One-line error otherwise."""
    if text == "uci_har":
        return "uci_har", None
    kind, sep, path = text.partition(":")
    if not sep or kind not in ("npz", "csv") or not path:
        raise UserError(f"--dataset must be uci_har, npz:PATH or csv:DIR, got {text!r}")
    path = Path(path)
    if kind == "npz" and not path.is_file():
        raise UserError(f"--dataset {text}: {path} is not a file")
    if kind == "csv" and not path.is_dir():
        raise UserError(f"--dataset {text}: {path} is not a folder")
    return kind, path


# --------------------------------------------------------------------------- reading
def _integer_labels(values, where):
    """values as int64, refusing anything that is not an integer (NaN counts as unlabelled: -1)."""
    values = np.asarray(values)
    if values.dtype.kind in "iu":
        return values.astype(np.int64)
    if values.dtype.kind == "f":
        missing = np.isnan(values)
        whole = np.where(missing, 0, values)
        if np.all(np.isfinite(whole)) and np.all(whole == np.round(whole)):
            return np.where(missing, -1, whole).astype(np.int64)
    raise UserError(f"{where} must hold integers (class ids, -1 = unlabelled), got values like "
                    f"{values.ravel()[:3].tolist()}")


def _check_finite(x, where):
    bad = ~np.isfinite(x)
    if bad.any():
        raise UserError(f"{where} holds {int(bad.sum())} NaN or infinite value(s): clean or drop them first")


def read_npz(path, sample_rate_hz):
    """The recordings of an npz file (see the module's docstring)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except ValueError as err:
        if "pickle" in str(err):
            raise UserError(f"{path}: arrays of Python objects (ragged recordings?) are not read: store x as one "
                            f"(N, C, T) float array, or use csv:DIR for recordings of different lengths") from None
        raise UserError(f"{path} is not a readable npz file ({err})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:  # a truncated download: not a zip any more
        raise UserError(f"{path} is not a readable npz file ({type(err).__name__})") from None
    if "x" not in arrays:
        raise UserError(f"{path} has no array 'x' (N, C, T); it holds {sorted(arrays) or 'nothing'}")
    x = arrays["x"]
    if x.ndim != 3 or x.dtype.kind not in "fiu" or min(x.shape) < 1:
        raise UserError(f"{path}: x must be a numeric (N, C, T) array, got shape {x.shape} dtype {x.dtype}")
    _check_finite(x, f"{path}: x")
    n = len(x)
    y = _integer_labels(arrays["y"], f"{path}: y") if "y" in arrays else np.full(n, -1, np.int64)
    subject = _integer_labels(arrays["subject"], f"{path}: subject") if "subject" in arrays else np.arange(n)
    for name, values in (("y", y), ("subject", subject)):
        if values.shape != (n,):
            raise UserError(f"{path}: {name} has shape {values.shape} but x has {n} recordings: one value each")
    rates = _npz_rates(path, arrays.get("sample_rate_hz"), n, sample_rate_hz)
    return [Recording(f"{path.name}[{i}]", x[i].astype(np.float64), np.full(x.shape[2], y[i]), int(subject[i]),
                      float(rates[i])) for i in range(n)]


def _npz_rates(path, stored, n, flag_rate):
    """(N,) sampling rates: the file's sample_rate_hz (one number or one per recording), else --sample_rate_hz;
    neither is an error (a wrong assumed rate silently rescales every frequency), and so is a disagreement."""
    if stored is None:
        if not flag_rate:
            raise UserError(f"{path} does not say its sampling rate: store it in the file "
                            f"(np.savez(..., sample_rate_hz=100)) or pass --sample_rate_hz")
        return np.full(n, float(flag_rate))
    rates = np.asarray(stored)
    if rates.dtype.kind not in "fiu" or rates.shape not in ((), (1,), (n,)) or not (
            np.all(np.isfinite(rates)) and np.all(rates > 0)):
        raise UserError(f"{path}: sample_rate_hz must be one positive number or {n} of them (one per recording), "
                        f"got shape {rates.shape} dtype {rates.dtype}")
    rates = np.broadcast_to(rates.astype(np.float64).reshape(-1), (n,))
    if flag_rate and not np.allclose(rates, flag_rate):
        raise UserError(f"{path} says sample_rate_hz {rates[0]:g} but --sample_rate_hz is {flag_rate:g}: drop the "
                        f"flag, or fix the file")
    return rates


def read_csv_folder(folder, sample_rate_hz):
    """The recordings of a folder of CSV files, one per file (see the module's docstring)."""
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise UserError(f"{folder} holds no .csv file")
    recordings, channels = [], None
    for index, path in enumerate(files):
        try:
            frame = pd.read_csv(path)
        except (ValueError, OSError, pd.errors.ParserError) as err:
            raise UserError(f"{path} is not a readable CSV file ({str(err).splitlines()[0][:120]})") from None
        names = [c for c in frame.columns if c not in RESERVED_COLUMNS]
        if not names:
            raise UserError(f"{path} has no channel column (columns: {list(frame.columns)})")
        if channels is None:
            channels = names
        elif names != channels:
            raise UserError(f"{path} has channels {names} but {files[0].name} has {channels}: every file needs "
                            f"the same")
        values = frame[names].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
        if np.isnan(values).any():
            row, column = np.argwhere(np.isnan(values))[0]
            raise UserError(f"{path}: row {row + 2}, column {names[column]!r} is missing or not a number")
        _check_finite(values, str(path))
        labels = np.full(len(frame), -1, np.int64)
        if "label" in frame:
            numeric = pd.to_numeric(frame["label"], errors="coerce")
            text = frame["label"][numeric.isna() & frame["label"].notna()]
            if len(text):
                raise UserError(f"{path}: label must hold integers (class ids, -1 = unlabelled), got {text.iloc[0]!r}")
            labels = _integer_labels(numeric.to_numpy(np.float64), f"{path}: label")
        subject = index
        if "subject" in frame:
            subjects = np.unique(_integer_labels(frame["subject"].to_numpy(), f"{path}: subject"))
            if len(subjects) != 1:
                raise UserError(f"{path}: the subject column must hold one value, it holds {subjects[:5].tolist()}")
            subject = int(subjects[0])
        x = values.T  # (C, T)
        rate = sample_rate_hz or None
        if "timestamp" in frame:
            x, labels, rate = _uniform_from_timestamps(path, frame["timestamp"].to_numpy(np.float64), x, labels)
        elif not sample_rate_hz:
            raise UserError(f"{path} has no timestamp column: declare the sampling rate with --sample_rate_hz")
        recordings.append(Recording(path.name, x, labels, subject, rate))
    return recordings, tuple(channels)


def _uniform_from_timestamps(path, t, x, labels):
    """Samples at irregular timestamps (seconds) -> the same span on a uniform grid at their median rate."""
    steps = np.diff(t)
    if len(t) < 2 or not np.all(np.isfinite(t)) or np.any(steps <= 0):
        raise UserError(f"{path}: timestamps must be finite, in seconds and strictly increasing")
    rate = 1.0 / float(np.median(steps))
    grid = t[0] + np.arange(int(np.floor((t[-1] - t[0]) * rate)) + 1) / rate
    uniform = np.stack([np.interp(grid, t, channel) for channel in x])
    nearest = np.clip(np.searchsorted(t, grid), 0, len(t) - 1)
    return uniform, labels[nearest], rate


# --------------------------------------------------------------------------- resampling and windowing
def resample(recording, target_rate_hz):
    """(C, T) at recording.rate_hz -> (C, T') at target_rate_hz (polyphase, anti-aliased); labels nearest."""
    rate = recording.rate_hz
    if abs(rate - target_rate_hz) < 1e-9 * target_rate_hz:
        return recording.x, recording.labels
    ratio = fractions.Fraction(target_rate_hz / rate).limit_denominator(1000)
    x = signal.resample_poly(recording.x, ratio.numerator, ratio.denominator, axis=-1)
    source_index = np.minimum(np.round(np.arange(x.shape[-1]) * rate / target_rate_hz).astype(int),
                              len(recording.labels) - 1)
    return x, recording.labels[source_index]


def cut_windows(x, labels, window, step):
    """(C, T) -> windows (N, C, window) every `step` samples; a window's label is its samples' one label, else -1."""
    starts = np.arange(0, x.shape[-1] - window + 1, step)
    windows = np.stack([x[:, s : s + window] for s in starts])
    spans = np.stack([labels[s : s + window] for s in starts])
    uniform = (spans == spans[:, :1]).all(1)
    return windows, np.where(uniform, spans[:, 0], -1)


def dataset_digest(dataset):
    """sha256 of the bytes behind `dataset` (the npz file; the CSV files' names and bytes, in order): what an
    encoder records of the data it was pretrained on, so a classifier can tell the same data from other data."""
    kind, path = parse_dataset(dataset)
    digest = hashlib.sha256()
    for file in [path] if kind == "npz" else sorted(path.glob("*.csv")):
        digest.update(file.name.encode() + b"\0")
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def load_recordings(dataset, settings):
    """The windows of `dataset` ("npz:PATH" or "csv:DIR") under `settings` (a WindowSettings)."""
    kind, path = parse_dataset(dataset)
    if kind == "npz":
        recordings = read_npz(path, settings.sample_rate_hz)
        channels = tuple(f"channel{i}" for i in range(recordings[0].x.shape[0])) if recordings else ()
    else:
        recordings, channels = read_csv_folder(path, settings.sample_rate_hz)
    if not recordings:
        raise UserError(f"{dataset} holds no recording")
    xs, ys, subjects, indices = [], [], [], []
    for index, recording in enumerate(recordings):
        x, labels = resample(recording, settings.target_rate_hz)
        if x.shape[-1] < settings.window:
            raise UserError(f"{dataset}: recording {recording.name} has {x.shape[-1]} samples at "
                            f"{settings.target_rate_hz:g} Hz, shorter than one window of {settings.window}")
        windows, window_labels = cut_windows(x, labels, settings.window, settings.step)
        xs.append(windows)
        ys.append(window_labels)
        subjects.append(np.full(len(windows), recording.subject, np.int64))
        indices.append(np.full(len(windows), index, np.int64))
    y = np.concatenate(ys)
    if (y < -1).any():
        raise UserError(f"{dataset}: label {int(y.min())} is not a class id (classes are >= 0, -1 = unlabelled)")
    classes = np.unique(y[y >= 0])
    mapped = np.where(y >= 0, np.searchsorted(classes, y), -1)
    x = np.concatenate(xs).astype(np.float32)
    _check_finite(x, f"{dataset} after resampling")
    info = {"dataset": dataset, "recordings": len(recordings), "classes": classes.tolist(),
            "rate_hz": settings.target_rate_hz, "window": settings.window, "step": settings.step,
            "source_rates_hz": sorted({round(r.rate_hz, 6) for r in recordings}),
            "recording_names": [r.name for r in recordings], "digest": dataset_digest(dataset)}
    return Windows(x, mapped.astype(np.int64), np.concatenate(subjects), np.concatenate(indices), channels, info)


# --------------------------------------------------------------------------- per-channel standardisation
def channel_statistics(x):
    """{"mean": [C], "std": [C]} of windows (N, C, W) over every sample: a flat channel gets std 1."""
    x = np.asarray(x, dtype=np.float64)
    mean, std = x.mean(axis=(0, 2)), x.std(axis=(0, 2))
    return {"mean": mean.tolist(), "std": np.where(std > 1e-12, std, 1.0).tolist()}


def standardise(x, statistics):
    """(N, C, W) windows in units of their channels' train statistics (channel_statistics), float32."""
    mean = np.asarray(statistics["mean"], np.float32)[None, :, None]
    std = np.asarray(statistics["std"], np.float32)[None, :, None]
    if mean.shape[1] != x.shape[1]:
        raise UserError(f"the standardisation statistics are for {mean.shape[1]} channels, the data have {x.shape[1]}")
    return ((x - mean) / std).astype(np.float32)


def split_subjects(subjects, test_subjects=(), val_subjects=(), seed=0, test_share=0.2, val_share=0.1):
    """(train, val, test) subject lists: the given ones, else drawn by `seed` (at least one each)."""
    subjects = [int(s) for s in np.unique(subjects)]
    for name, given in (("--test_subjects", test_subjects), ("--val_subjects", val_subjects)):
        unknown = sorted(set(given) - set(subjects))
        if unknown:
            raise UserError(f"{name} names subjects {unknown} that the data does not have ({len(subjects)} subjects)")
    if set(test_subjects) & set(val_subjects):
        raise UserError("--test_subjects and --val_subjects overlap")
    rest = [s for s in np.random.default_rng(seed).permutation(subjects).tolist()
            if s not in test_subjects and s not in val_subjects]
    test, val = list(test_subjects), list(val_subjects)
    if not test:
        test, rest = rest[: max(1, round(test_share * len(subjects)))], rest[max(1, round(test_share * len(subjects))):]
    if not val:
        val, rest = rest[: max(1, round(val_share * len(subjects)))], rest[max(1, round(val_share * len(subjects))):]
    if not test or not val or not rest:
        raise UserError(f"train, val and test need a subject each, the data has {len(subjects)}: record more "
                        f"subjects (or recordings), or name --test_subjects and --val_subjects")
    return sorted(rest), sorted(val), sorted(test)
