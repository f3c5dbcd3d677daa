"""The image experiment on the bundled digits: data, both entrypoints end to end on a tiny config."""
import json

import numpy as np
import pytest
import torch

from data_processing.images import load_digits_splits
from data_processing.pretext import PrecomputedViews, PretextBatches, PretextSpec
from IR_centralized import train_classifier, train_encoder


def test_digits_splits_are_stratified_images_with_descriptors():
    splits = load_digits_splits(image_size=16, seed=0)
    sizes = {k: len(v["y"]) for k, v in splits.items()}
    assert sum(sizes.values()) == 1797 and sizes["test"] == 360
    x = splits["train"]["x"]
    assert x.shape[1:] == (3, 16, 16) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert all(len(np.unique(s["y"])) == 10 for s in splits.values())
    assert splits["train"]["features"].shape[1] == 60
    again = load_digits_splits(image_size=16, seed=0)
    np.testing.assert_array_equal(again["val"]["y"], splits["val"]["y"])


def test_image_views_are_stored_as_uint8_and_read_back(tmp_path):
    x = load_digits_splits(image_size=16)["train"]["x"][:40]
    spec = PretextSpec.for_images(n_variants=1, mask_span=4)
    views = PrecomputedViews(x, spec, cache_dir=tmp_path)
    assert views.arrays["view1"].dtype == np.uint8
    batch = next(PretextBatches(x, np.zeros((40, 3), np.float32), 8, spec, "precomputed", views).epoch(0))
    assert batch["view1"].dtype == torch.float32 and 0 <= batch["view1"].min() and batch["view1"].max() <= 1
    assert batch["aug_label"].max() < len(spec.transforms) and batch["mask"].shape == batch["x"].shape


def test_both_entrypoints_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setattr("data_processing.pretext.CACHE_DIR", tmp_path / "cache")
    flags = ["--image_size", "16", "--encoder_width", "4", "--encoder_depth", "2", "--embedding_dim", "16",
             "--epochs", "1", "--n_variants", "1", "--mask_span", "4", "--output_dir", str(tmp_path),
             "--experiment_name", "tiny", "--device", "cpu"]
    train_encoder.main(flags)
    run = tmp_path / "tiny_seed42_heads1111"
    assert json.loads((run / "summary.json").read_text())["data_source"] == "digits"
    train_classifier.main(["--encoder", str(run), "--image_size", "16", "--label_fractions", "0.1", "1.0",
                           "--seeds", "1", "--min_steps", "20", "--max_steps", "40", "--eval_every", "10",
                           "--device", "cpu"])
    rows = json.loads((run / "classifier" / "summary.json").read_text())["summary"]
    assert {(r["method"], r["mode"]) for r in rows} == {("encoder", "linear"), ("encoder", "finetune"),
                                                        ("supervised", "finetune"), ("expert_features", "linear")}
    linear = next(r for r in rows if r["method"] == "encoder" and r["mode"] == "linear" and r["fraction"] == 1.0)
    assert linear["accuracy_mean"] > 0.5  # even one epoch of a tiny encoder separates most digits


def test_bad_image_flags(capsys):
    with pytest.raises(SystemExit):
        train_encoder.main(["--mask_span", "64", "--image_size", "32"])
    assert "mask_span" in capsys.readouterr().err
