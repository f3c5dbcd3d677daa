"""STL-10 in its official binary format, memory-mapped (the unlabeled split alone is 2.7 GB).

Layout of the official `stl10_binary/` folder (Coates, Lee, Ng, AISTATS 2011):
  {train,test,unlabeled}_X.bin  uint8 images, each 3 x 96 x 96 stored channel by channel, column-major
  {train,test}_y.bin            uint8 labels 1..10
  fold_indices.txt              10 lines of 1,000 0-based train indices: the official labelled folds
  class_names.txt               the 10 class names
`read_stl10` returns (N, 3, 96, 96) uint8 views in C, H, W order without loading the files.
"""
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ground.errors import UserError
from ground.paths import DATA_DIR, REPO_ROOT
from data_processing.download import download, file_md5

STL10_DIR = DATA_DIR / "stl10_binary"
IMAGE_SHAPE = (3, 96, 96)
IMAGE_BYTES = int(np.prod(IMAGE_SHAPE))
SPLITS = ("train", "test", "unlabeled")
STL10_URL = "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"  # the address the dataset's page gives
STL10_MD5 = "91f7769df0f17e558f3565bffb0c7dfb"
NUM_FOLDS = 10


@dataclass
class STL10Split:
    images: np.ndarray  # (N, 3, 96, 96) uint8, memory-mapped, C x H x W
    labels: np.ndarray | None  # (N,) int64 0..9; None for unlabeled


def _images(path):
    if not path.is_file():
        raise UserError(f"{path} is missing: run python data/download_stl10.py")
    size = path.stat().st_size
    if size == 0 or size % IMAGE_BYTES:
        raise UserError(f"{path} is truncated ({size} bytes is not a whole number of 3x96x96 images)")
    raw = np.memmap(path, dtype=np.uint8, mode="r", shape=(size // IMAGE_BYTES, 3, 96, 96))
    return raw.transpose(0, 1, 3, 2)  # column-major storage: swap to (C, H, W)


def read_stl10(split, root=None):
    root = Path(root or STL10_DIR)
    if split not in SPLITS:
        raise UserError(f"unknown STL-10 split {split!r}; choose one of {', '.join(SPLITS)}")
    images = _images(root / f"{split}_X.bin")
    if split == "unlabeled":
        return STL10Split(images, None)
    label_path = root / f"{split}_y.bin"
    if not label_path.is_file():
        raise UserError(f"{label_path} is missing: run python data/download_stl10.py")
    labels = np.fromfile(label_path, dtype=np.uint8).astype(np.int64)
    if len(labels) != len(images):
        raise UserError(f"{label_path} has {len(labels)} labels for {len(images)} images: a file is truncated")
    if labels.min() < 1 or labels.max() > 10:
        raise UserError(f"{label_path} must hold labels 1..10")
    return STL10Split(images, labels - 1)


def read_folds(root=None):
    """The 10 official training folds: a list of 10 arrays of train indices."""
    path = Path(root or STL10_DIR) / "fold_indices.txt"
    if not path.is_file():
        raise UserError(f"{path} is missing: run python data/download_stl10.py")
    folds = [np.array(line.split(), dtype=np.int64) for line in path.read_text().splitlines() if line.strip()]
    if len(folds) != NUM_FOLDS:
        raise UserError(f"{path} has {len(folds)} folds, expected {NUM_FOLDS}")
    return folds


def _extract_safely(tar, destination):
    """Extract regular files and folders only, each inside destination (tarfile's "data" filter where
    this Python has it; the same checks by hand where it does not)."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(destination, filter="data")
        return
    root = Path(destination).resolve()
    for member in tar.getmembers():
        target = (root / member.name).resolve()
        if not (member.isfile() or member.isdir()) or root not in (target, *target.parents):
            raise tarfile.TarError(f"refusing archive member {member.name!r}")
    tar.extractall(destination)


def fetch_stl10(data_dir=DATA_DIR, url=STL10_URL, md5=STL10_MD5):
    """Download (if needed), verify and extract; returns the stl10_binary folder."""
    data_dir = Path(data_dir)
    target = data_dir / "stl10_binary"
    if (target / "fold_indices.txt").is_file() and (target / "unlabeled_X.bin").is_file():
        return target
    archive = data_dir / "downloads" / "stl10_binary.tar.gz"
    if not archive.is_file():
        download(url, archive)
    if md5 and file_md5(archive) != md5:
        archive.unlink()
        raise UserError(f"checksum mismatch for {archive} (removed; run again to download it afresh)")
    try:
        with tarfile.open(archive) as tar:
            _extract_safely(tar, data_dir)
    except (tarfile.TarError, OSError) as err:
        raise UserError(f"{archive} could not be extracted ({err}); delete it and run again") from None
    if not target.is_dir():
        raise UserError(f"{archive} has no stl10_binary folder: not the STL-10 archive")
    return target


def ensure_stl10(data_dir=""):
    """The stl10_binary folder under data_dir (empty: data/ or $MTSSL_DATA_DIR; relative: to the
    repository root), downloaded and extracted on first use."""
    data_dir = Path(data_dir or DATA_DIR)
    data_dir = data_dir if data_dir.is_absolute() else REPO_ROOT / data_dir
    if not (data_dir / "stl10_binary" / "unlabeled_X.bin").is_file():
        print(f"STL-10 is not in {data_dir}: downloading it (2.6 GB; python data/download_stl10.py does the same)")
    return fetch_stl10(data_dir)
