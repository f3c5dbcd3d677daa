"""MiniRocket features (Dempster et al. 2021): 10,000 random dilated convolutions, pooled as the proportion of
positive values; the time-series field's strongest training-free baseline.

The reference implementation is aeon's (an optional extra: `pip install -e .[baselines]`, which `make demo`
and `make test` install). The transform is fit on the train windows without their labels (it only picks
bias quantiles from them), then applied to every split.
"""
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA

from ground.errors import UserError
from ground.io import atomic_open
from ground.paths import CACHE_DIR
from data_processing.pretext import content_digest

PCA_VERSION = 1  # bump when minirocket_pca's recipe changes: cached targets are then rebuilt


def _minirocket_class():
    try:
        from aeon.transformations.collection.convolution_based import MiniRocket
    except ImportError:
        raise UserError("the minirocket methods need aeon: pip install -e \".[baselines]\" (make demo and make test "
                        "install it)") from None
    return MiniRocket


def minirocket_features(fit_x, arrays, n_kernels=10_000, seed=0):
    """({name: (N, n_features) float32}, seconds): MiniRocket fit on fit_x (N, C, T) and applied to each array.
    n_features is n_kernels rounded down to a multiple of 84 (aeon's kernel count). The transform runs on as many
    threads as torch (OMP_NUM_THREADS): the features do not depend on it, its time halves on 2 cores."""
    start = time.time()
    transform = _minirocket_class()(n_kernels=n_kernels, random_state=seed, n_jobs=torch.get_num_threads())
    transform.fit(np.asarray(fit_x, dtype=np.float32))
    out = {name: np.asarray(transform.transform(np.asarray(x, dtype=np.float32)), dtype=np.float32)
           for name, x in arrays.items()}
    return out, time.time() - start


def minirocket_pca(x, dim, n_kernels=10_000, seed=0, cache_dir=None):
    """(N, dim) float32: MiniRocket's features of the windows x (the transform fit on x, without labels),
    projected on their first `dim` principal components (fit on x) and scaled so that the components' mean
    variance is 1 (their relative sizes kept: the leading ones matter most to an MSE). The rocket pretext
    task's targets; cached under data/cache by the windows' content and the three settings. Fewer windows than
    `dim` give fewer components: the remaining columns are 0."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise UserError(f"MiniRocket targets need sensor windows (N, channels, samples), got shape {x.shape}")
    digest = content_digest(x)
    digest.update(json.dumps({"dim": dim, "kernels": n_kernels, "seed": seed, "version": PCA_VERSION}).encode())
    path = Path(cache_dir or CACHE_DIR) / f"minirocket_pca_{digest.hexdigest()}.npy"
    if path.is_file():
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.shape == (len(x), dim) and np.isfinite(cached).all():
                return cached
        except (OSError, ValueError):
            pass  # unreadable: rebuilt below
    features = minirocket_features(x, {"x": x}, n_kernels, seed)[0]["x"]
    # a small dataset (own recordings, a federated client) has fewer components than --rocket_dim: the rest of
    # the targets are 0 (nothing left to explain), so the head and the default recipe work at any size
    available = max(1, min(dim, len(x) - 1, features.shape[1]))  # N centred windows span N - 1 directions
    if available < dim:
        print(f"rocket task: {len(x)} windows give {available} principal components of MiniRocket's features; "
              f"the other {dim - available} of --rocket_dim {dim} are 0")
    components = PCA(available, svd_solver="randomized", random_state=seed).fit_transform(features)
    components = components / np.sqrt(components.var(0).mean())
    components = np.pad(components, ((0, 0), (0, dim - available))).astype(np.float32)
    with atomic_open(path) as f:
        np.save(f, components, allow_pickle=False)
    return components
