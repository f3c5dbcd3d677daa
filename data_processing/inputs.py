"""How stored inputs become model inputs, and how label subsets are drawn: shared by data and model code.

Images are stored as uint8 (a quarter of float32's bytes; STL-10's 100,000 unlabelled images stay a 2.7 GB
memory map) and scaled to [0, 1] only at the batch, after the transfer; sensor windows are float already.
"""
import dataclasses

import numpy as np
import torch


def as_float_input(x, device=None):
    """A batch of stored inputs (numpy array, memory-map slice or tensor) as float32 on `device`."""
    if isinstance(x, np.ndarray):
        # a slice of a read-only memory map is copied (torch wants writable memory); fancy indexing copies anyway
        x = torch.from_numpy(np.ascontiguousarray(x) if x.flags.writeable else np.array(x))
    if device is not None:
        x = x.to(device, non_blocking=True)
    return x.float().div_(255) if x.dtype == torch.uint8 else x.float()


def stratified_subset(y, fraction, seed):
    """Indices of a label subset: round(fraction * n_c) windows of every class c (at least one), fixed by seed."""
    if not 0 < fraction <= 1:
        raise ValueError(f"label fraction must be in (0, 1], got {fraction}")
    rng = np.random.default_rng([seed, int(round(fraction * 1e6))])
    chosen = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        count = max(1, int(round(fraction * len(members))))
        chosen.append(rng.choice(members, count, replace=False))
    return np.sort(np.concatenate(chosen))


@dataclasses.dataclass
class LabelledSplits:
    """train / val / test arrays: x (N, *S) float32 or uint8 images, y (N,) int64, features (N, F) float32.

    label_sets: named lists of predefined labelled subsets (indices into train), evaluated beside the
    stratified fractions, one subset per "seed": STL-10's official training folds.
    """

    train: dict
    val: dict
    test: dict
    info: dict
    label_sets: dict = dataclasses.field(default_factory=dict)
    augment: object = None  # (x, generator) -> x: training augmentation of labelled batches, or None
    weak_augment: object = None  # (x, generator) -> x: FixMatch's weak view (its strong view is `augment`), or None


@dataclasses.dataclass
class ProbeSet:
    """Labelled inputs that a training monitor probes the embeddings with: classifiers fit on (train_x,
    train_y) and scored on the validation subjects' (val_x, val_y). Never the test subjects."""

    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
