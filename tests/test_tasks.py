"""A pretext task is one file: a fifth task registered from this test file alone trains like the four."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from common.checkpoint import safe_torch_load
from common.config import config_to_dict, parse_config
from ground.errors import UserError
from common.model import build_model
from studies.plots import plot_architecture
from common.tasks import THESIS_TASKS, TASKS, PretextTask, register_task
from common.training import pretrain
from data_processing.pretext import PretextSpec, PretrainData
from HAR_centralized.config import HARPretrainConfig

REPO = Path(__file__).resolve().parents[1]


class TimeReversalTask(PretextTask):
    """Toy task: was the window played backwards? (cross-entropy over 2 classes)."""

    name = "time_reversal"
    inputs = ("reversal_x",)
    stored = {"reversal_x": "input", "reversal_label": "int8"}
    loss_label = "cross-entropy"

    @staticmethod
    def sensor_targets(x, generator, spec):
        label = torch.randint(2, (len(x),), generator=generator, device=generator.device)
        return {"reversal_x": torch.where(label[:, None, None].bool(), x.flip(-1), x), "reversal_label": label}

    def __init__(self, context):
        super().__init__(context)
        self.head = nn.Linear(context.embedding_dim, 2)

    def forward(self, embeddings, batch):
        return F.cross_entropy(self.head(embeddings["reversal_x"]), batch["reversal_label"])


@pytest.fixture
def toy_task(monkeypatch, tmp_path):
    monkeypatch.setattr("data_processing.pretext.CACHE_DIR", tmp_path / "cache")
    register_task(TimeReversalTask)
    yield TimeReversalTask
    TASKS.pop(TimeReversalTask.name, None)


def tiny_data(n=48):
    rng = np.random.default_rng(0)
    return PretrainData(rng.normal(size=(n, 9, 128)).astype(np.float32), rng.normal(size=(n, 11)).astype(np.float32),
                        PretextSpec(n_variants=2), {"data_source": "synthetic"})


@pytest.mark.parametrize("precompute", [1, 0])
def test_a_fifth_task_from_this_file_trains_through_the_shared_loop(toy_task, tmp_path, precompute):
    config = parse_config(HARPretrainConfig, ["--tasks", "contrastive", "time_reversal", "--epochs", "1",
                                              "--batch_size", "16", "--encoder_width", "4", "--embedding_dim", "8",
                                              "--n_variants", "2", "--device", "cpu", "--precompute", str(precompute),
                                              "--output_dir", str(tmp_path), "--experiment_name", "toy"])
    summary = pretrain(config, tiny_data())
    assert summary["tasks"] == ["contrastive", "time_reversal"]
    run = config.run_dir()
    assert run.name == "toy_seed42_taskscontrastive+time_reversal"
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert np.isfinite(row["loss/time_reversal"]) and "weight/time_reversal" in row
    assert safe_torch_load(run / "checkpoint.pt")["architecture"]["tasks"] == ["contrastive", "time_reversal"]
    plot_architecture(build_model(config, (9, 128), PretextSpec(), 11), ["uncertainty"], tmp_path / "arch.png")


def test_model_heads_keep_the_seeds_four_switches_in_order():
    assert THESIS_TASKS == ("augmentation", "reconstruction", "contrastive", "features")
    config = HARPretrainConfig(model_heads=(0, 1, 0, 1))
    assert list(build_model(config, (9, 128), PretextSpec(), 561).tasks) == ["reconstruction", "features"]


def test_an_experiment_names_its_default_tasks_and_the_seeds_switches_replace_them():
    import dataclasses

    from common.pretrain_config import with_trained_tasks

    @dataclasses.dataclass
    class RocketFirst(HARPretrainConfig):
        DEFAULT_TASKS = ("rocket",)

    assert RocketFirst().active_tasks() == ["rocket"] and RocketFirst().run_name() == "mtl_seed42_tasksrocket"
    switched = parse_config(RocketFirst, ["--model_heads", "1", "0", "1", "1", "--output_dir", "x"])
    assert switched.active_tasks() == ["augmentation", "contrastive", "features"]
    assert switched.run_name() == "mtl_seed42_heads1011"  # the thesis's names and folders
    assert HARPretrainConfig().run_name() == "mtl_seed42_tasksrocket"  # HAR's default: the recipe search's winner
    assert parse_config(HARPretrainConfig, ["--model_heads", "1", "1", "1", "1"]).run_name() == "mtl_seed42_heads1111"
    # a run saved with the switches and one asked for by default compare as the same recipe
    old = {"model_heads": [1, 1, 1, 1], "tasks": [], "lr": 0.002}
    assert with_trained_tasks(old) == with_trained_tasks({"model_heads": [], "tasks": [], "lr": 0.002})
    assert with_trained_tasks(old, ("rocket",)) != with_trained_tasks({"model_heads": [], "tasks": [], "lr": 0.002},
                                                                      ("rocket",))


def test_unknown_task_names_are_one_line():
    with pytest.raises(UserError, match="unknown task.*registered: "):
        parse_config(HARPretrainConfig, ["--tasks", "no_such_task"])


def test_head_sizes_are_config_fields_recorded_with_the_run():
    config = HARPretrainConfig(contrastive_hidden=16, projection_dim=8, augmentation_hidden=12, features_hidden=10,
                               reconstruction_hidden=14, model_heads=(1, 1, 1, 1))
    model = build_model(config, (9, 128), PretextSpec(), 561)
    heads = {name: [m.out_features for m in task.head.modules() if isinstance(m, nn.Linear)]
             for name, task in model.tasks.items()}
    assert heads["contrastive"] == [16, 8] and heads["augmentation"][0] == 12 and heads["features"] == [10, 561]
    assert heads["reconstruction"] == [14, 9 * 128]
    assert config_to_dict(config)["projection_dim"] == 8  # what config.json records


def pretrain_tiny_rocket(tmp_path, tasks, n_variants):
    """(data, metrics rows) of 2 epochs of `tasks` on tiny data: 6 components of 84 MiniRocket features."""
    data = tiny_data()
    data.cache_dir = tmp_path / "cache"
    config = parse_config(HARPretrainConfig, ["--tasks", *tasks, "--epochs", "2", "--batch_size", "16",
                                              "--encoder_width", "4", "--embedding_dim", "8", "--rocket_dim", "6",
                                              "--rocket_kernels", "84", "--n_variants", str(n_variants), "--device",
                                              "cpu", "--output_dir", str(tmp_path), "--experiment_name", "rocket"])
    pretrain(config, data)
    return data, [json.loads(line) for line in (config.run_dir() / "metrics.jsonl").read_text().splitlines()]


def test_the_rocket_task_regresses_minirocket_components_made_once_and_cached(tmp_path, monkeypatch):
    from data_processing import minirocket

    data, rows = pretrain_tiny_rocket(tmp_path, ("rocket", "features"), 2)
    assert all(np.isfinite(r["loss/rocket"]) for r in rows)
    targets = np.array(minirocket.minirocket_pca(data.x, 6, 84, 42, data.cache_dir))  # a copy: the file is spoilt below
    assert targets.shape == (48, 6) and targets.dtype == np.float32
    np.testing.assert_allclose(targets.var(0).mean(), 1.0, rtol=1e-4)  # scaled as a whole, the order kept
    assert targets.var(0)[0] >= targets.var(0)[-1]
    monkeypatch.setattr(minirocket, "_fit_teacher", lambda *a, **k: pytest.fail("recomputed, not cached"))
    np.testing.assert_array_equal(minirocket.minirocket_pca(data.x, 6, 84, 42, data.cache_dir), targets)
    (cached,) = data.cache_dir.glob("minirocket_pca_*.npy")
    cached.write_bytes(b"not an array")
    monkeypatch.undo()
    np.testing.assert_allclose(minirocket.minirocket_pca(data.x, 6, 84, 42, data.cache_dir), targets, rtol=1e-5)
    with pytest.raises(UserError, match="need sensor windows"):
        minirocket.minirocket_pca(np.zeros((4, 3, 8, 8), np.float32), 2)
    # fewer windows than components (own recordings, a federated client): the components there are, then 0s
    few = minirocket.minirocket_pca(data.x[:5], 8, 84, 42, data.cache_dir)
    assert few.shape == (5, 8) and not few[:, 4:].any() and few[:, :4].var(0).min() > 1e-3


def test_minirocket_keeps_numbas_thread_pool_to_torchs_threads():
    """numba's pool, sized when numba loads, spins beside torch afterwards: held to torch's threads it leaves a
    training step after a transform alone. A fresh process: the size is fixed at numba's import."""
    code = ("import torch, numpy as np; torch.set_num_threads(1)\n"
            "from data_processing.minirocket import new_minirocket\n"
            "transform = new_minirocket(84, 0, n_jobs=8)\n"
            "import numba\n"
            "x = np.random.default_rng(0).normal(size=(12, 3, 64)).astype(np.float32)\n"
            "print(numba.config.NUMBA_NUM_THREADS, transform.n_jobs, transform.fit(x).transform(x).shape[1])")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_NUM_THREADS"}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["1", "1", "84"]


def test_rocket_views_regress_the_teachers_answer_on_the_view_the_student_sees(tmp_path, monkeypatch):
    from data_processing import minirocket

    data, rows = pretrain_tiny_rocket(tmp_path, ("rocket_views",), 3)
    assert all(np.isfinite(r["loss/rocket_views"]) for r in rows)
    views, targets = minirocket.minirocket_view_targets(data.x, data.spec.view_transforms, 3, 6, 84, 42,
                                                        data.cache_dir)
    assert views.shape == (48, 3, *data.x.shape[1:]) and targets.shape == (48, 3, 6)
    assert not np.allclose(views[:, 0], data.x, atol=1e-2) and not np.allclose(views[:, 0], views[:, 1], atol=1e-2)
    # each view's target is MiniRocket's answer on that view, in the clean windows' components
    teacher = minirocket._fit_teacher(data.x, 6, 84, 42)
    np.testing.assert_allclose(teacher.clean, minirocket.minirocket_pca(data.x, 6, 84, 42, data.cache_dir),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(targets[:, 1], teacher.project(views[:, 1].astype(np.float32)), rtol=1e-4, atol=1e-4)
    assert np.abs(targets[:, 1] - teacher.clean).mean() > 0.1 * np.abs(teacher.clean).mean()
    monkeypatch.setattr(minirocket, "_fit_teacher", lambda *a, **k: pytest.fail("recomputed, not cached"))
    again = minirocket.minirocket_view_targets(data.x, data.spec.view_transforms, 3, 6, 84, 42, data.cache_dir)
    np.testing.assert_array_equal(again[1], targets)
    batch = {"rocket_views_x": torch.as_tensor(views[:5]), "rocket_views": torch.as_tensor(targets[:5])}
    TASKS["rocket_views"].complete(batch)
    for i in range(5):  # the input and its target come from the same view
        (match,) = [v for v in range(3) if np.array_equal(batch["rocket_view_target"][i].numpy(), targets[i, v])]
        np.testing.assert_array_equal(batch["rocket_view"][i].numpy(), views[i, match].astype(np.float32))
