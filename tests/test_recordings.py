"""Own recordings (--dataset npz:PATH / csv:DIR): reading, resampling, windowing, subject splits, generic
features, the entrypoints end to end, and every bad input as one line with nothing written."""
import csv
import dataclasses
import json

import numpy as np
import pytest
import torch

from common.checkpoint import save_encoder
from common.config import parse_config
from common.encoders import build_encoder
from ground.errors import UserError
from common.pretrained import export_encoder, load_pretrained
from har_task import HARTask
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


def write_npz(path, rate=50.0, **arrays):
    """An npz of `arrays`, saying its sampling rate unless rate is None."""
    np.savez(path, **arrays, **({} if rate is None else {"sample_rate_hz": rate}))
    return f"npz:{path}"


# --------------------------------------------------------------------------- reading and windowing
def test_npz_windows_are_resampled_to_the_target_rate_and_keep_their_frequency(tmp_path):
    x = sine_windows(n=6, length=256, rate=100, hz=5.0)
    dataset = write_npz(tmp_path / "w.npz", None, x=x, y=np.array([3, 3, 7, 7, -1, 3]), subject=np.arange(6))
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
    rows = np.column_stack([t, np.sin(2 * np.pi * 2 * t), np.cos(2 * np.pi * 2 * t),
                            np.r_[np.zeros(1500), np.ones(1500)]])
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
    data = HARTask(config).pretrain_data()
    assert data.x.shape[1:] == (6, 128) and data.features.shape[1] == 6 * FEATURES_PER_CHANNEL
    assert "rotation" in data.spec.transforms  # 6 channels: two x,y,z triplets
    splits = HARTask(parse_config(HARClassifierConfig, flags[:2])).labelled_splits()
    subjects = splits.info["subjects"]
    assert not set(subjects["test"]) & set(data.info["subjects"])  # test subjects never pretrained on
    assert (splits.train["y"] >= 0).all() and set(splits.test["y"]) <= {0, 1, 2, 3}
    assert HARTask(config).model().encoder.model_args["in_channels"] == 6
    no_triplets = parse_config(HARPretrainConfig, flags + ["--axis_triplets", "0"])
    assert "rotation" not in HARTask(no_triplets).pretrain_data().spec.transforms


def test_own_recordings_go_through_pretraining_and_classification(tmp_path, example_npz, capsys):
    flags = ["--dataset", f"npz:{example_npz}", "--sample_rate_hz", "100"]
    # the default recipe (rocket alone; fewer MiniRocket kernels to stay fast)
    train_encoder.main(flags + ["--epochs", "1", "--encoder_width", "4", "--embedding_dim", "8", "--n_variants", "1",
                                "--output_dir", str(tmp_path / "runs"), "--experiment_name", "own",
                                "--rocket_kernels", "840"])
    run = tmp_path / "runs" / "own_seed42_tasksrocket"
    assert json.loads((run / "summary.json").read_text())["data_source"] == f"npz:{example_npz}"
    train_classifier.main(flags + ["--encoder", str(run), "--methods", "encoder", "expert_features", "--modes",
                                   "linear", "--label_fractions", "1.0", "--seeds", "1"])
    summary = json.loads((run / "classifier" / "summary.json").read_text())
    assert {s["method"] for s in summary["summary"]} == {"encoder", "expert_features"}
    scores = {s["method"]: s["macro_f1_mean"] for s in summary["summary"]}
    assert min(scores.values()) > 0.35  # 4 classes: chance is 0.25
    # the field's baselines, the hybrids (the generic per-channel features here) and the semi-supervised modes
    methods = ("minirocket", "encoder+features", "encoder+minirocket", "supervised", "resnet")
    train_classifier.main(flags + ["--encoder", str(run), "--methods", *methods, "--modes", "linear", "selftrain",
                                   "fixmatch", "--label_fractions", "0.5", "--seeds", "1", "--minirocket_kernels",
                                   "84", "--resnet_width", "4", "--min_steps", "4", "--max_steps", "4",
                                   "--eval_every", "2", "--selftrain_rounds", "1", "--output_dir",
                                   str(tmp_path / "all")])
    summary = json.loads((tmp_path / "all" / "summary.json").read_text())["summary"]
    assert {(s["method"], s["mode"]) for s in summary} == {
        ("minirocket", "linear"), ("minirocket", "selftrain"), ("encoder+features", "linear"),
        ("encoder+features", "selftrain"), ("encoder+minirocket", "linear"), ("encoder+minirocket", "selftrain"),
        ("supervised", "fixmatch"), ("resnet", "fixmatch")}
    assert min(s["macro_f1_mean"] for s in summary if s["mode"] != "fixmatch") > 0.35


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
        "no_rate": write_npz(tmp_path / "no_rate.npz", None, x=x),
        "bad_rate": write_npz(tmp_path / "bad_rate.npz", np.zeros(8), x=x),
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
    ("no_rate", "encoder", "does not say its sampling rate"),
    ("bad_rate", "classifier", "sample_rate_hz must be one positive number"),
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
    save_encoder(build_encoder("cnn1d", in_channels=9, width=4, depth=2, embedding_dim=8), encoder,
                 {"input_shape": [9, 128]})
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
    assert not out.exists()  # nothing written, not even an empty folder


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
    clients = HARTask(config).client_datasets()
    train_subjects = set(HARTask(config).own.subjects["train"])
    assert set(clients) == {0,
                            1} and set(clients[0].info["subjects"]) | set(clients[1].info["subjects"]) == train_subjects
    run_local(config, clients, b"k" * 32, log=lambda *_: None)
    saved = torch.load(config.run_dir() / "encoder.pt", weights_only=True)
    assert saved["input_shape"] == [6, 128] and saved["model_args"]["in_channels"] == 6
    assert saved["data"]["subjects"]["train"] == sorted(train_subjects) and saved["data"]["standardisation"]
    with pytest.raises(UserError, match="federated clients keep their own data"):
        dataclasses.replace(config, pretrain_extra=(dataset,)).validate()


# --------------------------------------------------------------------------- the rate, the split, standardisation
def test_the_npz_rate_comes_from_the_file_or_the_flag_and_is_never_assumed(tmp_path):
    x = sine_windows(n=4, length=100, rate=10, hz=1.0)  # 10 s at 10 Hz, as BasicMotions
    settings = WindowSettings(target_rate_hz=50, window=128, step=64)
    from_file = load_recordings(write_npz(tmp_path / "a.npz", 10, x=x), settings)
    per_recording = load_recordings(write_npz(tmp_path / "b.npz", np.full(4, 10.0), x=x), settings)
    from_flag = load_recordings(write_npz(tmp_path / "c.npz", None, x=x),
                                dataclasses.replace(settings, sample_rate_hz=10))
    assert from_file.x.shape == (4 * 6, 4, 128) and from_file.info["source_rates_hz"] == [10.0]  # 500 samples at 50 Hz
    np.testing.assert_array_equal(from_file.x, per_recording.x)
    np.testing.assert_array_equal(from_file.x, from_flag.x)
    spectrum = np.abs(np.fft.rfft(from_file.x[0, 0]))
    assert np.fft.rfftfreq(128, 1 / 50)[spectrum.argmax()] == pytest.approx(1.0, abs=0.4)
    with pytest.raises(UserError, match="does not say its sampling rate"):
        load_recordings(f"npz:{tmp_path / 'c.npz'}", settings)
    with pytest.raises(UserError, match="says sample_rate_hz 10 but --sample_rate_hz is 50"):
        load_recordings(f"npz:{tmp_path / 'a.npz'}", dataclasses.replace(settings, sample_rate_hz=50))
    with pytest.raises(UserError, match="one positive number or 4 of them"):
        load_recordings(write_npz(tmp_path / "d.npz", np.array([10.0, -1]), x=x), settings)
    assert from_file.recording.tolist() == [i for i in range(4) for _ in range(6)]


def pretrain_own(tmp_path, dataset, *flags, name="own"):
    train_encoder.main(["--dataset", dataset, "--epochs", "1", "--encoder_width", "4", "--embedding_dim", "8",
                        "--n_variants", "1", "--output_dir", str(tmp_path / "runs"), "--experiment_name", name,
                        "--cache_dir", str(tmp_path / "cache"), "--monitor_every", "0", "--rocket_kernels", "840",
                        *flags])
    heads = "".join(flags[flags.index("--model_heads") + 1:][:4]) if "--model_heads" in flags else None
    return tmp_path / "runs" / (f"{name}_seed42_heads{heads}" if heads else f"{name}_seed42_tasksrocket")


def classify(run, dataset, out, *flags, methods=("encoder",)):
    train_classifier.main(["--dataset", dataset, "--encoder", str(run), "--methods", *methods, "--modes", "linear",
                           "--label_fractions", "1.0", "--seeds", "1", "--output_dir", str(out), *flags])
    return json.loads((out / "summary.json").read_text())


@pytest.mark.parametrize("fmt", ["npz", "csv"])
def test_the_pretraining_split_travels_with_the_encoder_and_a_leak_is_refused(tmp_path, capsys, fmt,
                                                                              example_csv, example_npz):
    dataset = f"npz:{example_npz}" if fmt == "npz" else f"csv:{example_csv}"
    run = pretrain_own(tmp_path, dataset, "--test_subjects", "1", "--val_subjects", "2")
    record = torch.load(run / "encoder.pt", weights_only=True)["data"]
    assert record["subjects"] == {"train": [3, 4, 5], "val": [2], "test": [1]} and record["dataset"] == dataset
    assert len(record["digest"]) == 64 and record["split_seed"] == 0
    # no split flags: the classifier takes the encoder's split, not a fresh draw by --split_seed 0
    summary = classify(run, dataset, tmp_path / "same")
    assert summary["info"]["subjects"] == record["subjects"] and "transductive" not in summary["info"]
    # another split puts pretrained subjects into test: refused in one line, nothing written
    with pytest.raises(SystemExit) as exit_info:
        classify(run, dataset, tmp_path / "leak", "--split_seed", "3")
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1 and "was pretrained on test subjects" in err
    assert not (tmp_path / "leak").exists()
    # a transductive study is allowed when asked for, and says so
    summary = classify(run, dataset, tmp_path / "transductive", "--test_subjects", "3", "--val_subjects", "2",
                       "--transductive", "1")
    assert summary["info"]["transductive"] == [3]
    assert (tmp_path / "transductive" / "results.md").read_text().startswith("**Transductive study**")


def test_own_channels_are_standardised_by_the_train_subjects_and_the_encoder_keeps_the_statistics(
        tmp_path, example_npz):
    dataset = f"npz:{example_npz}"
    flags = ["--dataset", dataset, "--output_dir", str(tmp_path / "runs")]
    data = HARTask(parse_config(HARPretrainConfig, flags)).own
    train = data.x[np.isin(data.subject, data.subjects["train"])]
    np.testing.assert_allclose(train.mean(axis=(0, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(train.std(axis=(0, 2)), 1, atol=1e-3)
    raw = HARTask(parse_config(HARPretrainConfig, flags + ["--standardise", "none"])).own
    assert data.standardisation is not None and raw.standardisation is None
    np.testing.assert_allclose(raw.x[:, 2].mean(), data.standardisation["mean"][2], rtol=0.2)  # gravity on z
    run = pretrain_own(tmp_path, dataset)
    saved = torch.load(run / "encoder.pt", weights_only=True)
    np.testing.assert_allclose(saved["data"]["standardisation"]["mean"], data.standardisation["mean"])
    # the classifier feeds the encoder's units even when asked for raw channels itself
    raw_task = HARTask(parse_config(HARClassifierConfig, ["--dataset", dataset, "--standardise", "none"]))
    splits = raw_task.labelled_splits(saved["data"])
    assert splits.info["standardised"]
    np.testing.assert_allclose(splits.train["x"], data.x[np.isin(data.subject, data.subjects["train"]) & (data.y >= 0)])
    # load_pretrained standardises raw windows itself
    model_args, state = saved["model_args"], saved["state_dict"]
    export_encoder(model_args, state, saved["input_shape"], "own", {"data": saved["data"]}, lambda meta: "# own\n",
                   tmp_path / "shipped")
    shipped = load_pretrained("own", tmp_path / "shipped")
    encoder = build_encoder(**model_args)
    encoder.load_state_dict(state)
    encoder.eval()
    with torch.no_grad():
        expected = encoder(torch.as_tensor(data.x[:5]))
        np.testing.assert_allclose(shipped(torch.as_tensor(raw.x[:5])).numpy(), expected.numpy(), atol=1e-5)


def test_uci_har_is_not_standardised_unless_chosen(har_cache, tmp_path):
    # the labelled windows: the channel statistics are theirs, so they come out at mean 0 (the default's whole
    # recordings are standardised with the same statistics, close to 0 but not at it)
    flags = ["--output_dir", str(tmp_path / "runs"), "--pretrain_data", "labelled"]
    default = HARTask(parse_config(HARPretrainConfig, flags)).pretrain_data()
    chosen = HARTask(parse_config(HARPretrainConfig, flags + ["--standardise", "channel"])).pretrain_data()
    assert default.record["standardisation"] is None and len(chosen.record["standardisation"]["mean"]) == 9
    np.testing.assert_allclose(chosen.x.mean(axis=(0, 2)), 0, atol=1e-4)
    assert not np.allclose(default.x.mean(axis=(0, 2)), 0, atol=1e-2)


def test_the_cache_goes_to_cache_dir_and_data_errors_leave_no_folder(tmp_path, example_csv, capsys):
    run = pretrain_own(tmp_path, f"csv:{example_csv}")  # the default recipe: its MiniRocket targets are cached
    assert (run / "encoder.pt").is_file() and [p.name.split("_")[0] for p in (tmp_path / "cache").iterdir()] == [
        "minirocket"]
    seed_four = pretrain_own(tmp_path, f"csv:{example_csv}", "--model_heads", "1", "1", "1", "1", name="four")
    assert (seed_four / "encoder.pt").is_file() and sorted(p.name.split("_")[1] for p in (tmp_path / "cache").iterdir()
                                                           if p.name.startswith("pretext")) == [
        "augmentation", "contrastive", "reconstruction"]
    bad = write_npz(tmp_path / "bad.npz", None, x=sine_windows())
    out = tmp_path / "new" / "outputs"
    for main, argv in ((train_encoder.main, ["--epochs", "1"]), (train_classifier.main, ["--encoder", str(run)])):
        with pytest.raises(SystemExit):
            main(argv + ["--dataset", bad, "--output_dir", str(out)])
        assert "does not say its sampling rate" in capsys.readouterr().err and not (tmp_path / "new").exists()


# --------------------------------------------------------------------------- results: kept probe, per recording
def test_results_say_when_fine_tuning_kept_the_probe_and_score_each_recording(tmp_path, example_npz):
    dataset = f"npz:{example_npz}"
    run = pretrain_own(tmp_path, dataset)
    out = tmp_path / "results"
    # a learning rate this small cannot move the val score: fine-tuning keeps its probe (fit on the plain
    # embedding, so it scores the linear probe's score where the probe is not normalised per subject)
    train_classifier.main(["--dataset", dataset, "--encoder", str(run), "--methods", "encoder", "expert_features",
                           "--subject_norm", "none",
                           "--label_fractions", "1.0", "--seeds", "2", "--lr", "1e-12", "--min_steps", "2",
                           "--max_steps", "2", "--eval_every", "1", "--output_dir", str(out)])
    rows = list(csv.DictReader((out / "results.csv").open()))
    kept = {(r["method"], r["mode"]): r["kept_probe"] for r in rows}
    assert kept[("encoder", "finetune")] == "True" and kept[("encoder", "linear")] == ""
    by_mode = {(r["method"], r["mode"], r["seed"]): r for r in rows}
    for seed in ("0", "1"):
        assert by_mode[("encoder", "finetune", seed)]["macro_f1"] == by_mode[("encoder", "linear", seed)]["macro_f1"]
    text = (out / "results.md").read_text()
    assert "†2/2" in text and "fine-tuning kept the linear probe" in text and "Per recording (majority vote" in text
    summary = json.loads((out / "summary.json").read_text())["summary"]
    assert all(0 <= s["recording_mean_prob_macro_f1_mean"] <= 1 for s in summary)
    # the npz holds one window per recording: per-recording scores are the per-window ones
    assert all(s["recording_vote_macro_f1_mean"] == pytest.approx(s["macro_f1_mean"]) for s in summary)


# --------------------------------------------------------------------------- extra unlabelled pretraining data
def test_extra_recordings_join_pretraining_only_and_need_the_same_channels(tmp_path, example_csv, example_npz):
    extra_csv = tmp_path / "extra_csv"
    make_example_recordings.main(["--format", "csv", "--out", str(extra_csv), "--subjects", "2", "--seed", "7"])
    base = ["--dataset", f"csv:{example_csv}", "--output_dir", str(tmp_path / "runs")]
    plain = HARTask(parse_config(HARPretrainConfig, base)).pretrain_data()
    both = HARTask(parse_config(HARPretrainConfig, base + ["--pretrain_extra", f"csv:{extra_csv}",
                                                                     f"npz:{example_npz}"])).pretrain_data()
    extra_windows = [e["windows"] for e in both.info["extra"]]
    assert len(both.x) == len(plain.x) + sum(extra_windows) and min(extra_windows) > 0
    assert both.features.shape == (len(both.x), plain.features.shape[1]) and np.isfinite(both.features).all()
    assert [e["dataset"] for e in both.record["pretrain_extra"]] == [f"csv:{extra_csv}", f"npz:{example_npz}"]
    # the npz repeats the csv's windows, the test subject's among them: the encoder is transductive
    assert both.record["transductive"]["in"] == [f"npz:{example_npz}"] and "transductive" not in plain.record
    with pytest.raises(UserError, match="--transductive 1"):
        HARTask(parse_config(HARClassifierConfig, base[:2])).labelled_splits(both.record)
    # the classifier's splits know nothing of them
    classifier_task = HARTask(parse_config(HARClassifierConfig, base[:2] + ["--transductive", "1"]))
    splits = classifier_task.labelled_splits(both.record)
    assert sum(len(s["y"]) for s in (splits.train, splits.val, splits.test)) == int((classifier_task.own.y >= 0).sum())
    three = write_npz(tmp_path / "three.npz", x=sine_windows(n=4, channels=3, length=256))
    with pytest.raises(UserError, match="the same channels are needed"):
        HARTask(parse_config(HARPretrainConfig, base + ["--pretrain_extra", three])).pretrain_data()


def test_extra_recordings_compose_with_uci_har(har_cache, tmp_path):
    nine = write_npz(tmp_path / "nine.npz", x=sine_windows(n=6, channels=9, length=256))
    flags = ["--output_dir", str(tmp_path / "runs"), "--pretrain_extra", nine]
    data = HARTask(parse_config(HARPretrainConfig, flags)).pretrain_data()
    plain = HARTask(parse_config(HARPretrainConfig, flags[:2])).pretrain_data()
    assert len(data.x) == len(plain.x) + 6 * 3 and data.features.shape[1] == 561
    with pytest.raises(UserError, match="the same channels"):
        HARTask(parse_config(HARPretrainConfig, ["--pretrain_extra", write_npz(
            tmp_path / "six.npz", x=sine_windows(n=2, channels=6, length=256))])).pretrain_data()
