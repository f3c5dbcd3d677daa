import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from torchjd.aggregation import UPGrad
from torchjd.linalg import QuadprogProjector

from common.pretrain_config import PretrainConfig
from common.weighting import (CAGradWeighting, DynamicWeightAverage, FAMOWeighting, GradNormWeighting,
                              ModelParameters, StaticWeighting, TaskWeighting, UncertaintyWeighting,
                              UPGradWeighting, build_weighting, cagrad_weights, upgrad_weights)

TASKS = ["a", "b"]


def tiny_problem(seed=0):
    """A shared linear layer and two heads with conflicting targets."""
    torch.manual_seed(seed)
    shared, head_a, head_b = nn.Linear(3, 4), nn.Linear(4, 1), nn.Linear(4, 1)
    x = torch.randn(8, 3)
    h = shared(x)
    losses = {"a": ((head_a(h) - 1) ** 2).mean(), "b": ((head_b(h) + 2) ** 2).mean()}
    params = ModelParameters(list(shared.parameters()), list(shared.parameters()),
                             list(head_a.parameters()) + list(head_b.parameters()))
    return losses, params, (shared, head_a, head_b)


def test_equal_weighting_is_the_plain_sum():
    losses, params, (shared, *_) = tiny_problem()
    expected = torch.autograd.grad(losses["a"] + losses["b"], shared.weight, retain_graph=True)[0]
    weights = TaskWeighting(TASKS).backward(losses, params)
    assert weights == {"a": 1.0, "b": 1.0}
    torch.testing.assert_close(shared.weight.grad, expected)


def test_uncertainty_weighting_optimum_is_log_loss():
    weighting = UncertaintyWeighting(TASKS)
    losses = {"a": torch.tensor(2.0), "b": torch.tensor(0.5)}
    opt = torch.optim.SGD(weighting.parameters(), lr=0.5)
    for _ in range(500):
        opt.zero_grad()
        weighting.total_loss(losses).backward()
        opt.step()
    # d/ds [0.5 e^-s L + 0.5 s] = 0  <=>  s = log L ; weight 0.5 / L
    np.testing.assert_allclose(weighting.log_variance.detach().numpy(), [math.log(2.0), math.log(0.5)], atol=1e-4)
    assert weighting.logged_weights()["a"] == pytest.approx(0.25, abs=1e-4)


def test_dwa_follows_its_formula():
    weighting = DynamicWeightAverage(TASKS, temperature=2.0)
    assert weighting.weights() == {"a": 1.0, "b": 1.0}
    weighting.end_epoch({"a": 1.0, "b": 1.0})
    weighting.end_epoch({"a": 0.5, "b": 0.9})
    r = np.array([0.5, 0.9])
    expected = 2 * np.exp(r / 2) / np.exp(r / 2).sum()
    np.testing.assert_allclose(list(weighting.weights().values()), expected, rtol=1e-6)


def test_gradnorm_weights_move_and_stay_normalised():
    weighting = GradNormWeighting(TASKS, alpha=1.5)
    for seed in range(5):
        losses, params, _ = tiny_problem(seed)
        weights = weighting.backward(losses, params)
        assert weighting.task_weights.grad is not None
        with torch.no_grad():
            weighting.task_weights -= 0.1 * weighting.task_weights.grad
        weighting.after_step()
    assert sum(weighting.logged_weights().values()) == pytest.approx(2.0)
    assert weights["a"] != pytest.approx(1.0)
    assert all(p.grad is not None for p in params.shared + params.heads)


def test_cagrad_inner_problem():
    # orthogonal equal-norm gradients: no conflict, the weights stay uniform
    w, _ = cagrad_weights(np.eye(2), c=0.5)
    np.testing.assert_allclose(w, [0.5, 0.5], atol=1e-4)
    # conflicting gradients: w stays on the simplex
    g = np.array([[1.0, 0.0], [-0.9, 0.5]])
    w, coefficient = cagrad_weights(g @ g.T, c=0.5)
    assert w.sum() == pytest.approx(1.0) and (w >= -1e-9).all() and coefficient > 0


def test_cagrad_with_c_zero_is_the_mean_gradient():
    losses, params, (shared, head_a, _) = tiny_problem()
    mean = [g / 2 for g in torch.autograd.grad(losses["a"] + losses["b"], params.shared, retain_graph=True)]
    head_grad = torch.autograd.grad(losses["a"], head_a.weight, retain_graph=True)[0]
    CAGradWeighting(TASKS, c=0.0).backward(losses, params)
    for p, g in zip(params.shared, mean):
        torch.testing.assert_close(p.grad, g)
    torch.testing.assert_close(head_a.weight.grad, head_grad)  # heads get their own task's gradient


@pytest.mark.parametrize("name", ["static", "uncertainty", "dwa", "gradnorm", "cagrad", "famo", "upgrad"])
def test_state_survives_a_state_dict_round_trip(name):
    weighting = build_weighting(PretrainConfig(weighting=name, task_weights=(1.0, 2.0)), TASKS)
    losses, params, _ = tiny_problem()
    weighting.backward(losses, params)
    weighting.end_epoch({"a": 1.0, "b": 2.0})
    weighting.end_epoch({"a": 0.7, "b": 1.9})
    with torch.no_grad():
        for p in weighting.parameters():
            p.add_(0.3)
    weighting.backward(*tiny_problem(1)[:2])
    restored = build_weighting(PretrainConfig(weighting=name, task_weights=(1.0, 2.0)), TASKS)
    restored.load_state_dict(weighting.state_dict())
    assert restored.logged_weights() == weighting.logged_weights()


def test_use_weighted_loss_zero_means_equal_and_unknown_names_fail():
    assert type(build_weighting(PretrainConfig(weighting="gradnorm", use_weighted_loss=0), TASKS)) is TaskWeighting
    with pytest.raises(ValueError, match="unknown weighting"):
        build_weighting(PretrainConfig(weighting="magic"), TASKS)


def test_each_weighting_reads_its_own_config_fields():
    config = PretrainConfig(dwa_temperature=3.0, gradnorm_alpha=0.5, famo_lr=0.1, famo_gamma=0.2, cagrad_c=0.9)
    built = {name: build_weighting(dataclasses.replace(config, weighting=name), TASKS) for name in
             ("dwa", "gradnorm", "famo", "cagrad")}
    assert built["dwa"].temperature == 3.0 and built["gradnorm"].alpha == 0.5 and built["cagrad"].c == 0.9
    assert (built["famo"].lr, built["famo"].gamma) == (0.1, 0.2)


# --------------------------------------------------------------------------- the fixed CAGrad, and the new methods
def test_cagrad_is_scale_free_and_optimal():
    rng = np.random.default_rng(0)
    jacobian = rng.normal(size=(3, 6))
    jacobian[1] = -0.8 * jacobian[0] + 0.3 * rng.normal(size=6)  # a conflict
    gram = jacobian @ jacobian.T
    w, coefficient = cagrad_weights(gram, c=0.5)
    small_w, small_coefficient = cagrad_weights(gram * 1e-8, c=0.5)  # tiny gradients: the same answer
    np.testing.assert_allclose(small_w, w, atol=1e-6)
    assert small_coefficient == pytest.approx(coefficient, rel=1e-6)
    # the objective at w is the minimum over a fine grid of the simplex
    g0 = jacobian.mean(0)

    def objective(v):
        return v @ jacobian @ g0 + 0.5 * np.linalg.norm(g0) * np.linalg.norm(v @ jacobian)

    grid = [np.array([a, b, 1 - a - b]) for a in np.linspace(0, 1, 101) for b in np.linspace(0, 1, 101) if a + b <= 1]
    assert objective(w) <= min(objective(v) for v in grid) + 1e-9
    assert coefficient == pytest.approx(0.5 * np.linalg.norm(g0) / np.linalg.norm(w @ jacobian), rel=1e-6)


def test_gradient_combinations_log_the_weights_they_apply():
    for weighting in (CAGradWeighting(TASKS, c=0.5), UPGradWeighting(TASKS)):
        losses, params, (shared, *_) = tiny_problem()
        grads = [torch.autograd.grad(losses[t], shared.weight, retain_graph=True)[0] for t in TASKS]
        weights = weighting.backward(losses, params)
        torch.testing.assert_close(shared.weight.grad, sum(weights[t] * g for t, g in zip(TASKS, grads)))
        assert all(0 < v < 10 for v in weights.values())  # the applied coefficients, not K times them


def test_upgrad_matches_torchjd():
    rng = np.random.default_rng(1)
    for k in (2, 3, 4):
        jacobian = torch.as_tensor(rng.normal(size=(k, 12)))
        jacobian[1] = -0.9 * jacobian[0] + 0.2 * jacobian[1]
        expected = UPGrad(projector=QuadprogProjector(norm_eps=0.0, reg_eps=0.0))(jacobian)
        ours = torch.as_tensor(upgrad_weights((jacobian @ jacobian.T).numpy())) @ jacobian
        torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)
        assert ((jacobian @ ours) >= -1e-9).all()  # no task's loss goes up to first order


def test_static_weights_scale_each_gradient():
    losses, params, (shared, *_) = tiny_problem()
    expected = torch.autograd.grad(0.5 * losses["a"] + 3.0 * losses["b"], shared.weight, retain_graph=True)[0]
    assert StaticWeighting(TASKS, (0.5, 3.0)).backward(losses, params) == {"a": 0.5, "b": 3.0}
    torch.testing.assert_close(shared.weight.grad, expected)
    with pytest.raises(ValueError, match="non-negative"):
        StaticWeighting(TASKS, (1.0,))


def test_famo_follows_its_paper():
    """Against a naive transcription: softmax logits xi trained by torch.optim.Adam (weight decay gamma) on
    the gradient autograd gives for softmax(xi) . delta, delta = log L_before - log L_after; the step's
    objective sum z log L / c with c = sum z / L."""
    weighting = FAMOWeighting(TASKS, lr=0.1, gamma=0.01)
    xi = torch.zeros(2, requires_grad=True)
    adam = torch.optim.Adam([xi], lr=0.1, weight_decay=0.01)
    sequence = [(2.0, 1.0), (1.5, 0.9), (1.4, 0.5), (1.0, 0.45)]
    previous = None
    for la, lb in sequence:
        theta = torch.tensor(1.0, requires_grad=True)
        losses = {"a": theta * la, "b": theta * lb}
        weights = weighting.backward(losses, ModelParameters([theta], [theta], []))
        current = torch.tensor([la, lb])
        if previous is not None:
            delta = previous.log() - current.log()
            adam.zero_grad()
            xi.grad = torch.autograd.grad(torch.softmax(xi, 0), xi, grad_outputs=delta)[0]
            adam.step()
        z = torch.softmax(xi.detach(), 0)
        c = (z / current).sum()
        torch.testing.assert_close(weighting.logits, xi.detach(), atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(theta.grad, (z / c).sum(), atol=1e-6, rtol=1e-5)  # d/dtheta sum z log(theta L) / c
        np.testing.assert_allclose([weights["a"], weights["b"]], (z / (c * current)).numpy(), rtol=1e-5)
        previous = current
    assert weighting.logits[0] != weighting.logits[1]
