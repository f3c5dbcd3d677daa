"""Device files (Axivity .cwa, GENEActiv .bin, ActiGraph .gt3x) written in their formats by
data/make_example_devices.py, read by the field's readers (scikit-digital-health, pygt3x): the samples and the
device's time stamps come back, the non-wear stretch is left out, and a folder with bad files (truncated, another
rate, a CSV with an unknown annotation) prepares its good ones with one line per bad one; the corpus pretrains."""
import gzip
import json

import numpy as np
import pytest

from data import make_example_devices as devices_files
from data import make_example_recordings, prepare_corpus
from data_processing.corpus import Corpus
from data_processing.devices import DeviceOptions, device_windows, read_device
from data_processing.recordings import WindowSettings
from common.config import parse_config
from ground.errors import UserError
from har_task import HARTask
from HAR_centralized import train_encoder
from HAR_centralized.config import HARPretrainConfig

RATE, SECONDS = 25, 1800  # half an hour at 25 Hz: the device is on a table from minute 12 to minute 18
OPTIONS = DeviceOptions(nonwear_window_min=4, nonwear_rescore=0)  # van Hees' 2013 rescoring is for days
START_S = (devices_files.START - devices_files.dt.datetime(1970, 1, 1)).total_seconds()
SHORT = ["--nonwear_window_min", "4", "--nonwear_rescore", "0"]


def signal(seed=0):
    return devices_files.wrist_signal(SECONDS, RATE, np.random.default_rng(seed))[0]


def write(fmt, path, xyz, rate=RATE):
    if fmt == "cwa":
        return devices_files.write_cwa(path, xyz, rate_code={25: 8, 50: 9, 100: 10}[rate])
    return (devices_files.write_bin if fmt == "bin" else devices_files.write_gt3x)(path, xyz, rate)


@pytest.mark.parametrize("fmt", ["cwa", "bin", "gt3x"])
def test_each_format_reads_back_at_the_devices_time_stamps_with_the_table_stretch_left_out(tmp_path, fmt):
    xyz = signal()
    time, accel, rate, wear, info = read_device(write(fmt, tmp_path / f"P1.{fmt}", xyz), RATE, OPTIONS)
    n = len(xyz)
    assert rate == RATE and abs(len(accel) - n) < 80 and not info["calibrated"]  # half an hour: too short for it
    assert np.abs(accel[:n] - xyz[:len(accel)]).max() <= 1 / 256  # the formats hold 1/256 g
    assert time[0] == pytest.approx(START_S) and np.allclose(np.diff(time[:1000]), 1 / RATE)
    # the table stretch (12 to 18 min) is non-wear, to the detector's resolution (its windows move by a minute)
    worn = np.zeros(len(accel), bool)
    for start, stop in wear:
        worn[start:stop] = True
    minute = 60 * RATE
    assert worn[:12 * minute - 1].all() and not worn[12 * minute:18 * minute].any() and worn[18 * minute:n - 1].all()
    info, windows = device_windows(tmp_path / f"P1.{fmt}", WindowSettings(RATE, 50.0, 128, 64), OPTIONS)
    parts = list(windows)
    assert info["file"] == f"P1.{fmt}" and info["nonwear_s"] >= 6 * 60 - 1
    assert len(parts) == 2 and all(x.shape[1:] == (3, 128) and x.dtype == np.float32 for x, _ in parts)
    assert [int(s[0]) for _, s in parts] == [0, 1]  # the wear stretches are the file's recordings


def test_a_folder_prepares_its_good_files_and_each_bad_one_is_one_line(tmp_path, capsys):
    folder = tmp_path / "raw"
    folder.mkdir()
    for subject, fmt in enumerate(["cwa", "bin", "gt3x"], 1):
        write(fmt, folder / f"P{subject:03d}.{fmt}", signal(subject))
    xyz, activity = devices_files.wrist_signal(SECONDS, RATE, np.random.default_rng(4))
    devices_files.write_capture24_csv(folder / "P004.csv.gz", xyz, activity, RATE)
    mapping = devices_files.write_label_map(folder / "annotation-label-dictionary.csv")
    for subject, fmt in enumerate(["cwa", "bin", "gt3x"], 5):  # cut two thirds in
        path = write(fmt, folder / f"P{subject:03d}.{fmt}", signal(subject))
        path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3 + 7])
    write("cwa", folder / "P008.cwa", signal(8)[::2], rate=50)  # ... another rate
    frame_path = devices_files.write_capture24_csv(folder / "P009.csv.gz", xyz, activity, RATE)
    text = gzip.decompress(frame_path.read_bytes())
    frame_path.write_bytes(gzip.compress(text.replace(b"17150 walking", b"17999 juggling", 1)))
    args = ["--out", str(tmp_path / "corpus"), "--datasets", f"large_csv:{folder}", f"devices:{folder}",
            "--sample_rate_hz", str(RATE), "--label_column", "annotation", "--label_map", str(mapping),
            "--subject_pattern", r"P(\d+)", "--step", "64", *SHORT]
    with pytest.raises(SystemExit) as exit_info:
        prepare_corpus.main(args)
    out = capsys.readouterr().out
    assert exit_info.value.code == 1 and "Traceback" not in out
    left_out = [line for line in out.splitlines() if line.startswith("left out: ")]
    assert len(left_out) == 5, out
    assert "P009.csv.gz: annotation '17999 juggling" in left_out[0]
    assert "P005.cwa: truncated" in left_out[1]
    assert "P006.bin: not readable as a GENEActiv file" in left_out[2]
    assert "P007.gt3x: not readable as a ActiGraph file" in left_out[3]
    assert "P008.cwa: recorded at 50 Hz, not the --sample_rate_hz 25" in left_out[4]
    corpus = Corpus(tmp_path / "corpus")
    assert sorted(np.unique(corpus.subject)) == [1, 2, 3, 4] and corpus.settings["classes"] == ["sleep", "walking"]
    for subject in (1, 2, 3):  # device windows: unlabelled, two wear stretches each
        assert (corpus.label[corpus.subject == subject] == -1).all()
        assert len(np.unique(corpus.recording[corpus.subject == subject])) == 2
    assert set(np.unique(corpus.label[corpus.subject == 4])) == {-1, 0, 1}
    sizes = [int((corpus.subject == s).sum()) for s in (1, 2, 3)]
    assert max(sizes) - min(sizes) <= 2 and min(sizes) > 700  # the same signal through three readers
    # a rerun reads nothing again; the table names subjects instead of the pattern
    with pytest.raises(SystemExit):
        prepare_corpus.main(args)
    out = capsys.readouterr().out
    assert "P001.cwa" not in out and len(Corpus(tmp_path / "corpus")) == len(corpus)
    table = tmp_path / "subjects.csv"
    table.write_text("file,subject\nP001.cwa,41\nP002.bin,42\n")
    only = tmp_path / "only"
    only.mkdir()
    for name in ("P001.cwa", "P002.bin", "P003.gt3x"):
        (only / name).write_bytes((folder / name).read_bytes())
    with pytest.raises(SystemExit):
        prepare_corpus.main(["--out", str(tmp_path / "table"), "--datasets", f"devices:{only}",
                             "--subjects_table", str(table), *SHORT])
    assert "P003.gt3x: not in --subjects_table" in capsys.readouterr().out
    assert sorted(np.unique(Corpus(tmp_path / "table").subject)) == [41, 42]


def test_device_windows_pretrain_an_encoder_beside_labelled_accelerometer_recordings(tmp_path):
    folder = tmp_path / "raw"
    devices_files.write_example(folder, formats=("cwa", "gt3x"), hours=SECONDS / 3600, rate=RATE)
    prepare_corpus.main(["--out", str(tmp_path / "corpus"), "--datasets", f"devices:{folder}", "--step", "64",
                         *SHORT])
    make_example_recordings.main(["--format", "csv", "--out", str(tmp_path / "labelled"), "--subjects", "5",
                                  "--channels", "3"])
    train_encoder.main(["--dataset", f"csv:{tmp_path / 'labelled'}", "--pretrain_corpus", str(tmp_path / "corpus"),
                        "--epochs", "1", "--rocket_kernels", "84", "--rocket_dim", "8", "--batch_size", "256",
                        "--output_dir", str(tmp_path / "runs"), "--experiment_name", "wrist"])
    run = next((tmp_path / "runs").glob("wrist_*"))
    record = json.loads((run / "config.json").read_text())
    assert (run / "encoder.pt").is_file() and record["pretrain_corpus"] == str(tmp_path / "corpus")
    make_example_recordings.main(["--format", "csv", "--out", str(tmp_path / "six"), "--subjects", "3"])
    with pytest.raises(UserError, match="3 channels x 128 samples, the pretraining data 6 x 128"):
        HARTask(parse_config(HARPretrainConfig, ["--dataset", f"csv:{tmp_path / 'six'}", "--pretrain_corpus",
                                                 str(tmp_path / "corpus")])).pretrain_data()
