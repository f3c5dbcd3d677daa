"""Precision as a setting: bf16 autocast runs the same code on CPU as on cuda, end to end."""
import contextlib
import json

import numpy as np
import pytest
import torch

from common.encoders import build_encoder, embed
from ground.errors import UserError
from common.model import build_model, task_classes
from common.runtime import autocast, resolve_precision, select_device
from common.training import MultiTaskTrainer
from data_processing.pretext import PretextSpec, PretrainData
from HAR_centralized import train_encoder
from HAR_centralized.config import HARPretrainConfig
from IR_centralized import train_encoder as image_train_encoder

TINY_HAR = ["--epochs", "1", "--encoder_width", "4", "--embedding_dim", "8", "--n_variants", "1",
            "--batch_size", "256", "--device", "cpu", "--model_heads", "1", "1", "1", "1"]  # every seed head


def test_auto_precision_is_bf16_on_cuda_only():
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"


def test_autocast_is_a_fresh_context_each_time():
    # the bug this replaces: a stored torch.autocast instance called like a factory raised TypeError
    for _ in range(2):
        with autocast("bf16", torch.device("cpu")):
            assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with autocast("fp32", torch.device("cpu")):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


@pytest.mark.parametrize("precision, dtype", [("bf16", torch.bfloat16), ("fp32", torch.float32)])
def test_the_training_step_runs_under_the_chosen_precision(precision, dtype):
    config = HARPretrainConfig(encoder_width=4, embedding_dim=8, batch_size=16, n_variants=1, precision=precision,
                               model_heads=(1, 1, 1, 1))
    rng = np.random.default_rng(0)
    data = PretrainData(rng.normal(size=(32, 9, 128)).astype(np.float32), rng.normal(size=(32, 5)).astype(np.float32),
                        PretextSpec(n_variants=1), {})
    model = build_model(config, (9, 128), data.spec, 5)
    seen = []
    model.encoder.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    trainer = MultiTaskTrainer(config, model, torch.device("cpu"))
    batches = data.batches(task_classes(config), 16, precompute=False)
    means, steps, _ = trainer.train_epoch(batches, 0, lambda step: 1e-3)
    assert steps == 2 and set(seen) == {dtype} and all(np.isfinite(v) for v in means.values())


def test_bf16_har_pretraining_on_cpu_end_to_end(tmp_path, har_cache):
    train_encoder.main([*TINY_HAR, "--precision", "bf16", "--output_dir", str(tmp_path), "--experiment_name", "bf16"])
    summary = json.loads((tmp_path / "bf16_seed42_heads1111" / "summary.json").read_text())
    assert summary["precision"] == "bf16" and summary["device"] == "cpu"
    assert all(np.isfinite(v) for v in summary["final_losses"].values())


def test_bf16_digits_epoch_on_cpu(tmp_path, monkeypatch):
    monkeypatch.setattr("data_processing.pretext.CACHE_DIR", tmp_path / "cache")
    image_train_encoder.main(["--preset", "cpu_smoke", "--image_size", "16", "--encoder_width", "4",
                              "--encoder_depth", "2", "--embedding_dim", "16", "--epochs", "1", "--n_variants", "1",
                              "--mask_span", "4", "--max_images", "128", "--device", "cpu", "--precision", "bf16",
                              "--output_dir", str(tmp_path), "--experiment_name", "digits"])
    summary = json.loads((tmp_path / "digits_seed42_heads1111" / "summary.json").read_text())
    assert summary["precision"] == "bf16" and all(np.isfinite(v) for v in summary["final_losses"].values())


def test_bf16_embeddings_are_float32_and_close_to_fp32():
    torch.manual_seed(0)
    encoder = build_encoder("cnn1d", in_channels=9, width=8, depth=2, embedding_dim=16)
    x = np.random.default_rng(0).normal(size=(64, 9, 128)).astype(np.float32)
    full, half = embed(encoder, x), embed(encoder, x, precision="bf16")
    assert half.dtype == torch.float32 and not torch.equal(full, half)
    assert (half - full).norm() / full.norm() < 0.05


@pytest.mark.parametrize("name", ["cuda", "mps"])
def test_a_missing_accelerator_is_one_line(name):
    available = torch.cuda.is_available() if name == "cuda" else torch.backends.mps.is_available()
    with pytest.raises(UserError, match=f"--device {name}") if not available else contextlib.nullcontext():
        select_device(name)
