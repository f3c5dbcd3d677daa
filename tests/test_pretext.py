import numpy as np
import pytest
import torch

from data_processing.pretext import PrecomputedViews, PretextBatches, PretextSpec

KEYS = {"x", "features", "aug_x", "aug_label", "view1", "view2", "mask", "masked_x"}


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(40, 9, 128)).astype(np.float32), rng.normal(size=(40, 7)).astype(np.float32)


def test_cache_is_built_once_and_keyed_by_spec(data, tmp_path):
    x, _ = data
    spec = PretextSpec(n_variants=2, seed=1)
    first = PrecomputedViews(x, spec, cache_dir=tmp_path, chunk_size=16)
    second = PrecomputedViews(x, spec, cache_dir=tmp_path)
    assert first.built_now and not second.built_now and first.path == second.path
    assert first.arrays["aug_x"].shape == (2, 40, 9, 128) and first.arrays["aug_x"].dtype == np.float16
    other = PrecomputedViews(x, PretextSpec(n_variants=2, seed=2), cache_dir=tmp_path)
    assert other.path != first.path
    # a cache whose completion marker is missing (killed build) is rebuilt
    (first.path / "meta.json").unlink()
    assert PrecomputedViews(x, spec, cache_dir=tmp_path).built_now


def test_precomputed_views_equal_what_the_spec_generates(data, tmp_path):
    x, _ = data
    spec = PretextSpec(n_variants=1, seed=3)
    views = PrecomputedViews(x, spec, cache_dir=tmp_path, chunk_size=64)
    from data_processing.pretext import _generator

    direct = spec.generate(torch.as_tensor(x), _generator("precomputed", 3, 0))
    np.testing.assert_allclose(views.arrays["view1"][0], direct["view1"].numpy(), atol=2e-2, rtol=1e-2)
    np.testing.assert_array_equal(views.arrays["aug_label"][0], direct["aug_label"].numpy())


@pytest.mark.parametrize("mode", ["precomputed", "on_the_fly"])
def test_batches_have_every_target_and_repeat_per_epoch(data, tmp_path, mode):
    x, f = data
    spec = PretextSpec(n_variants=2, seed=0)
    views = PrecomputedViews(x, spec, cache_dir=tmp_path) if mode == "precomputed" else None
    batches = PretextBatches(x, f, 16, spec, mode, views)
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


def test_ranks_get_disjoint_shards(data, tmp_path):
    x, f = data
    spec = PretextSpec(n_variants=1)
    seen = []
    for rank in range(2):
        batches = PretextBatches(x, f, 8, spec, "on_the_fly", rank=rank, world_size=2)
        seen.append({tuple(row[0, :4].tolist()) for b in batches.epoch(0) for row in b["x"]})
    assert not seen[0] & seen[1] and len(seen[0]) == len(seen[1]) == 16
