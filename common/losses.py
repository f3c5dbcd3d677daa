"""The pretext losses, one small module each, hyper-parameters checked at construction."""
import torch
import torch.nn.functional as F
from torch import nn


class NTXentLoss(nn.Module):
    """NT-Xent (SimCLR, Chen et al. 2020) over two views of the same batch.

    forward(z1, z2): z1, z2 (B, D) projections of view 1 and view 2. Each of the 2B projections has its
    other view as positive and the 2B - 2 others as negatives; cosine similarity / temperature.
    """

    def __init__(self, temperature=0.1):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature

    def forward(self, z1, z2):
        if z1.shape != z2.shape or z1.dim() != 2:
            raise ValueError(f"expected two (B, D) tensors of one shape, got {tuple(z1.shape)}, {tuple(z2.shape)}")
        batch = z1.shape[0]
        z = F.normalize(torch.cat([z1, z2]), dim=1)  # (2B, D)
        logits = z @ z.t() / self.temperature  # (2B, 2B)
        logits = logits.masked_fill(torch.eye(2 * batch, dtype=torch.bool, device=z.device), float("-inf"))
        positives = torch.cat([torch.arange(batch, 2 * batch), torch.arange(batch)]).to(z.device)
        return F.cross_entropy(logits, positives)


class MaskedMSELoss(nn.Module):
    """Mean squared error over the masked positions only: forward(pred, target, mask), mask True = masked."""

    def forward(self, prediction, target, mask):
        mask = mask.to(prediction.dtype)
        return ((prediction - target) ** 2 * mask).sum() / mask.sum().clamp_min(1.0)
