"""STL-10: the binary reader on generated files in the official format, and the resumable downloader."""
import hashlib
import http.server
import io
import tarfile
import threading

import numpy as np
import pytest

from ground.errors import UserError
from data_processing.download import download
from data_processing.stl10 import fetch_stl10, read_folds, read_stl10
from tests.stl10_fixture import write_stl10


def test_reader_memory_maps_the_official_layout(tmp_path):
    folder, written = write_stl10(tmp_path)
    train = read_stl10("train", folder)
    assert train.images.shape == (20, 3, 96, 96) and train.images.dtype == np.uint8
    assert isinstance(train.images.base, np.memmap) or isinstance(train.images, np.memmap)
    np.testing.assert_array_equal(train.images, written["train"])
    np.testing.assert_array_equal(train.labels, np.arange(20) % 10)
    unlabeled = read_stl10("unlabeled", folder)
    assert unlabeled.labels is None and len(unlabeled.images) == 7
    folds = read_folds(folder)
    assert len(folds) == 10 and all(len(f) == 5 and f.max() < 20 for f in folds)


def test_reader_names_truncated_or_missing_files(tmp_path):
    folder, _ = write_stl10(tmp_path)
    data = (folder / "test_X.bin").read_bytes()
    (folder / "test_X.bin").write_bytes(data[:-100])
    with pytest.raises(UserError, match="test_X.bin is truncated"):
        read_stl10("test", folder)
    (folder / "train_y.bin").write_bytes(b"\x01\x02")
    with pytest.raises(UserError, match="train_y.bin has 2 labels for 20 images"):
        read_stl10("train", folder)
    with pytest.raises(UserError, match="unknown STL-10 split"):
        read_stl10("validation", folder)


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves one in-memory file with HTTP Range support; the first request is cut off halfway."""

    payload = b""
    cut_first = True
    requests = []

    def do_GET(self):
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].rstrip("-"))
        RangeHandler.requests.append(start)
        body = self.payload[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if RangeHandler.cut_first:
            RangeHandler.cut_first = False
            self.wfile.write(body[: len(body) // 2])  # then the connection drops
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    source = tmp_path / "source"
    write_stl10(source)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(source / "stl10_binary", arcname="stl10_binary")
    RangeHandler.payload, RangeHandler.cut_first, RangeHandler.requests = buffer.getvalue(), True, []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/stl10_binary.tar.gz"
    yield url, hashlib.md5(RangeHandler.payload).hexdigest()
    httpd.shutdown()


def test_download_resumes_verifies_and_extracts(tmp_path, server):
    url, md5 = server
    data_dir = tmp_path / "data"
    with pytest.raises(UserError, match="could not download|partial"):
        download(url, data_dir / "downloads" / "stl10_binary.tar.gz", timeout=5)
    partial = data_dir / "downloads" / "stl10_binary.tar.gz.part"
    half = partial.stat().st_size
    assert 0 < half < len(RangeHandler.payload)
    folder = fetch_stl10(data_dir, url, md5)
    assert RangeHandler.requests == [0, half]  # the second request resumed where the first stopped
    assert read_stl10("train", folder).images.shape == (20, 3, 96, 96)


def test_download_rejects_a_wrong_checksum_and_reports_offline(tmp_path, server):
    url, _ = server
    RangeHandler.cut_first = False
    with pytest.raises(UserError, match="checksum mismatch"):
        fetch_stl10(tmp_path / "data", url, "0" * 32)
    assert not (tmp_path / "data" / "downloads" / "stl10_binary.tar.gz").exists()
    with pytest.raises(UserError, match="could not download"):
        fetch_stl10(tmp_path / "offline", "http://127.0.0.1:9/stl10_binary.tar.gz", "0" * 32)


@pytest.mark.parametrize("has_filter", [True, False])
def test_extraction_refuses_members_outside_the_folder(tmp_path, monkeypatch, has_filter):
    from data_processing import stl10

    if not has_filter:  # older Pythons have no tarfile.data_filter: the same checks run by hand
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        info = tarfile.TarInfo("../outside.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    with tarfile.open(evil) as tar, pytest.raises(tarfile.TarError):
        stl10._extract_safely(tar, tmp_path / "data")
    assert not (tmp_path / "outside.txt").exists()
    good = tmp_path / "good.tar"
    with tarfile.open(good, "w") as tar:
        info = tarfile.TarInfo("stl10_binary/class_names.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"cat"))
    with tarfile.open(good) as tar:
        stl10._extract_safely(tar, tmp_path / "data")
    assert (tmp_path / "data" / "stl10_binary" / "class_names.txt").read_text() == "cat"
