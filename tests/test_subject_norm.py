"""Per-subject normalisation (--subject_norm): what each subject shares is removed, nothing else is lost."""
import dataclasses
import json

import numpy as np
import pytest
import torch

from common.checkpoint import save_encoder
from common.classification import ClassifierConfig, run_classification
from common.encoders import build_encoder, embed
from common.subject_norm import adabn_embeddings, zscore_per_subject
from ground.errors import UserError
from data_processing.inputs import LabelledSplits


def test_zscore_standardises_each_subject_and_forgets_its_offset_and_scale():
    rng = np.random.default_rng(0)
    values, subject = rng.normal(size=(60, 5)).astype(np.float32), np.repeat([3, 7, 9], 20)
    z = zscore_per_subject(values, subject)
    for s in (3, 7, 9):
        assert np.allclose(z[subject == s].mean(0), 0, atol=1e-5) and np.allclose(z[subject == s].std(0), 1, atol=1e-4)
    moved = values.copy()
    moved[subject == 7] = 4.0 * moved[subject == 7] + rng.normal(size=5)  # subject 7 wears the sensor otherwise
    assert np.allclose(zscore_per_subject(moved, subject), z, atol=1e-4)
    constant = np.ones((4, 2), np.float32)  # a feature constant within a subject becomes 0, not NaN
    assert np.array_equal(zscore_per_subject(constant, np.array([1, 1, 2, 2])), np.zeros((4, 2), np.float32))


def test_adabn_embeds_each_subject_with_its_own_statistics_and_keeps_the_weights():
    torch.manual_seed(0)
    encoder = build_encoder("cnn1d", in_channels=3, width=8, depth=2, embedding_dim=6)
    for m in encoder.modules():  # running statistics unlike any subject's, as after pretraining on others
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_var.fill_(4.0)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    rng = np.random.default_rng(1)
    x, subject = rng.normal(size=(40, 3, 64)).astype(np.float32), np.repeat([1, 2], 20)
    adapted = adabn_embeddings(encoder, x, subject)
    assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items())  # the encoder is untouched
    # subject 2's sensor reads 3x larger (another device's gain): its plain embeddings move, its AdaBN ones do
    # not (the bias-free first convolution scales with it, zero padding too, and its batch statistics undo that)
    shifted = x.copy()
    shifted[subject == 2] *= 3.0
    plain_move = np.abs(embed(encoder, shifted).numpy() - embed(encoder, x).numpy())[subject == 2].mean()
    adabn_move = np.abs(adabn_embeddings(encoder, shifted, subject) - adapted)[subject == 2].mean()
    assert plain_move > 0.01 and adabn_move < 1e-3 * plain_move
    assert np.allclose(adabn_embeddings(encoder, shifted, subject)[subject == 1], adapted[subject == 1], atol=1e-6)


def test_a_network_with_adabn_classifies_a_subject_alike_whatever_its_sensor_gain():
    from common.evaluation import EncoderClassifier, predict_probabilities

    torch.manual_seed(0)
    network = EncoderClassifier(build_encoder("cnn1d", in_channels=3, width=8, depth=2, embedding_dim=6), 4)
    for m in network.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_var.fill_(4.0)
    before = {k: v.clone() for k, v in network.state_dict().items()}
    rng = np.random.default_rng(2)
    x, subject = rng.normal(size=(40, 3, 64)).astype(np.float32), np.repeat([5, 6], 20)
    shifted = x.copy()
    shifted[subject == 6] *= 3.0
    adapted = predict_probabilities(network, x, subject=subject)
    assert np.allclose(predict_probabilities(network, shifted, subject=subject), adapted, atol=1e-5)
    plain_move = np.abs(predict_probabilities(network, shifted) - predict_probabilities(network, x))
    assert plain_move[subject == 6].max() > 1e-3
    assert all(torch.equal(before[k], v) for k, v in network.state_dict().items())  # its own statistics stay
    assert np.allclose(adapted[subject == 5], predict_probabilities(network, x[subject == 5], subject=subject[:20]))


def subject_splits(seed=0):
    """Three classes as an offset on one channel, under a large offset of every channel per subject."""
    rng = np.random.default_rng(seed)

    def split(n, subjects):
        y, subject = np.arange(n) % 3, np.repeat(subjects, n // len(subjects))
        x = rng.normal(size=(n, 9, 32)).astype(np.float32)
        x[np.arange(n), y] += 2.0
        x += rng.normal(scale=4.0, size=(len(subjects), 9, 1)).astype(np.float32)[np.searchsorted(subjects, subject)]
        return {"x": x, "y": y.astype(np.int64), "features": x.mean(-1), "subject": subject}

    return LabelledSplits(split(90, [1, 2, 3]), split(30, [4, 5]), split(60, [6, 7]), {"data_source": "synthetic"})


@pytest.mark.parametrize("norm", ["zscore", "adabn"])
def test_subject_norm_runs_every_probed_method_and_finds_the_class_under_subject_offsets(tmp_path, norm):
    torch.manual_seed(0)
    encoder = build_encoder("cnn1d", in_channels=9, width=4, depth=2, embedding_dim=8)
    save_encoder(encoder, tmp_path / "run" / "encoder.pt")
    scores = {}
    for setting in ("none", norm):
        config = ClassifierConfig(encoder=str(tmp_path / "run"), methods=("expert_features", "encoder"),
                                  modes=("linear",), label_fractions=(1.0,), seeds=1, full_seeds=1, tuning_draws=1,
                                  probe="logistic:1", subject_norm=setting, output_dir=str(tmp_path / setting),
                                  device="cpu")
        config.validate()
        rows, _, _ = run_classification(config, subject_splits())
        scores[setting] = {r["method"]: r["macro_f1"] for r in rows}
    # the class is a +2 on one channel, each subject's offset up to 4: per subject it stands out
    features = {setting: by_method["expert_features"] for setting, by_method in scores.items()}
    assert features[norm] > 0.95 and features[norm] > features["none"]
    assert set(scores[norm]) == {"expert_features", "encoder"}


def test_networks_run_with_adabn_and_need_enough_windows_a_subject(tmp_path, capsys):
    torch.manual_seed(0)
    encoder = build_encoder("cnn1d", in_channels=9, width=4, depth=2, embedding_dim=8)
    save_encoder(encoder, tmp_path / "run" / "encoder.pt")
    config = ClassifierConfig(encoder=str(tmp_path / "run"), methods=("encoder", "supervised"), modes=("finetune",),
                              label_fractions=(1.0,), seeds=1, full_seeds=1, tuning_draws=1, min_steps=4,
                              max_steps=4, eval_every=2, network_subject_norm="adabn",
                              output_dir=str(tmp_path / "adabn"), device="cpu")
    config.validate()
    rows, _, _ = run_classification(config, subject_splits())
    assert {r["method"] for r in rows} == {"encoder", "supervised"} and all(0 <= r["macro_f1"] <= 1 for r in rows)
    splits = subject_splits()
    splits.val["subject"][:2] = 99
    _, _, folder = run_classification(dataclasses.replace(config, output_dir=str(tmp_path / "few")), splits)
    assert "--network_subject_norm adabn: val subject 99 has 2 window(s)" in capsys.readouterr().out
    assert json.loads((folder / "config.json").read_text())["network_subject_norm"] == "none"
    # probes alone do not use it, nor networks alone the probes' zscore: no notice, the config as it was
    for other in (dict(methods=("raw",), modes=("linear",), probe="ridge"),
                  dict(methods=("supervised",), network_subject_norm="none", subject_norm="zscore")):
        _, _, folder = run_classification(dataclasses.replace(config, **other, output_dir=str(tmp_path / "x")), splits)
        assert "too few" not in capsys.readouterr().out
        assert json.loads((folder / "config.json").read_text())["subject_norm"] == other.get("subject_norm", "none")


def test_subject_norm_needs_subjects():
    images = LabelledSplits(*({"x": np.zeros((6, 3, 8, 8), np.float32), "y": np.arange(6) % 2} for _ in range(3)), {})
    with pytest.raises(UserError, match="--subject_norm zscore needs each window's subject"):
        run_classification(ClassifierConfig(methods=("raw",), subject_norm="zscore"), images)


def test_subjects_with_too_few_windows_leave_subject_norm_out_with_a_notice(tmp_path, capsys):
    from HAR_centralized.config import HARClassifierConfig

    assert HARClassifierConfig().subject_norm == "zscore" and ClassifierConfig().subject_norm == "none"
    splits = subject_splits()
    splits.test["subject"][:3] = 99  # npz windows without a subject column: one subject a window
    config = ClassifierConfig(methods=("raw",), modes=("linear",), subject_norm="zscore", label_fractions=(1.0,),
                              seeds=1, full_seeds=1, probe="ridge", output_dir=str(tmp_path / "few"))
    rows, _, folder = run_classification(config, splits)
    assert "test subject 99 has 3 window(s), too few" in capsys.readouterr().out
    assert json.loads((folder / "config.json").read_text())["subject_norm"] == "none"  # what the run did
    unnormalised = dataclasses.replace(config, subject_norm="none", output_dir=str(tmp_path / "none"))
    assert run_classification(unnormalised, splits)[0][0]["macro_f1"] == rows[0]["macro_f1"]


def test_lp_ft_starts_from_a_head_on_the_embeddings_the_network_computes(tmp_path, monkeypatch):
    """Fine-tuning embeds raw windows: its starting head is fit there, whatever the probes' --subject_norm."""
    import common.classification as classification

    torch.manual_seed(0)
    encoder = build_encoder("cnn1d", in_channels=9, width=4, depth=2, embedding_dim=8)
    save_encoder(encoder, tmp_path / "run" / "encoder.pt")
    heads = {}

    def recording_fine_tune(encoder, num_classes, train_x, train_y, val_x, val_y, settings, seed, encoder_lr_ratio,
                            device="cpu", head_init=None, val_subject=None):
        heads.setdefault(setting, []).append(head_init)
        return (lambda x, subject=None: np.full((len(x), num_classes), 1.0 / num_classes)), True

    monkeypatch.setattr(classification, "fine_tune", recording_fine_tune)
    for setting in ("none", "zscore", "adabn"):
        config = ClassifierConfig(encoder=str(tmp_path / "run"), methods=("encoder",), modes=("linear", "finetune"),
                                  label_fractions=(0.5,), seeds=2, full_seeds=1, tuning_draws=2,
                                  subject_norm=setting, output_dir=str(tmp_path / setting), device="cpu")
        config.validate()
        run_classification(config, subject_splits())
    for setting in ("zscore", "adabn"):
        assert len(heads[setting]) == 2
        for (weight, bias), (plain_weight, plain_bias) in zip(heads[setting], heads["none"]):
            assert np.allclose(weight, plain_weight, atol=1e-5) and np.allclose(bias, plain_bias, atol=1e-5)
