"""A generated STL-10 folder in the official binary layout (tests only: no download)."""
import numpy as np


def write_stl10(root, n_train=20, n_test=10, n_unlabeled=7, seed=0, fold_size=5):
    """An stl10_binary folder in the official layout; returns the (C, H, W) arrays written."""
    rng = np.random.default_rng(seed)
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    written = {}
    for split, n in (("train", n_train), ("test", n_test), ("unlabeled", n_unlabeled)):
        images = rng.integers(0, 256, size=(n, 3, 96, 96), dtype=np.uint8)
        # the official files store each channel column-major: write (C, W, H)
        (folder / f"{split}_X.bin").write_bytes(np.ascontiguousarray(images.transpose(0, 1, 3, 2)).tobytes())
        written[split] = images
        if split != "unlabeled":
            labels = (np.arange(n) % 10 + 1).astype(np.uint8)
            (folder / f"{split}_y.bin").write_bytes(labels.tobytes())
    (folder / "fold_indices.txt").write_text("".join(" ".join(map(str, rng.permutation(n_train)[:fold_size])) + " \n"
                                                     for _ in range(10)))
    (folder / "class_names.txt").write_text("\n".join(f"class{i}" for i in range(10)) + "\n")
    return folder, written
