"""Label-efficient evaluation: subsets, each mode and baseline on a tiny encoder, results files, bad input."""
import csv
import dataclasses
import json

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from common.checkpoint import save_encoder
from common.classification import METHOD_MODES, METHODS, MODES, PROBED, ClassifierConfig, run_classification
from ground.errors import UserError
from common.encoders import build_encoder
from common.evaluation import (EncoderClassifier, fine_tune, frozen_embeddings, markdown_table, predict, summarise,
                               train_with_early_stopping)
from data_processing.inputs import LabelledSplits, stratified_subset
from HAR_centralized import train_classifier


def test_stratified_subsets_have_exact_counts_and_draw_every_window_equally():
    """The label sampler is unbiased: exact per-class counts, and over many draws each window is included at
    the class's rate (binomial noise only); no window is favoured by the seeding."""
    y = np.repeat([0, 1, 2], [300, 120, 41])
    draws = 3000
    for fraction in (0.01, 0.1):
        counts = {c: max(1, round(fraction * (y == c).sum())) for c in range(3)}
        included = np.zeros(len(y))
        for seed in range(draws):
            subset = stratified_subset(y, fraction, seed)
            assert {c: int((y[subset] == c).sum()) for c in range(3)} == counts
            included[subset] += 1
        for c, count in counts.items():
            rate = count / (y == c).sum()
            observed = included[y == c] / draws
            sigma = np.sqrt(rate * (1 - rate) / draws)
            assert np.abs(observed - rate).max() < 5 * sigma, (fraction, c)
            assert abs(observed.mean() - rate) < 1e-9  # exactly count per draw


def test_stratified_subset_per_class_and_reproducible():
    y = np.repeat(np.arange(6), [100, 50, 30, 200, 7, 13])
    subset = stratified_subset(y, 0.1, seed=0)
    counts = np.bincount(y[subset], minlength=6)
    np.testing.assert_array_equal(counts, [10, 5, 3, 20, 1, 1])  # rounded, at least one per class
    np.testing.assert_array_equal(subset, stratified_subset(y, 0.1, seed=0))
    assert not np.array_equal(subset, stratified_subset(y, 0.1, seed=1))
    assert len(stratified_subset(y, 1.0, seed=0)) == len(y)
    assert set(stratified_subset(y, 0.01, seed=0)) <= set(range(len(y)))
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        stratified_subset(y, 0.0, seed=0)


def separable_splits(seed=0):
    """Windows whose class is a constant offset on one channel: every method should learn it."""
    rng = np.random.default_rng(seed)

    def split(n):
        y = np.arange(n) % 3
        x = rng.normal(size=(n, 9, 32)).astype(np.float32)
        x[np.arange(n), y] += 3.0
        return {"x": x, "y": y.astype(np.int64), "features": x.mean(-1)}

    return LabelledSplits(split(90), split(30), split(60), {"data_source": "synthetic"})


@pytest.fixture
def tiny_encoder(tmp_path):
    torch.manual_seed(0)
    encoder = build_encoder("cnn1d", in_channels=9, width=4, depth=2, embedding_dim=8)
    run = tmp_path / "run"
    save_encoder(encoder, run / "encoder.pt")
    return run


def test_every_method_and_mode_writes_results(tiny_encoder, tmp_path):
    config = ClassifierConfig(encoder=str(tiny_encoder), label_fractions=(0.2, 1.0), seeds=2, full_seeds=2,
                              modes=MODES, min_steps=150, max_steps=150, eval_every=50, tuning_draws=2,
                              minirocket_kernels=84, resnet_width=4, fixmatch_threshold=0.5, device="cpu")
    config.validate()
    splits = separable_splits()
    splits.augment = splits.weak_augment = lambda x, g: x + 0.1 * torch.randn(x.shape, generator=g)
    rows, summary, out = run_classification(config, splits)
    assert out == tiny_encoder / "classifier"
    expected = {(m, mode) for m in METHODS for mode in METHOD_MODES[m]}
    assert {(r["method"], r["mode"]) for r in rows} == expected and len(expected) == 20  # hybrids co-train too
    assert len(rows) == len(expected) * 2 * 2
    with open(out / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(rows) and {"method", "mode", "fraction", "seed", "accuracy", "macro_f1",
                                        "probe"} <= set(table[0])
    saved = json.loads((out / "summary.json").read_text())
    assert len(saved["summary"]) == len(expected) * 2 and saved["summary"][0]["seeds"] == 2
    # the probe of every probed method and fraction was chosen on val among the 4 x 2 candidates, and used
    choices = {(c["method"], c["fraction"]): c for c in saved["info"]["probe_choices"]}
    assert set(choices) == {(m, f) for m in PROBED for f in (0.2, 1.0)}
    assert all(len(c["val_macro_f1"]) == 8 and c["chosen"] in c["val_macro_f1"] for c in choices.values())
    assert {r["probe"] for r in rows if r["method"] == "minirocket" and r["fraction"] == 0.2} == {
        choices[("minirocket", 0.2)]["chosen"]}
    assert "| method | mode | 20% | 100% |" in (out / "results.md").read_text()
    by = {(r["method"], r["mode"], r["fraction"], r["seed"]): r for r in rows}
    assert by[("expert_features", "linear", 1.0, 0)]["macro_f1"] > 0.95  # the separable signal is found
    assert by[("encoder+features", "selftrain", 1.0, 0)]["macro_f1"] > 0.95
    assert by[("encoder+features", "cotrain", 0.2, 0)]["macro_f1"] > 0.9
    assert by[("supervised", "finetune", 1.0, 0)]["macro_f1"] > 0.9
    # every 100% draw is the whole train split: a probe scores the same, a network from scratch need not
    assert by[("raw", "linear", 1.0, 0)]["macro_f1"] == by[("raw", "linear", 1.0, 1)]["macro_f1"]


def test_methods_that_need_sensor_windows_or_a_weak_view_are_refused_clearly(tiny_encoder):
    splits = separable_splits()
    with pytest.raises(UserError, match="weak augmentation"):
        run_classification(ClassifierConfig(encoder=str(tiny_encoder), modes=("fixmatch",)), splits)
    images = LabelledSplits(*({"x": np.zeros((6, 3, 8, 8), np.float32), "y": np.arange(6) % 2} for _ in range(3)), {})
    with pytest.raises(UserError, match=r"minirocket, encoder\+minirocket take sensor windows"):
        run_classification(ClassifierConfig(methods=("encoder", "minirocket", "encoder+minirocket")), images)


def test_linear_mode_leaves_the_encoder_untouched():
    encoder = build_encoder("cnn1d", in_channels=9, width=4, depth=2, embedding_dim=8)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    frozen_embeddings(encoder, {"train": np.zeros((4, 9, 32), np.float32)})
    assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items())


def test_fine_tuning_moves_the_encoder_at_its_own_rate():
    splits = separable_splits()
    encoder = build_encoder("cnn1d", in_channels=9, width=4, depth=2, embedding_dim=8)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    settings = dict(lr=1e-2, weight_decay=0, batch_size=16, epochs=5, min_steps=20, max_steps=40, eval_every=10,
                    patience=10)
    fine_tune(encoder, 3, splits.train["x"], splits.train["y"], splits.val["x"], splits.val["y"], settings, 0, 0.0)
    # encoder_lr_ratio 0: the encoder's weights stay (its batch-norm statistics may still move)
    weights = {k: v for k, v in encoder.state_dict().items() if "running" not in k and "num_batches" not in k}
    assert all(torch.equal(before[k], v) for k, v in weights.items())


def test_training_that_does_not_help_on_val_keeps_the_starting_point():
    splits = separable_splits()
    torch.manual_seed(0)
    model = EncoderClassifier(build_encoder("cnn1d", in_channels=9, width=4, depth=2, embedding_dim=8), 3)
    good = dict(lr=1e-2, weight_decay=0, batch_size=16, epochs=1, min_steps=100, max_steps=100, eval_every=50,
                patience=0)
    model, _, kept = train_with_early_stopping(model, [{"params": model.parameters(), "lr": 1e-2}], splits.train["x"],
                                               splits.train["y"], splits.val["x"], splits.val["y"], good, 0)
    assert not kept  # good steps beat the random start on val
    start = {k: v.clone() for k, v in model.state_dict().items()}
    start_f1 = f1_score(splits.val["y"], predict(model, splits.val["x"]), average="macro")
    settings = dict(lr=1e3, weight_decay=0, batch_size=16, epochs=1, min_steps=20, max_steps=20, eval_every=10,
                    patience=0)
    groups = [{"params": model.parameters(), "lr": 1e3}]  # steps this large only destroy
    trained, best_f1, kept = train_with_early_stopping(model, groups, splits.train["x"], splits.train["y"],
                                                       splits.val["x"], splits.val["y"], settings, 0)
    assert start_f1 > 0.9 and best_f1 == pytest.approx(start_f1)  # the start was evaluated and stays the best
    assert kept
    assert all(torch.equal(v, start[k]) for k, v in trained.state_dict().items())


def test_label_budgets_add_predefined_sets_to_the_fractions():
    from common.classification import label_budgets
    from IR_centralized.config import IRClassifierConfig

    y = np.arange(100) % 10
    splits = LabelledSplits({"y": y}, {}, {}, {}, label_sets={"official fold": [np.array([5, 1, 3]), np.array([7, 2])]})
    budgets = label_budgets(IRClassifierConfig(label_fractions=(0.1, 1.0), seeds=2), splits)
    assert [(b[0], b[2]) for b in budgets] == [("10%", 0), ("10%", 1), ("100%", 0), ("100%", 1),
                                               ("official fold", 0), ("official fold", 1)]
    assert budgets[4][1] == pytest.approx(0.03) and list(budgets[4][3]) == [1, 3, 5]
    rows = [{"method": "m", "mode": "linear", "budget": b[0], "fraction": b[1], "seed": b[2], "accuracy": 0.5,
             "macro_f1": 0.4 + 0.1 * i} for i, b in enumerate(budgets)]
    summary = summarise(rows)
    assert [s["budget"] for s in summary] == ["official fold", "10%", "100%"]  # ordered by size
    assert markdown_table(summary).splitlines()[0] == "| method | mode | official fold | 10% | 100% |"


@pytest.mark.parametrize("classes", [6, 2])
def test_probe_as_a_head_predicts_what_the_probe_predicts(classes):
    from common.evaluation import fit_logistic, linear_head_from_probe

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 8)) * rng.uniform(0.5, 5, 8) + rng.normal(size=8) * 3  # unstandardised
    y = np.argmax(x[:, :classes] + rng.normal(size=(120, classes)), axis=1)
    y[y == classes - 1] = 0 if classes > 2 else y[y == classes - 1]  # with 6 classes, one is absent
    scaler, model = fit_logistic(x, y, 1.0, 0, x)
    weight, bias = linear_head_from_probe(scaler, model, classes)
    assert weight.shape == (classes, 8)
    head = np.argmax(x @ weight.T + bias, axis=1)
    np.testing.assert_array_equal(head, model.predict(scaler.transform(x)))


def test_summary_and_table_format():
    rows = [{"method": "m", "mode": "linear", "fraction": 0.1, "seed": s, "accuracy": a, "macro_f1": a}
            for s, a in enumerate([0.8, 0.9])]
    summary = summarise(rows)
    assert summary[0]["macro_f1_mean"] == pytest.approx(0.85)
    assert summary[0]["macro_f1_std"] == pytest.approx(0.0707, abs=1e-4)
    assert "| m | linear | 0.850 ± 0.071 |" in markdown_table(summary)


@pytest.mark.parametrize("args, message", [
    (["--encoder", "/no/such/run"], "does not exist"),
    (["--label_fractions", "0", "0.5"], "outside (0, 1]"),
    (["--label_fractions", "1.5"], "outside (0, 1]"),
    (["--modes", "zero_shot"], "unknown mode"),
    (["--methods", "knn"], "unknown method"),
])
def test_classifier_cli_bad_input(args, message, capsys):
    assert_one_line_error(args, message, capsys)


def assert_one_line_error(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_classifier.main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_classifier_cli_rejects_a_file_that_is_not_an_encoder(tmp_path, capsys):
    bogus = tmp_path / "encoder.pt"
    torch.save({"weights": torch.zeros(3)}, bogus)
    assert_one_line_error(["--encoder", str(bogus)], "not an encoder", capsys)
    bogus.write_bytes(b"garbage")
    assert_one_line_error(["--encoder", str(bogus)], "corrupt", capsys)


def test_a_killed_run_goes_on_from_its_scored_draws(tiny_encoder, tmp_path, monkeypatch, capsys):
    import common.classification as classification

    config = ClassifierConfig(encoder=str(tiny_encoder), methods=("encoder", "supervised"), modes=("linear",
                              "finetune"), label_fractions=(0.2, 1.0), seeds=2, full_seeds=1, min_steps=4,
                              max_steps=4, eval_every=2, tuning_draws=2, device="cpu", output_dir=str(tmp_path / "r"))
    straight, _, _ = run_classification(dataclasses.replace(config, output_dir=str(tmp_path / "s")),
                                        separable_splits())
    original, calls = classification.fine_tune, []

    def dies_on_the_third_network(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # a kill mid-run
        return original(*args, **kwargs)

    monkeypatch.setattr(classification, "fine_tune", dies_on_the_third_network)
    with pytest.raises(KeyboardInterrupt):
        run_classification(config, separable_splits())
    monkeypatch.setattr(classification, "fine_tune", original)
    assert not (tmp_path / "r" / "results.csv").exists() and (tmp_path / "r" / "rows.partial.jsonl").exists()
    capsys.readouterr()
    resumed, _, _ = run_classification(config, separable_splits())
    assert "going on from there" in capsys.readouterr().out
    key = lambda r: (r["method"], r["mode"], r["fraction"], r["seed"])  # noqa: E731
    assert {key(r): r["macro_f1"] for r in resumed} == {key(r): r["macro_f1"] for r in straight}
    assert not (tmp_path / "r" / "rows.partial.jsonl").exists()  # finished: results.csv holds them all
    # the rows a killed run left are another config's: a run of this one starts afresh
    calls.clear()
    monkeypatch.setattr(classification, "fine_tune", dies_on_the_third_network)
    with pytest.raises(KeyboardInterrupt):
        run_classification(config, separable_splits())
    monkeypatch.setattr(classification, "fine_tune", original)
    capsys.readouterr()
    run_classification(dataclasses.replace(config, seeds=1), separable_splits())
    assert "going on from there" not in capsys.readouterr().out
