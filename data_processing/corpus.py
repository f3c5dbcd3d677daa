"""A corpus of unlabelled windows on disk: written once, in bounded memory, by `prepare`
(data/prepare_corpus.py), then memory-mapped and streamed by every pretraining run that names it
(--pretrain_corpus DIR).

A corpus folder:
    corpus.json          the settings (window, rate, channels), the shards in order (windows, bytes, digest,
                         per-subject channel sums), the sources already in them, and whether it is complete
    shards/NNNNN.npy     (n, C, W) float32 windows
    shards/NNNNN.ids.npy (n, 3) int64: each window's subject, recording and label (-1: unlabelled)

Why plain .npy shards: np.load(mmap_mode="r") maps them with no copy and no dependency; their pages are
file-backed (the kernel reads them on demand and drops them under pressure, so a corpus larger than memory
streams), and a window is one contiguous read, so an epoch is shuffled fully by index instead of through a
shuffle buffer. A chunked, compressed store (zarr) reads and decompresses a whole chunk per random window,
and sensor windows (float noise) compress poorly: it would buy little and cost the full shuffle.

Memory: a reader holds the windows' subject, recording and label (24 bytes a window) and maps the rest; a writer
holds one shard (at least --shard_windows windows, ending where a source ends). Disk: N x C x W x 4 bytes
(4.6 KB a UCI HAR window).

Written incrementally: each shard is written to a temporary file and renamed, then corpus.json (atomically)
lists it and the sources whose windows it completes. A killed or failed preparation (a full disk) leaves the
whole shards listed; a rerun checks them and goes on with the sources not yet in. A reader refuses, in one
line naming the file, a corpus whose shards, ids or index disagree.
"""
import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from ground.errors import UserError
from ground.io import atomic_write_json
from ground.paths import CACHE_DIR
from data_processing import hapt
from data_processing.har import CHANNEL_NAMES, RECIPE_VERSION
from data_processing.devices import DeviceOptions, device_files, device_windows, subject_table
from data_processing.large_csv import read_label_map, stream_csv_windows, subject_of
from data_processing.recordings import dataset_digest, load_recordings

CORPUS_VERSION = 2  # 2: a label per window
INDEX = "corpus.json"
SHARD_WINDOWS = 32_768  # ~150 MB shards of UCI HAR windows: few files, a bounded writer (a shard closes at the
# first source boundary past this many windows)


class CorpusWriteError(UserError):
    """The corpus itself cannot be written (a full disk): the preparation stops, unlike a bad input file."""


def _shard_paths(folder, number):
    return folder / "shards" / f"{number:05d}.npy", folder / "shards" / f"{number:05d}.ids.npy"


def _read_index(folder):
    path = Path(folder) / INDEX
    try:
        index = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{folder} is not a prepared corpus (no {INDEX}): prepare it with data/prepare_corpus.py") \
            from None
    except (OSError, ValueError) as err:
        raise UserError(f"{path} is unreadable or not JSON ({err}): prepare the corpus again") from None
    if not isinstance(index, dict) or index.get("version") != CORPUS_VERSION or "shards" not in index:
        raise UserError(f"{path} is not a corpus index of version {CORPUS_VERSION}: prepare the corpus again")
    return index


def _write_array(path, array):
    """Write an .npy whole or not at all; a full disk is one line naming the file."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            np.save(f, array, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise CorpusWriteError(f"cannot write {path}: {err.strerror or err} (rerun the preparation when there is "
                               f"room: it goes on after the last whole shard)") from None


def _array_digest(array, chunk=4096):
    digest = hashlib.blake2b(digest_size=16)
    for start in range(0, len(array), chunk):
        digest.update(np.ascontiguousarray(array[start : start + chunk]).tobytes())
    return digest.hexdigest()


def _subject_sums(x, subject):
    """{subject: [count, sum per channel, sum of squares per channel]} in float64."""
    sums = {}
    for s in np.unique(subject):
        part = x[subject == s].astype(np.float64)
        sums[str(int(s))] = [int(len(part)), part.sum(axis=(0, 2)).tolist(), (part ** 2).sum(axis=(0, 2)).tolist()]
    return sums


class CorpusWriter:
    """Writes (or resumes) the corpus in `folder`: add() one source's windows at a time, then close().

    settings: {"window", "rate_hz", "channels", ...}: what every window shares; a folder holding a corpus of
    other settings is refused (a new folder, or delete it). A source is any string naming the input (a file and
    its digest): one that is already in is skipped (done())."""

    def __init__(self, folder, settings, shard_windows=SHARD_WINDOWS):
        self.folder, self.settings, self.shard_windows = Path(folder), dict(settings), shard_windows
        (self.folder / "shards").mkdir(parents=True, exist_ok=True)
        self.index = {"version": CORPUS_VERSION, "settings": self.settings, "shards": [], "sources": [],
                      "recordings": 0, "complete": False}
        if (self.folder / INDEX).exists():
            previous = _read_index(self.folder)
            if previous["settings"] != json.loads(json.dumps(self.settings)):
                raise UserError(f"{self.folder} holds a corpus prepared with other settings "
                                f"({previous['settings']}): use another folder, or delete it to prepare it anew")
            self.index = {**previous, "complete": False}
            self._drop_bad_shards()
        self.buffer, self.pending = [], []  # windows not yet in a shard, and the sources they complete
        self.buffered = 0
        self.open, self.base, self.top = None, 0, 0  # the source being added, its first recording id, its count
        self.added = 0

    def _drop_bad_shards(self):
        """Keep the listed shards whose files are whole, up to the last that completes its sources: a bad one and
        everything after it, and the parts of a source a kill interrupted, are prepared again."""
        shards = self.index["shards"]
        keep = len(shards)
        for number, shard in enumerate(shards):
            problem = _shard_problem(self.folder, number, shard, self.settings)
            if problem:
                print(f"{problem}: it and the shards after it are prepared again")
                keep = number
                break
        done = {source for shard in shards[:keep] for source in shard["sources"]}
        while keep and shards[keep - 1].get("open") and shards[keep - 1]["open"] not in done:
            keep -= 1  # part of a source whose end never came: the source is read again
        if keep < len(shards):
            self._truncate(keep)

    def _truncate(self, keep):
        kept = self.index["shards"][:keep]
        for number in range(keep, len(self.index["shards"])):
            for path in _shard_paths(self.folder, number):
                path.unlink(missing_ok=True)
        self.index["shards"] = kept
        self.index["sources"] = [s for shard in kept for s in shard["sources"]]
        self.index["recordings"] = max([r for shard in kept for r in shard["recording_range"]] or [-1]) + 1

    def done(self, source):
        return source in self.index["sources"] or source in self.pending

    def add(self, source, x, subject, recording, label=None, final=True):
        """Windows of one source: x (n, C, W), subject (n,), recording (n,) the source's own recording numbers
        (0, 1, ...; renumbered corpus-wide), label (n,) class ids or -1 (None: all unlabelled). A source read in
        parts (a large file, chunk by chunk) passes final=False for all but its last part: its parts go to
        shards of their own, and the source counts as in only once its last part is written (discard() takes
        the parts of a source that failed half-way back out)."""
        x = np.asarray(x, dtype=np.float32)
        expected = (len(self.settings["channels"]), self.settings["window"])
        if x.ndim != 3 or x.shape[1:] != expected:
            raise UserError(f"{source}: windows of shape {x.shape[1:]}, the corpus's are {expected}")
        if not np.isfinite(x).all():
            raise UserError(f"{source}: NaN or infinite values in its windows")
        if self.open != source:  # a new source: a streamed one starts its own shards
            if not final:
                self._flush()
            self.open, self.base = source, self.index["recordings"]
        recording = np.asarray(recording, dtype=np.int64)
        label = np.full(len(x), -1, np.int64) if label is None else np.asarray(label, dtype=np.int64)
        ids = np.stack([np.asarray(subject, dtype=np.int64), self.base + recording, label], 1)
        if len(x):
            self.buffer.append((x, ids))
            self.buffered += len(x)
            self.top = max(self.top, int(recording.max()) + 1)
        if final:
            self.pending.append(source)
            self.index["recordings"] = self.base + self.top
            self.open, self.top = None, 0
        if self.buffered >= self.shard_windows or (final and not self.buffered):
            self._flush()

    def discard(self, source):
        """Take back the parts of `source` (read in parts, failed before its last): buffered and written."""
        if self.open != source:
            return
        self.buffer, self.buffered, self.open, self.top = [], 0, None, 0
        keep = len(self.index["shards"])
        while keep and self.index["shards"][keep - 1].get("open") == source:
            keep -= 1
        if keep < len(self.index["shards"]):
            self._truncate(keep)
            self._save()

    def _flush(self):
        """Write the buffered windows as one shard. A shard ends where its sources end, or holds only parts of
        one source being read (`open`): a shard listed in the index never mixes finished sources with an
        unfinished one, so a rerun never adds a source's windows twice."""
        if self.buffer:
            x = np.concatenate([b[0] for b in self.buffer])
            ids = np.concatenate([b[1] for b in self.buffer])
            self.buffer, self.buffered = [], 0
            self._write_shard(x, ids, self.pending, self.open)
        elif self.pending:  # sources whose windows are all in shards already (or had none): the last shard,
            # which holds their last windows, completes them
            if self.index["shards"]:
                self.index["shards"][-1]["sources"].extend(self.pending)
            self.index["sources"].extend(self.pending)
            self._save()
        self.pending = []

    def _write_shard(self, x, ids, sources, open_source=None):
        number = len(self.index["shards"])
        x_path, ids_path = _shard_paths(self.folder, number)
        _write_array(x_path, x)
        _write_array(ids_path, ids)
        shard = {"windows": int(len(x)), "digest": _array_digest(x), "subjects": _subject_sums(x, ids[:, 0]),
                 "recording_range": [int(ids[:, 1].min()), int(ids[:, 1].max())], "sources": list(sources),
                 "open": open_source}
        self.index["shards"].append(shard)
        self.index["sources"].extend(sources)
        self.added += len(x)
        self._save()

    def _save(self):
        try:
            atomic_write_json(self.folder / INDEX, self.index)
        except UserError as err:  # atomic_open's one line: a full disk, no permission
            raise CorpusWriteError(str(err)) from None

    def close(self):
        """Write what is buffered, and mark the corpus complete (a reader takes only complete corpora)."""
        self._flush()
        self.index["complete"] = True
        self._save()
        return self.index


def _shard_problem(folder, number, shard, settings):
    """One line naming what is wrong with shard `number` (missing, truncated, of another shape), else None."""
    x_path, ids_path = _shard_paths(folder, number)
    expected = (shard["windows"], len(settings["channels"]), settings["window"])
    try:
        x = np.load(x_path, mmap_mode="r")
        ids = np.load(ids_path, mmap_mode="r")
    except FileNotFoundError:
        return f"{x_path if not x_path.exists() else ids_path} is missing"
    except (OSError, ValueError) as err:
        return f"{x_path} or {ids_path} is truncated or not an array ({err})"
    if x.shape != expected or x.dtype != np.float32:
        return f"{x_path} holds {x.dtype} windows of shape {x.shape}, the index says float32 {expected}"
    if ids.shape != (shard["windows"], 3):
        return f"{ids_path} holds ids of shape {ids.shape}, the index says ({shard['windows']}, 3)"
    return None


class Corpus:
    """A prepared corpus, opened memory-mapped: windows(subjects) streams a subset, statistics(subjects) gives
    the channel mean and std from the shards' sums (no pass over the windows)."""

    def __init__(self, folder):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise UserError(f"--pretrain_corpus {folder}: no such folder (prepare it with data/prepare_corpus.py)")
        self.index = _read_index(self.folder)
        if not self.index.get("complete"):
            raise UserError(f"{self.folder / INDEX}: the preparation did not finish: rerun it (it goes on where it "
                            f"stopped)")
        self.settings = self.index["settings"]
        shards, ids = [], []
        for number, shard in enumerate(self.index["shards"]):
            problem = _shard_problem(self.folder, number, shard, self.settings)
            if problem:
                raise UserError(f"corpus {self.folder}: {problem}: rerun the preparation to rebuild it")
            x_path, ids_path = _shard_paths(self.folder, number)
            shards.append(np.load(x_path, mmap_mode="r"))
            ids.append(np.load(ids_path))
        if not shards:
            raise UserError(f"corpus {self.folder} holds no windows")
        self.shards = shards
        ids = np.concatenate(ids)
        self.subject, self.recording, self.label = ids[:, 0], ids[:, 1], ids[:, 2]
        self.digest = hashlib.blake2b(json.dumps([self.settings, [s["digest"] for s in self.index["shards"]]],
                                                 sort_keys=True).encode(), digest_size=16).hexdigest()

    def __len__(self):
        return len(self.subject)

    def verify(self):
        """Read every shard and check it against the index: its digest and its per-subject channel sums (the
        statistics runs standardise by). One line naming the first shard that disagrees."""
        for number, (shard, x) in enumerate(zip(self.index["shards"], self.shards)):
            path = _shard_paths(self.folder, number)[0]
            if _array_digest(x) != shard["digest"]:
                raise UserError(f"corpus {self.folder}: {path} does not hold the windows its index describes (another "
                                f"digest): rerun the preparation into a new folder")
            ids = np.load(_shard_paths(self.folder, number)[1])
            sums = _subject_sums(np.asarray(x), ids[:, 0])
            recorded = shard["subjects"]
            if set(sums) != set(recorded) or any(
                    sums[k][0] != recorded[k][0] or not np.allclose(sums[k][1:], recorded[k][1:], rtol=1e-9)
                    for k in sums):
                raise UserError(f"corpus {self.folder}: the channel statistics in {self.folder / INDEX} disagree "
                                f"with {path}: rerun the preparation into a new folder")

    @property
    def channels(self):
        return list(self.settings["channels"])

    def windows(self, keep=None, statistics=None):
        """ShardedWindows of the windows where the (N,) bool `keep` is true (all: None), standardised by
        `statistics` ({"mean", "std"}) as they are read."""
        positions = None if keep is None else np.flatnonzero(keep)
        return ShardedWindows(self.shards, self.digest, positions, statistics)

    def statistics(self, subjects=None):
        """{"mean": [C], "std": [C]} of the windows of `subjects` (all: None), from the shards' sums."""
        wanted = None if subjects is None else {str(int(s)) for s in subjects}
        count, total, squares = 0, 0.0, 0.0
        for shard in self.index["shards"]:
            for subject, (n, s, q) in shard["subjects"].items():
                if wanted is None or subject in wanted:
                    count, total, squares = count + n, total + np.asarray(s), squares + np.asarray(q)
        if not count:
            raise UserError(f"corpus {self.folder} has no window of subjects {sorted(wanted or ())}")
        values = count * self.settings["window"]
        mean = total / values
        std = np.sqrt(np.maximum(squares / values - mean ** 2, 0.0))
        return {"mean": mean.tolist(), "std": np.where(std > 1e-8, std, 1.0).tolist()}


class ShardedWindows:
    """The windows of memory-mapped shards as one read-only (N, C, W) float32 array: indexing with an int, a
    slice or an index array reads only those windows (positions: the corpus windows this view keeps)."""

    dtype = np.dtype(np.float32)
    ndim = 3

    def __init__(self, shards, digest, positions=None, statistics=None):
        self.shards, self.corpus_digest, self.positions, self.statistics = shards, digest, positions, statistics
        self.offsets = np.cumsum([0] + [len(s) for s in shards])
        n = self.offsets[-1] if positions is None else len(positions)
        self.shape = (int(n), *shards[0].shape[1:])
        if statistics is not None:
            self._mean = np.asarray(statistics["mean"], np.float32)[:, None]
            self._std = np.asarray(statistics["std"], np.float32)[:, None]

    def __len__(self):
        return self.shape[0]

    def content_digest(self):
        """The digest caches are named by (data_processing/pretext.py, content_digest): the corpus's shard digests,
        the windows kept and the standardisation, without reading the windows."""
        digest = hashlib.blake2b(digest_size=16)
        digest.update(self.corpus_digest.encode())
        if self.positions is not None:
            digest.update(np.ascontiguousarray(self.positions, dtype=np.int64).tobytes())
        digest.update(json.dumps(self.statistics, sort_keys=True).encode())
        return digest

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return self[np.asarray([key])][0]
        if isinstance(key, slice):
            key = np.arange(len(self))[key]
        key = np.asarray(key)
        if key.dtype == bool:
            key = np.flatnonzero(key)
        wanted = key if self.positions is None else self.positions[key]
        out = np.empty((len(wanted), *self.shape[1:]), dtype=np.float32)
        shard_of = np.searchsorted(self.offsets, wanted, side="right") - 1
        for s in np.unique(shard_of):
            rows = np.flatnonzero(shard_of == s)
            local = wanted[rows] - self.offsets[s]
            order = np.argsort(local, kind="stable")  # ascending reads stay local in the file
            out[rows[order]] = self.shards[s][local[order]]
        if self.statistics is not None:
            out -= self._mean
            out /= self._std
        return out

    def __array__(self, dtype=None, copy=None):
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype, copy=False)


# --------------------------------------------------------------------------- preparation
def uci_har_settings(step):
    """The settings of a corpus of UCI HAR's raw HAPT recordings: 9 channels, 128 samples at 50 Hz."""
    return {"kind": "uci_har", "window": hapt.WINDOW, "step": int(step), "rate_hz": float(hapt.SAMPLE_RATE_HZ),
            "channels": list(CHANNEL_NAMES), "recipe_version": RECIPE_VERSION}


def uci_har_sources(step):
    """(source name, x, subject, recording) per raw HAPT session: every window, labelled or not, of every
    subject (pretraining keeps the train subjects'), cut as --pretrain_data all cuts them."""
    sessions = hapt.read_hapt_sessions()
    for index, session in enumerate(sessions):
        x, subject, recording = hapt.recording_windows([session], {session.subject}, step)
        yield f"uci_har/session{index:03d}", x, subject, recording


def own_settings(dataset, settings, channels):
    return {"kind": "recordings", "window": settings.window, "step": settings.step,
            "rate_hz": float(settings.target_rate_hz), "channels": list(channels)}


@dataclasses.dataclass(frozen=True)
class LargeCsv:
    """How the files of a `large_csv:DIR` dataset are read (data_processing/large_csv.py)."""

    columns: tuple = ("x", "y", "z")
    time_column: str = "time"
    label_column: str = ""
    label_map: str = ""  # a CSV: annotation -> class (its `label_scheme` column, default the second)
    label_scheme: str = ""
    subject_pattern: str = r"(\d+)"
    chunk_rows: int = 500_000


def _large_csv_files(folder, label_map=""):
    """The folder's CSVs but the label map (Capture-24 ships its dictionary beside the recordings)."""
    skip = Path(label_map).resolve() if label_map else None
    files = sorted(p for p in Path(folder).iterdir() if p.name.endswith((".csv", ".csv.gz")) and p.resolve() != skip)
    if not files:
        raise UserError(f"large_csv:{folder}: no .csv or .csv.gz file in that folder")
    return files


def _add_file(writer, path, channels, window, parts, log, failures):
    """One file as one source, written part by part: parts() yields (windows, subject, recording, label) and
    returns a note for the log. A bad file is one line, its parts taken back out, and the caller goes on."""
    stat = path.stat()
    name = f"{path}#{stat.st_size}-{stat.st_mtime_ns}"
    if writer.done(name):
        return
    start, count = time.time(), 0
    try:
        read = parts()  # a generator: reading (and any UserError) starts at the first next()
        while True:
            try:
                x, subject, recording, label = next(read)
            except StopIteration as done:
                note = done.value or ""
                break
            writer.add(name, x, np.full(len(x), subject), recording, label, final=False)
            count += len(x)
        writer.add(name, np.zeros((0, channels, window), np.float32), [], [], final=True)
        log(f"{path.name}: {count} windows{note}, {count / max(time.time() - start, 1e-9):.0f} windows/s")
    except CorpusWriteError:
        raise
    except UserError as err:
        writer.discard(name)
        failures.append(str(err))
        log(f"left out: {err}")


def _add_large_csv(writer, folder, settings, options, log, failures):
    """Each file of the folder, chunk by chunk, as one source."""
    label_map = read_label_map(options.label_map, options.label_scheme) if options.label_map else None
    if options.label_column and label_map is None:
        raise UserError("--label_column needs --label_map (annotation -> class)")
    classes = sorted(set(label_map.values()) - {""}) if label_map else []

    def parts(path):
        subject = subject_of(path, options.subject_pattern)
        for windows, label, segment in stream_csv_windows(
                path, options.columns, settings, options.time_column, options.label_column, label_map, classes,
                options.chunk_rows):
            yield windows, subject, segment, label

    for path in _large_csv_files(folder, options.label_map):
        _add_file(writer, path, len(options.columns), settings.window, lambda: parts(path), log, failures)


def _add_devices(writer, folder, settings, options, log, failures):
    """Each device file of the folder (data_processing/devices.py) as one source, its wear stretches as its
    recordings."""
    table = subject_table(options.subjects_table) if options.subjects_table else None

    def parts(path):
        if table is not None and path.name not in table:
            raise UserError(f"{path}: not in --subjects_table {options.subjects_table}")
        subject = table[path.name] if table is not None else subject_of(path, options.subject_pattern)
        info, windows = device_windows(path, settings, options)
        for x, stretch in windows:
            yield x, subject, stretch, None
        return (f" ({info['device']}, {info['rate_hz']:g} Hz, "
                f"{'calibrated' if info['calibrated'] else 'not calibrated: too few still hours'}, "
                f"{info['nonwear_s'] / 60:.0f} of {(info['wear_s'] + info['nonwear_s']) / 60:.0f} min non-wear "
                f"left out)")

    for path in device_files(folder):
        _add_file(writer, path, 3, settings.window, lambda: parts(path), log, failures)


def _recordings_writer(writer, folder, wanted, shard_windows, what):
    """The corpus writer for recordings of `wanted` settings: a corpus holds one kind of window, and unlabelled
    windows (wanted without classes) join a corpus whose other sources name classes."""
    if writer is None:
        index = Path(folder) / "corpus.json"
        try:
            previous = json.loads(index.read_text()).get("settings") if index.is_file() else None
        except (OSError, ValueError, AttributeError):
            previous = None  # the writer names what is wrong with the index
        if previous and not wanted.get("classes") and {**previous, "classes": []} == {**wanted, "classes": []}:
            wanted = previous
        writer = CorpusWriter(folder, wanted, shard_windows)
    if {**writer.settings, "classes": []} != {**wanted, "classes": []} or (
            wanted.get("classes") and writer.settings.get("classes") != wanted["classes"]):
        raise UserError(f"{what} or settings differ from the corpus's {writer.settings}")
    return writer


def prepare(folder, datasets, settings, shard_windows=SHARD_WINDOWS, log=print, large_csv=LargeCsv(),
            devices=DeviceOptions()):
    """Prepare (or resume) the corpus in `folder` from `datasets` ("uci_har", "npz:PATH", "csv:DIR",
    "large_csv:DIR", "devices:DIR"; the same channels) windowed by `settings` (a WindowSettings; UCI HAR: its
    step only). A dataset or file that cannot be read is one line and left out; the others are prepared.
    Returns (index, failures)."""
    writer, failures = None, []
    for dataset in datasets:
        try:
            if dataset.startswith("devices:"):
                folder_path = Path(dataset.split(":", 1)[1])
                if not folder_path.is_dir():
                    raise UserError(f"{dataset}: {folder_path} is not a folder")
                wanted = {**own_settings(dataset, settings, ("x", "y", "z")), "classes": []}
                writer = _recordings_writer(writer, folder, wanted, shard_windows, "device files' channels x y z")
                _add_devices(writer, folder_path, settings, devices, log, failures)
                continue
            if dataset.startswith("large_csv:"):
                folder_path = Path(dataset.split(":", 1)[1])
                if not folder_path.is_dir():
                    raise UserError(f"{dataset}: {folder_path} is not a folder")
                wanted = {**own_settings(dataset, settings, large_csv.columns),
                          "classes": sorted(set(read_label_map(large_csv.label_map, large_csv.label_scheme).values())
                                            - {""}) if large_csv.label_map else []}
                writer = _recordings_writer(writer, folder, wanted, shard_windows, f"columns {list(large_csv.columns)}")
                _add_large_csv(writer, folder_path, settings, large_csv, log, failures)
                continue
            if dataset == "uci_har":
                wanted = uci_har_settings(settings.step)
                writer = writer or CorpusWriter(folder, wanted, shard_windows)
                if writer.settings != wanted:
                    raise UserError("uci_har cannot share a corpus with other recordings (other channels)")
                for name, x, subject, recording in uci_har_sources(settings.step):
                    if not writer.done(name):
                        writer.add(name, x, subject, recording)
                continue
            name = f"{dataset}#{dataset_digest(dataset)[:16]}"
            if writer is not None and writer.done(name):
                continue
            windows = load_recordings(dataset, settings)
            wanted = own_settings(dataset, settings, windows.channels)
            writer = writer or CorpusWriter(folder, wanted, shard_windows)
            if writer.settings != wanted:
                raise UserError(f"channels {list(windows.channels)} or settings differ from the corpus's "
                                f"{writer.settings}")
            if not writer.done(name):
                writer.add(name, windows.x, windows.subject, windows.recording, windows.y)
            log(f"{dataset}: {len(windows.x)} windows")
        except CorpusWriteError:
            raise
        except UserError as err:
            message = str(err)
            failures.append(f"{dataset}: {message}" if not message.startswith(dataset) else message)
            log(f"left out: {failures[-1]}")
    if writer is None:
        raise UserError("no dataset could be read: " + "; ".join(failures))
    return writer.close(), failures


class ComputedFeatures:
    """(N, dim) features of a corpus's windows, computed chunk by chunk into a memory-mapped file the first time
    a batch reads them (only a task that regresses features does), min-max scaled to [-1, 1] on all of them as
    the in-memory path scales them. compute(windows) -> (n, dim); the file is named by the windows' digest."""

    def __init__(self, windows, dim, compute, cache_dir, name, chunk_size=4096):
        self.windows, self.compute, self.chunk_size = windows, compute, chunk_size
        self.shape = (len(windows), dim)
        key = windows.content_digest()
        key.update(name.encode())
        self.path = Path(cache_dir or CACHE_DIR) / f"corpus_features_{key.hexdigest()}.npy"
        self._array = None

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, key):
        return self.array()[key]

    def array(self):
        if self._array is None:
            if not self._whole():
                self._build()
            self._array = np.load(self.path, mmap_mode="r")
        return self._array

    def _whole(self):
        try:
            return np.load(self.path, mmap_mode="r").shape == self.shape
        except (OSError, ValueError):
            return False

    def _build(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + f".tmp{os.getpid()}")
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=self.shape)
        low = high = None
        for start in range(0, len(out), self.chunk_size):
            raw = np.asarray(self.compute(self.windows[start : start + self.chunk_size]), dtype=np.float32)
            out[start : start + len(raw)] = raw
            low = raw.min(0) if low is None else np.minimum(low, raw.min(0))
            high = raw.max(0) if high is None else np.maximum(high, raw.max(0))
        span = np.where(high - low > 1e-12, high - low, 1.0)
        for start in range(0, len(out), self.chunk_size):
            out[start : start + self.chunk_size] = 2.0 * (out[start : start + self.chunk_size] - low) / span - 1.0
        out.flush()
        del out
        os.replace(tmp, self.path)
