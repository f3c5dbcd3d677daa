"""Encoders map an input window or image to a fixed-size embedding; a factory builds them by name.

The architecture travels as `model_args` ({"name": ..., **kwargs}) in every saved encoder, so evaluation
rebuilds it with `build_encoder(**model_args)` without guessing.
"""
import inspect

import torch
from torch import nn

from common.runtime import autocast
from data_processing.inputs import as_float_input

ENCODERS = {}


def register_encoder(name):
    def decorate(cls):
        ENCODERS[name] = cls
        return cls

    return decorate


def check_encoder_args(name, **kwargs):
    """ValueError naming what is wrong with an encoder's arguments, before anything is built: its name,
    unknown arguments, integers outside the class's LIMITS (a corrupt model_args must not allocate 40 TB)."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; known: {', '.join(sorted(ENCODERS))}")
    cls = ENCODERS[name]
    known = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = set(kwargs) - known
    if unknown:
        raise ValueError(f"encoder {name} takes no argument(s) {', '.join(sorted(unknown))}")
    for key, (low, high) in cls.LIMITS.items():
        if key in kwargs and not (type(kwargs[key]) is int and low <= kwargs[key] <= high):
            raise ValueError(f"encoder {name}: {key} must be an integer in {low}..{high}, got {kwargs[key]!r}")


def build_encoder(name, **kwargs):
    check_encoder_args(name, **kwargs)
    encoder = ENCODERS[name](**kwargs)
    encoder.model_args = {"name": name, **kwargs}
    return encoder


@register_encoder("cnn1d")
class Conv1DEncoder(nn.Module):
    """1D-CNN for sensor windows: (B, C, T) -> (B, embedding_dim).

    `depth` conv blocks (conv, batch norm, ReLU), channels doubling from `width` every block after the first,
    stride 2 from the second block on; global average pooling; a linear projection to the embedding.
    """

    LIMITS = {"in_channels": (1, 1024), "width": (1, 4096), "depth": (1, 16), "embedding_dim": (1, 65536),
              "kernel_size": (1, 63)}

    def __init__(self, in_channels=9, width=64, depth=3, embedding_dim=128, kernel_size=5):
        super().__init__()
        blocks, channels = [], in_channels
        for i in range(depth):
            out = width * 2 ** min(i, 2)
            blocks += [
                nn.Conv1d(channels, out, kernel_size, stride=1 if i == 0 else 2, padding=kernel_size // 2, bias=False),
                nn.BatchNorm1d(out),
                nn.ReLU(inplace=True),
            ]
            channels = out
        self.features = nn.Sequential(*blocks)
        self.projection = nn.Linear(channels, embedding_dim)
        self.embedding_dim = embedding_dim

    def forward(self, x):
        h = self.features(x)  # (B, C', T')
        return self.projection(h.mean(dim=-1))  # (B, embedding_dim)


@register_encoder("dilated1d")
class DilatedConv1DEncoder(nn.Module):
    """Multi-scale dilated convolutions: (B, C, T) -> (B, embedding_dim).

    `depth` blocks (conv of kernel_size with dilation 1, 2, 4, ..., batch norm, ReLU; a residual connection
    from the second block on), `width` channels throughout and stride 1, so block i sees the whole window at
    a scale of about (kernel_size - 1) * 2^i samples (4 blocks of kernel 7: 1.8 s at 50 Hz). The embedding
    projects every block's global average pool, concatenated: MiniRocket's two ideas (every dilation, pooled)
    in a trainable encoder of about the default CNN's cost (width 32, depth 4: 1.4x its multiply-adds).
    """

    LIMITS = {"in_channels": (1, 1024), "width": (1, 4096), "depth": (1, 12), "embedding_dim": (1, 65536),
              "kernel_size": (1, 63)}

    def __init__(self, in_channels=9, width=32, depth=4, embedding_dim=128, kernel_size=7):
        super().__init__()
        self.blocks = nn.ModuleList()
        channels = in_channels
        for i in range(depth):
            dilation = 2**i
            self.blocks.append(nn.Sequential(
                nn.Conv1d(channels, width, kernel_size, dilation=dilation, padding=kernel_size // 2 * dilation,
                          bias=False),
                nn.BatchNorm1d(width), nn.ReLU(inplace=True)))
            channels = width
        self.projection = nn.Linear(width * depth, embedding_dim)
        self.embedding_dim = embedding_dim

    def forward(self, x):
        pools, h = [], x
        for i, block in enumerate(self.blocks):
            h = block(h) + h if i > 0 else block(h)
            pools.append(h.mean(dim=-1))
        return self.projection(torch.cat(pools, dim=1))


class ResidualBlock1D(nn.Module):
    """Three convolutions with batch norm (kernels 7, 5, 3: the paper's 8, 5, 3 made odd so that padding keeps
    the length symmetrically), and a 1x1-convolution shortcut."""

    def __init__(self, in_channels, out_channels, kernels=(7, 5, 3)):
        super().__init__()
        layers, channels = [], in_channels
        for i, k in enumerate(kernels):
            layers += [nn.Conv1d(channels, out_channels, k, padding=k // 2, bias=False), nn.BatchNorm1d(out_channels)]
            if i < len(kernels) - 1:
                layers.append(nn.ReLU(inplace=True))
            channels = out_channels
        self.body = nn.Sequential(*layers)
        self.shortcut = nn.Sequential(nn.Conv1d(in_channels, out_channels, 1, bias=False), nn.BatchNorm1d(out_channels))

    def forward(self, x):
        return torch.relu(self.body(x) + self.shortcut(x))


@register_encoder("resnet1d")
class ResNet1DEncoder(nn.Module):
    """The time-series ResNet of Wang et al. (2017): (B, C, T) -> (B, embedding_dim).

    Three residual blocks of `width`, 2 * width, 2 * width channels (64 / 128 / 128 in the paper), no
    striding, global average pooling, a linear projection. The strongest of the nine deep classifiers in
    Ismail Fawaz et al.'s benchmark (2019, 85 UCR + 12 multivariate data sets), on a par with InceptionTime
    at a fraction of its cost: the supervised model a time-series researcher trusts.
    """

    LIMITS = {"in_channels": (1, 1024), "width": (1, 1024), "embedding_dim": (1, 65536)}

    def __init__(self, in_channels=9, width=64, embedding_dim=128):
        super().__init__()
        self.blocks = nn.Sequential(ResidualBlock1D(in_channels, width), ResidualBlock1D(width, 2 * width),
                                    ResidualBlock1D(2 * width, 2 * width))
        self.projection = nn.Linear(2 * width, embedding_dim)
        self.embedding_dim = embedding_dim

    def forward(self, x):
        return self.projection(self.blocks(x).mean(dim=-1))


def count_parameters(module):
    return sum(p.numel() for p in module.parameters())


def check_encoder_state(encoder, state_dict):
    """ValueError naming the first keys where `state_dict` does not fit `encoder` (names and shapes)."""
    own = encoder.state_dict()
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError("the saved state_dict is not a dict of tensors")
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    wrong_shape = [k for k in own if k in state_dict and own[k].shape != state_dict[k].shape]
    if missing or unexpected or wrong_shape:
        detail = "; ".join(f"{what}: {', '.join(keys[:3])}" for what, keys in
                           (("missing", missing), ("unexpected", unexpected), ("shape differs", wrong_shape)) if keys)
        raise ValueError(f"encoder weights do not fit this architecture ({detail})")


def load_encoder_state(encoder, state_dict):
    """Load strictly; a mismatch names the first differing keys instead of torch's wall of text."""
    check_encoder_state(encoder, state_dict)
    encoder.load_state_dict(state_dict, strict=True)
    return encoder


@torch.no_grad()
def embed(encoder, x, batch_size=1024, device="cpu", precision="fp32"):
    """Embeddings (float32, on the CPU) of a numpy array (a memory map is read batch by batch) or tensor,
    in eval mode."""
    encoder.eval()
    device = torch.device(device)
    with autocast(precision, device):
        return torch.cat([encoder(as_float_input(x[i : i + batch_size], device)).float().cpu()
                          for i in range(0, len(x), batch_size)])


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs with batch norm, identity or 1x1 projection shortcut."""

    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


@register_encoder("resnet18")
class ResNet18Encoder(nn.Module):
    """ResNet-18 for 96x96 images (STL-10): (B, 3, H, W) -> (B, embedding_dim).

    A 3x3 stride-1 stem with a 2x2 max-pool instead of ImageNet's 7x7 stride-2 stem and 3x3 pool (96-pixel
    inputs keep more resolution); `depth` stages of two basic blocks, channels width, 2w, 4w, 8w (width 64 is
    the standard ResNet-18; a small width runs on CPU); global average pooling; a linear projection.
    """

    LIMITS = {"in_channels": (1, 64), "width": (1, 1024), "depth": (1, 4), "embedding_dim": (1, 65536)}

    def __init__(self, in_channels=3, width=64, depth=4, embedding_dim=128):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(2))
        stages, channels = [], width
        for i in range(depth):
            out = width * 2**i
            stages += [BasicBlock(channels, out, 1 if i == 0 else 2), BasicBlock(out, out, 1)]
            channels = out
        self.stages = nn.Sequential(*stages)
        self.projection = nn.Linear(channels, embedding_dim)
        self.embedding_dim = embedding_dim

    def forward(self, x):
        h = self.stages(self.stem(x))  # (B, C', H', W')
        return self.projection(h.mean(dim=(2, 3)))  # (B, embedding_dim)
