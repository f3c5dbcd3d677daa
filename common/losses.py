"""The pretext losses, one small module each, hyper-parameters checked at construction."""
import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
import torch.nn.functional as F
from torch import nn

from common.distributed import is_distributed


class NTXentLoss(nn.Module):
    """NT-Xent (SimCLR, Chen et al. 2020) over two views of the same batch.

    forward(z1, z2): z1, z2 (B, D) projections of view 1 and view 2. Each of the 2B projections has its
    other view as positive and the 2B - 2 others as negatives; cosine similarity / temperature.

    Under torchrun (gather_distributed) the negatives are the whole global batch's: each process's 2B
    projections are scored against all processes' 2N, gathered with gradients flowing back to their process
    (as lightly's NTXentLoss(gather_distributed=True)), so N processes learn from the negatives a single
    process with the same global batch would; with DDP's gradient averaging the step is the same too.
    """

    def __init__(self, temperature=0.1, gather_distributed=True):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature, self.gather_distributed = temperature, gather_distributed

    def forward(self, z1, z2):
        if z1.shape != z2.shape or z1.dim() != 2:
            raise ValueError(f"expected two (B, D) tensors of one shape, got {tuple(z1.shape)}, {tuple(z2.shape)}")
        batch = z1.shape[0]
        z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
        queries = torch.cat([z1, z2])  # (2B, D)
        keys, offset, total = queries, 0, batch
        if self.gather_distributed and is_distributed() and dist.get_world_size() > 1:
            # every process's views 1, then every process's views 2: (2N, D); N = B x processes (equal batches)
            keys = torch.cat([*dist_nn.all_gather(z1), *dist_nn.all_gather(z2)])
            offset, total = dist.get_rank() * batch, batch * dist.get_world_size()
        logits = queries @ keys.t() / self.temperature  # (2B, 2N)
        own = torch.arange(batch, device=z1.device) + offset  # the local rows' places among the keys
        itself = torch.zeros_like(logits, dtype=torch.bool)
        itself[torch.arange(2 * batch, device=z1.device), torch.cat([own, own + total])] = True
        logits = logits.masked_fill(itself, float("-inf"))
        return F.cross_entropy(logits, torch.cat([own + total, own]))


class MaskedMSELoss(nn.Module):
    """Mean squared error over the masked positions only: forward(pred, target, mask), mask True = masked."""

    def forward(self, prediction, target, mask):
        mask = mask.to(prediction.dtype)
        return ((prediction - target) ** 2 * mask).sum() / mask.sum().clamp_min(1.0)
