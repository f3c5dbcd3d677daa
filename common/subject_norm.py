"""Per-subject normalisation of a representation (`--subject_norm`): each subject's windows are described
relative to that subject's own windows, which removes what is particular to a wearer (sensor placement,
gait, build) before the probe sees it.

zscore: every feature standardised by the mean and sd of the subject's windows. adabn: the encoder's BatchNorm
statistics re-estimated on each subject's windows before it embeds them (AdaBN, Li et al. 2016); the other
representations are z-scored, so every method gets the same care. Gradient-trained networks (fine-tuned or
from scratch, `--network_subject_norm adabn`) classify each val and test subject with their BatchNorm
statistics re-estimated on that subject's windows. Both use a subject's unlabelled windows,
all of them, when its windows are classified (a test subject's too): a transductive step, as a device that
has seen its wearer for a while could take.
"""
import copy

import numpy as np
import torch

from common.encoders import embed

SUBJECT_NORMS = ("none", "zscore", "adabn")
NETWORK_SUBJECT_NORMS = ("none", "adabn")  # a network's input is the window: its own BatchNorm is what adapts
# a subject's statistics from fewer windows describe the windows, not the wearer (one window z-scores to 0); own
# recordings without a subject column are one subject each
MIN_SUBJECT_WINDOWS = 10


def zscore_per_subject(values, subject):
    """(N, D) float32: values standardised within each subject (a constant feature of a subject becomes 0)."""
    values = np.asarray(values, dtype=np.float32)
    out = np.empty_like(values)
    for s in np.unique(subject):
        rows = subject == s
        mean, sd = values[rows].mean(0), values[rows].std(0)
        out[rows] = (values[rows] - mean) / np.where(sd > 0, sd, 1.0)
    return out


@torch.no_grad()
def adapted(encoder, x, device, batch_size=512):
    """A copy of the module (an encoder, a classifier network) whose BatchNorm running statistics are those of
    the windows x (their exact average over batches), its weights untouched."""
    adapted = copy.deepcopy(encoder).to(device)
    norms = [m for m in adapted.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average: every window counts the same
    adapted.train()
    for i in range(0, len(x), batch_size):
        adapted(torch.as_tensor(np.asarray(x[i:i + batch_size], dtype=np.float32), device=device))
    return adapted.eval()


def by_subject(module, x, subject, device, compute):
    """compute(module adapted to a subject's windows, those windows) -> (n, ...) array, for each subject; the
    rows back in x's order."""
    out = None
    for s in np.unique(subject):
        rows = np.flatnonzero(subject == s)
        part = np.asarray(compute(adapted(module, x[rows], device), x[rows]))
        if out is None:
            out = np.empty((len(x), *part.shape[1:]), dtype=part.dtype)
        out[rows] = part
    return out


def adabn_embeddings(encoder, x, subject, device="cpu", precision="fp32"):
    """(N, embedding_dim) float32: each subject's windows embedded by the encoder with BatchNorm statistics of
    that subject's windows. An encoder without BatchNorm embeds as it is."""
    if not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in encoder.modules()):
        return embed(encoder, x, device=device, precision=precision).numpy()
    return by_subject(encoder, x, subject, device,
                      lambda adapted_encoder, xs: embed(adapted_encoder, xs, device=device, precision=precision))
