"""Pretext batches: every target of every task, from precomputed views or made on the fly.

Precomputed (the default, and the speed claim): before training, `PrecomputedViews` builds once per
(data, augmentation config, seed) several variants per window of the labelled-transformation input, the two
contrastive views and the reconstruction mask, stored as memory-mapped arrays under data/cache/ keyed by a
hash of what produced them. The batch producer then only indexes arrays. On the fly: the same functions,
applied to each batch. Both yield the same dict of tensors (keys in common/tasks.py).

Randomness is keyed by (seed, epoch, rank), so an epoch is the same whether or not the run was resumed.
"""
import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass

import numpy as np
import torch

from common.encoders import as_float_input
from common.paths import CACHE_DIR
from data_processing.augmentations import HAR_TRANSFORMS, HAR_VIEW_TRANSFORMS, apply_labelled_transforms, random_view, span_mask
from data_processing.image_augmentations import IMAGE_TRANSFORMS, patch_mask, simclr_view

PRETEXT_VERSION = 1


@dataclass(frozen=True)
class PretextSpec:
    """Everything that shapes the pretext inputs; its hash names the cache."""

    transforms: tuple = tuple(HAR_TRANSFORMS)  # labelled transformations, index = class
    view_transforms: tuple = HAR_VIEW_TRANSFORMS  # composed at random for contrastive views
    mask_ratio: float = 0.15
    mask_span: int = 8
    n_variants: int = 8
    seed: int = 0
    modality: str = "sensor"  # "sensor": (B, C, T) windows; "image": (B, 3, H, W) in [0, 1]

    @classmethod
    def for_images(cls, **kwargs):
        """Rotations + colour labels, SimCLR views, patch masks of mask_span pixels."""
        return cls(transforms=tuple(IMAGE_TRANSFORMS), view_transforms=("simclr",), modality="image", **kwargs)

    def generate(self, x, generator):
        """Targets for one batch of clean inputs x (float32 tensor)."""
        if self.modality == "image":
            aug_x, aug_label = apply_labelled_transforms(x, self.transforms, generator, IMAGE_TRANSFORMS)
            view1, view2 = simclr_view(x, generator), simclr_view(x, generator)
            mask = patch_mask(x.shape, generator, self.mask_ratio, self.mask_span)
        else:
            aug_x, aug_label = apply_labelled_transforms(x, self.transforms, generator)
            view1 = random_view(x, generator, self.view_transforms)
            view2 = random_view(x, generator, self.view_transforms)
            mask = span_mask(x.shape, generator, self.mask_ratio, self.mask_span)
        return {"aug_x": aug_x, "aug_label": aug_label, "view1": view1, "view2": view2, "mask": mask}


def _generator(*key, device="cpu"):
    seed = int.from_bytes(hashlib.blake2b(repr(key).encode(), digest_size=8).digest(), "little") >> 1
    return torch.Generator(device=device).manual_seed(seed)


_VIEW_ARRAYS = {"aug_x": np.float16, "aug_label": np.int8, "view1": np.float16, "view2": np.float16, "mask": np.bool_}
# images in [0, 1] are stored as uint8 (a quarter of float32's bytes), sensor windows as float16
_IMAGE_VIEWS = ("aug_x", "view1", "view2")


def _storage_dtype(name, modality):
    return np.uint8 if modality == "image" and name in _IMAGE_VIEWS else _VIEW_ARRAYS[name]


def _to_storage(value, name, modality):
    if modality == "image" and name in _IMAGE_VIEWS:
        return (value.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return value.numpy()


def _from_storage(array, name, device=None):
    value = torch.from_numpy(np.asarray(array))
    if name == "aug_label":
        return value.to(device).long()
    if name == "mask":
        return value.to(device)
    return as_float_input(value, device)


def content_digest(x, chunk_size=1024):
    """blake2b of an array's bytes, read chunk by chunk (a memory-mapped dataset is never copied whole)."""
    digest = hashlib.blake2b(digest_size=16)
    for start in range(0, len(x), chunk_size):
        digest.update(np.ascontiguousarray(x[start : start + chunk_size]).tobytes())
    return digest


class PrecomputedViews:
    """Memory-mapped arrays (n_variants, N, ...) of every window's pretext inputs, built once."""

    def __init__(self, x, spec, cache_dir=None, chunk_size=1024, verbose=False):
        self.spec = spec
        digest = content_digest(x, chunk_size)
        digest.update(json.dumps({**asdict(spec), "version": PRETEXT_VERSION}, sort_keys=True).encode())
        self.key = digest.hexdigest()
        self.path = (cache_dir or CACHE_DIR) / f"pretext_{self.key}"
        self.built_now = False
        if not self._complete(x.shape):
            self._build(x, chunk_size, verbose)
            self.built_now = True
        self.arrays = {name: np.load(self.path / f"{name}.npy", mmap_mode="r") for name in _VIEW_ARRAYS}

    def _complete(self, shape):
        meta = self.path / "meta.json"
        if not meta.is_file():
            return False
        try:
            info = json.loads(meta.read_text())
            for name in _VIEW_ARRAYS:
                array = np.load(self.path / f"{name}.npy", mmap_mode="r")
                if list(array.shape[:2]) != [self.spec.n_variants, shape[0]]:
                    return False
            return info.get("key") == self.key
        except (OSError, ValueError):
            return False

    def _build(self, x, chunk_size, verbose):
        # build in a temporary folder and rename it: a killed build never leaves a half-made cache
        tmp = self.path.with_name(self.path.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        n, v = len(x), self.spec.n_variants
        out = {}
        for name in _VIEW_ARRAYS:
            shape = (v, n) if name == "aug_label" else (v, n) + tuple(x.shape[1:])
            out[name] = np.lib.format.open_memmap(tmp / f"{name}.npy", mode="w+",
                                                  dtype=_storage_dtype(name, self.spec.modality), shape=shape)
        for variant in range(v):
            generator = _generator("precomputed", self.spec.seed, variant)
            for start in range(0, n, chunk_size):
                targets = self.spec.generate(as_float_input(x[start : start + chunk_size]), generator)
                for name, value in targets.items():
                    out[name][variant, start : start + chunk_size] = _to_storage(value, name, self.spec.modality)
            if verbose:
                print(f"  pretext views: variant {variant + 1}/{v} built")
        for array in out.values():
            array.flush()
        (tmp / "meta.json").write_text(json.dumps({"key": self.key, "spec": asdict(self.spec)}))
        shutil.rmtree(self.path, ignore_errors=True)
        os.replace(tmp, self.path)

    def nbytes(self):
        return sum(a.nbytes for a in self.arrays.values())


class PretextBatches:
    """Yields pretext batches (dicts of tensors) for one epoch at a time.

    x: clean inputs, (N, C, T) float32 windows or (N, 3, H, W) uint8 images (a memory map is fine: only
    each batch is read); features (N, F) float32. mode "precomputed" reads `views`; "on_the_fly" calls
    spec.generate per batch, on `device` (batched augmentation on the GPU when training runs there).
    Batches come out on `device`. With world_size > 1 each rank gets its own shard.
    """

    def __init__(self, x, features, batch_size, spec, mode="precomputed", views=None, rank=0, world_size=1,
                 device="cpu"):
        if mode not in ("precomputed", "on_the_fly"):
            raise ValueError(f"unknown pretext mode {mode!r}")
        if mode == "precomputed" and views is None:
            raise ValueError("precomputed mode needs PrecomputedViews")
        self.x, self.features = x, torch.as_tensor(features)
        self.batch_size, self.spec, self.mode, self.views = batch_size, spec, mode, views
        self.rank, self.world_size, self.device = rank, world_size, torch.device(device)
        per_rank = len(self.x) // world_size
        self.batches_per_epoch = max(1, per_rank // batch_size) if per_rank >= batch_size else 1
        self.samples_per_rank = per_rank

    def __len__(self):
        return self.batches_per_epoch

    def epoch(self, epoch):
        order_rng = np.random.default_rng([self.spec.seed, epoch])  # same order on every rank
        order = order_rng.permutation(len(self.x))[: self.samples_per_rank * self.world_size]
        shard = order[self.rank :: self.world_size]
        variant_rng = np.random.default_rng([self.spec.seed, epoch, self.rank, 1])
        generator = _generator("on_the_fly", self.spec.seed, epoch, self.rank, device=self.device)
        size = min(self.batch_size, len(shard))
        for b in range(self.batches_per_epoch):
            index = np.sort(shard[b * size : (b + 1) * size])  # sorted: memory-mapped reads stay local
            batch = {"x": as_float_input(self.x[index], self.device), "features": self.features[index].to(self.device)}
            if self.mode == "precomputed":
                variant = variant_rng.integers(self.spec.n_variants, size=len(index))
                for name, array in self.views.arrays.items():
                    batch[name] = _from_storage(array[variant, index], name, self.device)
            else:
                batch.update(self.spec.generate(batch["x"], generator))
            batch["masked_x"] = batch["x"].masked_fill(batch["mask"], 0.0)
            yield batch
