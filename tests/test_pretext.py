import numpy as np
import pytest
import torch

from common.tasks import THESIS_TASKS, TASKS
from data_processing.pretext import PrecomputedViews, PretextBatches, PretextSpec, generator_for

KEYS = {"x", "features", "aug_x", "aug_label", "view1", "view2", "mask", "masked_x"}
ALL_TASKS = [TASKS[name] for name in THESIS_TASKS]


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(40, 9, 128)).astype(np.float32), rng.normal(size=(40, 7)).astype(np.float32)


def test_cache_is_built_once_per_task_and_keyed_by_spec(data, tmp_path):
    x, _ = data
    spec = PretextSpec(n_variants=2, seed=1)
    first = PrecomputedViews(x, spec, ALL_TASKS, cache_dir=tmp_path, chunk_size=16)
    second = PrecomputedViews(x, spec, ALL_TASKS, cache_dir=tmp_path)
    assert first.built_now and not second.built_now and first.paths == second.paths
    # one folder per task that stores targets (features come with the data)
    assert set(first.paths) == {"augmentation", "reconstruction", "contrastive"}
    assert first.arrays["aug_x"].shape == (2, 40, 9, 128) and first.arrays["aug_x"].dtype == np.float16
    other = PrecomputedViews(x, PretextSpec(n_variants=2, seed=2), ALL_TASKS, cache_dir=tmp_path)
    assert other.paths["contrastive"] != first.paths["contrastive"]
    # a single-task run reuses the multi-task run's folder of that task
    alone = PrecomputedViews(x, spec, [TASKS["contrastive"]], cache_dir=tmp_path)
    assert not alone.built_now and set(alone.arrays) == {"view1", "view2"}
    # a cache whose completion marker is missing (killed build) is rebuilt
    (first.paths["contrastive"] / "meta.json").unlink()
    assert PrecomputedViews(x, spec, ALL_TASKS, cache_dir=tmp_path).built_now


def test_precomputed_views_equal_what_the_tasks_make(data, tmp_path):
    x, _ = data
    spec = PretextSpec(n_variants=1, seed=3)
    views = PrecomputedViews(x, spec, ALL_TASKS, cache_dir=tmp_path, chunk_size=64)
    direct = {}
    for task in ALL_TASKS:
        direct.update(task.make_targets(torch.as_tensor(x), generator_for("precomputed", 3, 0, task.name), spec))
    np.testing.assert_allclose(views.arrays["view1"][0], direct["view1"].numpy(), atol=2e-2, rtol=1e-2)
    np.testing.assert_array_equal(views.arrays["aug_label"][0], direct["aug_label"].numpy())
    np.testing.assert_array_equal(views.arrays["mask"][0], direct["mask"].numpy())


@pytest.mark.parametrize("mode", ["precomputed", "on_the_fly"])
def test_batches_have_every_target_and_repeat_per_epoch(data, tmp_path, mode):
    x, f = data
    spec = PretextSpec(n_variants=2, seed=0)
    views = PrecomputedViews(x, spec, ALL_TASKS, cache_dir=tmp_path) if mode == "precomputed" else None
    batches = PretextBatches(x, f, 16, spec, ALL_TASKS, mode, views)
    epoch0 = list(batches.epoch(0))
    assert len(epoch0) == len(batches) == 2
    batch = epoch0[0]
    assert set(batch) == KEYS
    assert batch["x"].dtype == batch["aug_x"].dtype == torch.float32 and batch["aug_label"].dtype == torch.int64
    assert (batch["masked_x"][batch["mask"]] == 0).all()
    again = list(batches.epoch(0))
    for key in KEYS:
        torch.testing.assert_close(again[0][key], batch[key])
    assert not torch.equal(list(batches.epoch(1))[0]["x"], batch["x"])


def test_only_the_active_tasks_targets_are_made(data):
    x, f = data
    batch = next(PretextBatches(x, f, 16, PretextSpec(), [TASKS["reconstruction"]], "on_the_fly").epoch(0))
    assert set(batch) == {"x", "mask", "masked_x"}  # features only for a task that reads them


def test_a_tasks_targets_do_not_depend_on_the_other_tasks(data):
    x, f = data
    alone = next(PretextBatches(x, f, 16, PretextSpec(), [TASKS["contrastive"]], "on_the_fly").epoch(3))
    together = next(PretextBatches(x, f, 16, PretextSpec(), ALL_TASKS, "on_the_fly").epoch(3))
    torch.testing.assert_close(alone["view1"], together["view1"])


def test_federated_epoch_keys_never_collide():
    # (round, local epoch) keys: every pair gives its own data order, for any number of rounds and epochs
    x = np.arange(64, dtype=np.float32).reshape(64, 1, 1).repeat(3, 1)
    batches = PretextBatches(x, np.zeros((64, 1), np.float32), 8, PretextSpec(), [], "on_the_fly")
    orders = {tuple(next(batches.epoch((r, e)))["x"][:, 0, 0].tolist()) for r in range(40) for e in range(40)}
    assert len(orders) == 1600


def test_ranks_get_disjoint_shards(data, tmp_path):
    x, f = data
    spec = PretextSpec(n_variants=1)
    seen = []
    for rank in range(2):
        batches = PretextBatches(x, f, 8, spec, ALL_TASKS, "on_the_fly", rank=rank, world_size=2)
        seen.append({tuple(row[0, :4].tolist()) for b in batches.epoch(0) for row in b["x"]})
    assert not seen[0] & seen[1] and len(seen[0]) == len(seen[1]) == 16


def test_a_cache_holding_nan_names_itself_and_how_to_rebuild(data, tmp_path):
    from ground.errors import UserError

    x, f = data
    spec = PretextSpec(n_variants=1)
    views = PrecomputedViews(x, spec, ALL_TASKS, cache_dir=tmp_path)
    folder = views.paths["contrastive"]
    view1 = np.load(folder / "view1.npy", mmap_mode="r+")  # header intact, contents corrupted
    view1[0, :] = np.nan
    view1.flush()
    views = PrecomputedViews(x, spec, ALL_TASKS, cache_dir=tmp_path)
    with pytest.raises(UserError, match=f"{folder}.*delete that folder"):
        list(PretextBatches(x, f, 16, spec, ALL_TASKS, "precomputed", views).epoch(0))
    bad = x.copy()
    bad[3, 0, 0] = np.nan
    with pytest.raises(UserError, match="check the data"):
        PrecomputedViews(bad, spec, [TASKS["contrastive"]], cache_dir=tmp_path)
