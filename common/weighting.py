"""Dynamic task weighting behind one interface.

A weighting is an nn.Module keyed by task names; its state (learnt weights, loss history) is in its
state_dict and so in every checkpoint. The training loop calls, per step:
    weights = weighting.backward(losses, params)   # fills .grad of the model (and its own parameters)
    optimizer.step(); weighting.after_step()
and `weighting.end_epoch(mean_losses)` once per epoch. `params` is a ModelParameters (shared encoder
parameters, the encoder's last layer, the heads' parameters).

Methods: equal; static (fixed weights per task, tuned on the validation subjects); uncertainty (Kendall et
al., CVPR 2018); dwa (Liu et al., CVPR 2019); gradnorm (Chen et al., ICML 2018); famo (Liu et al.,
NeurIPS 2023); and two that combine the tasks' gradients of the encoder themselves: cagrad (Liu et al.,
NeurIPS 2021) and upgrad (Quinton & Rey 2024). Logged weights are the weights each task's loss or
gradient actually gets in the step.
"""
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import minimize
from torch import nn

from common.distributed import all_reduce_mean_tensor

WEIGHTINGS = ("equal", "static", "uncertainty", "dwa", "gradnorm", "cagrad", "famo", "upgrad")


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
    CONFIG_FIELDS = ()  # the config fields its constructor takes after the task names

    def __init__(self, task_names):
        super().__init__()
        self.task_names = list(task_names)

    @classmethod
    def from_config(cls, task_names, config):
        """The method built from a run's config: each method reads its own fields (CONFIG_FIELDS, passed to its
        constructor in order)."""
        return cls(task_names, *(getattr(config, name) for name in cls.CONFIG_FIELDS))

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

    CONFIG_FIELDS = ("dwa_temperature",)

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

    CONFIG_FIELDS = ("gradnorm_alpha",)

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


def _minimize(objective, start, gradient, bounds, constraints=()):
    # a tight absolute tolerance: the problems below are solved on trace-normalised Gram matrices, O(1)
    return minimize(objective, start, jac=gradient, bounds=bounds, constraints=constraints, method="SLSQP",
                    options={"ftol": 1e-12, "maxiter": 500}).x


def normalised_gram(gram):
    """G / (trace(G) / K): the same directions at unit mean squared norm, so solvers see O(1) numbers
    whatever the scale of the gradients (None when every gradient vanishes)."""
    scale = np.trace(gram) / len(gram)
    return gram / scale if scale > 1e-30 else None


def cagrad_weights(gram, c=0.5):
    """CAGrad's inner problem on the tasks' gradient Gram matrix G G^T (K x K).

    min over the simplex of  w^T G g0 + c ||g0|| ||G^T w||, with g0 the mean gradient; returns w and the
    coefficient lambda = c ||g0|| / ||G^T w|| of the conflict-averse step d = g0 + lambda G^T w. Solved on the
    trace-normalised Gram matrix: lambda is a ratio of norms, so the answer does not depend on the
    gradients' scale (on the raw matrix, small gradients left SLSQP at its start: equal weighting).
    """
    k = gram.shape[0]
    mean_vec = np.full(k, 1.0 / k)
    gram = normalised_gram(np.asarray(gram, dtype=np.float64))
    if gram is None:
        return mean_vec, 0.0
    sqrt_phi = c * np.sqrt(max(mean_vec @ gram @ mean_vec, 0.0))

    def objective(w):
        return w @ gram @ mean_vec + sqrt_phi * np.sqrt(max(w @ gram @ w, 1e-20))

    def gradient(w):
        return gram @ mean_vec + sqrt_phi * (gram @ w) / np.sqrt(max(w @ gram @ w, 1e-20))

    w = _minimize(objective, mean_vec, gradient, [(0, 1)] * k, ({"type": "eq", "fun": lambda w: w.sum() - 1},))
    w = np.clip(w, 0, None) / np.clip(w, 0, None).sum()
    return w, sqrt_phi / np.sqrt(max(w @ gram @ w, 1e-20))


def upgrad_weights(gram):
    """UPGrad (Quinton & Rey 2024): the weights w with J^T w = mean_i of J^T e_i projected onto the dual cone
    of the rows of J, i.e. w = mean_i argmin_{v >= e_i} v^T G v (G = J J^T). Every task's gradient then has
    a non-negative inner product with the step."""
    k = gram.shape[0]
    gram = normalised_gram(np.asarray(gram, dtype=np.float64))
    if gram is None:
        return np.full(k, 1.0 / k)
    projected = []
    for i in range(k):
        bounds = [(1.0 if j == i else 0.0, None) for j in range(k)]
        projected.append(_minimize(lambda v: v @ gram @ v, np.eye(k)[i], lambda v: 2 * gram @ v, bounds))
    return np.mean(projected, axis=0)


class GradientCombination(TaskWeighting):
    """Methods that combine the tasks' gradients of the shared encoder (rows of the Jacobian J, K x P) into one
    step J^T a; the heads get their own task's gradient. Subclasses give `coefficients(gram) -> a`."""

    combines_task_gradients = True

    def __init__(self, task_names):
        super().__init__(task_names)
        self.register_buffer("last_weights", torch.ones(len(self.task_names)))

    def weights(self):
        return dict(zip(self.task_names, self.last_weights.tolist()))

    def coefficients(self, gram):
        raise NotImplementedError

    def backward(self, losses, params):
        per_task = []
        for name in self.task_names:
            grads = torch.autograd.grad(losses[name], params.shared, retain_graph=True, allow_unused=True)
            per_task.append(torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                                       for g, p in zip(grads, params.shared)]))
        jacobian = torch.stack(per_task)  # (K, P)
        applied = self.coefficients((jacobian @ jacobian.t()).double().cpu().numpy())
        direction = torch.as_tensor(applied, dtype=jacobian.dtype, device=jacobian.device) @ jacobian
        sum(losses[name] for name in self.task_names).backward(inputs=params.heads)
        offset = 0
        for p in params.shared:
            n = p.numel()
            p.grad = direction[offset : offset + n].view_as(p).clone()
            offset += n
        self.last_weights.copy_(torch.as_tensor(applied))  # logged: the weight each task's gradient got
        return self.logged_weights()


class CAGradWeighting(GradientCombination):
    """Conflict-averse gradient descent (Liu et al., NeurIPS 2021): d = (g0 + lambda G^T w) / (1 + c)."""

    CONFIG_FIELDS = ("cagrad_c",)

    def __init__(self, task_names, c=0.5):
        super().__init__(task_names)
        if c < 0:
            raise ValueError("CAGrad c must be non-negative")
        self.c = c

    def coefficients(self, gram):
        w, coefficient = cagrad_weights(gram, self.c)
        # d = J^T (1/K + lambda w) / (1 + c): dividing by 1 + c, as the paper's code does, keeps the step size
        return (1.0 / len(w) + coefficient * w) / (1 + self.c)


class UPGradWeighting(GradientCombination):
    """UPGrad (Quinton & Rey 2024, torchjd): the mean of the tasks' gradients projected onto the dual cone."""

    def coefficients(self, gram):
        return upgrad_weights(gram)


class StaticWeighting(TaskWeighting):
    """Fixed weights, one per task (a tuned scalarisation: Kurin et al. 2022, Xin et al. 2022)."""

    CONFIG_FIELDS = ("task_weights",)

    def __init__(self, task_names, task_weights):
        super().__init__(task_names)
        if len(task_weights) != len(self.task_names) or min(task_weights) < 0:
            raise ValueError(f"static weighting needs {len(self.task_names)} non-negative --task_weights "
                             f"({', '.join(self.task_names)})")
        self.register_buffer("static_weights", torch.as_tensor(task_weights, dtype=torch.float32))

    def weights(self):
        return dict(zip(self.task_names, self.static_weights.tolist()))


class FAMOWeighting(TaskWeighting):
    """FAMO (Liu et al., NeurIPS 2023), O(1) in the number of tasks: the step follows
    sum_i z_i log L_i / c with z = softmax(xi), c = sum_i z_i / L_i (z, c held constant), so task i's
    gradient gets weight z_i / (c L_i); xi moves to balance the tasks' log-loss decrease
    delta_i = log L_i(before) - log L_i(after): its gradient is J_softmax(xi)^T delta, applied by Adam
    (lr, weight decay gamma). The loss "after" a step is read at the next step's batch (the paper re-reads
    the same batch): no extra forward pass.
    """

    CONFIG_FIELDS = ("famo_lr", "famo_gamma")

    def __init__(self, task_names, lr=0.025, gamma=0.01, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(task_names)
        if not lr > 0 or gamma < 0:
            raise ValueError("FAMO needs a positive lr and a non-negative gamma")
        self.lr, self.gamma, self.betas, self.eps = lr, gamma, betas, eps
        k = len(self.task_names)
        for name in ("logits", "adam_m", "adam_v", "previous_losses", "applied"):
            self.register_buffer(name, torch.zeros(k))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("has_previous", torch.zeros((), dtype=torch.bool))

    def weights(self):
        return dict(zip(self.task_names, self.applied.tolist() if self.has_previous else [1.0] * len(self.task_names)))

    @torch.no_grad()
    def update_logits(self, previous, current):
        """One Adam step on xi along J_softmax(xi)^T delta (+ gamma xi, Adam's L2 weight decay)."""
        delta = (previous + 1e-8).log() - (current + 1e-8).log()
        z = torch.softmax(self.logits, 0)
        grad = z * (delta - (z * delta).sum()) + self.gamma * self.logits  # softmax Jacobian is symmetric
        self.steps += 1
        b1, b2 = self.betas
        self.adam_m.mul_(b1).add_(grad, alpha=1 - b1)
        self.adam_v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        m_hat = self.adam_m / (1 - b1 ** self.steps.item())
        v_hat = self.adam_v / (1 - b2 ** self.steps.item())
        self.logits.sub_(self.lr * m_hat / (v_hat.sqrt() + self.eps))

    def backward(self, losses, params):
        vector = torch.stack([losses[name] for name in self.task_names])
        current = all_reduce_mean_tensor(vector.detach().float())
        if self.has_previous:
            self.update_logits(self.previous_losses, current)
        z = torch.softmax(self.logits, 0).to(vector.device)
        c = (z / (current.to(vector.device) + 1e-8)).sum()
        ((z / c) * (vector + 1e-8).log()).sum().backward()
        self.applied.copy_((z / (c * (current.to(vector.device) + 1e-8))).cpu())
        self.previous_losses.copy_(current.cpu())
        self.has_previous.fill_(True)
        return self.logged_weights()


WEIGHTING_CLASSES = {"equal": TaskWeighting, "static": StaticWeighting, "uncertainty": UncertaintyWeighting,
                     "dwa": DynamicWeightAverage, "gradnorm": GradNormWeighting, "cagrad": CAGradWeighting,
                     "famo": FAMOWeighting, "upgrad": UPGradWeighting}
assert set(WEIGHTING_CLASSES) == set(WEIGHTINGS)


def build_weighting(config, task_names):
    """The weighting config.weighting names, built from the config (--use_weighted_loss 0: equal weights
    whatever the name)."""
    name = config.weighting if config.use_weighted_loss else "equal"
    if name not in WEIGHTING_CLASSES:
        raise ValueError(f"unknown weighting {name!r}; choose one of {', '.join(WEIGHTINGS)}")
    return WEIGHTING_CLASSES[name].from_config(task_names, config)
