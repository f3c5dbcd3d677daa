"""Federation without transport: FedAvg as a pure function and the client's local-training step.

The socket prototype (HAR_federated/) and the Flower adapter both call `local_update` on the client and
`fedavg` on the server; neither knows about the other's transport. The client trains through the shared
MultiTaskTrainer; FedProx is a gradient hook the client adds, not a case inside the loop.
"""
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
        averaged[name] = acc.round().to(reference.dtype) if not reference.is_floating_point() else acc.to(reference.dtype)
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
    out = {}
    for name, reference in states[0].items():
        stacked = torch.stack([state[name].double() for state in states])  # (clients, *shape)
        if method == "median":
            value = stacked.median(dim=0).values if len(states) % 2 else stacked.sort(dim=0).values[
                len(states) // 2 - 1 : len(states) // 2 + 1].mean(0)
        else:
            k = int(trim_fraction * len(states))
            value = stacked.sort(dim=0).values[k : len(states) - k].mean(0)
        out[name] = value.to(reference.dtype) if reference.is_floating_point() else value.round().to(reference.dtype)
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
        self.batches = data.batches(task_classes(config), config.batch_size, bool(config.precompute), device=self.device)
        self.num_examples = len(data.x)

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
        self.proximal.anchor = {k: v.detach().clone() for k, v in self.model.named_parameters()} if proximal_mu > 0 else None
        losses = {}
        for local_epoch in range(local_epochs):
            # (round, local epoch): a distinct data order per round and epoch, for any number of clients
            means, _, _ = self.trainer.train_epoch(self.batches, (round_index, local_epoch), lambda step: lr,
                                                   desc=f"client {self.client_id} round {round_index + 1}")
            losses = {name: means[f"loss/{name}"] for name in self.model.tasks}
        state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        return state, self.num_examples, losses
