"""Probes chosen on val, self-training, MiniRocket features, the time-series ResNet and FixMatch's loss."""
import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from common.encoders import build_encoder
from ground.errors import UserError
from common.evaluation import EncoderClassifier, fixmatch_loss
from common.probes import TUNING_SEED, Probe, choose_probe, fit_probe, parse_candidate, scaler_of_all, self_train
from data_processing.inputs import stratified_subset


def blobs(n, seed, noise=1.0, classes=3, dim=5):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    centres = np.eye(classes, dim) * 3
    return centres[y] + noise * rng.normal(size=(n, dim)), y


def test_candidates_parse_and_bad_ones_are_named():
    assert parse_candidate("ridge") == ("ridge", None)
    assert parse_candidate("logistic:0.5") == ("logistic", 0.5)
    for bad in ("logistic", "logistic:-1", "logistic:x", "logistic:inf", "svm", "ridge:2"):
        with pytest.raises(UserError, match="logistic:C"):
            parse_candidate(bad)


@pytest.mark.parametrize("classifier", ["logistic:1", "ridge"])
def test_a_fitted_probe_gives_probabilities_with_absent_classes_at_zero(classifier):
    x, y = blobs(60, 0)
    y = np.where(y == 2, 0, y)  # class 2 never labelled
    fitted = fit_probe(Probe(classifier, "labelled"), x, y, x, num_classes=4)
    p = fitted(x)
    assert p.shape == (60, 4) and np.allclose(p.sum(1), 1) and (p[:, 2:] == 0).all()
    assert (p.argmax(1) == y).mean() > 0.9


def test_the_probe_is_chosen_by_val_score_on_tuning_draws_apart_from_evaluation():
    x, y = blobs(300, 1, noise=2.0)
    vx, vy = blobs(90, 2, noise=2.0)
    candidates = [Probe("logistic:0.001", "all"), Probe("logistic:10", "labelled"), Probe("ridge", "all")]
    best, scores = choose_probe(candidates, x, y, vx, vy, 0.05, 3, 3)
    for probe in candidates:  # the mean val macro-F1 over draws TUNING_SEED, +1, +2
        expected = np.mean([f1_score(vy, fit_probe(probe, x[s], y[s], x, 3, i)(vx).argmax(1), average="macro")
                            for i, s in enumerate(stratified_subset(y, 0.05, TUNING_SEED + i) for i in range(3))])
        assert scores[probe.name] == pytest.approx(expected)
    assert scores[best.name] == max(scores.values()) and len(set(scores.values())) > 1
    only, none = choose_probe(candidates[:1], x, y, vx, vy, 0.1, 3, 3)
    assert only == candidates[0] and none == {}  # one candidate: nothing is tuned
    assert TUNING_SEED > 1000  # evaluation draws 0..n-1 are never tuning draws


def test_self_training_adds_balanced_pseudo_labels_and_helps_with_few_labels():
    x, y = blobs(3000, 3, noise=1.6)
    test_x, test_y = blobs(1500, 4, noise=1.6)
    gains = []
    for seed in range(5):
        subset = stratified_subset(y, 0.002, seed)  # 2 labels per class
        probe = Probe("logistic:1", "all")
        plain = fit_probe(probe, x[subset], y[subset], x, 3)
        trained = self_train(probe, x, y, subset, 3, rounds=3, per_round=20, seed=seed)
        assert np.bincount(trained.model.classes_, minlength=3).tolist() == [1, 1, 1]
        gains.append((trained(test_x).argmax(1) == test_y).mean() - (plain(test_x).argmax(1) == test_y).mean())
    assert np.mean(gains) > 0.0
    zero = self_train(Probe("logistic:1", "all"), x, y, stratified_subset(y, 0.01, 0), 3, rounds=0)
    np.testing.assert_allclose(zero(test_x), fit_probe(Probe("logistic:1", "all"), x[stratified_subset(y, 0.01, 0)],
                                                       y[stratified_subset(y, 0.01, 0)], x, 3)(test_x))


def test_co_training_takes_the_pseudo_labels_the_views_are_confident_of_together():
    a, y = blobs(2000, 5, noise=1.8)  # two views of each window, noisy apart (the co-training assumption)
    b, _ = blobs(2000, 6, noise=1.8)
    x = np.concatenate([a, b], 1)
    probe, subset = Probe("logistic:1", "all"), stratified_subset(y, 0.003, 0)
    # one view that is the whole representation: co-training is self-training
    np.testing.assert_allclose(self_train(probe, x, y, subset, 3, 3, 5.0, views=[x])(x),
                               self_train(probe, x, y, subset, 3, 3, 5.0)(x))
    # one round, by hand: the mean of the two views' probes ranks the unlabelled windows within each class
    teacher = [fit_probe(probe, v[subset], y[subset], v, 3) for v in (a, b)]
    pool = np.setdiff1d(np.arange(len(y)), subset)
    p = (teacher[0](a[pool]) + teacher[1](b[pool])) / 2
    per_class = 10 * np.bincount(y[subset])  # per_round 10: ten times each class's labels
    taken = [pool[np.flatnonzero(p.argmax(1) == c)[np.argsort(-p.max(1)[p.argmax(1) == c], kind="stable")]][
        :per_class[c]] for c in range(3)]
    rows = np.concatenate([subset, *taken])
    labels = np.concatenate([y[subset], *[np.full(len(t), c) for c, t in enumerate(taken)]])
    expected = fit_probe(probe, x[rows], labels, x, 3)
    cotrained = self_train(probe, x, y, subset, 3, rounds=1, per_round=10.0, views=[a, b])
    np.testing.assert_allclose(cotrained(x), expected(x))
    plain = fit_probe(probe, x[subset], y[subset], x, 3)
    assert (cotrained(x).argmax(1) == y).mean() > (plain(x).argmax(1) == y).mean()


def test_minirocket_features_are_fit_without_labels_and_fixed_by_seed():
    from data_processing.minirocket import minirocket_features

    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3, 64)).astype(np.float32)
    first, seconds = minirocket_features(x, {"train": x, "other": x[:5]}, n_kernels=168, seed=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the transform runs on torch's thread count: the features must not depend on it
    try:
        again, _ = minirocket_features(x, {"other": x[:5]}, n_kernels=168, seed=1)
    finally:
        torch.set_num_threads(threads)
    other_seed, _ = minirocket_features(x, {"other": x[:5]}, n_kernels=168, seed=2)
    assert first["train"].shape == (20, 168) and first["train"].dtype == np.float32 and seconds >= 0
    np.testing.assert_array_equal(first["other"], again["other"])
    assert not np.array_equal(first["other"], other_seed["other"])
    assert ((first["train"] >= 0) & (first["train"] <= 1)).all()  # proportions of positive values
    # what it sees: the frequency of a noisy sine (not a constant offset: its kernels' weights sum to zero)
    t = np.arange(64)
    y = np.arange(60) % 3
    waves = np.sin(2 * np.pi * (2 + 3 * y[:, None]) * t / 64 + rng.uniform(0, 6, (60, 1)))
    x = (waves[:, None, :] + 0.3 * rng.normal(size=(60, 3, 64))).astype(np.float32)
    features, _ = minirocket_features(x[:30], {"train": x[:30], "test": x[30:]}, n_kernels=168, seed=0)
    fitted = fit_probe(Probe("ridge", "all"), features["train"], y[:30], features["train"], 3)
    assert (fitted(features["test"]).argmax(1) == y[30:]).mean() > 0.9


def test_time_series_resnet_keeps_the_length_and_embeds():
    encoder = build_encoder("resnet1d", in_channels=9, width=8, embedding_dim=16)
    assert encoder(torch.randn(4, 9, 128)).shape == (4, 16)
    assert encoder.blocks[0].body[0].kernel_size == (7,) and encoder.blocks[2].body[-2].out_channels == 16
    with pytest.raises(ValueError, match="width"):
        build_encoder("resnet1d", in_channels=9, width=0)


def fixmatch_settings(threshold):
    rng = np.random.default_rng(0)
    return {"fixmatch": {"threshold": threshold, "ratio": 2, "weight": 1.0},
            "unlabelled": rng.normal(size=(50, 9, 32)).astype(np.float32),
            "weak_augment": lambda x, g: x, "augment": lambda x, g: x + 0.5 * torch.randn(x.shape, generator=g)}


def test_fixmatch_adds_the_confident_unlabelled_loss_only():
    torch.manual_seed(0)
    model = EncoderClassifier(build_encoder("cnn1d", in_channels=9, width=4, depth=2, embedding_dim=8), 3)
    xb, yb = torch.randn(8, 9, 32), torch.randint(3, (8,))
    model.eval()  # batch norm by its running statistics: the labelled loss does not depend on the other inputs
    labelled = torch.nn.functional.cross_entropy(model(xb), yb)
    never = fixmatch_loss(model, xb, yb, fixmatch_settings(1.0), torch.Generator().manual_seed(0), "cpu")
    always = fixmatch_loss(model, xb, yb, fixmatch_settings(1e-6), torch.Generator().manual_seed(0), "cpu")
    assert never.item() == pytest.approx(labelled.item(), rel=1e-5)  # no prediction reaches confidence 1
    assert always.item() > labelled.item() + 1e-3
    always.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_the_scaler_of_all_train_windows_is_fit_once_per_array():
    rng = np.random.default_rng(0)
    x, other = rng.normal(size=(50, 4)), rng.normal(2.0, 3.0, size=(50, 4))
    first = scaler_of_all(x)
    assert scaler_of_all(x) is first  # shared by every probe of the representation
    np.testing.assert_allclose(first.mean_, x.mean(0))
    np.testing.assert_allclose(first.scale_, x.std(0))
    moved = scaler_of_all(other)  # another representation: its own statistics
    np.testing.assert_allclose(moved.mean_, other.mean(0))
    assert scaler_of_all(x) is first  # a few arrays are remembered (co-training alternates blocks)
    newer = [rng.normal(size=(50, 4)) for _ in range(4)]  # alive: an array gone frees its entry anyway
    for array in newer:
        scaler_of_all(array)
    assert scaler_of_all(x) is not first  # pushed out by newer arrays: refit when it comes back
