"""Image datasets as the shared pipeline wants them: images plus standardised hand-crafted descriptors.

- STL-10 (the real experiment): images stay uint8 (N, 3, 96, 96); the 100,000 unlabeled ones stay a memory
  map of the official file (data_processing/stl10.py) and are read batch by batch. Pretraining uses the
  unlabeled split; classifiers use the train split (minus a fixed validation share) and the test split.
- digits: scikit-learn's bundled `load_digits` (1,797 real 8x8 handwritten digits, 10 classes), upscaled
  to image_size and replicated to 3 channels: a small real dataset for a quick run on a CPU without any
  download. It is a demo, not the experiment.
Descriptors (colour and gradient-orientation histograms) are the `features` task's targets and the
expert-feature baseline; STL-10's are cached under data/cache, keyed by the images' content.
"""
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from ground.io import atomic_open
from ground.paths import CACHE_DIR
from data_processing.image_augmentations import image_descriptors
from data_processing.inputs import as_float_input, stratified_subset
from data_processing.pretext import content_digest
from data_processing.stl10 import read_folds, read_stl10

DESCRIPTOR_VERSION = 1  # bump when image_descriptors changes: cached descriptors are then rebuilt


def descriptors(images, batch_size=512, device=None):
    """(N, F) float32 hand-crafted descriptors of (N, 3, H, W) images, uint8 or float in [0, 1];
    computed on the GPU when there is one (STL-10's 113,000 images take ~6 min on 2 CPU cores)."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return torch.cat([image_descriptors(as_float_input(images[i : i + batch_size], device)).cpu()
                      for i in range(0, len(images), batch_size)]).numpy()


def cached_descriptors(images, cache_dir=None):
    """descriptors(images), computed once per image content and kept in cache_dir (data/cache)."""
    digest = content_digest(images)
    digest.update(f"descriptors-v{DESCRIPTOR_VERSION}".encode())
    path = (cache_dir or CACHE_DIR) / f"descriptors_{digest.hexdigest()}.npy"
    try:
        features = np.load(path)
        if features.shape[0] == len(images):
            return features
    except (OSError, ValueError):
        pass  # missing or corrupt: compute it again
    features = descriptors(images)
    with atomic_open(path) as f:  # a killed run never leaves half a file under the final name
        np.save(f, features)
    return features


def standardise(features, reference):
    mean, std = reference.mean(0), reference.std(0) + 1e-6
    return ((features - mean) / std).astype(np.float32)


def load_digits_splits(image_size=32, seed=0, val_share=0.2, test_share=0.2):
    """{"train", "val", "test"}: dicts of x (N, 3, S, S) float32, y (N,) int64, features (N, F) float32,
    stratified by class and fixed by seed; features standardised with train statistics."""
    digits = load_digits()
    images = torch.as_tensor(digits.images / 16.0, dtype=torch.float32)[:, None]  # (N, 1, 8, 8)
    images = F.interpolate(images, size=(image_size, image_size), mode="bilinear", align_corners=False)
    images = images.clamp(0, 1).expand(-1, 3, -1, -1).contiguous().numpy()
    labels = digits.target.astype(np.int64)
    index = np.arange(len(labels))
    rest, test = train_test_split(index, test_size=test_share, stratify=labels, random_state=seed)
    train, val = train_test_split(rest, test_size=val_share / (1 - test_share), stratify=labels[rest],
                                  random_state=seed)
    features = descriptors(images)
    features = standardise(features, features[train])
    return {name: {"x": images[idx], "y": labels[idx], "features": features[idx]}
            for name, idx in (("train", train), ("val", val), ("test", test))}


def load_stl10_unlabeled(root, max_images=0, seed=0):
    """Pretraining inputs: STL-10's unlabeled images (N, 3, 96, 96) uint8, memory-mapped, or a seeded
    subset of max_images held in memory; and their descriptors standardised over them."""
    images = read_stl10("unlabeled", root).images
    if 0 < max_images < len(images):
        index = np.sort(np.random.default_rng([seed, 10]).choice(len(images), max_images, replace=False))
        images = np.ascontiguousarray(images[index])
    features = cached_descriptors(images)
    return images, standardise(features, features)


def load_stl10_splits(root, val_images=500, seed=0):
    """STL-10 for classifiers: ({"train", "val", "test"} dicts of x uint8, y, features), official folds).

    val: val_images of the 5,000 train images, stratified and fixed by seed, only for early stopping;
    train: the rest. The official folds (1,000 train images each) are returned as indices into this
    train split, so each loses the images that went to validation (about a tenth with the default 500).
    """
    train, test = read_stl10("train", root), read_stl10("test", root)
    n = len(train.labels)
    val = stratified_subset(train.labels, min(1.0, val_images / n), seed) if val_images else np.zeros(0, np.int64)
    keep = np.setdiff1d(np.arange(n), val)
    train_features, test_features = cached_descriptors(train.images), cached_descriptors(test.images)
    reference = train_features[keep]
    splits = {
        "train": {"x": np.ascontiguousarray(train.images[keep]), "y": train.labels[keep],
                  "features": standardise(train_features[keep], reference)},
        "val": {"x": np.ascontiguousarray(train.images[val]), "y": train.labels[val],
                "features": standardise(train_features[val], reference)},
        "test": {"x": test.images, "y": test.labels, "features": standardise(test_features, reference)},
    }
    position = np.full(n, -1)
    position[keep] = np.arange(len(keep))
    folds = [position[fold][position[fold] >= 0] for fold in read_folds(root)]
    return splits, folds
