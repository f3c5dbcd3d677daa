"""Image datasets as the shared pipeline wants them: float images in [0, 1] plus hand-crafted descriptors.

- digits: scikit-learn's bundled `load_digits` (1,797 real 8x8 handwritten digits, 10 classes), upscaled
  to image_size and replicated to 3 channels: a small real dataset for a quick run on a CPU without any
  download. It is a demo, not the experiment.
- STL-10 (the real experiment) is read by data_processing/stl10.py.
"""
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from data_processing.image_augmentations import image_descriptors


def descriptors(images, batch_size=512):
    """(N, F) float32 hand-crafted descriptors of (N, 3, H, W) images in [0, 1]."""
    x = torch.as_tensor(images)
    return torch.cat([image_descriptors(x[i : i + batch_size].float()) for i in range(0, len(x), batch_size)]).numpy()


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
    train, val = train_test_split(rest, test_size=val_share / (1 - test_share), stratify=labels[rest], random_state=seed)
    features = descriptors(images)
    mean, std = features[train].mean(0), features[train].std(0) + 1e-6
    features = ((features - mean) / std).astype(np.float32)
    return {name: {"x": images[idx], "y": labels[idx], "features": features[idx]}
            for name, idx in (("train", train), ("val", val), ("test", test))}
