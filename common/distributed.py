"""torchrun support: process group from the environment, rank helpers, gradient averaging."""
import os

import torch
import torch.distributed as dist


def init_distributed(device):
    """Join the process group when launched by torchrun; returns (rank, world_size)."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return 0, 1
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend)
    return dist.get_rank(), dist.get_world_size()


def is_distributed():
    return dist.is_available() and dist.is_initialized()


def average_gradients(parameters):
    """All-reduce-average the gradients of parameters DDP does not own (task weighting, manipulated grads)."""
    if not is_distributed():
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def all_reduce_mean_tensor(value):
    """The mean of a tensor over the processes of a torchrun group (every rank then takes the same step); the
    tensor itself outside one."""
    if not is_distributed():
        return value
    value = value.clone()
    dist.all_reduce(value)
    return value / dist.get_world_size()


def all_reduce_mean(values, device):
    """Average a dict of floats over ranks (epoch losses), so every rank logs and weights the same."""
    if not is_distributed():
        return values
    keys = sorted(values)
    mean = all_reduce_mean_tensor(torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device))
    return dict(zip(keys, mean.tolist()))


def cleanup_distributed():
    if is_distributed():
        dist.destroy_process_group()
