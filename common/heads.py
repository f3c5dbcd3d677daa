"""MLP heads built from one helper, as in moco-v3 / dino's `_build_mlp`."""
from torch import nn


def build_mlp(in_dim, hidden_dims, out_dim, batch_norm=True):
    """Linear (+BN) + ReLU per hidden layer, then a plain linear output layer."""
    layers, dim = [], in_dim
    for hidden in hidden_dims:
        layers.append(nn.Linear(dim, hidden, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm1d(hidden))
        layers.append(nn.ReLU(inplace=True))
        dim = hidden
    layers.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*layers)
