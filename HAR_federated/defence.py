"""The server's defence, one for both backends: the socket server (server.py) and the Flower ServerApp
(flower_app.py) turn a round's answers into the new global model through `defend_round` alone.

Each answer is a (state dict, sample count) of a client that passed the transport's checks (names, shapes,
dtypes, finite values within --max_abs_weight, a declared count). Then: the sample count is capped at
--max_examples; the updates are screened against the global model they answer (common.federated.screen_updates:
too large, too small, impossible batch-norm statistics); with fewer than --min_clients accepted the round
does not commit; the accepted updates are clipped (--update_clip), aggregated (--aggregation: fedavg, median,
trimmed_mean at any count) and the aggregate is checked like a client's before it becomes the global model.
"""
from dataclasses import dataclass, field

from common.federated import aggregate, aggregate_integer_buffers, clip_update, screen_updates, update_norms
from HAR_federated.protocol import ProtocolError, check_tensors


@dataclass
class RoundOutcome:
    """What a round's answers became: the new global state (None: the round does not commit), the clients
    accepted and refused ({client: reason}), and why it did not commit."""

    state: dict | None
    accepted: list
    refused: dict = field(default_factory=dict)
    failure: str = ""
    median_update_norm: float | None = None  # of the accepted updates' weights: what --update_clip is sized by


def defend_round(global_state, answers, config, template=None):
    """answers: {client: (state dict, sample count)} -> RoundOutcome. template: the model's state (names,
    shapes, dtypes) the aggregate must match; the global state by default."""
    norms = {c: update_norms(state, global_state) for c, (state, _) in answers.items()}  # one pass per update
    refused = screen_updates({c: state for c, (state, _) in answers.items()}, global_state,
                             config.update_norm_factor, config.max_update_norm, norms=norms)
    accepted = sorted(c for c in answers if c not in refused)
    steps = sorted(norms[c][0] for c in accepted)
    median = steps[(len(steps) - 1) // 2] if steps else None
    if len(accepted) < config.min_clients:
        return RoundOutcome(None, accepted, refused, f"only {len(accepted)} accepted updates (min_clients "
                                                     f"{config.min_clients})", median)
    states = [clip_update(answers[c][0], global_state, config.update_clip) for c in accepted]
    counts = [min(answers[c][1], config.max_examples) for c in accepted]
    new_state = aggregate_integer_buffers(states, aggregate(states, counts, config.aggregation, config.trim_fraction))
    try:  # the server's own numbers are checked before they become the global model
        check_tensors(new_state, template if template is not None else global_state, config.max_abs_weight)
    except ProtocolError as err:
        return RoundOutcome(None, accepted, refused, f"the aggregate is unusable ({err})", median)
    return RoundOutcome(new_state, accepted, refused, median_update_norm=median)
