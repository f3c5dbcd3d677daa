"""Sensor-window transformations and masks, batched in torch, driven by an explicit torch.Generator.

Random numbers are drawn on the generator's device, so the same code augments on the CPU or, batched, on
the GPU (a CUDA generator).

Every function maps x (B, C, T) with C a multiple of 3 (xyz triplets: body_acc, body_gyro, total_acc)
to a tensor of the same shape, so the precomputed cache and the on-the-fly path run the same code.
The augmentation-classification task labels each window with the index of its transformation in
`HAR_TRANSFORMS`; contrastive views compose several of them at random.
"""
import math

import torch


def identity(x, generator):
    return x.clone()


def jitter(x, generator, sigma=0.05):
    """Gaussian noise scaled by each channel's spread."""
    scale = x.std(dim=-1, keepdim=True).clamp_min(1e-3)
    return x + sigma * scale * torch.randn(x.shape, generator=generator, device=generator.device)


def scaling(x, generator, sigma=0.2):
    """One random gain per channel."""
    return x * (1 + sigma * torch.randn(x.shape[:2] + (1,), generator=generator, device=generator.device))


def random_rotation_matrices(batch, generator):
    """Uniform random 3-D rotations (B, 3, 3) from normalised quaternions."""
    q = torch.randn(batch, 4, generator=generator, device=generator.device)
    q = q / q.norm(dim=1, keepdim=True)
    w, a, b, c = q.unbind(1)
    return torch.stack([
        1 - 2 * (b * b + c * c), 2 * (a * b - c * w), 2 * (a * c + b * w),
        2 * (a * b + c * w), 1 - 2 * (a * a + c * c), 2 * (b * c - a * w),
        2 * (a * c - b * w), 2 * (b * c + a * w), 1 - 2 * (a * a + b * b),
    ], dim=1).view(batch, 3, 3)


def rotation(x, generator):
    """The same random 3-D rotation applied to every xyz triplet, as if the device were held differently."""
    b, c, t = x.shape
    r = random_rotation_matrices(b, generator)
    triplets = x.view(b, c // 3, 3, t)  # (B, sensors, xyz, T)
    return torch.einsum("bij,bsjt->bsit", r, triplets).reshape(b, c, t)


def negation(x, generator):
    return -x


def time_flip(x, generator):
    return x.flip(-1)


def permutation(x, generator, segments=4):
    """Cut the window into equal segments and shuffle their order (per window)."""
    b, c, t = x.shape
    length = t // segments
    order = torch.argsort(torch.rand(b, segments, generator=generator, device=generator.device), dim=1)  # (B, segments)
    offsets = torch.arange(length, device=x.device)
    index = (order[:, :, None] * length + offsets).reshape(b, -1)  # (B, segments * length)
    out = x.clone()
    out[..., : segments * length] = torch.gather(x, 2, index[:, None, :].expand(b, c, -1))
    return out


def time_warp(x, generator, sigma=0.2, knots=4):
    """Smoothly speed up and slow down time: resample along a random monotone warp."""
    b, c, t = x.shape
    speed = (1 + sigma * torch.randn(b, knots + 2, generator=generator, device=generator.device)).clamp_min(0.1)
    speed = torch.nn.functional.interpolate(speed[:, None], size=t, mode="linear", align_corners=True)[:, 0]
    warp = torch.cumsum(speed, dim=1)
    warp = (warp - warp[:, :1]) / (warp[:, -1:] - warp[:, :1]) * (t - 1)  # (B, T) in [0, T-1]
    left = warp.floor().long().clamp(max=t - 2)
    frac = (warp - left).unsqueeze(1)  # (B, 1, T)
    left = left.unsqueeze(1).expand(b, c, t)
    return torch.gather(x, 2, left) * (1 - frac) + torch.gather(x, 2, left + 1) * frac


def channel_shuffle(x, generator):
    """Permute the x, y, z axes (one permutation per window, the same for every sensor)."""
    b, c, t = x.shape
    perms = torch.tensor([[0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]], device=x.device)  # never the identity
    chosen = perms[torch.randint(len(perms), (b,), generator=generator, device=generator.device)]  # (B, 3)
    index = (torch.arange(c // 3, device=x.device)[None, :, None] * 3 + chosen[:, None, :]).reshape(b, c)
    return torch.gather(x, 1, index[:, :, None].expand(b, c, t))


# index = the augmentation-classification label
HAR_TRANSFORMS = {
    "identity": identity, "jitter": jitter, "scaling": scaling, "rotation": rotation, "negation": negation,
    "time_flip": time_flip, "permutation": permutation, "time_warp": time_warp, "channel_shuffle": channel_shuffle,
}
# what a contrastive view composes: each applied with probability 0.5, in this order
HAR_VIEW_TRANSFORMS = ("scaling", "rotation", "permutation", "time_warp", "jitter")


def apply_labelled_transforms(x, names, generator, transforms=HAR_TRANSFORMS):
    """One transformation per window, chosen uniformly among `names`: (augmented x, label index in names)."""
    labels = torch.randint(len(names), (x.shape[0],), generator=generator, device=generator.device)
    out = torch.empty_like(x)
    for i, name in enumerate(names):
        rows = (labels == i).nonzero(as_tuple=True)[0]
        if len(rows):
            out[rows] = transforms[name](x[rows], generator)
    return out, labels


def random_view(x, generator, names=HAR_VIEW_TRANSFORMS, transforms=HAR_TRANSFORMS, p=0.5):
    """A random composition of transformations (each applied to a random half of the windows)."""
    out = x
    for name in names:
        chosen = torch.rand(x.shape[0], generator=generator, device=generator.device) < p
        transformed = transforms[name](out, generator)
        out = torch.where(chosen[:, None, None], transformed, out)
    return out


def span_mask(shape, generator, mask_ratio=0.15, span=8):
    """(B, C, T) bool, True where masked: per channel, random spans of `span` steps covering ~mask_ratio."""
    b, c, t = shape
    n_spans = max(1, math.ceil(mask_ratio * t / span))
    starts = torch.randint(0, t - span + 1, (b, c, n_spans), generator=generator, device=generator.device)
    positions = starts[..., None] + torch.arange(span, device=starts.device)  # (B, C, n_spans, span)
    mask = torch.zeros(b, c, t, dtype=torch.bool, device=starts.device)
    mask.scatter_(2, positions.reshape(b, c, -1), True)
    return mask
