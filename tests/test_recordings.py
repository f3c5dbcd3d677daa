"""Own recordings (--dataset npz:PATH / csv:DIR): reading, resampling, windowing, subject splits, generic
features, the entrypoints end to end, and every bad input as one line with nothing written."""
import json

import numpy as np
import pytest
import torch

from common.checkpoint import save_encoder
from common.config import parse_config
from common.encoders import build_encoder
from common.errors import UserError
from common.har_task import har_client_datasets, har_labelled_splits, har_model, har_pretrain_data, own_data
from data import make_example_recordings
from data_processing.generic_features import FEATURES_PER_CHANNEL, generic_features
from data_processing.recordings import (Recording, WindowSettings, cut_windows, load_recordings, resample,
                                        split_subjects)
from HAR_centralized import train_classifier, train_encoder
from HAR_centralized.config import HARClassifierConfig, HARPretrainConfig
from HAR_federated.config import FederatedConfig
from HAR_federated.run import run_local


def sine_windows(n=12, channels=4, length=256, rate=100, hz=5.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(length) / rate
    x = np.sin(2 * np.pi * hz * t)[None, None] * rng.uniform(0.5, 2, (n, channels, 1))
    return x.astype(np.float32)


@pytest.fixture
def example_csv(tmp_path):
    make_example_recordings.main(["--format", "csv", "--out", str(tmp_path / "csv"), "--subjects", "5"])
    return tmp_path / "csv"


@pytest.fixture
def example_npz(tmp_path):
    make_example_recordings.main(["--format", "npz", "--out", str(tmp_path / "windows.npz"), "--subjects", "5"])
    return tmp_path / "windows.npz"


def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return f"npz:{path}"


# --------------------------------------------------------------------------- reading and windowing
def test_npz_windows_are_resampled_to_the_target_rate_and_keep_their_frequency(tmp_path):
    x = sine_windows(n=6, length=256, rate=100, hz=5.0)
    dataset = write_npz(tmp_path / "w.npz", x=x, y=np.array([3, 3, 7, 7, -1, 3]), subject=np.arange(6))
    windows = load_recordings(dataset, WindowSettings(sample_rate_hz=100, target_rate_hz=50, window=128, step=64))
    assert windows.x.shape == (6, 4, 128) and windows.x.dtype == np.float32
    assert windows.y.tolist() == [0, 0, 1, 1, -1, 0] and windows.info["classes"] == [3, 7]
    spectrum = np.abs(np.fft.rfft(windows.x[0, 0]))
    assert np.fft.rfftfreq(128, 1 / 50)[spectrum.argmax()] == pytest.approx(5.0, abs=0.4)


def test_longer_recordings_are_cut_into_windows_with_their_label(tmp_path):
    dataset = write_npz(tmp_path / "r.npz", x=sine_windows(n=2, length=500, rate=50), y=np.array([1, 2]))
    windows = load_recordings(dataset, WindowSettings(window=128, step=64))
    per_recording = (500 - 128) // 64 + 1
    assert len(windows.x) == 2 * per_recording and windows.y.tolist() == [0] * per_recording + [1] * per_recording
    assert windows.subject.tolist() == [0] * per_recording + [1] * per_recording  # no subject: one per recording


def test_a_window_across_two_labels_is_unlabelled():
    x = np.zeros((2, 300))
    labels = np.r_[np.zeros(150, int), np.ones(150, int)]
    windows, window_labels = cut_windows(x, labels, 100, 50)
    assert window_labels.tolist() == [0, 0, -1, 1, 1]


def test_csv_timestamps_give_the_rate_and_irregular_sampling_is_made_uniform(tmp_path):
    folder = tmp_path / "csv"
    folder.mkdir()
    rng = np.random.default_rng(0)
    t = np.cumsum(rng.uniform(0.009, 0.011, 3000))  # ~100 Hz, jittered
    rows = np.column_stack([t, np.sin(2 * np.pi * 2 * t), np.cos(2 * np.pi * 2 * t), np.r_[np.zeros(1500), np.ones(1500)]])
    np.savetxt(folder / "a.csv", rows, delimiter=",", header="timestamp,ax,ay,label", comments="", fmt="%.6f")
    windows = load_recordings(f"csv:{folder}", WindowSettings(target_rate_hz=50, window=100, step=100))
    assert windows.x.shape[1:] == (2, 100) and windows.channels == ("ax", "ay")
    assert 14 <= len(windows.x) <= 15  # ~30 s at 50 Hz in 2 s windows
    assert set(windows.y.tolist()) <= {0, 1, -1} and (windows.y == 0).sum() >= 6


def test_resampling_keeps_labels_in_place():
    labels = np.r_[np.zeros(100, int), np.ones(100, int)]
    x, out_labels = resample(Recording("r", np.zeros((1, 200)), labels, 0, 100.0), 50.0)
    assert x.shape == (1, 100) and out_labels.tolist() == [0] * 50 + [1] * 50


def test_subject_split_is_fixed_by_its_seed_and_takes_named_subjects():
    subjects = np.repeat(np.arange(10), 3)
    assert split_subjects(subjects, seed=1) == split_subjects(subjects, seed=1)
    train, val, test = split_subjects(subjects, seed=1)
    assert len(test) == 2 and len(val) == 1 and sorted(train + val + test) == list(range(10))
    assert split_subjects(subjects, test_subjects=(0, 1), val_subjects=(2,)) == (list(range(3, 10)), [2], [0, 1])
    with pytest.raises(UserError, match="train, val and test need a subject each"):
        split_subjects(np.array([1, 2]))
    with pytest.raises(UserError, match="that the data does not have"):
        split_subjects(subjects, test_subjects=(42,))


def test_generic_features_are_per_channel_statistics():
    x = sine_windows(n=3, channels=2, length=128, rate=50, hz=4.0)
    features = generic_features(x, 50).reshape(3, 2, FEATURES_PER_CHANNEL)
    assert np.allclose(features[..., 0], x.mean(-1), atol=1e-5)  # mean
    assert np.allclose(features[..., 1], x.std(-1), atol=1e-5)  # std
    assert np.allclose(features[..., 12], 4.0, atol=0.4)  # dominant frequency (Hz)
    flat = generic_features(np.ones((1, 1, 64), np.float32), 50)
    assert np.isfinite(flat).all()


# --------------------------------------------------------------------------- the HAR task on own data
def test_own_data_gives_pretraining_windows_labelled_splits_and_a_model(example_csv):
    flags = ["--dataset", f"csv:{example_csv}", "--output_dir", "unused"]
    config = parse_config(HARPretrainConfig, flags)
    data = har_pretrain_data(config)
    assert data.x.shape[1:] == (6, 128) and data.features.shape[1] == 6 * FEATURES_PER_CHANNEL
    assert "rotation" in data.spec.transforms  # 6 channels: two x,y,z triplets
    splits = har_labelled_splits(parse_config(HARClassifierConfig, flags[:2]))
    subjects = splits.info["subjects"]
    assert not set(subjects["test"]) & set(data.info["subjects"])  # test subjects never pretrained on
    assert (splits.train["y"] >= 0).all() and set(splits.test["y"]) <= {0, 1, 2, 3}
    assert har_model(config).encoder.model_args["in_channels"] == 6
    no_triplets = parse_config(HARPretrainConfig, flags + ["--axis_triplets", "0"])
    assert "rotation" not in har_pretrain_data(no_triplets).spec.transforms


def test_own_recordings_go_through_pretraining_and_classification(tmp_path, example_npz, capsys):
    flags = ["--dataset", f"npz:{example_npz}", "--sample_rate_hz", "100"]
    train_encoder.main(flags + ["--epochs", "1", "--encoder_width", "4", "--embedding_dim", "8", "--n_variants", "1",
                                "--output_dir", str(tmp_path / "runs"), "--experiment_name", "own"])
    run = tmp_path / "runs" / "own_seed42_heads1111"
    assert json.loads((run / "summary.json").read_text())["data_source"] == f"npz:{example_npz}"
    train_classifier.main(flags + ["--encoder", str(run), "--methods", "encoder", "expert_features", "--modes",
                                   "linear", "--label_fractions", "1.0", "--seeds", "1"])
    summary = json.loads((run / "classifier" / "summary.json").read_text())
    assert {s["method"] for s in summary["summary"]} == {"encoder", "expert_features"}
    scores = {s["method"]: s["macro_f1_mean"] for s in summary["summary"]}
    assert min(scores.values()) > 0.35  # 4 classes: chance is 0.25


# --------------------------------------------------------------------------- bad input
def rows(template, n=300):
    """n CSV rows from a template of the row index i, its time t at 50 Hz and a time running backwards."""
    return "".join(template.format(i=i, t=i / 50, back=(n - i) / 50) for i in range(n))


def bad_files(tmp_path):
    x = sine_windows(n=8, channels=3, length=128, rate=50)
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = np.zeros((3, 128)), np.zeros((3, 100))
    nan = x.copy()
    nan[2, 1, 5] = np.nan
    files = {
        "nan": write_npz(tmp_path / "nan.npz", x=nan),
        "inf": write_npz(tmp_path / "inf.npz", x=np.where(x > 1.5, np.inf, x)),
        "ragged": write_npz(tmp_path / "ragged.npz", x=ragged),
        "short": write_npz(tmp_path / "short.npz", x=x[:, :, :64]),
        "y_length": write_npz(tmp_path / "y_length.npz", x=x, y=np.zeros(7, int)),
        "subject_length": write_npz(tmp_path / "subject_length.npz", x=x, subject=np.zeros(9, int)),
        "float_labels": write_npz(tmp_path / "float_labels.npz", x=x, y=np.full(8, 1.5)),
        "text_labels": write_npz(tmp_path / "text_labels.npz", x=x, y=np.array(["walk"] * 8)),
        "no_x": write_npz(tmp_path / "no_x.npz", windows=x),
        "two_dims": write_npz(tmp_path / "two_dims.npz", x=x[:, 0]),
        "one_subject": write_npz(tmp_path / "one_subject.npz", x=x, y=np.zeros(8, int), subject=np.zeros(8, int)),
    }
    folders = {
        "csv_missing_value": {"a.csv": "timestamp,ax,ay\n0.00,1,2\n0.02,,2\n0.04,1,2\n"},
        "csv_text_label": {"a.csv": "ax,label\n" + rows("{i},walk\n")},
        "csv_no_rate": {"a.csv": "ax,label\n" + rows("{i},1\n")},
        "csv_columns": {"a.csv": "timestamp,ax\n" + rows("{t},{i}\n"), "b.csv": "timestamp,ay\n" + rows("{t},{i}\n")},
        "csv_backwards_time": {"a.csv": "timestamp,ax\n" + rows("{back},{i}\n")},
    }
    for case, texts in folders.items():
        (tmp_path / case).mkdir()
        for name, text in texts.items():
            (tmp_path / case / name).write_text(text)
        files[case] = f"csv:{tmp_path / case}"
    return files


BAD = [  # (case, entrypoint, words the one line holds)
    ("nan", "encoder", "NaN or infinite"),
    ("inf", "encoder", "NaN or infinite"),
    ("ragged", "encoder", "ragged"),
    ("short", "encoder", "shorter than one window"),
    ("y_length", "encoder", "y has shape (7,) but x has 8 recordings"),
    ("subject_length", "encoder", "subject has shape (9,) but x has 8"),
    ("float_labels", "classifier", "must hold integers"),
    ("text_labels", "encoder", "must hold integers"),
    ("no_x", "encoder", "has no array 'x'"),
    ("two_dims", "encoder", "(N, C, T)"),
    ("one_subject", "classifier", "need a subject each"),
    ("csv_missing_value", "encoder", "row 3, column 'ax' is missing"),
    ("csv_text_label", "encoder", "label must hold integers"),
    ("csv_no_rate", "encoder", "--sample_rate_hz"),
    ("csv_columns", "encoder", "every file needs the same"),
    ("csv_backwards_time", "encoder", "strictly increasing"),
    ("missing_file", "encoder", "is not a file"),
    ("bad_kind", "encoder", "--dataset must be uci_har, npz:PATH or csv:DIR"),
    ("channels_vs_encoder", "classifier", "was pretrained on inputs of shape (9, 128)"),
]


@pytest.mark.parametrize("case, entrypoint, words", BAD, ids=[b[0] for b in BAD])
def test_bad_recordings_are_one_line_and_write_nothing(tmp_path, capsys, case, entrypoint, words):
    files = bad_files(tmp_path)
    files["missing_file"] = f"npz:{tmp_path / 'missing.npz'}"
    files["bad_kind"] = f"parquet:{tmp_path}"
    files["channels_vs_encoder"] = write_npz(tmp_path / "six.npz", x=sine_windows(n=12, channels=6, length=128),
                                             y=np.arange(12) % 2, subject=np.arange(12))
    encoder = tmp_path / "uci_encoder.pt"
    save_encoder(build_encoder("cnn1d", in_channels=9, width=4, depth=2, embedding_dim=8), encoder, {"input_shape": [9, 128]})
    out = tmp_path / "out"
    if entrypoint == "encoder":
        argv, main = ["--output_dir", str(out), "--epochs", "1"], train_encoder.main
    else:
        argv, main = ["--encoder", str(encoder), "--output_dir", str(out)], train_classifier.main
    with pytest.raises(SystemExit) as exit_info:
        main(argv + ["--dataset", files[case]])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and words in err, err
    assert not out.exists() or not any(out.rglob("*.*"))  # nothing written, not even half


def test_the_example_generator_writes_both_formats(example_csv, example_npz):
    assert len(list(example_csv.glob("*.csv"))) == 10
    with np.load(example_npz) as f:
        assert f["x"].shape[1:] == (6, 256) and set(np.unique(f["y"])) <= {-1, 0, 1, 2, 3}
    assert torch.equal(torch.as_tensor(np.unique(np.load(example_npz)["subject"])), torch.arange(1, 6))


def test_own_recordings_pretrain_federated_across_their_subjects(tmp_path, monkeypatch):
    monkeypatch.setattr("data_processing.pretext.CACHE_DIR", tmp_path / "cache")
    x = sine_windows(n=36, channels=6, length=128, rate=50)
    dataset = write_npz(tmp_path / "six.npz", x=x, y=np.arange(36) % 3, subject=np.arange(36) % 6)
    config = FederatedConfig(dataset=dataset, output_dir=str(tmp_path / "runs"), rounds=1, local_epochs=1,
                             num_clients=2, min_clients=2, batch_size=8, encoder_width=4, embedding_dim=8,
                             n_variants=1, device="cpu", experiment_name="fed_own")
    config.validate()
    clients = har_client_datasets(config)
    train_subjects = set(own_data(config).subjects["train"])
    assert set(clients) == {0, 1} and set(clients[0].info["subjects"]) | set(clients[1].info["subjects"]) == train_subjects
    run_local(config, clients, b"k" * 32, log=lambda *_: None)
    saved = torch.load(config.run_dir() / "encoder.pt", weights_only=True)
    assert saved["input_shape"] == [6, 128] and saved["model_args"]["in_channels"] == 6
