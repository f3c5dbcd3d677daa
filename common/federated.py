"""Federation without transport: FedAvg as a pure function and the client's local-training step.

The socket prototype (HAR_federated/) and the Flower adapter both call `local_update` on the client and
`fedavg` on the server; neither knows about the other's transport. The client trains through the shared
MultiTaskTrainer; FedProx is a gradient hook the client adds, not a case inside the loop.
"""
import math

import torch

from common.model import build_model, task_classes
from common.runtime import select_device
from common.training import MultiTaskTrainer, lr_factor


def fedavg(states, weights):
    """Weighted average of state dicts (same keys and shapes); integer buffers are rounded back.

    states: list of {name: tensor}; weights: list of non-negative numbers (sample counts), not all zero.
    """
    if not states or len(states) != len(weights):
        raise ValueError("fedavg needs one weight per state and at least one state")
    total = float(sum(weights))
    if total <= 0 or min(weights) < 0:
        raise ValueError("fedavg weights must be non-negative and not all zero")
    averaged = {}
    for name, reference in states[0].items():
        acc = sum(state[name].double() * (w / total) for state, w in zip(states, weights))
        averaged[name] = (acc if reference.is_floating_point() else acc.round()).to(reference.dtype)
    return averaged


AGGREGATIONS = ("fedavg", "median", "trimmed_mean")


def aggregate(states, weights, method="fedavg", trim_fraction=0.2):
    """The new global state from the clients' states.

    fedavg: the average weighted by sample counts. median / trimmed_mean (Yin et al. 2018): per coordinate,
    unweighted, the median, or the mean after dropping the trim_fraction largest and smallest values; a
    minority of clients sending anything cannot move them far. Integer buffers are rounded back.
    """
    if method == "fedavg":
        return fedavg(states, weights)
    if method not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {method!r}; choose one of {', '.join(AGGREGATIONS)}")
    k = trimmed_count(trim_fraction, len(states)) if method == "trimmed_mean" else 0
    out = {}
    for name, reference in states[0].items():
        stacked = torch.stack([state[name].double() for state in states])  # (clients, *shape)
        if method == "median":
            value = stacked.median(dim=0).values if len(states) % 2 else stacked.sort(dim=0).values[
                len(states) // 2 - 1 : len(states) // 2 + 1].mean(0)
        else:
            value = stacked.sort(dim=0).values[k : len(states) - k].mean(0)
        out[name] = value.to(reference.dtype) if reference.is_floating_point() else value.round().to(reference.dtype)
    return out


def trimmed_count(trim_fraction, clients):
    """Clients trimmed at each end by trimmed_mean over `clients` answers: trim_fraction of them rounded up (a
    fraction that trims nobody would silently be a plain mean), capped at (clients - 1) // 2 so that one value
    is always left (2 * ceil(f * n) < n holds at some counts and not at larger ones: the cap keeps every count
    valid). ValueError when it trims nobody: a zero fraction, or fewer than 3 answers."""
    k = min(math.ceil(trim_fraction * clients - 1e-9), (clients - 1) // 2) if trim_fraction > 0 else 0
    if k < 1:
        raise ValueError(f"trimmed_mean with --trim_fraction {trim_fraction:g} over {clients} clients trims no "
                         f"client at either end: it needs 0 < --trim_fraction and at least 3 answering clients")
    return k


# --------------------------------------------------------------------------- screening updates
BATCH_NORM_STATISTICS = ("running_mean", "running_var")


def _is_statistic(name):
    return name.rsplit(".", 1)[-1] in BATCH_NORM_STATISTICS


def update_norms(state, reference):
    """(L2 norm of the update of the weights, L2 norm of the update of the batch-norm statistics): the state
    minus the global state it answers, over the floating tensors."""
    weights = statistics = 0.0
    for name, value in state.items():
        if value.is_floating_point():
            squared = float(((value.double() - reference[name].double()) ** 2).sum())
            if _is_statistic(name):
                statistics += squared
            else:
                weights += squared
    return math.sqrt(weights), math.sqrt(statistics)


# an update whose norm is below this share of the global model's is no step: it never sets the reference
NORM_FLOOR = 1e-6
# batch-norm running variances may move by at most this factor from the global's, and never to 0 or below
MAX_VARIANCE_FACTOR = 1e6


def screen_updates(states, reference, norm_factor=10.0, max_update_norm=0.0, max_integer_step=10**9, norms=None):
    """{client: reason} of the updates to leave out of this round's average, judged against the global state
    they answer, never against absolute bounds that a moved global would turn against honest clients; the same
    decision whatever the clients' order.

    Refused: an integer buffer (num_batches_tracked) that goes back or jumps by more than max_integer_step; a
    running_var that is not finite and positive or moves by more than MAX_VARIANCE_FACTOR from the global's;
    an update of the weights above max_update_norm (when set). Then the norms: the reference is the lower
    median of the remaining updates' norms that are a real step (above NORM_FLOOR x the global's norm), so
    neither zero updates nor one huge one can set it; an update whose weights moved by more than norm_factor x
    the reference, or by less than the reference / norm_factor (an echo of the global, a step too small to be
    training), is refused, and so is one whose batch-norm statistics moved by more than norm_factor x theirs.
    states: {client: state dict}; norms: their update_norms when the caller has them."""
    norms = norms or {c: update_norms(state, reference) for c, state in states.items()}
    refused = {}
    for client, state in states.items():
        reason = _buffer_problem(state, reference, max_integer_step)
        norm = norms[client][0]
        if reason is None and max_update_norm and norm > max_update_norm:
            reason = f"update of the weights has norm {norm:.4g} > --max_update_norm {max_update_norm:g}"
        if reason:
            refused[client] = reason
    screened = {c: norms[c] for c in sorted(states) if c not in refused}
    if len(screened) < 2 or not norm_factor:
        return refused
    scale = math.sqrt(sum(float((v.double() ** 2).sum()) for k, v in reference.items()
                          if v.is_floating_point() and not _is_statistic(k)))
    floor = NORM_FLOOR * max(scale, 1.0)
    for index, what in enumerate(("weights", "batch-norm statistics")):
        steps = sorted(pair[index] for pair in screened.values() if pair[index] > floor)
        if not steps:
            continue
        typical = steps[(len(steps) - 1) // 2]  # the lower median: with two, the smaller real step
        for client, pair in screened.items():
            if client in refused:
                continue
            if pair[index] > norm_factor * typical:
                refused[client] = (f"update of the {what} has norm {pair[index]:.4g}, over {norm_factor:g} x the "
                                   f"median of this round's updates ({typical:.4g})")
            elif index == 0 and pair[index] < typical / norm_factor:
                refused[client] = (f"update of the {what} has norm {pair[index]:.4g}, under 1/{norm_factor:g} of "
                                   f"the median of this round's updates ({typical:.4g}): not a training step")
    return refused


def _buffer_problem(state, reference, max_integer_step):
    """Why a state's integer buffers or running variances cannot be a client's training, or None."""
    for name, value in state.items():
        if not value.is_floating_point():
            step = value.long() - reference[name].long()
            if step.numel() and (int(step.min()) < 0 or int(step.max()) > max_integer_step):
                return (f"integer buffer {name} moved by {int(step.min())}..{int(step.max())} from the global model "
                        f"(allowed 0..{max_integer_step})")
        elif name.rsplit(".", 1)[-1] == "running_var":
            var, before = value.double(), reference[name].double().clamp_min(1e-12)
            if not bool(torch.isfinite(var).all()) or bool((var <= 0).any()) or bool(
                    (var / before > MAX_VARIANCE_FACTOR).any()) or bool((before / var > MAX_VARIANCE_FACTOR).any()):
                return (f"{name} is not positive or moved by more than {MAX_VARIANCE_FACTOR:g}x from the global "
                        f"model's (min {float(var.min()):.3g})")
    return None


def aggregate_integer_buffers(states, aggregated):
    """Integer buffers (batch-norm step counts) of the new global state: the median of the clients' values,
    which screened clients keep within a step of the global's; the averaged floats are left as they are."""
    out = dict(aggregated)
    for name, value in aggregated.items():
        if not value.is_floating_point():
            stacked = torch.stack([state[name].long() for state in states])
            out[name] = stacked.median(dim=0).values.to(value.dtype)
    return out


def clip_update(state, reference, max_norm):
    """The client's state with its update (state - reference, over the floating tensors) scaled down to an
    L2 norm of at most max_norm; 0 disables the bound."""
    if not max_norm:
        return state
    deltas = {k: state[k].double() - reference[k].double() for k in state if state[k].is_floating_point()}
    norm = float(torch.sqrt(sum((d ** 2).sum() for d in deltas.values())))
    if norm <= max_norm:
        return state
    scale = max_norm / norm
    return {k: (reference[k].double() + deltas[k] * scale).to(state[k].dtype) if k in deltas else state[k]
            for k in state}


class ProximalTerm:
    """FedProx's mu/2 ||w - w_global||^2, added to the gradients as mu (w - w_global) after each backward."""

    def __init__(self, mu):
        self.mu, self.anchor = mu, None

    def __call__(self, model):
        if self.anchor is None or self.mu <= 0:
            return
        with torch.no_grad():
            for name, p in model.named_parameters():
                if p.grad is not None:
                    p.grad.add_(self.mu * (p - self.anchor[name]))


class LocalTrainer:
    """A client's model, task weighting and pretext batches; `local_update` runs E local epochs.

    The task weighting and the optimiser state stay on the client across rounds; only the model's state
    dict travels. Randomness is keyed by (client's seed, round, local epoch), so a round is reproducible.
    """

    def __init__(self, config, data, client_id):
        torch.manual_seed(config.seed)
        self.config, self.client_id, self.device = config, client_id, select_device(config.device)
        self.model = build_model(config, data.x.shape[1:], data.spec, data.features.shape[1]).to(self.device)
        self.trainer = MultiTaskTrainer(config, self.model, self.device)
        self.proximal = ProximalTerm(0.0)
        self.trainer.gradient_hooks.append(self.proximal)
        self.data, self._batches = data, None  # built at the first round: the targets may come from the server
        self.num_examples = len(data.x)

    @property
    def batches(self):
        if self._batches is None:
            self._batches = self.data.batches(task_classes(self.config), self.config.batch_size,
                                              bool(self.config.precompute), device=self.device, config=self.config)
        return self._batches

    def use_targets(self, targets):
        """Train on these dataset-wide targets ({batch key: (N, D) array}, e.g. the federation's rocket targets)
        instead of the tasks' own."""
        self.data.given_targets, self._batches = targets, None

    def training_state(self, round_index):
        """What the client carries from round to round besides the global weights: optimiser and weighting
        state, tagged with the round it follows (checkpointed by the client, so a resumed run is exact)."""
        return {"round": round_index, "optimizer": self.trainer.optimizer.state_dict(),
                "weighting": self.trainer.weighting.state_dict()}

    def load_training_state(self, state):
        self.trainer.optimizer.load_state_dict(state["optimizer"])
        self.trainer.weighting.load_state_dict(state["weighting"])

    def local_update(self, global_state, round_index, total_rounds, local_epochs, proximal_mu=0.0):
        """Load the global weights, train local_epochs epochs, return (state dict, num_examples, mean losses)."""
        self.model.load_state_dict(global_state)
        lr = self.config.lr * lr_factor(round_index, total_rounds, 0, self.config.min_lr_ratio)
        self.proximal.mu = proximal_mu
        parameters = self.model.named_parameters()
        self.proximal.anchor = {k: v.detach().clone() for k, v in parameters} if proximal_mu > 0 else None
        losses = {}
        for local_epoch in range(local_epochs):
            # (round, local epoch): a distinct data order per round and epoch, for any number of clients
            means, _, _ = self.trainer.train_epoch(self.batches, (round_index, local_epoch), lambda step: lr,
                                                   desc=f"client {self.client_id} round {round_index + 1}")
            losses = {name: means[f"loss/{name}"] for name in self.model.tasks}
        state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        return state, self.num_examples, losses
