import pytest
import torch

from data_processing import augmentations as aug


def windows(b=16, seed=0):
    return torch.randn(b, 9, 128, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", list(aug.HAR_TRANSFORMS))
def test_each_transform_keeps_shape_and_is_reproducible(name):
    x = windows()
    out1 = aug.HAR_TRANSFORMS[name](x, torch.Generator().manual_seed(3))
    out2 = aug.HAR_TRANSFORMS[name](x, torch.Generator().manual_seed(3))
    assert out1.shape == x.shape and torch.isfinite(out1).all()
    torch.testing.assert_close(out1, out2)
    if name != "identity":
        assert not torch.allclose(out1, x)


def test_rotation_preserves_each_triplets_norm():
    x = windows()
    out = aug.rotation(x, torch.Generator().manual_seed(0))
    def norms(v):
        return v.view(16, 3, 3, 128).norm(dim=2)

    torch.testing.assert_close(norms(out), norms(x), rtol=1e-5, atol=1e-5)
    r = aug.random_rotation_matrices(5, torch.Generator().manual_seed(1))
    torch.testing.assert_close(r @ r.transpose(1, 2), torch.eye(3).expand(5, 3, 3), atol=1e-5, rtol=0)


def test_permutation_and_shuffle_only_reorder_values():
    x = windows()
    g = torch.Generator().manual_seed(0)
    torch.testing.assert_close(aug.permutation(x, g).sort(-1).values, x.sort(-1).values)
    shuffled = aug.channel_shuffle(x, g)
    torch.testing.assert_close(shuffled.view(16, 3, 3, 128).sort(2).values, x.view(16, 3, 3, 128).sort(2).values)


def test_time_warp_keeps_endpoints_and_flip_is_an_involution():
    x = windows()
    warped = aug.time_warp(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(warped[..., 0], x[..., 0])
    torch.testing.assert_close(warped[..., -1], x[..., -1])
    torch.testing.assert_close(aug.time_flip(aug.time_flip(x, None), None), x)


def test_labelled_transforms_label_what_they_apply():
    x = windows(64)
    names = list(aug.HAR_TRANSFORMS)
    out, labels = aug.apply_labelled_transforms(x, names, torch.Generator().manual_seed(0))
    for i in (names.index("identity"), names.index("negation"), names.index("time_flip")):
        rows = labels == i
        expected = {"identity": x, "negation": -x, "time_flip": x.flip(-1)}[names[i]]
        torch.testing.assert_close(out[rows], expected[rows])
    assert len(labels.unique()) > 5


def test_span_mask_covers_about_the_ratio():
    mask = aug.span_mask((32, 9, 128), torch.Generator().manual_seed(0), mask_ratio=0.15, span=8)
    assert mask.dtype == torch.bool and mask.shape == (32, 9, 128)
    assert 0.08 < mask.float().mean() < 0.2  # overlapping spans can cover a little less than 15%
