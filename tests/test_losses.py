import math

import pytest
import torch
import torch.nn.functional as F

from common.losses import MaskedMSELoss, NTXentLoss


def naive_nt_xent(z1, z2, temperature):
    """SimCLR Algorithm 1, transcribed literally: l(i, j) summed over all 2N positive pairs."""
    z = [F.normalize(v, dim=0) for v in torch.cat([z1, z2])]
    n = len(z1)

    def sim(a, b):
        return float(torch.dot(a, b))

    def l(i, j):
        numerator = math.exp(sim(z[i], z[j]) / temperature)
        denominator = sum(math.exp(sim(z[i], z[k]) / temperature) for k in range(2 * n) if k != i)
        return -math.log(numerator / denominator)

    return sum(l(k, k + n) + l(k + n, k) for k in range(n)) / (2 * n)


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_nt_xent_matches_paper_pseudocode(temperature):
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    assert NTXentLoss(temperature)(z1, z2).item() == pytest.approx(naive_nt_xent(z1, z2, temperature), rel=1e-5)


def test_nt_xent_of_identical_orthogonal_views_has_closed_form():
    # B orthonormal embeddings, both views identical: positive similarity 1, the 2B - 2 negatives 0
    b, t = 4, 0.5
    z = torch.eye(b)
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + (2 * b - 2)))
    assert NTXentLoss(t)(z, z.clone()).item() == pytest.approx(expected, rel=1e-6)


def test_nt_xent_rejects_bad_input():
    with pytest.raises(ValueError, match="temperature"):
        NTXentLoss(0.0)
    with pytest.raises(ValueError, match="one shape"):
        NTXentLoss()(torch.zeros(3, 4), torch.zeros(2, 4))


def test_masked_mse_counts_masked_positions_only():
    prediction = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    target = torch.zeros(1, 4)
    mask = torch.tensor([[True, False, True, False]])
    assert MaskedMSELoss()(prediction, target, mask).item() == pytest.approx((1 + 9) / 2)
