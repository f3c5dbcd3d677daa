"""The shared pretraining loop on tiny synthetic data, and the HAR entrypoint on the real data."""
import dataclasses
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from common.checkpoint import safe_torch_load
from ground.errors import UserError
from common.monitor import knn_predict
from common.run_folder import RunFolder
from common.training import lr_factor, pretrain
from data_processing.har import CLASS_NAMES, load_har
from data_processing.inputs import ProbeSet
from data_processing.pretext import PretextSpec, PretrainData
from HAR_centralized import train_encoder
from HAR_centralized.config import HARPretrainConfig

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("task_shares", REPO / "benchmarks" / "task_shares.py")
task_shares = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(task_shares)
_spec = importlib.util.spec_from_file_location("heldout_subjects", REPO / "benchmarks" / "heldout_subjects.py")
heldout_subjects = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(heldout_subjects)
_spec = importlib.util.spec_from_file_location("distillation_gap", REPO / "benchmarks" / "distillation_gap.py")
distillation_gap = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(distillation_gap)


class Interrupted(Exception):
    pass


def tiny_data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 9, 128)).astype(np.float32)
    return PretrainData(x, rng.normal(size=(n, 11)).astype(np.float32), PretextSpec(n_variants=2, seed=seed),
                        {"data_source": "synthetic"})


def tiny_config(tmp_path, **overrides):
    # the thesis's four tasks: these tests are of the multi-task loop (weightings, heads, shares)
    values = dict(output_dir=str(tmp_path), epochs=3, batch_size=16, encoder_width=4, embedding_dim=8,
                  n_variants=2, device="cpu", experiment_name="tiny", model_heads=(1, 1, 1, 1))
    values.update(overrides)
    config = HARPretrainConfig(**values)
    config.validate()
    return config


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setattr("data_processing.pretext.CACHE_DIR", tmp_path / "cache")


def final_weights(config):
    return safe_torch_load(config.run_dir() / "checkpoint.pt")["model"]


def test_a_run_writes_its_folder(tmp_path):
    config = tiny_config(tmp_path)
    summary = pretrain(config, tiny_data())
    run = config.run_dir()
    assert run.name == "tiny_seed42_heads1111"
    assert {"encoder.pt", "checkpoint.pt", "config.json", "metrics.jsonl",
            "summary.json"} <= {p.name for p in run.iterdir()}
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert {"loss/contrastive", "weight/features", "seconds"} <= set(rows[0])
    encoder = safe_torch_load(run / "encoder.pt")
    assert encoder["model_args"]["name"] == "cnn1d" and encoder["model_args"]["embedding_dim"] == 8
    assert set(summary["final_losses"]) == {"augmentation", "reconstruction", "contrastive", "features"}
    assert json.loads((run / "config.json").read_text())["model_heads"] == [1, 1, 1, 1]  # the switches, as asked


@pytest.mark.parametrize("weighting, precompute", [("equal", 1), ("uncertainty", 0), ("dwa", 1),
                                                   ("gradnorm", 1), ("cagrad", 1)])
def test_resume_reaches_the_same_weights_as_an_uninterrupted_run(tmp_path, weighting, precompute):
    straight = tiny_config(tmp_path / "a", weighting=weighting, precompute=precompute)
    pretrain(straight, tiny_data())

    killed = tiny_config(tmp_path / "b", weighting=weighting, precompute=precompute)

    def stop_after_first_epoch(epoch, model):
        if epoch == 0:
            raise Interrupted

    with pytest.raises(Interrupted):
        pretrain(killed, tiny_data(), on_epoch_end=stop_after_first_epoch)
    pretrain(dataclasses.replace(killed, resume=1), tiny_data())
    expected, got = final_weights(straight), final_weights(killed)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0)
    a = safe_torch_load(straight.run_dir() / "checkpoint.pt")["weighting"]
    b = safe_torch_load(killed.run_dir() / "checkpoint.pt")["weighting"]
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=0)


def test_corrupt_checkpoint_falls_back_to_the_previous_one(tmp_path):
    config = tiny_config(tmp_path, epochs=2)
    pretrain(config, tiny_data())
    checkpoint = config.run_dir() / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])  # a torn write
    summary = pretrain(dataclasses.replace(config, resume=1, epochs=3), tiny_data())
    assert safe_torch_load(checkpoint)["epoch"] == 2 and summary["final_losses"]
    rows = (config.run_dir() / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [1, 2, 3]  # the redone epoch's old row was dropped


def test_resuming_another_recipe_is_refused_in_one_line(tmp_path):
    config = tiny_config(tmp_path, epochs=1)
    pretrain(config, tiny_data())
    with pytest.raises(UserError, match="another recipe .--encoder_width 4 there, 6 here"):
        pretrain(dataclasses.replace(config, resume=1, encoder_width=6, epochs=2), tiny_data())
    # a head of another size (was a traceback from load_state_dict) or another learning rate: refused alike
    for changed in ({"projection_dim": 8}, {"lr": 1e-3}):
        with pytest.raises(UserError, match=f"--{next(iter(changed))} "):
            pretrain(dataclasses.replace(config, resume=1, epochs=2, **changed), tiny_data())
    assert pretrain(dataclasses.replace(config, resume=1, epochs=2, monitor_every=0), tiny_data())["epochs"] == 2


def test_single_heads_and_non_finite_loss(tmp_path):
    config = tiny_config(tmp_path, epochs=1, model_heads=(0, 0, 1, 0))
    assert pretrain(config, tiny_data())["tasks"] == ["contrastive"]
    data = tiny_data()
    data.features[:] = np.inf
    with pytest.raises(UserError, match="non-finite loss in task"):
        pretrain(tiny_config(tmp_path, epochs=1, model_heads=(0, 0, 0, 1), experiment_name="nan"), data)


def test_lr_schedule_warms_up_then_decays():
    values = [lr_factor(s, 100, 10, 0.1) for s in range(100)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert values[10] == pytest.approx(1.0) and values[-1] == pytest.approx(0.1, abs=1e-3)
    assert all(a >= b for a, b in zip(values[10:], values[11:]))


# --------------------------------------------------------------------------- the entrypoint, real data
TINY_FLAGS = ["--epochs", "1", "--encoder_width", "4", "--embedding_dim", "8", "--n_variants", "1",
              "--batch_size", "256", "--device", "cpu"]
THESIS_FOUR = ["--model_heads", "1", "1", "1", "1"]


def run_entrypoint(args, tmp_path, launcher=(sys.executable,)):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*launcher, str(REPO / "HAR_centralized" / "train_encoder.py"), *args,
                           "--output_dir", str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)


def test_train_encoder_cli_runs_on_har(tmp_path, har_cache, monkeypatch):
    # the default recipe (rocket alone), with fewer MiniRocket kernels to stay fast
    result = run_entrypoint(["--experiment_name", "cli", *TINY_FLAGS, "--rocket_kernels", "840"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "cli_seed42_tasksrocket" / "summary.json").read_text())
    assert summary["tasks"] == ["rocket"]
    assert summary["data_source"] in ("hapt", "official") and summary["windows"] > 5000
    # stdout is a pipe here: one line per epoch, no carriage-return redraws; the monitor probed the val subjects
    assert "\r" not in result.stdout + result.stderr and result.stdout.count("epoch 1/1 ") == 1
    row = json.loads((tmp_path / "cli_seed42_tasksrocket" / "metrics.jsonl").read_text())
    assert 0 < row["monitor/knn_f1"] <= 1 and 0 < row["monitor/logistic_f1"] <= 1 and "knn_f1=" in result.stdout
    # benchmarks/distillation_gap.py rebuilds the run's target (256 components of its 840 kernels' features)
    # and probes it beside MiniRocket's features and the embedding, on the same draws
    table = tmp_path / "gap.md"
    distillation_gap.main(["--encoder", str(tmp_path / "cli_seed42_tasksrocket"), "--draws", "2", "--fractions", "0.1",
                           "--dims", "4", "--out", str(table)])
    representations_table, per_class_table = table.read_text().split("F1 per class")
    per_class_table, per_subject_table = per_class_table.split("Macro-F1 per test subject")
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[1:] for line in representations_table.splitlines()
            if line.startswith("| ") and not line.startswith("| representation")}
    assert {k: v[0] for k, v in rows.items()} == {"minirocket": "840", "target (pca 256)": "256", "pca 4": "4",
                                                  "encoder": "8", "channel means": "9", "encoder + channel means": "17"}
    assert all(0 < float(v[1].split()[0]) <= 1 for v in rows.values()) and "R^2" in representations_table
    # and where the gap is: each activity's F1 for teacher, target and student, and the student's difference
    header, *per_class = [[v.strip(" |") for v in line.split(" | ")] for line in per_class_table.splitlines()
                          if line.startswith("| ")]
    assert [r[0] for r in per_class] == list(CLASS_NAMES["har6"])
    for row in per_class:
        values = dict(zip(header[1:], map(float, row[1:])))
        assert all(0 <= values[n] <= 1 for n in ("minirocket", "encoder", "encoder + channel means"))
        assert values["encoder - minirocket"] == pytest.approx(values["encoder"] - values["minirocket"], abs=2e-3)
    # and in whom: one row per test subject
    subjects = [line.split(" | ") for line in per_subject_table.splitlines() if line.startswith("| ")][1:]
    assert [int(r[0][2:]) for r in subjects] == np.unique(load_har("test").subject).tolist()
    # and, for the subject the student loses most on, what it predicted instead
    worst = per_subject_table.split("Subject ")[1].split("'s windows at 10% labels")[0]
    assert int(worst) in np.unique(load_har("test").subject)
    # benchmarks/subject_norm.py: each representation with and without per-subject normalisation, val and test
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))  # it shares distillation_gap's scoring, as a script
    spec = importlib.util.spec_from_file_location("subject_norm", REPO / "benchmarks" / "subject_norm.py")
    subject_norm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(subject_norm)
    table = tmp_path / "subject_norm.md"
    subject_norm.main(["--encoder", str(tmp_path / "cli_seed42_tasksrocket"), "--draws", "2", "--fractions", "0.1",
                       "--minirocket_kernels", "84", "--out", str(table)])
    rows = [line.split(" | ") for line in table.read_text().splitlines() if line.startswith("| ")][1:]
    assert [(r[0][2:], r[1]) for r in rows] == [("encoder", "none"), ("encoder", "zscore"), ("encoder", "adabn"),
                                                ("minirocket", "none"), ("minirocket", "zscore"),
                                                ("expert_features", "none"), ("expert_features", "zscore")]
    assert all(0 < float(cell.split()[0]) <= 1 for r in rows for cell in r[2:])
    assert "vs none" in rows[1][2] and "vs minirocket" in rows[2][2] and "vs" not in rows[3][2]


def test_the_gap_on_train_folds_scores_each_subject_by_labels_of_the_others_only(monkeypatch):
    rng = np.random.default_rng(0)
    subject = np.repeat(np.arange(1, 9), 30)  # 8 train subjects, 30 windows each
    y = np.tile(np.arange(6), 40)
    index = np.arange(len(y), dtype=np.float64)[:, None]  # column 0 names the window
    representation = {"train": np.hstack([index, rng.normal(size=(len(y), 3))])}
    labels = {"train": y, "train_subject": subject}
    calls = []

    def recording_probe(probe, x, labelled_y, pool_x, num_classes):
        labelled, pool = x[:, 0].astype(int), pool_x[:, 0].astype(int)

        def predict(scored_x):
            scored = scored_x[:, 0].astype(int)
            calls.append((set(subject[labelled]), set(subject[pool]), scored))
            return np.eye(num_classes)[y[scored]]  # a perfect probe: every score is 1
        return predict

    monkeypatch.setattr(distillation_gap, "fit_probe", recording_probe)
    macro_f1, _, per_subject, _ = distillation_gap.score(representation, labels, 0.2, 2, "train_folds", folds=4)
    assert len(calls) == 2 * 4 and macro_f1.tolist() == [1.0, 1.0] and sorted(per_subject) == list(range(1, 9))
    for draw in (calls[:4], calls[4:]):
        scored = np.concatenate([c[2] for c in draw])
        assert sorted(scored.tolist()) == list(range(len(y)))  # every window scored once a draw
        for labelled_subjects, pool_subjects, scored_windows in draw:
            held = set(subject[scored_windows])
            assert len(held) == 2 and not held & labelled_subjects and not held & pool_subjects


def test_heldout_subjects_pretrains_each_fold_without_its_subjects_and_reuses_the_runs(tmp_path, har_cache,
                                                                                       monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    flags = ["--folds", "2", "--draws", "2", "--fractions", "0.1", "--kernels", "84", "--output_dir", str(tmp_path),
             "--selftrain_fractions", "0.1", "--selftrain_rounds", "2",
             "--pretrain_flags", " ".join([*TINY_FLAGS, "--pretrain_data", "labelled", "--rocket_kernels", "84",
                                           "--rocket_dim", "4"]), "--out", str(tmp_path / "heldout.md")]
    heldout_subjects.main(flags)
    train_subjects = np.unique(load_har("train").subject).tolist()
    folds = [train_subjects[0::2], train_subjects[1::2]]
    for k, held in enumerate(folds):
        pretrained = json.loads((tmp_path / f"without_fold{k}_seed42_tasksrocket" / "summary.json").read_text())
        assert sorted(pretrained["subjects"]) == sorted(set(train_subjects) - set(held))
    table = (tmp_path / "heldout.md").read_text()
    rows = [line.split(" | ") for line in table.splitlines() if line.startswith("| held out")]
    assert [(r[1], r[2]) for r in rows] == [(n, m) for n in ("encoder", "minirocket", "encoder+minirocket")
                                            for m in ("linear", "selftrain")]
    assert all(0 < float(r[3].split()[0]) <= 1 for r in rows)
    assert rows[1][3].count("[") == 3 and "vs its mode" in rows[1][3]  # to MiniRocket's probe and self-training
    per_subject = table.split("per held-out subject")[1]
    assert [int(p.split()[0]) for p in per_subject.split("): ")[1].split(", ")] == train_subjects
    # finished fold runs are reused: no second pretraining
    monkeypatch.setattr(heldout_subjects, "pretrain", lambda *a, **k: pytest.fail("a finished fold pretrained again"))
    heldout_subjects.main(flags)


@pytest.mark.parametrize("mode", ["linear", "selftrain"])
def test_heldout_predict_classifies_held_out_rows_from_the_pool_labels_alone(mode):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 40)
    x = rng.normal(size=(120, 5)) + 3 * np.eye(5)[y]  # one class a direction: linearly separable
    scored, pool = np.arange(0, 120, 4), np.setdiff1d(np.arange(120), np.arange(0, 120, 4))
    predicted = heldout_subjects.predict(x[pool], y[pool], x[scored], 0.2, 0, 3, mode, rounds=2)
    # only the pool's labels reach predict: the held-out rows' are not even passed
    assert (predicted == y[scored]).mean() > 0.8


@pytest.mark.parametrize("args, message", [
    (["--model_heads", "1", "1"], "four 0/1 values"),
    (["--weighting", "nope"], "invalid choice"),
    (["--no_such_flag"], "unrecognized arguments"),
])
def test_train_encoder_cli_bad_input_is_one_line(tmp_path, args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_encoder.main(args + ["--output_dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("weighting, port", [("uncertainty", "29731"), ("cagrad", "29732")])
def test_torchrun_two_processes(tmp_path, har_cache, weighting, port):
    # cagrad combines per-task gradients itself: DDP runs under no_sync and gradients are averaged by hand
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    result = run_entrypoint(["--experiment_name", "ddp", *TINY_FLAGS, *THESIS_FOUR, "--batch_size", "128",
                             "--weighting", weighting],
                            tmp_path, launcher=(torchrun, "--nproc_per_node", "2", "--master_port", port))
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "ddp_seed42_heads1111" / "summary.json").read_text())
    assert summary["world_size"] == 2
    rows = (tmp_path / "ddp_seed42_heads1111" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 1  # only rank 0 logs
    assert result.stdout.count("done in") == 1


# --------------------------------------------------------------------------- nothing lost
def files_of(run):
    return {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}


def test_a_finished_run_is_never_replaced_without_overwrite(tmp_path):
    config = tiny_config(tmp_path, epochs=1)
    pretrain(config, tiny_data())
    before = files_of(config.run_dir())
    with pytest.raises(UserError, match="already holds a run: --resume 1 continues it, --overwrite 1 replaces it"):
        tiny_config(tmp_path, epochs=1).check_environment()  # the config check, before any data is loaded
    with pytest.raises(UserError, match="already holds a run"):
        pretrain(config, tiny_data())  # and the loop's own check
    assert files_of(config.run_dir()) == before
    summary = pretrain(dataclasses.replace(config, overwrite=1, seed=42), tiny_data(seed=1))
    assert summary["epochs"] == 1 and files_of(config.run_dir())["encoder.pt"] != before["encoder.pt"]


def test_resuming_a_finished_run_says_so_and_changes_nothing(tmp_path, capsys):
    config = tiny_config(tmp_path, epochs=2)
    first = pretrain(config, tiny_data())
    before = files_of(config.run_dir())
    again = pretrain(dataclasses.replace(config, resume=1), tiny_data())
    assert "has finished all 2 epochs" in capsys.readouterr().out
    assert again == json.loads(json.dumps(first)) and files_of(config.run_dir()) == before


def test_a_kill_before_the_last_checkpoint_or_the_summary_loses_nothing(tmp_path, monkeypatch):
    straight = tiny_config(tmp_path / "a")
    pretrain(straight, tiny_data())
    killed = tiny_config(tmp_path / "b")
    original = RunFolder.save_checkpoint

    def die_before_the_last_checkpoint(self, state):
        if state["epoch"] == 2:
            raise Interrupted  # the encoder of epoch 3 is written, its checkpoint is not
        original(self, state)

    monkeypatch.setattr(RunFolder, "save_checkpoint", die_before_the_last_checkpoint)
    with pytest.raises(Interrupted):
        pretrain(killed, tiny_data())
    monkeypatch.setattr(RunFolder, "save_checkpoint", original)
    resumed = dataclasses.replace(killed, resume=1)
    pretrain(resumed, tiny_data())
    run, reference = killed.run_dir(), straight.run_dir()
    assert [json.loads(r)["epoch"] for r in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    for key, value in safe_torch_load(reference / "encoder.pt")["state_dict"].items():
        assert torch.equal(safe_torch_load(run / "encoder.pt")["state_dict"][key], value)
    # a kill after the last checkpoint but before the summary: the resume writes the summary it would have
    final = json.loads((run / "summary.json").read_text())
    (run / "summary.json").unlink()
    (run / "encoder.pt").unlink()
    rebuilt = pretrain(resumed, tiny_data())
    assert rebuilt["final_losses"] == final["final_losses"] and (run / "encoder.pt").exists()


# --------------------------------------------------------------------------- the training monitor
def probed_data(n=48, seed=0):
    data = tiny_data(n, seed)
    labels = np.arange(n) % 3
    data.probe = ProbeSet(data.x, labels, data.x[:24], labels[:24])
    return data


def test_the_monitor_logs_probe_scores_and_leaves_the_weights_alone(tmp_path):
    watched = tiny_config(tmp_path, experiment_name="watched", monitor_every=2)
    pretrain(watched, probed_data())
    rows = [json.loads(line) for line in (watched.run_dir() / "metrics.jsonl").read_text().splitlines()]
    assert ["monitor/knn_f1" in r for r in rows] == [False, True, True]  # every 2nd epoch and the last
    assert all(0 <= r["monitor/logistic_f1"] <= 1 and r["monitor/seconds"] > 0 for r in rows[1:])
    # with the probes, each task's share of the weighted gradient on the encoder (which task drives it)
    shares = [{k: v for k, v in r.items() if k.startswith("grad_share/")} for r in rows]
    assert [len(s) for s in shares] == [0, 4, 4] and all(abs(sum(s.values()) - 1) < 1e-3 for s in shares[1:])
    assert all(v > 0 for v in shares[1].values())
    # benchmarks/task_shares.py reads them back beside the weighted-loss shares: the ends and the monitor epochs
    lines = task_shares.table([watched.run_dir()]).splitlines()
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| 1", "| 2", "| 3"]
    grad = float(lines[3].split(" | ")[2].split(" ± ")[0])
    assert grad == pytest.approx(shares[1]["grad_share/augmentation"], abs=0.006)
    assert lines[2].split(" | ")[2] == ""  # epoch 1: no gradient measured
    unwatched = tiny_config(tmp_path, experiment_name="unwatched", monitor_every=0)
    pretrain(unwatched, probed_data())
    assert all(torch.equal(a, b) for a, b in zip(final_weights(watched).values(), final_weights(unwatched).values()))
    assert "monitor/knn_f1" not in (unwatched.run_dir() / "metrics.jsonl").read_text()


def test_knn_votes_for_the_nearest_cluster():
    train = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
    assert knn_predict(train, np.array([0, 0, 1, 1]), np.array([[1, 0.2], [0.2, 1]]), k=2).tolist() == [0, 1]


def test_tensorboard_gets_the_metrics_rows(tmp_path):
    config = tiny_config(tmp_path, tensorboard=1, monitor_every=1)
    pretrain(config, probed_data())
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(config.run_dir() / "tensorboard"))
    events.Reload()
    assert {"loss/contrastive", "monitor/knn_f1", "lr"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("monitor/knn_f1")] == [1, 2, 3]


def test_tensorboard_missing_is_one_line(tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with pytest.raises(SystemExit) as exit_info:
        train_encoder.main(["--tensorboard", "1", "--output_dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "pip install tensorboard" in err and len(err.strip().splitlines()) == 1


def test_resume_of_a_finished_run_without_its_checkpoint_is_refused(tmp_path):
    config = tiny_config(tmp_path)
    pretrain(config, tiny_data())
    for checkpoint in config.run_dir().glob("checkpoint.pt*"):  # the latest and the previous one
        checkpoint.unlink()
    before = files_of(config.run_dir())
    with pytest.raises(UserError, match="holds a finished run but no checkpoint.pt"):
        pretrain(dataclasses.replace(config, resume=1), tiny_data())
    assert files_of(config.run_dir()) == before


def test_distillation_gap_refuses_a_run_without_the_rocket_task_in_one_line(tmp_path, capsys):
    run = tmp_path / "seed_four"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model_heads": [1, 1, 1, 1], "tasks": []}))
    (run / "encoder.pt").write_bytes(b"")
    for folder, message in ((run, "did not train the rocket task"), (tmp_path / "absent", "not a finished")):
        with pytest.raises(SystemExit) as exit_info:
            distillation_gap.main(["--encoder", str(folder)])
        err = capsys.readouterr().err
        assert exit_info.value.code != 0 and message in err and len(err.strip().splitlines()) == 1
