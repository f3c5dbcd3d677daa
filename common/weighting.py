"""Dynamic task weighting behind one interface.

A weighting is an nn.Module keyed by task names; its state (learnt weights, loss history) is in its
state_dict and so in every checkpoint. The training loop calls, per step:
    weights = weighting.backward(losses, params)   # fills .grad of the model (and its own parameters)
    optimizer.step(); weighting.after_step()
and `weighting.end_epoch(mean_losses)` once per epoch. `params` is a ModelParameters (shared encoder
parameters, the encoder's last layer, the heads' parameters).

Methods: equal; uncertainty (Kendall et al., CVPR 2018); dwa (Liu et al., CVPR 2019); gradnorm (Chen et
al., ICML 2018); cagrad (Liu et al., NeurIPS 2021), which combines per-task gradients of the encoder.
"""
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import minimize
from torch import nn

WEIGHTINGS = ("equal", "uncertainty", "dwa", "gradnorm", "cagrad")


@dataclass
class ModelParameters:
    shared: list  # encoder parameters, which every task's gradient reaches
    last_shared: list  # the encoder's last layer (GradNorm)
    heads: list  # task-specific parameters


class TaskWeighting(nn.Module):
    """Equal weights: total = sum of the task losses."""

    # True for a method that writes the combined encoder gradient itself from per-task gradients (DDP must
    # then not reduce them during backward)
    combines_task_gradients = False

    def __init__(self, task_names):
        super().__init__()
        self.task_names = list(task_names)

    def weights(self):
        return {name: 1.0 for name in self.task_names}

    def total_loss(self, losses):
        w = self.weights()
        return sum(w[name] * losses[name] for name in self.task_names)

    def backward(self, losses, params):
        self.total_loss(losses).backward()
        return self.logged_weights()

    def logged_weights(self):
        return {name: float(torch.as_tensor(w).detach()) for name, w in self.weights().items()}

    def after_step(self):
        pass

    def end_epoch(self, mean_losses):
        pass


class UncertaintyWeighting(TaskWeighting):
    """total = sum_i 0.5 exp(-s_i) L_i + 0.5 s_i with learnt s_i = log sigma_i^2; optimum s_i = log L_i."""

    def __init__(self, task_names):
        super().__init__(task_names)
        self.log_variance = nn.Parameter(torch.zeros(len(self.task_names)))

    def weights(self):
        return {name: 0.5 * torch.exp(-s) for name, s in zip(self.task_names, self.log_variance)}

    def total_loss(self, losses):
        return sum(0.5 * torch.exp(-s) * losses[name] + 0.5 * s for name, s in zip(self.task_names, self.log_variance))


class DynamicWeightAverage(TaskWeighting):
    """w_i(t) = K softmax_i(r_i / T), r_i = L_i(t-1) / L_i(t-2) from epoch mean losses; 1 for two epochs."""

    def __init__(self, task_names, temperature=2.0):
        super().__init__(task_names)
        if not temperature > 0:
            raise ValueError("DWA temperature must be positive")
        self.temperature = temperature
        self.register_buffer("loss_history", torch.zeros(2, len(self.task_names)))  # rows: t-2, t-1
        self.register_buffer("epochs_seen", torch.zeros((), dtype=torch.long))

    def weights(self):
        if self.epochs_seen < 2:
            return {name: 1.0 for name in self.task_names}
        ratio = self.loss_history[1] / self.loss_history[0].clamp_min(1e-12)
        w = len(self.task_names) * torch.softmax(ratio / self.temperature, dim=0)
        return dict(zip(self.task_names, w.tolist()))

    def end_epoch(self, mean_losses):
        latest = torch.tensor([mean_losses[name] for name in self.task_names], dtype=self.loss_history.dtype)
        self.loss_history.copy_(torch.stack([self.loss_history[1], latest]))
        self.epochs_seen += 1


class GradNormWeighting(TaskWeighting):
    """Learnt weights whose gradient norms at the last shared layer are pulled towards
    mean_norm * (relative inverse training rate)^alpha; weights renormalised to sum to K after each step."""

    def __init__(self, task_names, alpha=1.5):
        super().__init__(task_names)
        if alpha < 0:
            raise ValueError("GradNorm alpha must be non-negative")
        self.alpha = alpha
        self.task_weights = nn.Parameter(torch.ones(len(self.task_names)))
        self.register_buffer("initial_losses", torch.zeros(len(self.task_names)))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def weights(self):
        return dict(zip(self.task_names, self.task_weights))

    def backward(self, losses, params):
        loss_vector = torch.stack([losses[name] for name in self.task_names])
        if not self.initialised:
            self.initial_losses.copy_(loss_vector.detach())
            self.initialised.fill_(True)
        norms = []
        for i, name in enumerate(self.task_names):
            grads = torch.autograd.grad(self.task_weights[i] * losses[name], params.last_shared,
                                        retain_graph=True, create_graph=True)
            norms.append(torch.cat([g.reshape(-1) for g in grads]).norm())
        norms = torch.stack(norms)
        rate = loss_vector.detach() / self.initial_losses.clamp_min(1e-12)
        target = (norms.mean() * (rate / rate.mean()) ** self.alpha).detach()
        gradnorm_loss = (norms - target).abs().sum()
        self.task_weights.grad = torch.autograd.grad(gradnorm_loss, self.task_weights, retain_graph=True)[0]
        (self.task_weights.detach() * loss_vector).sum().backward()
        return self.logged_weights()

    @torch.no_grad()
    def after_step(self):
        self.task_weights.clamp_(min=1e-3)
        self.task_weights.mul_(len(self.task_names) / self.task_weights.sum())


def cagrad_weights(gram, c=0.5):
    """CAGrad's inner problem on the tasks' gradient Gram matrix G G^T (K x K).

    min over the simplex of  w^T G g0 + c ||g0|| ||G^T w||, with g0 the mean gradient; returns w and the
    coefficient sqrt(phi) / ||G^T w|| of the conflict-averse step d = g0 + that * G^T w, phi = c^2 ||g0||^2.
    """
    k = gram.shape[0]
    mean_vec = np.full(k, 1.0 / k)
    g0_norm = np.sqrt(max(mean_vec @ gram @ mean_vec, 1e-20))
    sqrt_phi = c * g0_norm

    def objective(w):
        return w @ gram @ mean_vec + sqrt_phi * np.sqrt(max(w @ gram @ w, 1e-20))

    result = minimize(objective, mean_vec, bounds=[(0, 1)] * k, method="SLSQP",
                      constraints=({"type": "eq", "fun": lambda w: w.sum() - 1},))
    w = result.x
    return w, sqrt_phi / np.sqrt(max(w @ gram @ w, 1e-20))


class CAGradWeighting(TaskWeighting):
    """Conflict-averse gradient descent on the shared encoder; the heads get their own task's gradient."""

    combines_task_gradients = True

    def __init__(self, task_names, c=0.5):
        super().__init__(task_names)
        if c < 0:
            raise ValueError("CAGrad c must be non-negative")
        self.c = c
        self.register_buffer("last_weights", torch.ones(len(self.task_names)))

    def weights(self):
        return dict(zip(self.task_names, self.last_weights.tolist()))

    def backward(self, losses, params):
        per_task = []
        for name in self.task_names:
            grads = torch.autograd.grad(losses[name], params.shared, retain_graph=True, allow_unused=True)
            per_task.append(torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                                       for g, p in zip(grads, params.shared)]))
        stacked = torch.stack(per_task)  # (K, P)
        gram = (stacked @ stacked.t()).double().cpu().numpy()
        w, coefficient = cagrad_weights(gram, self.c)
        w_t = torch.as_tensor(w, dtype=stacked.dtype, device=stacked.device)
        direction = stacked.mean(0) + coefficient * (w_t @ stacked)
        direction = direction / (1 + self.c)  # as in the paper's code, keeps the step size comparable
        sum(losses[name] for name in self.task_names).backward(inputs=params.heads)
        offset = 0
        for p in params.shared:
            n = p.numel()
            p.grad = direction[offset : offset + n].view_as(p).clone()
            offset += n
        # the weight each task's gradient gets in the step: 1/K + coefficient * w_i
        self.last_weights.copy_(torch.as_tensor(1.0 / len(w) + coefficient * w) * len(w) / (1 + self.c))
        return self.logged_weights()


def build_weighting(name, task_names, use_weighted_loss=True, dwa_temperature=2.0, gradnorm_alpha=1.5, cagrad_c=0.5):
    """USE_WEIGHTED_LOSS=0 means equal weights whatever the name."""
    if name not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {name!r}; choose one of {', '.join(WEIGHTINGS)}")
    if not use_weighted_loss or name == "equal":
        return TaskWeighting(task_names)
    return {
        "uncertainty": lambda: UncertaintyWeighting(task_names),
        "dwa": lambda: DynamicWeightAverage(task_names, dwa_temperature),
        "gradnorm": lambda: GradNormWeighting(task_names, gradnorm_alpha),
        "cagrad": lambda: CAGradWeighting(task_names, cagrad_c),
    }[name]()
