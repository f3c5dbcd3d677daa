"""Write wearable recordings in the formats the devices write, to try `devices:DIR` without a device of your own.

Usage:
    python data/make_example_devices.py --out data/example_devices          # one file of each format + a CSV
    python data/make_example_devices.py --out d --formats cwa --subjects 4 --hours 24
Each file is one subject's wrist accelerometer (x y z, in g): walking-like and resting stretches while worn,
then the device taken off and left on a table (a non-wear stretch: gravity on one axis, sensor noise only), then
worn again. The formats, written from their published descriptions:
- Axivity `.cwa` (AX3; UK Biobank, Capture-24's raw files): a 1,024-byte "MD" header, then 512-byte "AX" blocks
  of 80 samples (unpacked 16-bit, 1/256 g), each with its time stamp, rate code and a checksum
- GENEActiv `.bin`: a 59-line text header (frequency, calibration gains and offsets, page count), then pages of
  10 lines, each with its time and 300 samples as 12-bit hexadecimal values
- ActiGraph `.gt3x`: a zip of info.txt (sample rate, acceleration scale) and log.bin (Activity2 records: one a
  second, int16 x y z, a separator, time stamp, size and checksum each)
- Capture-24 `.csv.gz`: time,x,y,z,annotation (free-text annotations, a dictionary file maps them to classes)
Nothing here is real data. The signals are synthetic; the files are what the readers take.
"""
import argparse
import datetime as dt
import io
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

START = dt.datetime(2026, 1, 5, 9, 0, 0)
FORMATS = ("cwa", "bin", "gt3x", "csv")
ANNOTATIONS = {"walk": "17150 walking household without observable loads;MET 2.0",
               "rest": "7030 sleeping;MET 0.95"}


def wrist_signal(seconds, rate, rng, off=(0.4, 0.6)):
    """(n, 3) g and the worn parts' activity name per sample: worn (walking and resting in 10-minute turns),
    off the wrist from `off[0]` to `off[1]` of the recording (still on a table), then worn again."""
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    walking = (t // 600).astype(int) % 2 == 0
    phase = rng.uniform(0, 2 * np.pi, 3)
    swing = np.stack([np.sin(2 * np.pi * 1.8 * t + p) for p in phase], axis=1)
    xyz = np.where(walking[:, None], 0.5 * swing, 0.05 * swing) + 0.03 * rng.normal(size=(n, 3))
    xyz[:, 2] += 1.0
    table = slice(int(off[0] * n), int(off[1] * n))
    xyz[table] = [0.0, 0.0, 1.0]
    xyz[table] += 0.002 * rng.normal(size=(table.stop - table.start, 3))  # sensor noise only
    activity = np.where(walking, "walk", "rest").astype(object)
    activity[table] = ""
    return xyz, activity


def write_cwa(path, xyz, rate_code=10, start=START, session=1):
    """An Axivity AX3 file: rate code 10 is 100 Hz (3200 / 2 ** (15 - code)), +/-8 g, unpacked int16 samples."""
    rate = 3200 / (1 << (15 - rate_code))
    code = rate_code | 0x40  # the range bits: +/-8 g
    header = bytearray(1024)
    struct.pack_into("<HHBHIH", header, 0, 0x444D, 1020, 0, 42, session, 0)
    struct.pack_into("<B", header, 36, code)
    raw = np.clip(np.round(np.asarray(xyz) * 256), -32768, 32767).astype("<i2")
    with open(path, "wb") as out:
        out.write(header)
        for sequence, first in enumerate(range(0, len(raw), 80)):
            part = raw[first:first + 80]
            block = bytearray(512)
            stamp = start + dt.timedelta(seconds=first / rate)
            whole = stamp.replace(microsecond=0)
            # the sample index at which the whole-second time stamp holds (may be negative)
            offset = int(round((whole - stamp).total_seconds() * rate))
            packed = ((whole.year - 2000) << 26 | whole.month << 22 | whole.day << 17 | whole.hour << 12
                      | whole.minute << 6 | whole.second)
            struct.pack_into("<HHHIIIHHBBBBhH", block, 0, 0x5841, 508, 0, session, sequence, packed, 0, 0, 0, 0,
                             code, 0x32, offset, len(part))
            block[30:30 + part.size * 2] = part.tobytes()
            words = struct.unpack("<256H", bytes(block))
            struct.pack_into("<H", block, 510, -sum(words[:-1]) & 0xFFFF)  # the block's words sum to 0
            out.write(block)
    return path


def write_bin(path, xyz, rate=100, start=START, gain=25600, offset=0):
    """A GENEActiv file: raw = (g * gain + offset) / 100 in 12 bits; 300 samples a page."""
    n_pages = len(xyz) // 300
    header = ["Device Identity", "Device Unique Serial Code:012345", "Device Type:GENEActiv", "Device Model:1.1",
              "Device Firmware:Ver06.17 15June23", "Calibration Date:2025-12-01 10:00:00:000", "",
              "Device Capabilities", "Accelerometer Range:-8 to 8", "Accelerometer Resolution:0.0039",
              "Accelerometer Units:g", "Light Meter Range:0 to 3000", "Light Meter Resolution:5",
              "Light Meter Units:lux", "Temperature Sensor Range:0 to 60", "Temperature Sensor Resolution:0.25",
              "Temperature Sensor Units:deg. C", "", "Configuration Info", f"Measurement Frequency:{rate} Hz",
              "Measurement Period:168 Hours", f"Start Time:{start:%Y-%m-%d %H:%M:%S}:000", "Study Centre:",
              "Study Code:", "Investigator ID:", "Exercise Type:", "Config Operator ID:", "Config Time:",
              "Config Notes:", "", "Trial Info", "Subject Code:", "Date of Birth:", "Sex:", "Height:", "Weight:",
              "Handedness Code:", "Device Location Code:left wrist", "", "Subject Info", "Subject Notes:", "",
              "", "", "", "", "Calibration Data"]
    for axis in "xyz":
        header += [f"{axis} gain:{gain}", f"{axis} offset:{offset}"]
    header += ["Volts:300", "Lux:800", "", "Memory Status", f"Number of Pages:{n_pages}", ""]
    assert len(header) == 59
    raw = np.round((np.asarray(xyz[:n_pages * 300]) * gain + offset) / 100).astype(np.int64)
    raw = np.clip(raw, -2048, 2047) & 0xFFF
    lines = header
    for page in range(n_pages):
        stamp = start + dt.timedelta(seconds=page * 300 / rate)
        samples = raw[page * 300:(page + 1) * 300]
        words = samples[:, 0] << 36 | samples[:, 1] << 24 | samples[:, 2] << 12  # light, button: 0
        lines += ["Recorded Data", "Device Unique Serial Code:012345", f"Sequence Number:{page}",
                  f"Page Time:{stamp:%Y-%m-%d %H:%M:%S}:{stamp.microsecond // 1000:03d}", "Unassigned:",
                  "Temperature:25.0", "Battery voltage:4.0", "Device Status:Recording",
                  f"Measurement Frequency:{rate:.1f}", "".join(f"{w:012X}" for w in words)]
    Path(path).write_bytes(("\r\n".join(lines) + "\r\n").encode("ascii"))
    return path


def _dotnet_ticks(stamp):
    return int((stamp - dt.datetime(1, 1, 1)).total_seconds() * 10**7)


def write_gt3x(path, xyz, rate=100, start=START, scale=256.0):
    """An ActiGraph file: info.txt and log.bin of one Activity2 record (type 0x1A) a second."""
    seconds = len(xyz) // rate
    stop = start + dt.timedelta(seconds=seconds)
    info = {"Serial Number": "MOS2E00000000", "Device Type": "wGT3XBT", "Firmware": "1.9.2", "Battery Voltage": "4.10",
            "Sample Rate": str(rate), "Start Date": str(_dotnet_ticks(start)), "Stop Date": str(_dotnet_ticks(stop)),
            "Last Sample Time": str(_dotnet_ticks(stop)), "Download Date": str(_dotnet_ticks(stop)),
            "Board Revision": "4", "Unexpected Resets": "0", "Acceleration Scale": f"{scale:.1f}",
            "Acceleration Min": "-8.0", "Acceleration Max": "8.0", "TimeZone": "00:00:00"}
    raw = np.clip(np.round(np.asarray(xyz[:seconds * rate]) * scale), -32768, 32767).astype("<i2")
    epoch = int((start - dt.datetime(1970, 1, 1)).total_seconds())
    log = io.BytesIO()
    for second in range(seconds):
        payload = raw[second * rate:(second + 1) * rate].tobytes()
        head = struct.pack("<BBLH", 0x1E, 0x1A, epoch + second, len(payload))
        check = 0
        for byte in head + payload:
            check ^= byte
        log.write(head + payload + bytes([~check & 0xFF]))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("info.txt", "\r\n".join(f"{k}: {v}" for k, v in info.items()) + "\r\n")
        archive.writestr("log.bin", log.getvalue())
    return path


def write_capture24_csv(path, xyz, activity, rate=100, start=START):
    """A Capture-24 participant file: time stamps with a zone, x y z in g, free-text annotations (empty: none)."""
    stamps = (pd.Timestamp(start) + pd.to_timedelta(np.arange(len(xyz)) / rate, unit="s"))
    frame = pd.DataFrame({"time": stamps.strftime("%Y-%m-%d %H:%M:%S.%f") + " [Europe/London]",
                          "x": xyz[:, 0].round(4), "y": xyz[:, 1].round(4), "z": xyz[:, 2].round(4),
                          "annotation": [ANNOTATIONS.get(a, "") for a in activity]})
    frame.to_csv(path, index=False, compression="gzip")
    return path


def write_label_map(path):
    """Capture-24's dictionary file: annotation -> class, one column per labelling scheme."""
    Path(path).write_text("annotation,label:Willetts2018\n" + "".join(
        f"\"{text}\",{'walking' if name == 'walk' else 'sleep'}\n" for name, text in ANNOTATIONS.items()))
    return path


def write_example(folder, formats=FORMATS, subjects=1, hours=2.0, rate=100, seed=0):
    """One file per (subject, format) in `folder`, named P<subject>.<format>; subjects numbered on across
    formats (P001.cwa, P002.bin, ...). Returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths, subject = [], 0
    for _ in range(subjects):
        for fmt in formats:
            subject += 1
            xyz, activity = wrist_signal(hours * 3600, rate, rng)
            name = folder / f"P{subject:03d}"
            if fmt == "cwa":
                paths.append(write_cwa(name.with_suffix(".cwa"), xyz, rate_code=int(round(np.log2(rate / 3200))) + 15))
            elif fmt == "bin":
                paths.append(write_bin(name.with_suffix(".bin"), xyz, rate))
            elif fmt == "gt3x":
                paths.append(write_gt3x(name.with_suffix(".gt3x"), xyz, rate))
            else:
                paths.append(write_capture24_csv(folder / f"P{subject:03d}.csv.gz", xyz, activity, rate))
    if "csv" in formats:
        write_label_map(folder / "annotation-label-dictionary.csv")
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="the folder to write")
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS)
    parser.add_argument("--subjects", type=int, default=1, help="files per format (one subject each)")
    parser.add_argument("--hours", type=float, default=2.0, help="each recording's length")
    parser.add_argument("--rate_hz", type=int, default=100, choices=(25, 50, 100), help="the devices' rate")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    paths = write_example(args.out, args.formats, args.subjects, args.hours, args.rate_hz, args.seed)
    print(f"{len(paths)} recordings of {args.hours:g} h at {args.rate_hz} Hz -> {args.out}/ "
          f"({', '.join(p.name for p in paths[:4])}{', ...' if len(paths) > 4 else ''})")


if __name__ == "__main__":
    sys.exit(main())
