"""Shipped pretrained encoders, loaded in one line without training and without unpickling anything.

    from common.pretrained import load_pretrained
    encoder = load_pretrained("har_mtl")  # nn.Module in eval mode: (N, 9, 128) float32 windows -> (N, 128)

Each encoder is three committed files under resources/pretrained/: <name>.safetensors (the weights),
<name>.json (model_args that rebuild the architecture, the input shape, the recipe and scores) and <name>.md
(the model card). HAR_centralized/ship_encoder.py writes them from a run of the default recipe.
"""
import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from common.encoders import build_encoder, check_encoder_args, check_encoder_state
from ground.errors import UserError
from ground.io import atomic_open, atomic_write_text
from ground.paths import REPO_ROOT

PRETRAINED_DIR = REPO_ROOT / "resources" / "pretrained"


def available(folder=PRETRAINED_DIR):
    """Names of the shipped encoders (those with both their weights and their JSON)."""
    return sorted(p.stem for p in Path(folder).glob("*.json") if p.with_suffix(".safetensors").is_file())


def is_shipped(name, folder=PRETRAINED_DIR):
    return name in available(folder)


def load_pretrained_state(name, folder=PRETRAINED_DIR):
    """(model_args, state_dict, description) of a shipped encoder; every file problem is one line."""
    folder = Path(folder)
    if not is_shipped(name, folder):
        raise UserError(f"no shipped encoder {name!r}; shipped: {', '.join(available(folder)) or 'none'}")
    weights, meta_path = folder / f"{name}.safetensors", folder / f"{name}.json"
    try:
        description = json.loads(meta_path.read_text())
        model_args = description["model_args"]
        check_encoder_args(**model_args)
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"{meta_path} is not the description of a shipped encoder ({err})") from None
    try:
        state_dict = load_file(weights)
    except (SafetensorError, OSError) as err:
        raise UserError(f"{weights} is corrupt ({str(err)[:80]}): restore it with git checkout") from None
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    if description.get("sha256") not in (None, digest):
        raise UserError(f"{weights} does not match the sha256 in {meta_path.name}: restore it with git checkout")
    return model_args, state_dict, description


class StandardisedEncoder(torch.nn.Module):
    """An encoder pretrained on per-channel standardised inputs, taking raw ones: (x - mean) / std, then the
    encoder. model_args and embedding_dim are the encoder's."""

    def __init__(self, encoder, statistics):
        super().__init__()
        self.encoder = encoder
        self.register_buffer("mean", torch.tensor(statistics["mean"], dtype=torch.float32)[None, :, None])
        self.register_buffer("std", torch.tensor(statistics["std"], dtype=torch.float32)[None, :, None])
        self.model_args, self.embedding_dim = encoder.model_args, encoder.embedding_dim

    def forward(self, x):  # (N, C, T) raw -> (N, D)
        return self.encoder((x - self.mean) / self.std)


def load_pretrained(name="har_mtl", folder=PRETRAINED_DIR, device="cpu"):
    """The shipped encoder `name` as an nn.Module in eval mode, its weights loaded strictly; one pretrained on
    standardised channels standardises its raw inputs itself (StandardisedEncoder)."""
    model_args, state_dict, description = load_pretrained_state(name, folder)
    with torch.device("meta"):  # shapes checked before anything is allocated
        check_encoder_state(build_encoder(**model_args), state_dict)
    encoder = build_encoder(**model_args)
    encoder.load_state_dict(state_dict, strict=True)
    statistics = (description.get("data") or {}).get("standardisation")
    if statistics is not None:
        try:
            encoder = StandardisedEncoder(encoder, statistics)
        except (TypeError, KeyError, ValueError, RuntimeError) as err:
            raise UserError(f"{Path(folder) / name}.json: data.standardisation is not {{mean, std}} per channel "
                            f"({err})") from None
    encoder.input_shape = tuple(description["input_shape"])
    return encoder.to(device).eval()


def export_encoder(model_args, state_dict, input_shape, name, description, make_card, folder=PRETRAINED_DIR):
    """Write <name>.safetensors, <name>.json (model_args, input shape, sha256 and `description`) and <name>.md
    (make_card(that json's dict)). Returns the weights' path."""
    folder = Path(folder)
    payload = save({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, metadata={"name": name})
    meta = {"name": name, "model_args": dict(model_args), "input_shape": list(input_shape),
            "sha256": hashlib.sha256(payload).hexdigest(), **description}
    weights = folder / f"{name}.safetensors"
    with atomic_open(weights, "wb") as f:
        f.write(payload)
    atomic_write_text(folder / f"{name}.json", json.dumps(meta, indent=2) + "\n")
    atomic_write_text(folder / f"{name}.md", make_card(meta))
    return weights
