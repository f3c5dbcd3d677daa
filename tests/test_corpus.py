"""The on-disk corpus (data_processing/corpus.py, data/prepare_corpus.py): written in shards, resumed after a
kill or a full disk, refused in one line when its files disagree, streamed by pretraining with the same windows,
batches and weights as the in-memory path; the rocket teacher fit on a sample; test subjects' windows found by
content; a recording share for the scaling curve; torchrun reading a corpus."""
import dataclasses
import errno
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from common.config import parse_config
from common.training import pretrain
from data import make_example_recordings, prepare_corpus
from data_processing import corpus as corpus_module
from data_processing.corpus import Corpus, CorpusWriter, prepare
from data_processing.leakage import known_fingerprints, windows_seen
from data_processing.minirocket import _fit_teacher, fit_sample, minirocket_pca
from data_processing.pretext import PretextBatches, PretextSpec
from data_processing.recordings import WindowSettings, channel_statistics, load_recordings
from ground.errors import UserError
from har_task import HARTask
from har_task.task import kept_recordings
from HAR_centralized.config import HARClassifierConfig, HARPretrainConfig
from tests.test_training import TINY_FLAGS, run_entrypoint

SETTINGS = WindowSettings(0.0, 50.0, 128, 64)


def example(tmp_path, name="a", subjects=5, seed=0):
    path = tmp_path / f"{name}.npz"
    make_example_recordings.main(["--format", "npz", "--out", str(path), "--subjects", str(subjects),
                                  "--seed", str(seed)])
    return f"npz:{path}"


def prepared(tmp_path, datasets, shard_windows=100, name="corpus"):
    index, failures = prepare(tmp_path / name, datasets, SETTINGS, shard_windows, log=lambda *a: None)
    assert not failures
    return tmp_path / name, index


def test_a_prepared_corpus_holds_the_recordings_windows_ids_and_statistics(tmp_path):
    a, b = example(tmp_path, "a"), example(tmp_path, "b", seed=1)
    folder, index = prepared(tmp_path, [a, b], shard_windows=100)
    corpus = Corpus(folder)
    windows = [load_recordings(d, SETTINGS) for d in (a, b)]
    x = np.concatenate([w.x for w in windows])
    assert len(index["shards"]) >= 2 and all(s["sources"] for s in index["shards"])  # shards end at sources
    np.testing.assert_array_equal(corpus.windows()[:], x)
    np.testing.assert_array_equal(corpus.subject, np.concatenate([w.subject for w in windows]))
    np.testing.assert_array_equal(corpus.label, np.concatenate([w.y for w in windows]))
    # recordings are numbered corpus-wide: b's first recording follows a's last
    assert corpus.recording[len(windows[0].x)] == corpus.recording[len(windows[0].x) - 1] + 1
    picked = np.array([len(x) - 1, 3, 150])  # any order, across shards
    np.testing.assert_array_equal(corpus.windows()[picked], x[picked])
    expected = channel_statistics(x[np.isin(corpus.subject, [1, 2])])
    got = corpus.statistics([1, 2])
    np.testing.assert_allclose(got["mean"], expected["mean"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got["std"], expected["std"], rtol=1e-5)
    kept = corpus.windows(corpus.subject == 2, got)
    np.testing.assert_allclose(kept[:], (x[corpus.subject == 2] - np.float32(got["mean"])[:, None])
                               / np.float32(got["std"])[:, None], rtol=1e-6, atol=1e-6)
    # a rerun adds nothing: every source is in
    _, again = prepared(tmp_path, [a, b], shard_windows=100)
    assert again["shards"] == index["shards"]


def test_a_killed_or_full_disk_preparation_resumes_after_its_last_whole_shard(tmp_path, monkeypatch):
    datasets = [example(tmp_path, "a"), example(tmp_path, "b", seed=1), example(tmp_path, "c", seed=2)]
    _, clean = prepared(tmp_path, datasets, name="clean")
    real_save, saves = np.save, []

    def full_disk(f, array, **kwargs):
        saves.append(1)
        if len(saves) > 2:  # the second shard's windows
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(f, array, **kwargs)

    monkeypatch.setattr(corpus_module.np, "save", full_disk)
    with pytest.raises(UserError, match=r"cannot write .*shards/00001.npy: No space left on device .*rerun"):
        prepare(tmp_path / "corpus", datasets, SETTINGS, 100, log=lambda *a: None)
    monkeypatch.undo()
    half = json.loads((tmp_path / "corpus" / "corpus.json").read_text())
    assert len(half["shards"]) == 1 and not half["complete"]
    assert not list((tmp_path / "corpus" / "shards").glob("*.tmp*"))  # nothing half-written left
    with pytest.raises(UserError, match="did not finish: rerun it"):
        Corpus(tmp_path / "corpus")
    _, resumed = prepared(tmp_path, datasets)
    assert [s["digest"] for s in resumed["shards"]] == [s["digest"] for s in clean["shards"]]


@pytest.mark.parametrize("spoil, words", [
    (lambda f: f.write_bytes(f.read_bytes()[:1000]), "truncated or not an array"),
    (lambda f: f.unlink(), "is missing"),
    (lambda f: np.save(f, np.zeros((3, 6, 128), np.float32)), "the index says float32"),
    (lambda f: np.save(f.with_name("00001.ids.npy"), np.zeros((3, 2), np.int64)), r"ids of shape \(3, 2\)"),
])
def test_a_corpus_whose_files_disagree_is_one_line_naming_the_file_and_a_rerun_rebuilds_it(tmp_path, spoil, words,
                                                                                            capsys):
    datasets = [example(tmp_path, "a"), example(tmp_path, "b", seed=1)]
    folder, index = prepared(tmp_path, datasets)
    shard = folder / "shards" / "00001.npy"
    spoil(shard)
    with pytest.raises(UserError, match=f"corpus .*{words}.*rerun the preparation") as err:
        Corpus(folder)
    assert "00001" in str(err.value) and "\n" not in str(err.value)
    _, rebuilt = prepared(tmp_path, datasets)
    assert "prepared again" in capsys.readouterr().out
    assert [s["digest"] for s in rebuilt["shards"]] == [s["digest"] for s in index["shards"]]
    assert len(Corpus(folder).windows()) == sum(s["windows"] for s in index["shards"])


def test_an_index_that_disagrees_with_its_shards_is_refused(tmp_path):
    folder, index = prepared(tmp_path, [example(tmp_path)])
    Corpus(folder).verify()
    spoilt = json.loads(json.dumps(index))
    subject = next(iter(spoilt["shards"][0]["subjects"]))
    spoilt["shards"][0]["subjects"][subject][1][0] += 1.0
    (folder / "corpus.json").write_text(json.dumps(spoilt))
    with pytest.raises(UserError, match=r"channel statistics in .*corpus.json disagree with .*00000.npy"):
        Corpus(folder).verify()
    windows = np.load(folder / "shards" / "00000.npy")
    windows[0, 0, 0] += 1
    np.save(folder / "shards" / "00000.npy", windows)
    with pytest.raises(UserError, match=r"00000.npy does not hold the windows its index describes"):
        Corpus(folder).verify()
    index["shards"][0]["windows"] += 1
    (folder / "corpus.json").write_text(json.dumps(index))
    with pytest.raises(UserError, match=r"00000.npy holds float32 windows of shape .* the index says"):
        Corpus(folder)
    (folder / "corpus.json").write_text("{not json")
    with pytest.raises(UserError, match="unreadable or not JSON"):
        Corpus(folder)
    CorpusWriter(tmp_path / "corpus2", {"window": 64, "channels": ["a"]}).close()
    with pytest.raises(UserError, match="other settings"):
        CorpusWriter(tmp_path / "corpus2", {"window": 32, "channels": ["a"]})


def test_prepare_leaves_a_bad_file_out_in_one_line_and_prepares_the_others(tmp_path, capsys):
    good = example(tmp_path)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(SystemExit) as exit_info:
        prepare_corpus.main(["--out", str(tmp_path / "corpus"), "--datasets", good, f"npz:{bad}", "--step", "64"])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 1 and "left out: " in out and str(bad) in out and "Traceback" not in out + err
    assert len(Corpus(tmp_path / "corpus").windows()) == len(load_recordings(good, SETTINGS).x)


def tiny_own_config(tmp_path, dataset, *flags):
    return parse_config(HARPretrainConfig, [*TINY_FLAGS, "--dataset", dataset, "--tasks", "rocket", "augmentation",
                                            "--rocket_kernels", "84", "--rocket_dim", "4", "--batch_size", "16",
                                            "--epochs", "2", "--output_dir", str(tmp_path / "runs"), "--cache_dir",
                                            str(tmp_path / "cache"), *flags])


def test_pretraining_from_a_corpus_is_the_in_memory_run_bit_for_bit(tmp_path):
    dataset = example(tmp_path)
    folder, _ = prepared(tmp_path, [dataset])
    memory = tiny_own_config(tmp_path, dataset, "--experiment_name", "memory")
    streamed = tiny_own_config(tmp_path, dataset, "--experiment_name", "streamed", "--pretrain_corpus", str(folder))
    in_memory, from_disk = HARTask(memory).pretrain_data(), HARTask(streamed).pretrain_data()
    assert type(from_disk.x).__name__ == "ShardedWindows" and len(from_disk.x) == len(in_memory.x)
    np.testing.assert_array_equal(from_disk.x[:], in_memory.x)  # the train subjects' windows, standardised alike
    assert from_disk.record["standardisation"] == in_memory.record["standardisation"]
    pretrain(memory, in_memory)
    pretrain(streamed, from_disk)
    weights = [torch.load(c.run_dir() / "encoder.pt", weights_only=True)["state_dict"] for c in (memory, streamed)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    summary = json.loads((streamed.run_dir() / "summary.json").read_text())
    assert summary["corpus"] == str(folder) and summary["split"].startswith("corpus")


def test_a_corpus_is_refused_when_its_step_or_shape_is_not_the_runs(tmp_path):
    dataset = example(tmp_path)
    folder, _ = prepared(tmp_path, [dataset])
    config = tiny_own_config(tmp_path, dataset, "--pretrain_corpus", str(folder), "--window_step", "32")
    with pytest.raises(UserError, match="cut at a step of 64 samples, --window_step is 32"):
        HARTask(config).pretrain_data()
    with pytest.raises(UserError, match="not a prepared corpus"):
        HARTask(tiny_own_config(tmp_path, dataset, "--pretrain_corpus", str(tmp_path))).pretrain_data()


def test_features_of_a_corpus_are_computed_chunked_on_first_use_and_scaled_like_the_in_memory_ones(tmp_path):
    dataset = example(tmp_path)
    folder, _ = prepared(tmp_path, [dataset])
    streamed = HARTask(tiny_own_config(tmp_path, dataset, "--pretrain_corpus", str(folder))).pretrain_data()
    features = streamed.features
    assert not features.path.exists()  # nothing computed until a batch reads them
    features.chunk_size = 7
    in_memory = HARTask(tiny_own_config(tmp_path, dataset)).pretrain_data()
    # the in-memory path scales by the train subjects' bounds, the corpus by its windows': the same windows here
    np.testing.assert_allclose(features[np.arange(len(features))], in_memory.features, atol=1e-5)
    assert features.path.exists()


def test_the_rocket_teacher_fit_on_a_sample_writes_every_windows_targets_in_chunks(tmp_path):
    x = np.random.default_rng(0).normal(size=(60, 3, 64)).astype(np.float32)
    sample = fit_sample(60, 25, seed=3)
    assert len(sample) == 25 and np.all(np.diff(sample) > 0) and np.array_equal(sample, fit_sample(60, 25, 3))
    targets = minirocket_pca(x, 5, 84, 3, tmp_path, fit_windows=25, chunk_size=7)
    teacher = _fit_teacher(x[sample], 5, 84, 3)
    assert isinstance(targets, np.memmap) and targets.shape == (60, 5)
    np.testing.assert_allclose(targets, teacher.project(x), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(targets[sample], teacher.clean, rtol=1e-4, atol=1e-5)
    # at or above the corpus size the fit is the whole-set fit, under the whole-set cache name
    whole = minirocket_pca(x, 5, 84, 3, tmp_path, fit_windows=60)
    np.testing.assert_array_equal(whole, minirocket_pca(x, 5, 84, 3, tmp_path))
    assert len(list(Path(tmp_path).glob("minirocket_pca_*.npy"))) == 2


def test_test_subjects_windows_in_extra_recordings_mark_the_encoder_transductive(tmp_path):
    dataset = example(tmp_path, subjects=5)
    config = tiny_own_config(tmp_path, dataset)
    task = HARTask(config)
    test_subjects = task.own.subjects["test"]
    raw = np.load(dataset.split(":", 1)[1])
    leak = np.isin(raw["subject"], test_subjects)
    np.savez(tmp_path / "leak.npz", x=raw["x"][leak], subject=raw["subject"][leak] + 100, sample_rate_hz=100.0)
    np.savez(tmp_path / "fresh.npz", x=np.load(example(tmp_path, "other", seed=7).split(":", 1)[1])["x"][:20],
             sample_rate_hz=100.0)
    fresh = HARTask(dataclasses.replace(config, pretrain_extra=(f"npz:{tmp_path / 'fresh.npz'}",))).pretrain_data()
    assert "transductive" not in fresh.record and fresh.record["pretrain_extra"][0]["test_windows_seen"] == 0
    leaked = HARTask(dataclasses.replace(config, pretrain_extra=(f"npz:{tmp_path / 'leak.npz'}",))).pretrain_data()
    seen = leaked.record["transductive"]["test_windows_seen"]
    assert seen >= 0.9 * leak.sum()  # relabelled subjects, resampled, standardised: found by content
    classifier = parse_config(HARClassifierConfig, ["--dataset", dataset])
    with pytest.raises(UserError, match=f"pretrained on {seen} window.* repeat the test subjects.*--transductive 1"):
        HARTask(classifier).for_encoder(leaked.record, "enc")
    _, notes = HARTask(dataclasses.replace(classifier, transductive=1)).for_encoder(leaked.record, "enc")
    assert notes["transductive"]["test_windows_seen"] == seen


def known_fingerprints_find_a_window_cut_at_another_offset_and_ignore_flat_stretches():
    rng = np.random.default_rng(0)
    signal = rng.normal(size=(3, 2000)).astype(np.float32)
    test = np.stack([signal[:, s : s + 128] for s in range(0, 1800, 64)])
    shifted = np.stack([signal[:, s : s + 128] for s in range(13, 1800, 100)])
    other = rng.normal(size=(10, 3, 128)).astype(np.float32)
    flat = np.zeros((4, 3, 128), np.float32)
    known = known_fingerprints(np.concatenate([test, flat]))
    assert windows_seen(known, shifted) == len(shifted)
    assert windows_seen(known, other) == 0 and windows_seen(known, flat) == 0


def test_a_recording_share_is_drawn_by_seed_and_keeps_whole_recordings():
    recording = np.repeat(np.arange(20), 5)
    kept = kept_recordings(recording, 0.25, seed=42)
    assert len(np.unique(recording[kept])) == 5 and kept.sum() == 25
    assert np.array_equal(kept, kept_recordings(recording, 0.25, 42))
    assert not np.array_equal(kept, kept_recordings(recording, 0.25, 43))
    assert kept_recordings(recording, 1.0, 42).all()


def test_ranks_read_disjoint_shares_that_cover_the_epoch():
    x = np.arange(40, dtype=np.float32)[:, None, None] * np.ones((1, 2, 8), np.float32)
    read = []
    for rank in range(2):
        batches = PretextBatches(x, np.zeros((40, 1), np.float32), 5, PretextSpec(), [], "on_the_fly", rank=rank,
                                 world_size=2)
        read.append(np.concatenate([b["x"][:, 0, 0].numpy() for b in batches.epoch(3)]).astype(int))
    assert not set(read[0]) & set(read[1]) and sorted([*read[0], *read[1]]) == list(range(40))


def test_torchrun_two_processes_stream_one_corpus_and_build_its_targets_once(tmp_path):
    dataset = example(tmp_path, subjects=6)
    folder, _ = prepared(tmp_path, [dataset])
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    result = run_entrypoint(["--experiment_name", "ddp", *TINY_FLAGS, "--dataset", dataset, "--pretrain_corpus",
                             str(folder), "--tasks", "rocket", "--rocket_kernels", "84", "--rocket_dim", "4",
                             "--batch_size", "8", "--cache_dir", str(tmp_path / "cache")],
                            tmp_path, launcher=(torchrun, "--nproc_per_node", "2", "--master_port", "29741"))
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "ddp_seed42_tasksrocket" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["corpus"] == str(folder)
    assert len(list((tmp_path / "cache").glob("minirocket_pca_*.npy"))) == 1  # rank 0 built them, rank 1 read them
    assert result.stdout.count("done in") == 1


def test_precomputed_views_the_disk_cannot_hold_are_refused_before_writing(tmp_path, monkeypatch):
    from data_processing import pretext
    from common.tasks import TASKS
    x = np.random.default_rng(0).normal(size=(64, 3, 32)).astype(np.float32)
    monkeypatch.setattr(pretext.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10 * 2**30, 0, 2**30 + 1000))
    with pytest.raises(UserError, match=r"precomputed views of 64 inputs x 8 variants take .* GiB free: "
                                        r"--precompute 0 makes them per batch"):
        pretext.PrecomputedViews(x, PretextSpec(), [TASKS["reconstruction"]], cache_dir=tmp_path)
    assert not list(tmp_path.glob("pretext_*"))
