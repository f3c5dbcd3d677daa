"""common/federated.py: FedAvg, FedProx, robust aggregation and the screening of updates."""

import pytest
import torch

from common.federated import (ProximalTerm, aggregate, aggregate_integer_buffers, clip_update, fedavg, screen_updates,
                              trimmed_count)
from HAR_federated import protocol
from HAR_federated.protocol import ProtocolError
from tests.federated_helpers import cache_in_tmp  # noqa: F401 (autouse: pretext caches in tmp_path)


def test_fedavg_against_a_hand_computation():
    a = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(2)}
    b = {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(5)}
    out = fedavg([a, b], [1, 3])  # weights 1/4 and 3/4
    torch.testing.assert_close(out["w"], torch.tensor([2.5, 5.0]))
    assert out["n"].dtype == torch.int64 and out["n"].item() == 4  # 0.25*2 + 0.75*5 = 4.25 -> 4
    with pytest.raises(ValueError):
        fedavg([a], [0])


def test_fedprox_is_a_gradient_hook_that_pulls_towards_the_global_weights():
    model = torch.nn.Linear(3, 1)
    term = ProximalTerm(0.5)
    term.anchor = {k: v.detach().clone() - 1.0 for k, v in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    term(model)
    for p in model.parameters():
        torch.testing.assert_close(p.grad, torch.full_like(p, 0.5))  # mu * (w - (w - 1))


@pytest.mark.parametrize("aggregation", ["median", "trimmed_mean"])
def test_robust_aggregation_holds_against_one_poisoned_client_of_five(aggregation):
    torch.manual_seed(0)
    base = {"w": torch.randn(50), "n": torch.tensor(3)}
    honest = [{"w": base["w"] + 0.01 * torch.randn(50), "n": torch.tensor(3)} for _ in range(4)]
    poisoned = {"w": torch.full((50,), 1e6), "n": torch.tensor(3)}
    honest_mean = fedavg(honest, [1] * 4)["w"]
    plain = aggregate(honest + [poisoned], [1] * 5, "fedavg")["w"]
    robust = aggregate(honest + [poisoned], [1] * 5, aggregation, trim_fraction=0.2)["w"]
    assert (plain - honest_mean).norm() > 1e5
    assert (robust - honest_mean).norm() < 0.1
    # a norm bound on each update caps what one client can move, whatever the aggregation
    clipped = clip_update(poisoned, base, 1.0)
    assert (clipped["w"] - base["w"]).norm() == pytest.approx(1.0, rel=1e-5) and clipped["n"] is poisoned["n"]


def test_huge_and_negative_variance_updates_are_refused():
    template = {"bn.running_var": torch.ones(3), "w": torch.zeros(3), "n": torch.tensor(0)}
    with pytest.raises(ProtocolError, match="negative variances"):
        protocol.check_tensors({"bn.running_var": -torch.ones(3), "w": torch.zeros(3), "n": torch.tensor(0)}, template)
    with pytest.raises(ProtocolError, match="beyond"):
        protocol.check_tensors({"bn.running_var": torch.ones(3), "w": torch.full((3,), 1e30), "n": torch.tensor(0)},
                               template, max_abs=1e4)
    # a large integer counter (batches seen) is not a weight
    protocol.check_tensors({"bn.running_var": torch.ones(3), "w": torch.zeros(3), "n": torch.tensor(10**9)}, template,
                           1e4)


def test_updates_are_judged_against_the_global_model_they_answer():
    torch.manual_seed(0)
    reference = {"w": torch.randn(100), "bn.running_var": torch.ones(4), "bn.num_batches_tracked": torch.tensor(5)}

    def update(scale=0.01, var=1.1, steps=10):
        return {"w": reference["w"] + scale * torch.randn(100), "bn.running_var": torch.full((4,), var),
                "bn.num_batches_tracked": torch.tensor(5 + steps)}

    honest = {0: update(), 1: update(), 2: update()}
    assert screen_updates(honest, reference) == {}
    # a global model far from the origin changes nothing: only the update counts
    moved = {k: v + 1000 if v.is_floating_point() else v for k, v in reference.items()}
    assert screen_updates({c: {k: v + 1000 if v.is_floating_point() else v for k, v in s.items()}
                           for c, s in honest.items()}, moved) == {}
    refused = screen_updates({**honest, 3: update(scale=5.0)}, reference)
    assert list(refused) == [3] and "weights" in refused[3]
    refused = screen_updates({**honest, 3: update(var=500.0)}, reference)
    assert list(refused) == [3] and "batch-norm statistics" in refused[3]
    for steps in (2**63 - 6, -2**62):
        refused = screen_updates({**honest, 3: update(steps=steps)}, reference)
        assert list(refused) == [3] and "integer buffer bn.num_batches_tracked" in refused[3]
    # two clients: the one far from the other is refused, the other kept
    assert list(screen_updates({0: update(), 1: update(scale=5.0)}, reference)) == [1]
    assert list(screen_updates({0: update(scale=0.5)}, reference, max_update_norm=1.0)) == [0]
    merged = aggregate_integer_buffers([honest[0], honest[1], update(steps=30)], fedavg(list(honest.values()), [1] * 3))
    assert int(merged["bn.num_batches_tracked"]) == 15  # the median count, not a mean an outlier drags


def test_an_echo_of_the_global_model_cannot_turn_the_screening_against_honest_clients():
    torch.manual_seed(1)
    reference = {"w": torch.randn(200), "bn.running_mean": torch.zeros(4), "bn.running_var": torch.ones(4)}

    def honest():
        return {"w": reference["w"] + 0.01 * torch.randn(200), "bn.running_mean": 0.1 * torch.randn(4),
                "bn.running_var": 1 + 0.1 * torch.rand(4)}

    echo = dict(reference)  # norm 0: the global sent back
    echo_statistics = {**reference, "bn.running_mean": 0.1 * torch.randn(4)}  # weights echoed, statistics moved
    for insiders, honest_count in ((1, 2), (2, 2), (2, 3), (1, 5)):
        states = {f"h{i}": honest() for i in range(honest_count)}
        states.update({f"z{i}": (echo if i % 2 == 0 else echo_statistics) for i in range(insiders)})
        refused = screen_updates(states, reference)
        assert sorted(refused) == [f"z{i}" for i in range(insiders)], (insiders, honest_count, refused)
        assert all("not a training step" in reason for reason in refused.values())
        # the same decision whatever the order the clients answered in
        for order in (sorted(states, reverse=True), sorted(states, key=lambda c: c[::-1])):
            assert screen_updates({c: states[c] for c in order}, reference) == refused


def test_impossible_batch_norm_variances_are_refused():
    reference = {"w": torch.ones(10), "bn.running_var": torch.ones(4)}
    honest = [{"w": torch.ones(10) + 0.01 * i, "bn.running_var": torch.full((4,), 1.5)} for i in range(1, 3)]
    for bad in (0.0, -1.0, float("inf"), 1e-9, 1e9):
        insider = {"w": torch.ones(10) + 0.015, "bn.running_var": torch.tensor([1.0, 1.0, 1.0, bad])}
        refused = screen_updates({0: honest[0], 1: honest[1], 2: insider}, reference)
        assert list(refused) == [2] and "running_var" in refused[2], bad


def test_trimmed_mean_runs_at_every_number_of_answering_clients():
    for fraction in (0.1, 0.2, 0.4, 0.49):
        for clients in range(3, 40):
            k = trimmed_count(fraction, clients)
            assert 1 <= k and 2 * k < clients
            states = [{"w": torch.tensor([float(v)])} for v in range(clients)]
            assert float(aggregate(states, [1] * clients, "trimmed_mean", fraction)["w"]) == (clients - 1) / 2
