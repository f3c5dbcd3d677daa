"""Image transformations, patch masks and hand-crafted descriptors, batched in plain torch (GPU-ready).

Every function takes images x (B, 3, H, W) float in [0, 1] and an explicit torch.Generator, like the sensor
transforms in augmentations.py, so the same pretext machinery serves both. torchvision is not used (it does
not import beside this project's torch wheel).
"""
import math

import torch
import torch.nn.functional as F

_GRAY = torch.tensor([0.299, 0.587, 0.114])


def _rand(shape, generator, low=0.0, high=1.0):
    return low + (high - low) * torch.rand(shape, generator=generator, device=generator.device)


def grayscale(x, generator=None):
    gray = (x * _GRAY.to(x)[None, :, None, None]).sum(1, keepdim=True)
    return gray.expand_as(x).clone()


def invert(x, generator=None):
    return 1.0 - x


def rotate(x, quarter_turns):
    return torch.rot90(x, quarter_turns, dims=(2, 3))


# index = the augmentation-classification label: four rotations (Gidaris et al. 2018) plus two colour ones
IMAGE_TRANSFORMS = {
    "identity": lambda x, g: x.clone(), "rotate90": lambda x, g: rotate(x, 1), "rotate180": lambda x, g: rotate(x, 2),
    "rotate270": lambda x, g: rotate(x, 3), "grayscale": grayscale, "invert": invert,
}


def random_resized_crop(x, generator, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3)):
    """A random area share and aspect ratio per image, resampled to the input size (bilinear)."""
    b = x.shape[0]
    area = _rand(b, generator, *scale)
    log_ratio = _rand(b, generator, math.log(ratio[0]), math.log(ratio[1]))
    aspect = torch.exp(log_ratio)
    width = torch.sqrt(area * aspect).clamp(max=1.0)
    height = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = _rand(b, generator) * (1 - width) * 2 - (1 - width)  # centre in [-1 + w, 1 - w]
    cy = _rand(b, generator) * (1 - height) * 2 - (1 - height)
    theta = torch.zeros(b, 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = width, cx, height, cy
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def horizontal_flip(x, generator, p=0.5):
    chosen = torch.rand(x.shape[0], generator=generator, device=generator.device) < p
    return torch.where(chosen.to(x.device)[:, None, None, None], x.flip(3), x)


def color_jitter(x, generator, strength=0.4, p=0.8):
    """Brightness, contrast and saturation, each scaled by a factor in [1 - s, 1 + s], with probability p."""
    b = x.shape[0]
    brightness, contrast, saturation = (_rand((b, 1, 1, 1), generator, 1 - strength,
                                              1 + strength).to(x) for _ in range(3))
    out = x * brightness
    mean = grayscale(out).mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * contrast + mean
    gray = grayscale(out)
    out = ((out - gray) * saturation + gray).clamp(0, 1)
    chosen = (torch.rand(b, generator=generator, device=generator.device) < p).to(x.device)[:, None, None, None]
    return torch.where(chosen, out, x)


def random_grayscale(x, generator, p=0.2):
    draws = torch.rand(x.shape[0], generator=generator, device=generator.device)
    chosen = (draws < p).to(x.device)[:, None, None, None]
    return torch.where(chosen, grayscale(x), x)


def gaussian_blur(x, generator, p=0.5, sigma=(0.1, 2.0)):
    """Separable Gaussian blur with a random sigma per image, applied with probability p."""
    b, c, h, w = x.shape
    size = max(3, (min(h, w) // 10) | 1)  # odd kernel, about a tenth of the image as in SimCLR
    sigmas = _rand(b, generator, *sigma).to(x)
    offsets = torch.arange(size, device=x.device, dtype=x.dtype) - size // 2
    kernel = torch.exp(-(offsets[None] ** 2) / (2 * sigmas[:, None] ** 2))
    kernel = kernel / kernel.sum(1, keepdim=True)  # (B, size)
    kernel = kernel.repeat_interleave(c, 0)  # one kernel per (image, channel)
    flat = x.reshape(1, b * c, h, w)
    pad = size // 2
    flat = F.conv2d(F.pad(flat, (pad, pad, 0, 0), mode="reflect"), kernel[:, None, None, :], groups=b * c)
    flat = F.conv2d(F.pad(flat, (0, 0, pad, pad), mode="reflect"), kernel[:, None, :, None], groups=b * c)
    chosen = (torch.rand(b, generator=generator, device=generator.device) < p).to(x.device)[:, None, None, None]
    return torch.where(chosen, flat.reshape(b, c, h, w), x)


def simclr_view(x, generator):
    """A SimCLR view: random resized crop, flip, colour jitter, random grayscale, blur."""
    out = random_resized_crop(x, generator)
    out = horizontal_flip(out, generator)
    out = color_jitter(out, generator)
    out = random_grayscale(out, generator)
    return gaussian_blur(out, generator)


def patch_mask(shape, generator, mask_ratio=0.25, patch=8):
    """(B, C, H, W) bool, True where masked: a random share of the patch x patch squares, all channels."""
    b, c, h, w = shape
    grid_h, grid_w = math.ceil(h / patch), math.ceil(w / patch)
    scores = torch.rand(b, grid_h * grid_w, generator=generator, device=generator.device)
    count = max(1, round(mask_ratio * grid_h * grid_w))
    chosen = torch.zeros_like(scores, dtype=torch.bool)
    chosen.scatter_(1, scores.argsort(1)[:, :count], True)
    mask = chosen.view(b, 1, grid_h, grid_w).repeat_interleave(patch, 2).repeat_interleave(patch, 3)
    return mask[:, :, :h, :w].expand(b, c, h, w).clone()


def image_descriptors(x, colour_bins=8, orientation_bins=9, cells=2):
    """Hand-crafted descriptors of clean images: per-channel colour histograms and gradient-orientation
    histograms (magnitude-weighted, unsigned, per cell of a cells x cells grid). (B, 3, H, W) -> (B, F)."""
    b, c, h, w = x.shape
    # colour histograms as torch.histc(img[ch], colour_bins, 0, 1) counts them, for the whole batch at once
    channel_offsets = colour_bins * torch.arange(c, device=x.device)[:, None, None]
    bins = (x * colour_bins).long().clamp_(0, colour_bins - 1) + channel_offsets
    flat = bins.reshape(b, -1)
    colour = torch.zeros(b, c * colour_bins, device=x.device, dtype=x.dtype)
    colour = colour.scatter_add_(1, flat, torch.ones_like(flat, dtype=x.dtype))
    colour = colour / (h * w)
    gray = grayscale(x)[:, :1]
    gx = F.conv2d(F.pad(gray, (1, 1, 0, 0), mode="replicate"), torch.tensor([[[[-1.0, 0.0, 1.0]]]]).to(x))
    gy = F.conv2d(F.pad(gray, (0, 0, 1, 1), mode="replicate"), torch.tensor([[[[-1.0], [0.0], [1.0]]]]).to(x))
    magnitude = torch.sqrt(gx**2 + gy**2)[:, 0]
    angle = torch.remainder(torch.atan2(gy, gx)[:, 0], math.pi)  # unsigned orientation in [0, pi)
    bins = (angle / math.pi * orientation_bins).long().clamp(max=orientation_bins - 1)
    one_hot = F.one_hot(bins, orientation_bins).to(x) * magnitude[..., None]  # (B, H, W, bins)
    cell_h, cell_w = h // cells, w // cells
    hog = one_hot[:, : cell_h * cells, : cell_w * cells].reshape(b, cells, cell_h, cells, cell_w, orientation_bins)
    hog = hog.sum(dim=(2, 4)).reshape(b, -1)
    hog = hog / hog.sum(1, keepdim=True).clamp_min(1e-6)
    return torch.cat([colour, hog], dim=1)
