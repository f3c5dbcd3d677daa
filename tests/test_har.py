import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ground.errors import UserError
from data_processing import har
from tests.official_fixture import write_official_fixture

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def official(tmp_path, monkeypatch):
    folder, expected = write_official_fixture(tmp_path)
    monkeypatch.setattr(har, "OFFICIAL_DIR", folder)
    return folder, expected, tmp_path / "cache"


def test_official_reader_round_trips_the_official_format(official):
    folder, expected, cache = official
    for split in ("train", "test"):
        got = har.read_official_split(folder, split)
        np.testing.assert_allclose(got["x"], expected[split]["x"], rtol=1e-6)
        np.testing.assert_array_equal(got["y"], expected[split]["y"])
        np.testing.assert_array_equal(got["subject"], expected[split]["subject"])
        np.testing.assert_allclose(got["features"], expected[split]["features"], rtol=1e-6)


def test_load_har_splits_by_subject(official):
    _, expected, cache = official
    train = har.load_har("train", "official", cache_dir=cache)
    val = har.load_har("val", "official", cache_dir=cache)
    test = har.load_har("test", "official", cache_dir=cache)
    merged = har.load_har("train", "official", merge_val=True, cache_dir=cache)
    assert train.x.shape[1:] == (9, 128) and train.x.dtype == np.float32 and train.y.dtype == np.int64
    assert train.features.shape[1] == 561 and train.source == "official"
    assert set(val.subject) <= set(har.VAL_SUBJECTS) and len(val) > 0
    assert not set(train.subject) & set(har.VAL_SUBJECTS)
    assert len(train) + len(val) == len(merged) == len(expected["train"]["y"])
    assert set(test.subject) == {2, 4} and len(test) == len(expected["test"]["y"])


def test_auto_prefers_official_then_hapt(official, monkeypatch, tmp_path):
    assert har.resolve_source("auto") == "official"
    monkeypatch.setattr(har, "OFFICIAL_DIR", tmp_path / "absent")
    assert har.resolve_source("auto") == "hapt"
    with pytest.raises(UserError, match="unknown HAR source"):
        har.resolve_source("kaggle")


def test_corrupt_or_stale_cache_is_rebuilt(official, monkeypatch):
    _, _, cache = official
    har.load_har("train", "official", cache_dir=cache)
    path = har.cache_path("official", cache)
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])  # truncated
    assert har._read_cache(path) is None
    assert len(har.load_har("test", "official", cache_dir=cache)) == 12
    assert har._read_cache(path) is not None
    monkeypatch.setattr(har, "RECIPE_VERSION", har.RECIPE_VERSION + 100)
    assert har._read_cache(path) is None  # same file, newer recipe: stale


def test_truncated_official_file_is_named(official):
    folder, _, cache = official
    x_train = folder / "train" / "X_train.txt"
    x_train.write_text(x_train.read_text()[:-500])
    with pytest.raises(UserError, match="X_train.txt is truncated"):
        har.load_har("train", "official", cache_dir=cache)
    (folder / "test" / "y_test.txt").unlink()
    with pytest.raises(UserError, match="y_test.txt is missing"):
        har.read_official_split(folder, "test")


def test_unknown_split_is_rejected(official):
    with pytest.raises(UserError, match="unknown split"):
        har.load_har("validation", "official", cache_dir=official[2])


def test_lcs_length_against_dynamic_programming():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = list(rng.integers(0, 3, 30)), list(rng.integers(0, 3, 25))
        table = np.zeros((len(a) + 1, len(b) + 1), int)
        for i in range(len(a)):
            for j in range(len(b)):
                table[i + 1, j + 1] = table[i, j] + 1 if a[i] == b[j] else max(table[i, j + 1], table[i + 1, j])
        assert har.lcs_length(a, b) == table[-1, -1]


# --------------------------------------------------------------------------- the download script
def _zip_fixture(tmp_path, nested):
    folder, _ = write_official_fixture(tmp_path / "src")
    inner = tmp_path / "UCI HAR Dataset.zip"
    with zipfile.ZipFile(inner, "w") as z:
        for f in folder.rglob("*"):
            z.write(f, f.relative_to(folder.parent))
    if not nested:
        return inner, folder
    outer = tmp_path / "outer.zip"  # the UCI page's archive wraps the dataset zip in another zip
    with zipfile.ZipFile(outer, "w") as z:
        z.write(inner, inner.name)
    return outer, folder


def _run_download(tmp_path, archive, folder, **env):
    checksums = tmp_path / "fixture.sha256"
    files = ["train/y_train.txt", "test/y_test.txt", "features.txt"]
    checksums.write_text(subprocess.run(["sha256sum", *files], cwd=folder, capture_output=True, text=True,
                                        check=True).stdout)
    base = {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "UCI_HAR_URL": Path(archive).as_uri(),
            "UCI_HAR_CHECKSUMS": str(checksums),
            "MTSSL_DATA_DIR": str(tmp_path / "data"), "PYTHON": "python3"}
    return subprocess.run(["bash", str(REPO / "data" / "download_uci_har.sh")], env={**base, **env},
                          capture_output=True, text=True)


@pytest.mark.parametrize("nested", [False, True])
def test_download_script_fetches_verifies_and_extracts(tmp_path, nested):
    archive, folder = _zip_fixture(tmp_path, nested)
    sha = subprocess.run(["sha256sum", archive], capture_output=True, text=True).stdout.split()[0]
    result = _run_download(tmp_path, archive, folder, UCI_HAR_SHA256=sha)
    assert result.returncode == 0, result.stderr
    got = har.read_official_split(tmp_path / "data" / "UCI HAR Dataset", "train")
    assert got["x"].shape == (24, 9, 128)


def test_download_script_rejects_bad_checksum_and_offline(tmp_path):
    archive, folder = _zip_fixture(tmp_path, nested=False)
    bad = _run_download(tmp_path, archive, folder, UCI_HAR_SHA256="0" * 64)
    assert bad.returncode != 0 and "checksum mismatch" in bad.stderr
    assert not (tmp_path / "data" / "UCI HAR Dataset").exists()
    offline = _run_download(tmp_path, archive, folder, UCI_HAR_URL=(tmp_path / "missing.zip").as_uri())
    assert offline.returncode != 0 and "could not download" in offline.stderr


def test_download_script_rejects_files_that_are_not_the_official_ones(tmp_path):
    archive, folder = _zip_fixture(tmp_path, nested=False)
    checksums = tmp_path / "fixture.sha256"
    result = _run_download(tmp_path, archive, folder)
    assert result.returncode == 0
    # now pretend the official hashes differ: the extracted files must be refused
    wrong = tmp_path / "wrong.sha256"
    wrong.write_text(checksums.read_text().replace(checksums.read_text()[:8], "deadbeef"))
    shutil.rmtree(tmp_path / "data" / "UCI HAR Dataset")
    again = _run_download(tmp_path, archive, folder, UCI_HAR_CHECKSUMS=str(wrong))
    assert again.returncode != 0 and "do not match the official ones" in again.stderr
