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

    def pair_loss(i, j):
        numerator = math.exp(sim(z[i], z[j]) / temperature)
        denominator = sum(math.exp(sim(z[i], z[k]) / temperature) for k in range(2 * n) if k != i)
        return -math.log(numerator / denominator)

    return sum(pair_loss(k, k + n) + pair_loss(k + n, k) for k in range(n)) / (2 * n)


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


def _nt_xent_rank(rank, world_size, init_file, x, head_state, out):
    """One torchrun-like process: its share of the global batch through a shared linear head, the loss,
    the head's gradients averaged over processes (as DDP averages them)."""
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    head = torch.nn.Linear(x.shape[-1], 4)
    head.load_state_dict(head_state)
    share = x.shape[1] // world_size
    z1, z2 = (head(view[rank * share:(rank + 1) * share]) for view in x)
    loss = NTXentLoss(0.5)(z1, z2)
    loss.backward()
    for p in head.parameters():
        torch.distributed.all_reduce(p.grad)
        p.grad /= world_size
    mean_loss = loss.detach().clone()
    torch.distributed.all_reduce(mean_loss)
    torch.save({"loss": mean_loss / world_size, "grads": [p.grad for p in head.parameters()]}, f"{out}.{rank}")
    torch.distributed.destroy_process_group()


def test_nt_xent_gathers_negatives_across_processes(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(2, 8, 6)  # two views of a global batch of 8
    head = torch.nn.Linear(6, 4)
    single = NTXentLoss(0.5)(head(x[0]), head(x[1]))
    single.backward()
    torch.multiprocessing.spawn(_nt_xent_rank, args=(2, tmp_path / "init", x, head.state_dict(), tmp_path / "r"),
                                nprocs=2)
    for rank in range(2):
        result = torch.load(tmp_path / f"r.{rank}", weights_only=True)
        # the same loss and the same step as one process on the whole batch: 14 negatives per query, not 6
        torch.testing.assert_close(result["loss"], single.detach())
        for grad, p in zip(result["grads"], head.parameters()):
            torch.testing.assert_close(grad, p.grad)
    local = NTXentLoss(0.5)(head(x[0, :4]), head(x[1, :4]))  # what a process saw alone before: not the same
    assert not torch.isclose(local, single)
