"""Recordings as wearables write them, read by the field's own readers: Axivity `.cwa` (UK Biobank, Capture-24's
raw files) and GENEActiv `.bin` through scikit-digital-health, ActiGraph `.gt3x` through pygt3x (ActiGraph's own
reader); then calibrated, non-wear left out, resampled and windowed into the corpus. Both come with
`pip install -e ".[devices]"`, which `make test` installs.

Why these: scikit-digital-health reads .cwa and .bin natively (C readers; no Java runtime as actipy's reader
needs) and brings the field's calibration (van Hees et al. 2014, on still periods, with the device's temperature
where it records one) and accelerometer-only non-wear detection (van Hees 2011/2013: thresholds on each
window's standard deviation and range, then the 2013 rescoring of short wear stretches), so those are the
published algorithms, not ours. A non-wear stretch is the union of its still windows (skdh marks each window's
first quarter only, which would leave three quarters of a window of table-top at a stretch's end in).
scikit-digital-health 0.17 dropped .gt3x; pygt3x, ActiGraph's reader, reads it and applies the device's own
calibration; the same calibration check and non-wear detection then run on it.

One file is one recording; its subject is the number its name matches (`subject_pattern`) or a row of a small
table (`file,subject`). Per file: the reader's samples and the device's time stamps (kept: a gap in them ends a
stretch, and the windows are cut on them); calibration when the file holds enough still periods (the reader's
minimum, 72 hours: else the values as the device scaled them, said in the log); non-wear stretches found on
`nonwear_window_min`-minute windows and left out (no window spans one); the wear stretches resampled to the
target rate and windowed like large CSVs (data_processing/large_csv.py). The readers load a file whole: peak
memory is about 130 bytes a sample (1.2 GiB for a day at 100 Hz, benchmarks/device_reading.py), one file at a
time.
"""
import dataclasses
import warnings
from pathlib import Path

import numpy as np

from data_processing.large_csv import GAP_S, RATE_TOLERANCE, _Resampler, _Windower
from ground.errors import UserError

DEVICE_SUFFIXES = {".cwa": "Axivity", ".bin": "GENEActiv", ".gt3x": "ActiGraph"}
CWA_HEADER, CWA_BLOCK = 1024, 512


@dataclasses.dataclass(frozen=True)
class DeviceOptions:
    """How the files of a `devices:DIR` dataset are read."""

    subject_pattern: str = r"(\d+)"
    subjects_table: str = ""  # a CSV with columns file,subject (instead of the pattern)
    nonwear_window_min: int = 60  # van Hees: 60-minute windows, moved on by a quarter
    nonwear_rescore: int = 1  # van Hees 2013: short wear stretches between non-wear ones count as non-wear


def _readers():
    try:
        import skdh.io
        import skdh.preprocessing
    except ImportError:
        raise UserError("device files need scikit-digital-health and pygt3x: pip install -e \".[devices]\" "
                        "(make test installs them)") from None
    return skdh


def device_files(folder):
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in DEVICE_SUFFIXES)
    if not files:
        raise UserError(f"devices:{folder}: no {', '.join(DEVICE_SUFFIXES)} file in that folder")
    return files


def subject_table(path):
    """{file name: subject} from a CSV with columns file,subject."""
    import pandas as pd
    try:
        table = pd.read_csv(path)
        return {str(f): int(s) for f, s in zip(table["file"], table["subject"])}
    except (OSError, ValueError, KeyError) as err:
        raise UserError(f"--subjects_table {path}: needs columns file,subject ({err})") from None


def _read_gt3x(path):
    """pygt3x's samples (the device's calibration applied) as the skdh readers give theirs."""
    try:
        from pygt3x.reader import FileReader
    except ImportError:
        _readers()
        raise UserError("ActiGraph .gt3x needs pygt3x: pip install -e \".[devices]\"") from None
    with FileReader(str(path)) as reader:
        frame = reader.to_pandas()
        rate = float(reader.info.sample_rate)
    return {"time": frame.index.to_numpy(np.float64), "accel": frame[["X", "Y", "Z"]].to_numpy(np.float64),
            "fs": rate, "temperature": None}


def read_device(path, sample_rate_hz=0.0, options=DeviceOptions()):
    """(time (n,) s, accel (n, 3) g, rate, wear [(start, stop)] sample ranges, info) of one device file."""
    path = Path(path)
    brand = DEVICE_SUFFIXES.get(path.suffix.lower())
    size = path.stat().st_size
    if brand == "Axivity" and (size < CWA_HEADER + CWA_BLOCK or (size - CWA_HEADER) % CWA_BLOCK):
        raise UserError(f"{path}: truncated ({size} bytes: an Axivity file is a 1024-byte header and whole "
                        f"512-byte blocks)")
    skdh = _readers()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # naive local time stamps: kept as the device wrote them
        try:
            if brand == "ActiGraph":
                data = _read_gt3x(path)
            else:
                data = (skdh.io.ReadCwa() if brand == "Axivity" else skdh.io.ReadBin()).predict(file=str(path))
        except UserError:
            raise
        except (Exception, SystemExit) as err:  # noqa: BLE001 - the readers' C code and zip raise many kinds
            raise UserError(f"{path}: not readable as a {brand} file ({type(err).__name__}: {str(err)[:80]})") \
                from None
    time = np.asarray(data.get("time"), np.float64)
    accel, rate = np.asarray(data.get("accel"), np.float64), float(data.get("fs") or 0)
    if accel.ndim != 2 or accel.shape[1] != 3 or len(accel) < 2 or not rate > 0 or len(time) != len(accel):
        raise UserError(f"{path}: the {brand} reader found no accelerometer samples (truncated?)")
    if not np.isfinite(accel).all():
        raise UserError(f"{path}: non-finite samples (a corrupt block?)")
    if sample_rate_hz and abs(rate / sample_rate_hz - 1) > RATE_TOLERANCE:
        raise UserError(f"{path}: recorded at {rate:g} Hz, not the --sample_rate_hz {sample_rate_hz:g} given")
    stamped = 1.0 / np.median(np.diff(time[: 100_000]))
    if abs(stamped / rate - 1) > RATE_TOLERANCE:
        raise UserError(f"{path}: its header says {rate:g} Hz, its time stamps {stamped:.4g} Hz")
    info = {"file": path.name, "device": brand, "rate_hz": rate, "samples": len(accel),
            "start": float(time[0]), "stop": float(time[-1])}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "less than 72 hours: no calibration" is said in the record instead
        calibrated = skdh.preprocessing.CalibrateAccelerometer().predict(
            time=time, accel=accel, fs=rate, temperature=data.get("temperature"))
    info["calibrated"] = "accel" in calibrated
    accel = np.asarray(calibrated.get("accel", accel))
    if len(accel) < options.nonwear_window_min * 60 * rate:
        raise UserError(f"{path}: {len(accel) / rate / 60:.0f} min long, shorter than the non-wear detector's window "
                        f"(--nonwear_window_min {options.nonwear_window_min})")
    skip_min = max(1, options.nonwear_window_min // 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wear = skdh.preprocessing.AccelThresholdWearDetection(
            window_length=options.nonwear_window_min, window_skip=skip_min,
            apply_setup_criteria=bool(options.nonwear_rescore)).predict(time=time, accel=accel, fs=rate)["wear"]
    # skdh gives each window's verdict to its first `skip` minutes; a still window is still all through, so a
    # non-wear stretch runs to the end of its last window: the wear after it starts that much later
    tail = int((options.nonwear_window_min - skip_min) * 60 * rate)
    wear = [(int(a) + (tail if a > 0 else 0), int(min(b, len(accel))))
            for a, b in np.asarray(wear, np.int64).reshape(-1, 2)]
    wear = [(a, b) for a, b in wear if b > a]
    info["wear_s"] = round(sum(b - a for a, b in wear) / rate, 1)
    info["nonwear_s"] = round(len(accel) / rate - info["wear_s"], 1)
    return time, accel, rate, wear, info


def device_windows(path, settings, options=DeviceOptions()):
    """(info, windows): the file read at once (read_device), then its wear stretches (split where the time stamps
    have a gap) as (windows (n, 3, W) float32, stretch (n,)) pairs, made as they are asked for."""
    time, accel, rate, wear, info = read_device(path, settings.sample_rate_hz, options)
    time = time - time[0]  # seconds since the first sample: float64 keeps microseconds

    def stretches():
        stretch = 0
        for start, stop in wear:
            breaks = np.flatnonzero(np.diff(time[start:stop]) > GAP_S) + 1
            for piece in np.split(np.arange(start, stop), breaks):
                if len(piece) < 2:
                    continue
                resampler = _Resampler(rate, settings.target_rate_hz, 3)
                unlabelled = np.full(len(piece), -1, np.int64)
                windows, _ = _Windower(settings.window, settings.step)(*resampler(time[piece], accel[piece],
                                                                                    unlabelled))
                if len(windows):
                    yield windows, np.full(len(windows), stretch, np.int64)
                stretch += 1

    return info, stretches()
