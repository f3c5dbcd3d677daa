"""MiniRocket features (Dempster et al. 2021): 10,000 random dilated convolutions, pooled as the proportion of
positive values; the time-series field's strongest training-free baseline.

The reference implementation is aeon's (an optional extra: `pip install -e .[baselines]`, which `make demo`
and `make test` install). The transform is fit on the train windows without their labels (it only picks
bias quantiles from them), then applied to every split.
"""
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA

from ground.errors import UserError
from ground.io import atomic_open
from ground.paths import CACHE_DIR
from data_processing.augmentations import random_view
from data_processing.pretext import content_digest, generator_for

PCA_VERSION = 1  # bump when minirocket_pca's recipe changes: cached targets are then rebuilt


def new_minirocket(n_kernels, seed, n_jobs=None):
    """aeon's MiniRocket, unfit; on as many threads as torch unless n_jobs says (the features do not depend on it)."""
    # numba's OpenMP pool starts one thread per core and keeps them spinning beside torch's afterwards: with torch
    # held to fewer threads (OMP_NUM_THREADS=1 on a shared machine), training after a transform in the same
    # process ran 2-9x slower (4.4 s an epoch against 38). A pool no larger than torch's (set before numba loads)
    # leaves torch alone.
    os.environ.setdefault("NUMBA_NUM_THREADS", str(torch.get_num_threads()))
    try:
        import numba
        from aeon.transformations.collection.convolution_based import MiniRocket
    except ImportError:
        raise UserError("the minirocket methods need aeon: pip install -e \".[baselines]\" (make demo and make test "
                        "install it)") from None
    n_jobs = min(n_jobs or torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)  # the pool's size is fixed
    return MiniRocket(n_kernels=n_kernels, random_state=seed, n_jobs=n_jobs)


def _windows_and_cache_path(x, name, settings, suffix, cache_dir=None):
    """(x as float32 windows, the cache file of `name` for their content and `settings`); one line for non-windows.
    A corpus's windows (data_processing/corpus.py) stay on disk: their digest is the corpus's own."""
    if not hasattr(x, "content_digest"):
        x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise UserError(f"MiniRocket targets need sensor windows (N, channels, samples), got shape {x.shape}")
    digest = content_digest(x)
    digest.update(json.dumps(settings).encode())
    return x, Path(cache_dir or CACHE_DIR) / f"{name}_{digest.hexdigest()}.{suffix}"


def _load_cached(path, read, is_whole):
    """What read(path) gives when the file is there, readable and is_whole(it); else None (it is rebuilt)."""
    if not path.is_file():
        return None
    try:
        cached = read(path)
    except (OSError, ValueError, KeyError):
        return None
    return cached if is_whole(cached) else None


def minirocket_features(fit_x, arrays, n_kernels=10_000, seed=0):
    """({name: (N, n_features) float32}, seconds): MiniRocket fit on fit_x (N, C, T) and applied to each array.
    n_features is n_kernels rounded down to a multiple of 84 (aeon's kernel count). The transform runs on as many
    threads as torch (OMP_NUM_THREADS): the features do not depend on it, its time halves on 2 cores."""
    start = time.time()
    transform = new_minirocket(n_kernels, seed)
    transform.fit(np.asarray(fit_x, dtype=np.float32))
    out = {name: np.asarray(transform.transform(np.asarray(x, dtype=np.float32)), dtype=np.float32)
           for name, x in arrays.items()}
    return out, time.time() - start


def fit_sample(n, fit_windows, seed):
    """The sorted indexes of the windows the teacher is fit on: all n, or fit_windows of them drawn by seed."""
    if not fit_windows or n <= fit_windows:
        return np.arange(n)
    return np.sort(np.random.default_rng([seed, 0x70C]).choice(n, fit_windows, replace=False))


def minirocket_pca(x, dim, n_kernels=10_000, seed=0, cache_dir=None, fit_windows=None, chunk_size=8192):
    """(N, dim) float32, memory-mapped: MiniRocket's features of the windows x (the transform fit without labels),
    projected on their first `dim` principal components and scaled so that the components' mean variance is 1
    (their relative sizes kept: the leading ones matter most to an MSE). The rocket pretext task's targets.

    Memory stays bounded whatever N: the transform and the PCA are fit on `fit_windows` windows drawn by `seed`
    (all of them when N is no larger: then the targets are exactly the whole-set fit's), and every window's
    targets are then computed chunk by chunk into a memory-mapped file (written whole, then renamed). Peak
    memory: the sample's features (fit_windows x 10,000 float32) plus one chunk's; disk: N x dim x 4 bytes.
    Cached under data/cache by the windows' content and the settings. Fewer windows than `dim` give fewer
    components: the remaining columns are 0."""
    settings = {"dim": dim, "kernels": n_kernels, "seed": seed, "version": PCA_VERSION}
    sample = fit_sample(len(x), fit_windows, seed)
    if len(sample) < len(x):  # a whole-set fit keeps its cache name: the default's targets are unchanged
        settings["fit_windows"] = len(sample)
    x, path = _windows_and_cache_path(x, "minirocket_pca", settings, "npy", cache_dir)
    cached = _load_cached(path, lambda p: np.load(p, mmap_mode="r", allow_pickle=False),
                          lambda c: c.shape == (len(x), dim))
    if cached is not None:
        return cached
    fit_x = np.asarray(x[sample] if len(sample) < len(x) else x[:], dtype=np.float32)
    teacher = _fit_teacher(fit_x, dim, n_kernels, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(x), dim))
    if len(sample) == len(x):
        out[:] = teacher.clean
    else:
        del fit_x
        for start in range(0, len(x), chunk_size):
            out[start : start + chunk_size] = teacher.project(x[start : start + chunk_size])
    if not np.isfinite(out).all():
        tmp.unlink()
        raise UserError("MiniRocket's features of these windows hold NaN or infinite values: check the data for NaN "
                        "or infinite values")
    out.flush()
    del out
    os.replace(tmp, path)
    return np.load(path, mmap_mode="r", allow_pickle=False)


class _Teacher:
    """MiniRocket fit on windows x and the PCA of their features: project(windows) -> (N, dim) targets, scaled
    and padded like the clean windows' (`clean`)."""

    def __init__(self, x, dim, n_kernels, seed):
        self.transform = new_minirocket(n_kernels, seed)
        self.transform.fit(x)
        features = np.asarray(self.transform.transform(x), dtype=np.float32)
        # a small dataset (own recordings, a federated client) has fewer components than --rocket_dim: the rest of
        # the targets are 0 (nothing left to explain), so the head and the default recipe work at any size
        self.available = max(1, min(dim, len(x) - 1, features.shape[1]))  # N centred windows span N - 1 directions
        if self.available < dim:
            print(f"rocket task: {len(x)} windows give {self.available} principal components of MiniRocket's "
                  f"features; the other {dim - self.available} of --rocket_dim {dim} are 0")
        self.dim = dim
        # copy=False: the features are centred in place (not needed after), one N x 10,000 matrix fewer at the peak
        self.pca = PCA(self.available, svd_solver="randomized", random_state=seed, copy=False)
        components = self.pca.fit_transform(features)
        del features
        self.scale = float(np.sqrt(components.var(0).mean()))
        self.clean = self._finish(components)

    def _finish(self, components):
        return np.pad(components / self.scale, ((0, 0), (0, self.dim - self.available))).astype(np.float32)

    def project(self, windows):
        features = np.asarray(self.transform.transform(np.asarray(windows, dtype=np.float32)), dtype=np.float32)
        return self._finish(self.pca.transform(features))


def _fit_teacher(x, dim, n_kernels, seed):
    return _Teacher(np.asarray(x, dtype=np.float32), dim, n_kernels, seed)


VIEWS_VERSION = 1  # bump when minirocket_view_targets' recipe changes: cached views are then rebuilt


def minirocket_view_targets(x, view_transforms, n_views, dim, n_kernels=10_000, seed=0, cache_dir=None):
    """(views (N, n_views, C, T) float16, targets (N, n_views, dim) float32): n_views random augmented views of
    every window (the contrastive views' compositions of `view_transforms`, seeded by `seed` and the view's
    index) and MiniRocket's representation of each view, projected like minirocket_pca's targets (the
    transform and the PCA fit on the clean windows). The rocket_views task's function matching: the teacher
    answers for the very input the student sees. Cached under data/cache like minirocket_pca's targets."""
    settings = {"dim": dim, "kernels": n_kernels, "seed": seed, "views": n_views, "transforms": list(view_transforms),
                "version": [PCA_VERSION, VIEWS_VERSION]}
    x, path = _windows_and_cache_path(x, "minirocket_views", settings, "npz", cache_dir)

    def read(p):
        with np.load(p, allow_pickle=False) as cached:
            return cached["views"], cached["targets"]

    cached = _load_cached(path, read, lambda c: c[0].shape == (len(x), n_views, *x.shape[1:])
                          and c[1].shape == (len(x), n_views, dim) and np.isfinite(c[1]).all())
    if cached is not None:
        return cached
    teacher = _fit_teacher(x, dim, n_kernels, seed)
    views = np.empty((len(x), n_views, *x.shape[1:]), dtype=np.float16)
    targets = np.empty((len(x), n_views, dim), dtype=np.float32)
    for v in range(n_views):
        view = random_view(torch.from_numpy(x), generator_for("rocket_views", seed, v), view_transforms).numpy()
        views[:, v] = view
        targets[:, v] = teacher.project(view.astype(np.float16).astype(np.float32))  # what the student sees
    with atomic_open(path) as f:
        np.savez(f, views=views, targets=targets)
    return views, targets
