"""The shipped encoders: one-line loading (and torch.hub), the card in sync with the default recipe, the
classifier by name, and the files' failure modes."""
import json
from pathlib import Path

import pytest
import torch

from common.config import config_to_dict
from common.encoders import build_encoder
from ground.errors import UserError
from har_task import HARTask
from common.pretrained import PRETRAINED_DIR, available, export_encoder, load_pretrained
from common.pretrain_config import with_trained_tasks
from HAR_centralized import train_classifier
from HAR_centralized.config import HARClassifierConfig, HARPretrainConfig
from HAR_centralized.ship_encoder import RUN_ONLY_FIELDS, probe_notes

REPO = Path(__file__).resolve().parents[1]


def windows(n=5, seed=0):
    return torch.randn(n, 9, 128, generator=torch.Generator().manual_seed(seed))


def test_the_shipped_encoder_loads_in_one_line_without_unpickling(monkeypatch):
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("a shipped encoder must not go through torch.load"))
    encoder = load_pretrained("har_mtl")
    assert isinstance(encoder, torch.nn.Module) and not encoder.training
    with torch.no_grad():
        embeddings = encoder(windows())
    assert embeddings.shape == (5, 128) and embeddings.dtype == torch.float32 and torch.isfinite(embeddings).all()


def test_torch_hub_loads_the_same_encoder():
    hub = torch.hub.load(str(REPO), "har_mtl", source="local")
    with torch.no_grad():
        assert torch.equal(hub(windows()), load_pretrained("har_mtl")(windows()))


def test_the_card_matches_the_default_recipe():
    """Rebuilt from its card, the shipped encoder is the default recipe's architecture; a default changed in
    HAR_centralized/config.py without shipping again fails here."""
    card = json.loads((PRETRAINED_DIR / "har_mtl.json").read_text())
    assert card["model_args"] == HARTask(HARPretrainConfig()).model().encoder.model_args
    default_tasks = HARPretrainConfig.DEFAULT_TASKS  # the tasks compared, however the flags named them
    defaults = with_trained_tasks(json.loads(json.dumps(config_to_dict(HARPretrainConfig()))), default_tasks)
    recipe = with_trained_tasks(card["recipe"], default_tasks)
    assert {k: recipe[k] for k in recipe if k != "seed"} == {
        k: defaults[k] for k in recipe if k != "seed"}, "ship again: python HAR_centralized/ship_encoder.py"
    assert set(defaults) - set(recipe) - set(RUN_ONLY_FIELDS) == set()
    assert card["input_shape"] == [9, 128] and card["pretraining_data"]["windows"] > 5000
    assert {(s["mode"], s["fraction"]) for s in card["scores"]} == {("linear", f) for f in (0.01, 0.1, 1.0)}
    # its scores were made with the probe train_classifier.py runs by default (the same rule for the probe's settings)
    probe_defaults = HARClassifierConfig()
    assert (card.get("probe"), card.get("probe_candidates"), card.get("subject_norm")) == (
        probe_defaults.probe, list(probe_defaults.probe_candidates), probe_defaults.subject_norm), \
        "ship again: python HAR_centralized/ship_encoder.py --encoder <the study's seed-42 run>"
    text = (PRETRAINED_DIR / "har_mtl.md").read_text()
    assert probe_notes(card) in text.replace("\n", " ")
    assert card["sha256"][:16] in text and f"{card['scores'][-1]['macro_f1_mean']:.3f}" in text


def test_the_classifier_takes_the_shipped_name(tmp_path):
    train_classifier.main(["--encoder", "har_mtl", "--methods", "encoder", "--modes", "linear", "--label_fractions",
                           "0.1", "--seeds", "1", "--output_dir", str(tmp_path)])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["info"]["encoder"].endswith("har_mtl.safetensors") and summary["summary"][0]["macro_f1_mean"] > 0.8


def tiny_shipped(folder):
    torch.manual_seed(0)
    encoder = build_encoder("cnn1d", in_channels=9, width=4, depth=2, embedding_dim=8)
    export_encoder(encoder.model_args, encoder.state_dict(), [9, 128], "tiny", {"note": "test"},
                   lambda meta: f"# tiny {meta['sha256']}\n", folder)
    return encoder


def test_export_then_load_gives_the_same_encoder(tmp_path):
    encoder = tiny_shipped(tmp_path)
    loaded = load_pretrained("tiny", tmp_path)
    encoder.eval()
    with torch.no_grad():
        assert torch.equal(loaded(windows()), encoder(windows()))
    assert available(tmp_path) == ["tiny"] and json.loads((tmp_path / "tiny.json").read_text())["note"] == "test"


@pytest.mark.parametrize("damage, words", [
    (lambda f: (f / "tiny.safetensors").write_bytes(b"not safetensors"), "is corrupt"),
    (lambda f: (f / "tiny.safetensors").write_bytes((f / "tiny.safetensors").read_bytes()[:-8] + b"\0" * 8),
     "does not match the sha256"),
    (lambda f: (f / "tiny.json").write_text("{"), "is not the description"),
    (lambda f: (f / "tiny.json").unlink(), "no shipped encoder 'tiny'"),
])
def test_damaged_shipped_files_are_one_line_errors(tmp_path, damage, words):
    tiny_shipped(tmp_path)
    damage(tmp_path)
    with pytest.raises(UserError, match=words):
        load_pretrained("tiny", tmp_path)
