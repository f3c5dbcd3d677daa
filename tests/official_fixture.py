"""Writes a small "UCI HAR Dataset" folder in the official file format (layout, number format, names)."""
from pathlib import Path

import numpy as np

from data_processing.har import CHANNEL_NAMES

FEATURES_TXT = Path(__file__).resolve().parents[1] / "data_processing" / "uci_har_features.txt"


def _write_rows(path, rows):
    # the official files write each value as %16.7e-ish with leading spaces, one window per line
    path.write_text("".join(" " + " ".join(f"{v: .7e}" for v in row) + "\n" for row in rows))


def write_official_fixture(root, n_train=24, n_test=12, seed=0):
    """Create root/"UCI HAR Dataset" with n_train/n_test windows; returns (folder, arrays by split)."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "UCI HAR Dataset"
    expected = {}
    for split, n, subjects in (("train", n_train, (1, 7, 3)), ("test", n_test, (2, 4))):
        d = folder / split / "Inertial Signals"
        d.mkdir(parents=True)
        x = rng.normal(size=(n, 9, 128)).astype(np.float32)
        y = np.arange(n) % 6 + 1
        subject = np.array([subjects[i % len(subjects)] for i in range(n)])
        features = rng.uniform(-1, 1, size=(n, 561)).astype(np.float32)
        for c, name in enumerate(CHANNEL_NAMES):
            _write_rows(d / f"{name}_{split}.txt", x[:, c])
        _write_rows(folder / split / f"X_{split}.txt", features)
        (folder / split / f"y_{split}.txt").write_text("".join(f"{v}\n" for v in y))
        (folder / split / f"subject_{split}.txt").write_text("".join(f"{v}\n" for v in subject))
        expected[split] = {"x": x, "y": y - 1, "subject": subject, "features": features}
    (folder / "features.txt").write_text(FEATURES_TXT.read_text())
    (folder / "activity_labels.txt").write_text(
        "1 WALKING\n2 WALKING_UPSTAIRS\n3 WALKING_DOWNSTAIRS\n4 SITTING\n5 STANDING\n6 LAYING\n")
    return folder, expected
