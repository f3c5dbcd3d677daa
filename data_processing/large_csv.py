"""Large CSV recordings (Capture-24 style: one `P001.csv.gz` per participant, `time,x,y,z,annotation`, 100 Hz, a
day each) read chunk by chunk, never whole, into windows at the encoder's rate.

A file is one recording of one subject (the number in its name, by `subject_pattern`). Columns: a time column
(timestamps such as `2016-11-13 02:18:00.000000`, a `[Europe/London]`-style suffix allowed, or numbers of
seconds), the chosen sensor columns, and optionally a label column of free text mapped to classes by a small
mapping file (Capture-24's annotations are mapped by a dictionary: `annotation,label` rows; `label_scheme`
picks another column). Empty annotations are unlabelled; an annotation the mapping lacks stops the file with
one line naming it.

Per chunk: the time stamps give the source rate (checked against `sample_rate_hz` when given: a file at
another rate is refused); a stateful low-pass filter (its state carried from chunk to chunk) keeps what the
target rate can hold, then the samples are interpolated onto the target rate's grid; a gap in the time stamps
(over 1 s) ends a segment, so no window spans it; windows of `window` samples every `step` are cut, the tail
carried into the next chunk. A window is labelled when all its samples carry one class. Memory: one chunk.
"""
import re
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import signal

from ground.errors import UserError

GAP_S = 1.0  # a jump in the time stamps longer than this ends a segment
RATE_TOLERANCE = 0.02  # a file's rate may differ from the stated one by 2%


def read_label_map(path, scheme=""):
    """{annotation text: class name} from a CSV whose first column is the annotation and `scheme` (default: the
    second column) the class."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise UserError(f"--label_map {path}: not a readable CSV ({err})") from None
    if table.shape[1] < 2:
        raise UserError(f"--label_map {path}: needs an annotation column and a class column")
    column = scheme or table.columns[1]
    if column not in table.columns:
        raise UserError(f"--label_map {path} has no column {column!r}; it has {list(table.columns)}")
    return dict(zip(table[table.columns[0]].str.strip(), table[column].str.strip()))


def subject_of(path, pattern):
    """The subject number in a file's name: the first group of `pattern` (a regular expression)."""
    match = re.search(pattern, Path(path).name)
    if not match:
        raise UserError(f"{path}: no subject in its name (--subject_pattern {pattern!r} does not match)")
    return int(match.group(1))


def _seconds(values, path):
    """Time stamps (numbers of seconds, or date-times) as float64 seconds."""
    if pd.api.types.is_numeric_dtype(values.dtype):
        return values.to_numpy(dtype=np.float64)
    text = values.astype(str).str.replace(r"\s*\[[^\]]*\]\s*$", "", regex=True)
    try:
        stamps = pd.to_datetime(text, format="ISO8601", utc=True)
    except (ValueError, TypeError) as err:
        raise UserError(f"{path}: time stamps not readable ({str(err)[:80]})") from None
    return (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=np.float64)


class _Resampler:
    """Samples at the source rate in, samples on the target rate's grid out, chunk after chunk."""

    def __init__(self, source_rate, target_rate, channels):
        self.target_rate = target_rate
        self.sos = (signal.butter(6, 0.45 * target_rate, fs=source_rate, output="sos")
                    if target_rate < source_rate else None)
        self.zi = None if self.sos is None else np.zeros((self.sos.shape[0], 2, channels))
        self.next_t = None  # the next target sample's time
        self.last = None  # (t, x, label) of the previous chunk's last sample, for interpolation across chunks

    def __call__(self, t, x, labels):
        if self.sos is not None:
            if self.next_t is None:
                self.zi = signal.sosfilt_zi(self.sos)[:, :, None] * x[0][None, None, :]
            x, self.zi = signal.sosfilt(self.sos, x, axis=0, zi=self.zi)
        if self.last is not None:
            t, x = np.concatenate([[self.last[0]], t]), np.concatenate([self.last[1][None], x])
            labels = np.concatenate([[self.last[2]], labels])
        if self.next_t is None:
            self.next_t = t[0]
        grid = np.arange(self.next_t, t[-1] + 1e-9, 1.0 / self.target_rate)
        self.last = (t[-1], x[-1], labels[-1])
        if not len(grid):
            return np.zeros((0, x.shape[1]), np.float32), np.zeros(0, np.int64)
        self.next_t = grid[-1] + 1.0 / self.target_rate
        out = np.stack([np.interp(grid, t, x[:, c]) for c in range(x.shape[1])], axis=1)
        nearest = np.clip(np.searchsorted(t, grid, side="right") - 1, 0, len(t) - 1)
        return out.astype(np.float32), labels[nearest]


class _Windower:
    """Target-rate samples in, windows out; the tail shorter than a window waits for the next chunk."""

    def __init__(self, window, step):
        self.window, self.step = window, step
        self.x, self.labels = None, None

    def __call__(self, x, labels):
        if self.x is not None:
            x, labels = np.concatenate([self.x, x]), np.concatenate([self.labels, labels])
        count = max(0, (len(x) - self.window) // self.step + 1)
        starts = np.arange(count) * self.step
        index = starts[:, None] + np.arange(self.window)[None]
        windows = x[index].transpose(0, 2, 1) if count else np.zeros((0, x.shape[1], self.window), np.float32)
        window_labels = labels[index] if count else np.zeros((0, self.window), np.int64)
        same = (window_labels == window_labels[:, :1]).all(axis=1) if count else np.zeros(0, bool)
        label = np.where(same, window_labels[:, 0] if count else 0, -1)
        rest = count * self.step
        self.x, self.labels = x[rest:], labels[rest:]
        return np.ascontiguousarray(windows, dtype=np.float32), label.astype(np.int64)


def stream_csv_windows(path, columns, settings, time_column="time", label_column="", label_map=None,
                       classes=(), chunk_rows=500_000):
    """Yields (windows (n, C, W) float32, label (n,) class ids or -1, segment (n,)) of one large CSV (plain or
    gzipped), a chunk at a time. settings: a WindowSettings (sample_rate_hz 0: the rate the time stamps give);
    classes: the class names in id order (label_map's values, sorted)."""
    usecols = [time_column, *columns] + ([label_column] if label_column else [])
    class_id = {name: i for i, name in enumerate(classes)}
    resampler = windower = None
    segment, last_t, row, origin = 0, None, 0, None
    try:
        reader = pd.read_csv(path, usecols=usecols, chunksize=chunk_rows, compression="infer",
                             dtype={label_column: str} if label_column else None)
        for chunk in reader:
            t = _seconds(chunk[time_column], path)
            origin = t[0] if origin is None else origin
            t = t - origin  # seconds since the file's first sample: float64 keeps microseconds there
            x = chunk[list(columns)].to_numpy(dtype=np.float64)
            if not np.isfinite(x).all() or not np.isfinite(t).all():
                raise UserError(f"{path}: empty or non-numeric sensor values near row {row + 2}")
            labels = np.full(len(chunk), -1, np.int64)
            if label_column:
                text = chunk[label_column].fillna("").str.strip()
                mapped = text.map(lambda a: label_map.get(a) if a else "")
                unknown = mapped.isna()
                if unknown.any():
                    first = int(np.flatnonzero(unknown.to_numpy())[0])
                    raise UserError(f"{path}: annotation {text.iloc[first]!r} (row {row + first + 2}) is not in the "
                                    f"label map")
                labels = mapped.map(lambda c: class_id.get(c, -1)).to_numpy(dtype=np.int64)
            if resampler is None:
                steps = np.diff(t[: min(len(t), 10_000)])
                if len(steps) == 0 or np.median(steps) <= 0:
                    raise UserError(f"{path}: time stamps do not increase: no sampling rate")
                rate = 1.0 / float(np.median(steps))
                if settings.sample_rate_hz and abs(rate / settings.sample_rate_hz - 1) > RATE_TOLERANCE:
                    raise UserError(f"{path}: sampled at {rate:.4g} Hz by its time stamps, not the "
                                    f"--sample_rate_hz {settings.sample_rate_hz:g} given")
                rate = settings.sample_rate_hz or rate
                new_segment = lambda: (_Resampler(rate, settings.target_rate_hz, len(columns)),  # noqa: E731
                                       _Windower(settings.window, settings.step))
                resampler, windower = new_segment()
            # a gap ends the segment: nothing is interpolated across it and no window spans it
            breaks = np.flatnonzero(np.diff(np.concatenate([[last_t if last_t is not None else t[0]], t])) > GAP_S)
            pieces = np.split(np.arange(len(t)), breaks)
            for i, piece in enumerate(pieces):
                if i > 0:
                    segment += 1
                    resampler, windower = new_segment()
                if len(piece):
                    windows, label = windower(*resampler(t[piece], x[piece], labels[piece]))
                    if len(windows):
                        yield windows, label, np.full(len(windows), segment, np.int64)
            last_t, row = t[-1], row + len(chunk)
    except (EOFError, OSError, ValueError, pd.errors.ParserError, KeyError) as err:
        # a truncated gzip (EOFError), a missing column (ValueError), a malformed row (ParserError)
        raise UserError(f"{path}: unreadable near row {row + 2} ({type(err).__name__}: {str(err)[:100]})") from None
    if row == 0:
        raise UserError(f"{path}: no rows")
