"""Where and how a run computes: device choice, numeric precision, seeding."""
import random
from contextlib import nullcontext

import numpy as np
import torch

from ground.errors import UserError

DEVICES = ("auto", "cuda", "mps", "cpu")
PRECISIONS = ("auto", "fp32", "bf16")


def select_device(name="auto"):
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but no CUDA device is available")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("--device mps asked for, but this machine or PyTorch build has no MPS device")
    return torch.device(name)


def resolve_precision(precision, device):
    """auto: bf16 autocast on cuda (tensor cores), fp32 elsewhere (bf16 matmuls are slow on most CPUs)."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


def autocast(precision, device):
    """A fresh context manager for one forward pass: bf16 autocast on `device`, or nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def runtime_record():
    """What a run's weights depend on beyond its config and seed: the torch build and its intra-op thread count
    (the same seed and flags give bit-identical weights at the same thread count and build, not across them:
    a reduction split over more threads sums in another order)."""
    return {"torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "torch_interop_threads": torch.get_num_interop_threads(), "numpy": np.__version__}
