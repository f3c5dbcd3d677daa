"""Federation without transport: FedAvg as a pure function and the client's local-training step.

The socket prototype (HAR_federated/) and the Flower adapter both call `local_update` on the client and
`fedavg` on the server; neither knows about the other's transport.
"""
import torch

from common.training import MultiTaskTrainer, build_model, lr_factor, make_batches


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


class LocalTrainer:
    """A client's model, task weighting and pretext batches; `local_update` runs E local epochs.

    The task weighting and the optimiser state stay on the client across rounds; only the model's state
    dict travels. Randomness is keyed by (seed, client, round), so a round is reproducible.
    """

    def __init__(self, config, data, client_id, device=torch.device("cpu")):
        torch.manual_seed(config.seed)
        self.config, self.client_id, self.device = config, client_id, device
        self.model = build_model(config, data.x.shape[1:], len(data.spec.transforms), data.features.shape[1]).to(device)
        self.trainer = MultiTaskTrainer(config, self.model, device)
        self.batches = make_batches(config, data, device=device)
        self.num_examples = len(data.x)

    def local_update(self, global_state, round_index, total_rounds, local_epochs, proximal_mu=0.0):
        """Load the global weights, train local_epochs epochs, return (state dict, num_examples, mean losses)."""
        self.model.load_state_dict(global_state)
        lr = self.config.lr * lr_factor(round_index, total_rounds, 0, self.config.min_lr_ratio)
        anchor = {k: v.detach().clone() for k, v in self.model.named_parameters()} if proximal_mu > 0 else None
        losses = {}
        for local_epoch in range(local_epochs):
            epoch_key = round_index * 1000 + local_epoch * 37 + self.client_id  # distinct data order per round
            means, _, _ = self.trainer.train_epoch(self.batches, epoch_key, lambda step: lr, proximal_to=anchor,
                                                   proximal_mu=proximal_mu)
            losses = {name: means[f"loss/{name}"] for name in self.model.tasks}
        state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        return state, self.num_examples, losses
