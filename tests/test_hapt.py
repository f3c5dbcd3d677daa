"""The offline rebuild of UCI HAR from the raw HAPT recordings, checked against the official files."""
import io
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score

from data_processing import hapt, har
from HAR_centralized import train_classifier

REFERENCE = Path(__file__).resolve().parent / "reference_uci_har"


@pytest.fixture(scope="module")
def rebuilt():
    arrays, source = har.load_har_arrays("hapt")  # the default cache: built here once, reused by later tests
    assert source == "hapt"
    return arrays


def _official(split):
    y = np.loadtxt(REFERENCE / f"y_{split}.txt", dtype=np.int64)
    subject = np.loadtxt(REFERENCE / f"subject_{split}.txt", dtype=np.int64)
    return y, subject


def test_window_counts_match_the_protocol(rebuilt):
    is_test = rebuilt["is_test"]
    assert (~is_test).sum() == 7415 and is_test.sum() == 2996
    assert set(np.unique(rebuilt["subject"][is_test])) == set(hapt.OFFICIAL_TEST_SUBJECTS)
    for split, mask in (("train", ~is_test), ("test", is_test)):
        official_y, _ = _official(split)
        ours, theirs = np.bincount(rebuilt["y"][mask], minlength=6), np.bincount(official_y - 1, minlength=6)
        np.testing.assert_allclose(ours[:3], theirs[:3], atol=2)  # dynamic activities: official to a window
        np.testing.assert_allclose(ours[3:], theirs[3:], rtol=0.05)  # static: HAPT relabelled transitions


def test_window_sequence_matches_official_order(rebuilt):
    for split, mask in (("train", ~rebuilt["is_test"]), ("test", rebuilt["is_test"])):
        official_y, official_subject = _official(split)
        agreement = har.sequence_agreement(rebuilt["y"][mask] + 1, rebuilt["subject"][mask], official_y,
                                           official_subject)
        assert agreement > 0.975, split


def test_signal_statistics_match_official(rebuilt):
    stats = json.loads((REFERENCE / "official_signal_fragments.json").read_text())
    official = stats["per_channel_stats_first6_channels_over_all_windows_and_samples"]
    x = rebuilt["x"][~rebuilt["is_test"]]
    mean, std = x.mean(axis=(0, 2)), x.std(axis=(0, 2))
    # body_acc: causal gravity filter gives the official means to 1e-4 and spreads to a few percent
    np.testing.assert_allclose(mean[:3], official["train_mean"][:3], atol=2e-4)
    np.testing.assert_allclose(std[:6], official["train_sd"][:6], rtol=0.03)
    # first official train window (subject 1, standing): same gravity direction, same scale of body motion
    first = np.array(stats["train_window0_first6"])  # (6 samples, 9 channels)
    np.testing.assert_allclose(rebuilt["x"][0, 6:, :6].T, first[:, 6:], atol=0.02)


def test_expert_features_classify_activities(rebuilt):
    train, test = ~rebuilt["is_test"], rebuilt["is_test"]
    clf = LogisticRegression(max_iter=2000).fit(rebuilt["features"][train], rebuilt["y"][train])
    accuracy = accuracy_score(rebuilt["y"][test], clf.predict(rebuilt["features"][test]))
    assert accuracy >= 0.93  # official features: about 0.955
    assert np.abs(rebuilt["features"][train]).max() <= 1.0 + 1e-6


def test_unpickler_refuses_code():
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    payload = pickle.dumps(Evil(), protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        hapt.SafeHaptUnpickler(io.BytesIO(payload)).load()


def test_window_starts_shift_with_label_lag():
    # a segment [100, 400): windows from 98, step 64, all ending by 398
    assert hapt.window_starts(100, 400) == [98, 162, 226]
    assert hapt.window_starts(0, 100) == []


def test_hapt12_adds_the_transitions_to_the_same_activity_windows(rebuilt):
    """HAPT's 12-class task: the UCI HAR windows of the 6 activities, plus the windows that fit inside a
    postural transition; 10,929 windows in all (7,767 train / 3,162 test), the instance count of UCI HAPT."""
    arrays, source = har.load_har_arrays("hapt", task="hapt12")
    har6 = rebuilt
    assert source == "hapt" and len(arrays["y"]) == 10929 and int(arrays["is_test"].sum()) == 3162
    assert np.bincount(arrays["y"]).tolist()[:6] == np.bincount(har6["y"]).tolist()
    assert (np.bincount(arrays["y"])[6:] >= 30).all()  # every transition has windows
    activities = arrays["y"] < 6
    assert np.array_equal(arrays["x"][activities], har6["x"])  # the activity windows are UCI HAR's, in order
    test = har.load_har("test", "hapt", task="hapt12")
    assert set(np.unique(test.subject)) == set(hapt.OFFICIAL_TEST_SUBJECTS) and test.y.max() == 11


@pytest.mark.parametrize("flags, words", [(["--task", "hapt12", "--data_source", "official"], "--data_source hapt"),
                                          (["--task", "hapt12", "--dataset", "npz:{file}"], "own recordings bring")])
def test_hapt12_needs_the_recordings(tmp_path, capsys, flags, words):
    np.savez(tmp_path / "w.npz", x=np.zeros((4, 9, 128), np.float32))
    with pytest.raises(SystemExit):
        train_classifier.main([f.format(file=tmp_path / "w.npz") for f in flags] + [
            "--output_dir", str(tmp_path), "--methods", "expert_features"])
    assert words in capsys.readouterr().err
