import pytest
import torch

from common.encoders import build_encoder, count_parameters, load_encoder_state


def test_cnn1d_maps_windows_to_embeddings():
    encoder = build_encoder("cnn1d", in_channels=9, width=8, depth=3, embedding_dim=16)
    assert encoder(torch.randn(4, 9, 128)).shape == (4, 16)
    assert encoder.model_args == {"name": "cnn1d", "in_channels": 9, "width": 8, "depth": 3, "embedding_dim": 16}


def test_resnet18_standard_width_has_resnet18_size_and_maps_96px_images():
    encoder = build_encoder("resnet18", in_channels=3, width=64, depth=4, embedding_dim=128)
    # torchvision's ResNet-18 has 11.2 M parameters without its classifier; ours differs only in the stem
    assert 11.0e6 < count_parameters(encoder) - 512 * 128 - 128 < 11.3e6
    small = build_encoder("resnet18", in_channels=3, width=8, depth=4, embedding_dim=32)
    assert small(torch.randn(2, 3, 96, 96)).shape == (2, 32)
    assert small(torch.randn(2, 3, 32, 32)).shape == (2, 32)  # any input size, global pooling


def test_rebuilding_from_model_args_and_strict_loading():
    encoder = build_encoder("resnet18", in_channels=3, width=4, depth=2, embedding_dim=8)
    rebuilt = build_encoder(**encoder.model_args)
    load_encoder_state(rebuilt, encoder.state_dict())
    x = torch.randn(2, 3, 32, 32)
    encoder.eval(), rebuilt.eval()
    torch.testing.assert_close(rebuilt(x), encoder(x))
    with pytest.raises(ValueError, match="do not fit"):
        load_encoder_state(build_encoder("resnet18", in_channels=3, width=8, depth=2, embedding_dim=8),
                           encoder.state_dict())
    with pytest.raises(ValueError, match="unknown encoder"):
        build_encoder("vit")


def test_the_dilated_encoder_keeps_every_scale_and_pools_each_block():
    encoder = build_encoder("dilated1d", in_channels=9, width=8, depth=4, embedding_dim=16)
    x = torch.randn(4, 9, 128)
    assert encoder(x).shape == (4, 16) and encoder.projection.in_features == 8 * 4
    # block i (kernel 7, dilation 2^i) widens the view by 3 * 2^i samples either side: only the last reaches 0 from 30
    encoder.eval()
    grads = []
    for block in range(4):
        probe = x.clone().requires_grad_(True)
        h = probe
        for i, layer in enumerate(encoder.blocks[: block + 1]):
            h = layer(h) + h if i > 0 else layer(h)
        h[:, :, 30].sum().backward()
        grads.append(bool(probe.grad[:, :, 0].abs().sum() > 0))
    assert grads == [False, False, False, True]  # receptive fields 7, 19, 43, 91 samples
    rebuilt = build_encoder(**encoder.model_args)
    load_encoder_state(rebuilt, encoder.state_dict())
    rebuilt.eval()
    torch.testing.assert_close(rebuilt(x), encoder(x))
