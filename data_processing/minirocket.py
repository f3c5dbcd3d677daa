"""MiniRocket features (Dempster et al. 2021): 10,000 random dilated convolutions, pooled as the proportion of
positive values; the time-series field's strongest training-free baseline.

The reference implementation is aeon's (an optional extra: `pip install -e .[baselines]`, which `make demo`
and `make test` install). The transform is fit on the train windows without their labels (it only picks
bias quantiles from them), then applied to every split.
"""
import time

import numpy as np
import torch

from ground.errors import UserError


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
