"""The image experiments: STL-10 (generated files in the official format) and the bundled digits, the
presets, and both entrypoints end to end on tiny configs."""
import json
import urllib.error

import numpy as np
import pytest
import torch

from common.config import parse_config
from data_processing.inputs import as_float_input
from data_processing import images as image_data
from data_processing.images import cached_descriptors, load_digits_splits, load_stl10_splits, load_stl10_unlabeled
from common.model import build_model
from common.tasks import THESIS_TASKS, TASKS
from data_processing.pretext import PrecomputedViews, PretextBatches, PretextSpec, generator_for
from data_processing.stl10 import read_stl10
from IR_centralized import train_classifier, train_encoder
from IR_centralized.config import IRClassifierConfig, IRPretrainConfig
from tests.stl10_fixture import write_stl10

ALL_TASKS = [TASKS[name] for name in THESIS_TASKS]

TINY = ["--encoder_width", "4", "--encoder_depth", "1", "--embedding_dim", "16", "--epochs", "1", "--device", "cpu"]


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
    views = PrecomputedViews(x, spec, ALL_TASKS, cache_dir=tmp_path)
    assert views.arrays["view1"].dtype == np.uint8
    batch = next(PretextBatches(x, np.zeros((40, 3), np.float32), 8, spec, ALL_TASKS, "precomputed", views).epoch(0))
    assert batch["view1"].dtype == torch.float32 and 0 <= batch["view1"].min() and batch["view1"].max() <= 1
    assert batch["aug_label"].max() < len(spec.transforms) and batch["mask"].shape == batch["x"].shape


def test_both_entrypoints_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setattr("data_processing.pretext.CACHE_DIR", tmp_path / "cache")
    flags = ["--preset", "cpu_smoke", "--image_size", "16", "--encoder_width", "4", "--encoder_depth", "2",
             "--embedding_dim", "16", "--epochs", "1", "--n_variants", "1", "--mask_span", "4",
             "--output_dir", str(tmp_path), "--experiment_name", "tiny", "--device", "cpu"]
    train_encoder.main(flags)
    run = tmp_path / "tiny_seed42_heads1111"
    assert json.loads((run / "summary.json").read_text())["data_source"] == "digits"
    train_classifier.main(["--preset", "cpu_smoke", "--encoder", str(run), "--image_size", "16", "--label_fractions",
                           "0.1", "1.0",
                           "--seeds", "1", "--min_steps", "20", "--max_steps", "40", "--eval_every", "10",
                           "--device", "cpu"])
    rows = json.loads((run / "classifier" / "summary.json").read_text())["summary"]
    assert {(r["method"], r["mode"]) for r in rows} == {("encoder", "linear"), ("encoder", "finetune"),
                                                        ("supervised", "finetune"), ("expert_features", "linear")}
    linear = next(r for r in rows if r["method"] == "encoder" and r["mode"] == "linear" and r["fraction"] == 1.0)
    assert linear["accuracy_mean"] > 0.5  # even one epoch of a tiny encoder separates most digits


@pytest.mark.parametrize("args, message", [
    (["--preset", "cpu_smoke", "--mask_span", "64", "--image_size", "32"], "mask_span"),
    (["--image_size", "64"], "STL-10 images are 96x96"),
    (["--preset", "gpu_huge"], "invalid choice"),
    (["--max_images", "-1"], "--max_images"),
])
def test_bad_image_flags(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_encoder.main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_defaults_are_the_stl10_experiment_and_cpu_smoke_is_a_preset():
    default = parse_config(IRPretrainConfig, [])
    assert (default.dataset, default.image_size, default.encoder_width, default.encoder_depth) == ("stl10", 96, 64, 4)
    assert default.precompute == 0  # SimCLR views are made per batch on the training device
    smoke = parse_config(IRPretrainConfig, ["--preset", "cpu_smoke", "--epochs", "3"])
    assert (smoke.dataset, smoke.image_size, smoke.encoder_width, smoke.precompute) == ("digits", 32, 16, 1)
    assert smoke.epochs == 3  # an explicit flag wins over the preset
    classifier = parse_config(IRClassifierConfig, ["--preset", "cpu_smoke"])
    assert classifier.dataset == "digits" and classifier.folds == 0 and classifier.label_fractions[0] == 0.02


@pytest.fixture
def stl10_dir(tmp_path, monkeypatch):
    monkeypatch.setattr("data_processing.pretext.CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(image_data, "CACHE_DIR", tmp_path / "cache")
    folder, written = write_stl10(tmp_path / "data", n_train=60, n_test=30, n_unlabeled=48, fold_size=20)
    return folder, written


def test_stl10_splits_hold_out_stratified_validation_and_remap_the_folds(stl10_dir):
    folder, written = stl10_dir
    splits, folds = load_stl10_splits(folder, val_images=10, seed=0)
    assert len(splits["val"]["y"]) == 10 and sorted(splits["val"]["y"]) == list(range(10))
    assert len(splits["train"]["y"]) == 50 and splits["train"]["x"].dtype == np.uint8
    assert len(splits["test"]["y"]) == 30 and splits["train"]["features"].shape == (50, 60)
    official = [np.array(line.split(), dtype=int) for line in (folder / "fold_indices.txt").read_text().splitlines()]
    for fold, original in zip(folds, official):
        # each fold is the official one minus the validation images, pointing at the same pixels
        kept = [i for i in original if not any((written["train"][i] == v).all() for v in splits["val"]["x"])]
        assert len(fold) == len(kept)
        np.testing.assert_array_equal(np.sort(splits["train"]["x"][fold].reshape(len(fold), -1), axis=0),
                                      np.sort(written["train"][kept].reshape(len(kept), -1), axis=0))
    again, _ = load_stl10_splits(folder, val_images=10, seed=0)
    np.testing.assert_array_equal(again["val"]["y"], splits["val"]["y"])


def test_stl10_unlabeled_stays_a_memory_map_and_descriptors_are_cached(stl10_dir, tmp_path):
    folder, written = stl10_dir
    images, features = load_stl10_unlabeled(folder)
    assert isinstance(images.base, np.memmap) and images.dtype == np.uint8
    assert features.shape == (48, 60) and abs(features.mean()) < 1e-4
    cached = list((tmp_path / "cache").glob("descriptors_*.npy"))
    assert len(cached) == 1
    np.save(cached[0], np.zeros((3, 60), np.float32))  # a stale or foreign file is recomputed, not trusted
    np.testing.assert_allclose(cached_descriptors(images), image_data.descriptors(written["unlabeled"]), atol=1e-6)
    subset, _ = load_stl10_unlabeled(folder, max_images=10, seed=1)
    assert subset.shape == (10, 3, 96, 96) and not isinstance(subset.base, np.memmap)


def test_uint8_images_give_the_same_views_from_cache_and_on_the_fly(stl10_dir, tmp_path):
    folder, _ = stl10_dir
    x = read_stl10("unlabeled", folder).images[:16]  # a transposed view of the memory map
    spec = PretextSpec.for_images(n_variants=1, mask_span=16)
    views = PrecomputedViews(x, spec, ALL_TASKS, cache_dir=tmp_path / "views")
    again = PrecomputedViews(np.array(x), spec, ALL_TASKS, cache_dir=tmp_path / "views")
    assert again.paths == views.paths and not again.built_now  # keyed by content
    expected = {}
    for task in ALL_TASKS:
        expected.update(task.make_targets(as_float_input(x), generator_for("precomputed", spec.seed, 0, task.name),
                                          spec))
    for name in ("aug_x", "view1", "view2"):
        stored = torch.from_numpy(np.array(views.arrays[name][0])).float() / 255
        assert (stored - expected[name]).abs().max() <= 0.5 / 255 + 1e-6  # uint8 storage: rounding only
    np.testing.assert_array_equal(views.arrays["aug_label"][0], expected["aug_label"].numpy())
    np.testing.assert_array_equal(views.arrays["mask"][0], expected["mask"].numpy())
    batch = next(PretextBatches(x, np.zeros((16, 2), np.float32), 8, spec, ALL_TASKS, "on_the_fly").epoch(0))
    order = np.sort(np.random.default_rng([spec.seed, 0]).permutation(16)[:8])
    torch.testing.assert_close(batch["x"], torch.from_numpy(np.array(x[order])).float() / 255)


def test_stl10_entrypoints_end_to_end_with_official_folds(stl10_dir, tmp_path):
    folder, _ = stl10_dir
    data = ["--data_dir", str(folder.parent)]
    train_encoder.main([*TINY, *data, "--batch_size", "16", "--output_dir", str(tmp_path / "runs"),
                        "--experiment_name", "stl"])
    run = tmp_path / "runs" / "stl_seed42_heads1111"
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["data_source"], summary["split"], summary["inputs"]) == ("stl10", "unlabeled", 48)
    assert set(summary["final_losses"]) == {"augmentation", "reconstruction", "contrastive", "features"}
    train_classifier.main(["--encoder", str(run), *data, "--val_images", "10", "--folds", "2",
                           "--label_fractions", "0.5", "--seeds", "1", "--min_steps", "5", "--max_steps", "10",
                           "--eval_every", "5", "--device", "cpu"])
    rows = list((run / "classifier" / "results.csv").read_text().splitlines())
    assert rows[0].startswith("method,mode,budget,fraction,seed,labelled")
    summary = json.loads((run / "classifier" / "summary.json").read_text())["summary"]
    budgets = {(r["method"], r["mode"], r["budget"]): r["seeds"] for r in summary}
    assert budgets[("encoder", "linear", "official fold")] == 2 and budgets[("supervised", "finetune", "50%")] == 1
    assert "official fold" in (run / "classifier" / "results.md").read_text()


def test_missing_stl10_is_downloaded_and_offline_is_one_line(tmp_path, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    with pytest.raises(SystemExit) as exit_info:
        train_encoder.main([*TINY, "--data_dir", str(tmp_path / "empty"), "--output_dir", str(tmp_path)])
    captured = capsys.readouterr()
    assert "downloading it" in captured.out
    assert exit_info.value.code == 2 and "could not download" in captured.err
    assert len(captured.err.strip().splitlines()) == 1


def test_classifier_refuses_an_encoder_pretrained_on_other_image_sizes(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("data_processing.pretext.CACHE_DIR", tmp_path / "cache")
    train_encoder.main(["--preset", "cpu_smoke", *TINY, "--image_size", "16", "--mask_span", "4", "--n_variants", "1",
                        "--max_images", "64", "--output_dir", str(tmp_path), "--experiment_name", "small"])
    with pytest.raises(SystemExit):
        train_classifier.main(["--preset", "cpu_smoke", "--encoder", str(tmp_path / "small_seed42_heads1111"),
                               "--image_size", "32"])
    assert "pretrained on inputs of shape (3, 16, 16)" in capsys.readouterr().err


def test_each_image_task_loss_is_its_definition_on_image_batches():
    spec = PretextSpec.for_images(mask_ratio=0.25, mask_span=8)
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(8, 3, 32, 32, generator=generator)
    batch = {"x": x, "features": torch.randn(8, 60, generator=generator)}
    for name in THESIS_TASKS:
        batch.update(TASKS[name].make_targets(x, generator, spec))
    for name in THESIS_TASKS:
        TASKS[name].complete(batch)
    assert torch.equal(batch["masked_x"], x.masked_fill(batch["mask"], 0.0))
    assert batch["mask"].float().mean() == 0.25  # 4 of the 16 8x8 patches, on every channel
    torch.manual_seed(0)
    config = IRPretrainConfig(encoder_width=4, encoder_depth=2, embedding_dim=16, temperature=0.2)
    model = build_model(config, (3, 32, 32), spec, 60).eval()
    tasks = model.tasks
    losses = model(batch)  # eval: batch norm uses running statistics, so one pass equals one pass per input
    with torch.no_grad():
        emb = {k: model.encoder(batch[k]) for k in ("x", "aug_x", "masked_x", "view1", "view2")}
        expected_aug = torch.nn.functional.cross_entropy(tasks["augmentation"].head(emb["aug_x"]), batch["aug_label"])
        reconstruction = tasks["reconstruction"].head(emb["masked_x"]).view(8, 3, 32, 32)
        expected_rec = ((reconstruction - x) ** 2)[batch["mask"]].mean()
        z = torch.nn.functional.normalize(torch.cat([tasks["contrastive"].head(emb["view1"]),
                                                     tasks["contrastive"].head(emb["view2"])]), dim=1)
        logits = (z @ z.T / 0.2).fill_diagonal_(float("-inf"))
        expected_con = torch.nn.functional.cross_entropy(logits, torch.cat([torch.arange(8, 16), torch.arange(8)]))
        expected_feat = ((tasks["features"].head(emb["x"]) - batch["features"]) ** 2).mean()
    for name, expected in zip(THESIS_TASKS, (expected_aug, expected_rec, expected_con, expected_feat)):
        torch.testing.assert_close(losses[name].detach(), expected, rtol=1e-4, atol=1e-5)
