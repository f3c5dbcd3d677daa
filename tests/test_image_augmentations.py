import math

import pytest
import torch

from data_processing import image_augmentations as ia


def images(b=6, size=32, seed=0):
    return torch.rand(b, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", list(ia.IMAGE_TRANSFORMS))
def test_labelled_transforms_keep_shape_and_range(name):
    x = images()
    out = ia.IMAGE_TRANSFORMS[name](x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    if name != "identity":
        assert not torch.allclose(out, x)


def test_rotations_compose_and_grayscale_is_gray():
    x = images()
    torch.testing.assert_close(ia.rotate(ia.rotate(x, 1), 3), x)
    gray = ia.grayscale(x)
    torch.testing.assert_close(gray[:, 0], gray[:, 2])


def test_views_are_reproducible_valid_and_different():
    x = images()
    v1 = ia.simclr_view(x, torch.Generator().manual_seed(1))
    v1_again = ia.simclr_view(x, torch.Generator().manual_seed(1))
    v2 = ia.simclr_view(x, torch.Generator().manual_seed(2))
    torch.testing.assert_close(v1, v1_again)
    assert v1.shape == x.shape and v1.min() >= -1e-6 and v1.max() <= 1 + 1e-6
    assert not torch.allclose(v1, v2)


def test_full_crop_is_the_identity_and_blur_keeps_constants():
    x = images()
    out = ia.random_resized_crop(x, torch.Generator().manual_seed(0), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)
    constant = torch.full((2, 3, 32, 32), 0.3)
    torch.testing.assert_close(ia.gaussian_blur(constant, torch.Generator().manual_seed(0), p=1.0), constant)


def test_patch_mask_covers_the_ratio_on_all_channels():
    mask = ia.patch_mask((4, 3, 32, 32), torch.Generator().manual_seed(0), mask_ratio=0.25, patch=8)
    assert mask.shape == (4, 3, 32, 32) and mask.dtype == torch.bool
    assert mask.float().mean().item() == pytest.approx(0.25)
    assert torch.equal(mask[:, 0], mask[:, 2])


def test_descriptors_on_known_images():
    black = torch.zeros(1, 3, 16, 16)
    stripes = torch.zeros(1, 3, 16, 16)
    stripes[..., ::2] = 1.0  # vertical stripes: all gradients horizontal (orientation 0)
    d_black, d_stripes = ia.image_descriptors(black), ia.image_descriptors(stripes)
    assert d_black.shape == (1, 3 * 8 + 9 * 4)
    assert d_black[0, 0].item() == pytest.approx(1.0)  # every red value in the first colour bin
    hog = d_stripes[0, 24:].view(4, 9)
    assert hog[:, 0].sum().item() == pytest.approx(1.0, abs=1e-5)  # all orientation mass in bin 0
    assert math.isclose(d_stripes[0, :8].sum().item(), 1.0, abs_tol=1e-6)


def test_colour_histograms_count_like_histc_for_the_whole_batch():
    x = images(b=4, size=20)
    x[0, 0, 0, :2] = torch.tensor([0.0, 1.0])  # both ends of the range land in the first and last bins
    colour = ia.image_descriptors(x)[:, :24]  # 3 channels x 8 bins
    reference = torch.stack([torch.stack([torch.histc(img[ch], 8, 0, 1) for ch in range(3)]) for img in x])
    torch.testing.assert_close(colour, reference.reshape(4, -1) / 400)
