"""torch.hub entry points: the shipped encoders of resources/pretrained/ (weights in safetensors: nothing is
unpickled).

    encoder = torch.hub.load("path/to/this/repository", "har_mtl", source="local")
"""
from common.pretrained import load_pretrained

dependencies = ["torch", "numpy", "safetensors"]


def har_mtl(pretrained=True, device="cpu"):
    """The multi-task SSL HAR encoder of the default recipe: (N, 9, 128) float32 UCI HAR windows (50 Hz)
    -> (N, 128) embeddings, in eval mode. Model card: resources/pretrained/har_mtl.md."""
    if not pretrained:
        raise ValueError("har_mtl is a pretrained encoder; build an untrained one with common.encoders.build_encoder")
    return load_pretrained("har_mtl", device=device)
