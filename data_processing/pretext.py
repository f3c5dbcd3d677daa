"""Pretext batches: the clean inputs plus every active task's targets, precomputed or made on the fly.

The data side knows no task by name. It is handed the active tasks (common/tasks/), each of which says
how to make its targets from clean inputs (`make_targets(x, generator, spec)`), which of them the cache
keeps and in which dtype (`stored`), and which keys to derive at batch time (`complete(batch)`).

Precomputed (the default, and the speed claim): before training, `PrecomputedViews` builds once per
(data, spec, task) several variants per input of that task's targets, stored as memory-mapped arrays under
data/cache/pretext_<task>_<hash>/. A run with any subset of the tasks reuses them. The batch producer then
only indexes arrays. On the fly: the same functions, applied to each batch on the training device.

Randomness is keyed by (seed, epoch, rank, task), so an epoch is the same whether or not the run was
resumed, and a task's targets do not depend on which other tasks are active.
"""
import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ground.errors import UserError
from ground.io import atomic_write_json
from ground.paths import CACHE_DIR
from data_processing.augmentations import HAR_TRANSFORMS, HAR_VIEW_TRANSFORMS
from data_processing.image_augmentations import IMAGE_TRANSFORMS
from data_processing.inputs import as_float_input

PRETEXT_VERSION = 2  # 2: one cache folder per task, one random stream per task


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


def generator_for(*key, device="cpu"):
    """A torch.Generator seeded by a hash of `key` (any tuple of ints and strings)."""
    seed = int.from_bytes(hashlib.blake2b(repr(key).encode(), digest_size=8).digest(), "little") >> 1
    return torch.Generator(device=device).manual_seed(seed)


def _flat_key(epoch):
    """An epoch key: an int, or a tuple of ints such as (round, local epoch) for a federated client."""
    return list(epoch) if isinstance(epoch, tuple) else [epoch]


# how a stored kind is kept: inputs like the data (float16 windows; images in [0, 1] as uint8)
def _storage_dtype(kind, modality):
    if kind == "input":
        return np.uint8 if modality == "image" else np.float16
    return np.dtype(kind)


def _to_storage(value, kind, modality):
    if kind == "input" and modality == "image":
        return (value.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return value.cpu().numpy().astype(_storage_dtype(kind, modality), copy=False)


def _from_storage(array, kind, device=None):
    value = torch.from_numpy(np.asarray(array))
    if kind == "input":
        return as_float_input(value, device)
    if kind == "bool":
        return value.to(device)
    return value.to(device).long()  # integer labels


def content_digest(x, chunk_size=1024):
    """blake2b of an array's bytes, read chunk by chunk (a memory-mapped dataset is never copied whole); a corpus's
    windows (data_processing/corpus.py) bring their own, made from the shards' digests without reading them."""
    if hasattr(x, "content_digest"):
        return x.content_digest()
    digest = hashlib.blake2b(digest_size=16)
    for start in range(0, len(x), chunk_size):
        digest.update(np.ascontiguousarray(x[start : start + chunk_size]).tobytes())
    return digest


class PrecomputedViews:
    """Memory-mapped arrays (n_variants, N, ...) of the stored targets of every task, built once per task."""

    def __init__(self, x, spec, tasks, cache_dir=None, chunk_size=1024, verbose=False):
        self.spec, self.kinds, self.paths, self.folder_of = spec, {}, {}, {}
        data_digest = content_digest(x, chunk_size).hexdigest()
        self.built_now = False
        self.arrays = {}
        for task in tasks:
            if not task.stored:
                continue
            digest = hashlib.blake2b(digest_size=16)
            digest.update(json.dumps({"data": data_digest, "spec": asdict(spec), "task": task.name,
                                      "task_version": task.version, "version": PRETEXT_VERSION},
                                     sort_keys=True).encode())
            path = (cache_dir or CACHE_DIR) / f"pretext_{task.name}_{digest.hexdigest()}"
            self.paths[task.name] = path
            if not self._complete(path, task, digest.hexdigest(), len(x)):
                self._check_room(path, task, x)
                self._build(path, task, digest.hexdigest(), x, chunk_size, verbose)
                self.built_now = True
            for key, kind in task.stored.items():
                self.arrays[key] = np.load(path / f"{key}.npy", mmap_mode="r")
                self.kinds[key], self.folder_of[key] = kind, path

    def _complete(self, path, task, key, n):
        meta = path / "meta.json"
        if not meta.is_file():
            return False
        try:
            for name in task.stored:
                array = np.load(path / f"{name}.npy", mmap_mode="r")
                if list(array.shape[:2]) != [self.spec.n_variants, n]:
                    return False
            return json.loads(meta.read_text()).get("key") == key
        except (OSError, ValueError):
            return False

    def _check_room(self, path, task, x):
        """Refuse, before writing, views the disk cannot hold (n_variants x N x one input's stored targets): at
        corpus scale they outgrow the corpus itself, and --precompute 0 makes them per batch instead."""
        sample = task.make_targets(as_float_input(x[:2]), generator_for("size", task.name), self.spec)
        per_input = sum(_to_storage(v, task.stored[k], self.spec.modality).nbytes / len(v)
                        for k, v in sample.items() if k in task.stored)
        need = self.spec.n_variants * len(x) * per_input
        folder = path.parent
        folder.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(folder).free
        if need > free - 2**30:
            raise UserError(f"the {task.name} task's precomputed views of {len(x)} inputs x {self.spec.n_variants} "
                            f"variants take {need / 2**30:.1f} GiB, {folder} has {free / 2**30:.1f} GiB free: "
                            f"--precompute 0 makes them per batch (or fewer --n_variants, or another --cache_dir)")

    def _build(self, path, task, key, x, chunk_size, verbose):
        # build in a temporary folder and rename it: a killed build never leaves a half-made cache
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        n, v, modality = len(x), self.spec.n_variants, self.spec.modality
        out = {}
        for variant in range(v):
            generator = generator_for("precomputed", self.spec.seed, variant, task.name)
            for start in range(0, n, chunk_size):
                targets = task.make_targets(as_float_input(x[start : start + chunk_size]), generator, self.spec)
                for name, value in targets.items():
                    if value.is_floating_point() and not torch.isfinite(value).all():
                        raise UserError(f"the {task.name} task made NaN or infinite {name} from these inputs: "
                                        f"check the data for NaN or infinite values")
                    if name not in out:
                        out[name] = np.lib.format.open_memmap(
                            tmp / f"{name}.npy", mode="w+", dtype=_storage_dtype(task.stored[name], modality),
                            shape=(v, n) + tuple(value.shape[1:]))
                    out[name][variant, start : start + chunk_size] = _to_storage(value, task.stored[name], modality)
            if verbose:
                print(f"  pretext targets of {task.name}: variant {variant + 1}/{v} built")
        for array in out.values():
            array.flush()
        atomic_write_json(tmp / "meta.json", {"key": key, "task": task.name, "spec": asdict(self.spec)})
        shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)

    def nbytes(self):
        return sum(a.nbytes for a in self.arrays.values())


def _rows(array, index, device):
    """array[index] as a tensor on device: a numpy array's (a memory map's) rows are read, a tensor's indexed."""
    if isinstance(array, torch.Tensor):
        return array[torch.as_tensor(index)].to(device)
    return torch.from_numpy(np.ascontiguousarray(array[index])).to(device)


class PretextBatches:
    """Yields pretext batches (dicts of tensors) for one epoch at a time.

    x: clean inputs, (N, C, T) float32 windows or (N, 3, H, W) uint8 images (a memory map is fine: only
    each batch is read); features (N, F) float32; tasks: the active task classes. mode "precomputed" reads
    `views`; "on_the_fly" calls each task's make_targets per batch, on `device` (batched augmentation on the
    GPU when training runs there). Batches come out on `device`. With world_size > 1 each rank gets its
    own shard.
    """

    def __init__(self, x, features, batch_size, spec, tasks, mode="precomputed", views=None, rank=0, world_size=1,
                 device="cpu", targets=None):
        if mode not in ("precomputed", "on_the_fly"):
            raise ValueError(f"unknown pretext mode {mode!r}")
        if mode == "precomputed" and views is None:
            raise ValueError("precomputed mode needs PrecomputedViews")
        # arrays (memory maps included) are indexed batch by batch: nothing proportional to N is copied
        self.x, self.features = x, features
        self.targets = dict(targets or {})  # (N, D) per input
        self.batch_size, self.spec, self.tasks, self.mode, self.views = batch_size, spec, list(tasks), mode, views
        self.rank, self.world_size, self.device = rank, world_size, torch.device(device)
        per_rank = len(self.x) // world_size
        self.batches_per_epoch = max(1, per_rank // batch_size) if per_rank >= batch_size else 1
        self.samples_per_rank = per_rank

    def __len__(self):
        return self.batches_per_epoch

    def epoch(self, epoch):
        """The batches of one epoch; `epoch` is an int or a tuple of ints (a federated (round, local epoch))."""
        key = _flat_key(epoch)
        order_rng = np.random.default_rng([self.spec.seed, *key])  # same order on every rank
        order = order_rng.permutation(len(self.x))[: self.samples_per_rank * self.world_size]
        shard = order[self.rank :: self.world_size]
        variant_rng = np.random.default_rng([self.spec.seed, *key, self.rank, 1])
        generators = {task.name: generator_for("on_the_fly", self.spec.seed, *key, self.rank, task.name,
                                               device=self.device) for task in self.tasks}
        size = min(self.batch_size, len(shard))
        for b in range(self.batches_per_epoch):
            index = np.sort(shard[b * size : (b + 1) * size])  # sorted: memory-mapped reads stay local
            batch = {"x": as_float_input(self.x[index], self.device),
                     **{key: _rows(array, index, self.device) for key, array in self.targets.items()}}
            if any(task.reads_features for task in self.tasks):
                batch["features"] = _rows(self.features, index, self.device)
            if self.mode == "precomputed":
                variant = variant_rng.integers(self.spec.n_variants, size=len(index))
                for name, array in self.views.arrays.items():
                    batch[name] = _from_storage(array[variant, index], self.views.kinds[name], self.device)
                    if batch[name].is_floating_point() and not torch.isfinite(batch[name]).all():
                        raise UserError(f"the pretext cache {self.views.folder_of[name]} holds NaN or infinite "
                                        f"values ({name}): delete that folder and it is rebuilt on the next run")
            else:
                for task in self.tasks:
                    batch.update(task.make_targets(batch["x"], generators[task.name], self.spec))
            for task in self.tasks:
                task.complete(batch)
            yield batch


@dataclass
class PretrainData:
    """What pretraining needs from a dataset: clean inputs, expert features, how to make pretext inputs."""

    x: np.ndarray  # (N, *input_shape): float32 windows, or uint8 images (a memory map is read batch by batch)
    features: np.ndarray  # (N, F) float32
    spec: PretextSpec
    info: dict  # recorded in the run's summary (source, split, ...)
    probe: object = None  # a ProbeSet for the training monitor (--monitor_every), or None
    record: dict = None  # what the encoder keeps of its data (split, standardisation, ...); the classifier reads it
    cache_dir: object = None  # where the precomputed views go (--cache_dir); None: data/cache
    given_targets: dict = None  # dataset-wide targets made elsewhere (a federated client's rocket targets, from
    # the federation's shared MiniRocket transform): used instead of the tasks' own

    def dataset_targets(self, tasks, config):
        """{key: array}: the tasks' targets made once from the whole set (the rocket task's MiniRocket PCA)."""
        given = self.given_targets or {}
        targets = {}
        for task in tasks:
            keys = task.dataset_target_keys
            targets.update({k: given[k] for k in keys} if keys and set(keys) <= set(given)
                           else task.dataset_targets(self, config))
        return targets

    def batches(self, tasks, batch_size, precompute=True, rank=0, world_size=1, device="cpu", verbose=False,
                config=None):
        """PretextBatches on `device`, reading (building once) the precomputed views when `precompute`,
        else making each batch's targets on `device`; with the tasks' dataset-wide targets (`dataset_targets`,
        from the run's `config`)."""
        def build(verbose=False):
            targets = self.dataset_targets(tasks, config)
            views = PrecomputedViews(self.x, self.spec, tasks, self.cache_dir, verbose=verbose) if precompute else None
            return targets, views

        if rank == 0:
            targets, views = build(verbose)
        if world_size > 1:
            torch.distributed.barrier()  # rank 0 builds the caches, the others then open them
        if rank != 0:
            targets, views = build()
        mode = "precomputed" if precompute else "on_the_fly"
        return PretextBatches(self.x, self.features, batch_size, self.spec, tasks, mode, views, rank, world_size,
                              device, targets)
