"""The Flower task code: the same federated pretraining as the socket prototype, as a Flower ServerApp and
ClientApp (what HAR_federated/flower/pyproject.toml names). The ClientApp trains through
common.federated.LocalTrainer (the shared loop); the ServerApp runs Flower's FedAvg (or FedProx) strategy with
the socket server's defence in place of its average (HAR_federated/defence.py: the same transport checks,
sample-count cap, screening, robust aggregation, clipping and aggregate check) and saves the encoder like
every other run.

Starting the processes (a SuperLink, SuperNodes, `flwr run`) is HAR_federated/flower_launch.py's. This
module needs Flower (`pip install -e .[flower]`): only Flower's processes and the tests import it.
"""
import json
import math
import time

import numpy as np
import torch

from common.config import config_from_dict
from common.federated import LocalTrainer
from common.run_folder import RunFolder
from HAR_federated.config import FederatedConfig
from data_processing.federated_minirocket import (STAGES, ClientRocket, RocketPCA, RocketStatisticsError,
                                                  checked_transform, transform_digest)
from HAR_federated.defence import defend_round
from HAR_federated.protocol import ProtocolError, check_tensors
from har_task import HARTask
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg, FedProx


def _config(json_text):
    return config_from_dict(FederatedConfig, json.loads(json_text))


def checked_replies(replies, template, rejected, max_abs=None, max_examples=None, max_loss=None):
    """The training replies whose update passes the socket server's transport checks (names, shapes, dtypes,
    finite values within max_abs, num-examples an integer in 1..max_examples, losses finite within
    max_loss); the others are logged in `rejected` and left out. Error replies are logged and left out too."""
    kept = []
    for message in replies:
        node = message.metadata.src_node_id
        if message.has_error():
            rejected.append(f"node {node} answered with an error ({str(message.error.reason)[:200]})")
            continue
        try:
            check_tensors(message.content["arrays"].to_torch_state_dict(), template, max_abs)
            metrics = message.content["metrics"]
            count = metrics["num-examples"]
            if type(count) is not int or not 1 <= count <= (max_examples or count):
                raise ProtocolError(f"num-examples {count!r} is not an integer in 1..{max_examples or 'inf'}")
            losses = [v for k, v in dict(metrics).items() if str(k).startswith("loss-")]
            if max_loss is not None and not all(isinstance(v, (int, float)) and math.isfinite(v)
                                                and abs(v) <= max_loss for v in losses):
                raise ProtocolError(f"losses must be finite numbers within +-{max_loss:g}")
        except (ProtocolError, KeyError, TypeError, ValueError) as err:
            rejected.append(f"rejected the update of node {node}: {err}")
            continue
        kept.append(message)
    return kept


class DefendedStrategy:
    """Mixed into a Flower strategy: the round's answers become the global model through the socket server's
    defence (HAR_federated/defence.py, defend_round: the sample-count cap, screening against the global model,
    --aggregation, --update_clip and the aggregate's check), not through the strategy's own average. A round
    that does not commit keeps the global model (Flower's loop then goes on to the next round)."""

    def __init__(self, template, config, **kwargs):
        super().__init__(**kwargs)
        self.template, self.config, self.rejected = template, config, []
        self.global_state = {k: v.detach().cpu().clone() for k, v in template.items()}
        self.failed_rounds = []

    def configure_train(self, server_round, arrays, config, grid):
        self.remember_global(arrays)
        return super().configure_train(server_round, arrays, config, grid)

    def remember_global(self, arrays):
        """The global model this round's updates answer (what the screening judges them against)."""
        self.global_state = {k: v.detach().cpu().clone() for k, v in arrays.to_torch_state_dict().items()}

    def aggregate_train(self, server_round, replies):
        config = self.config
        kept = checked_replies(list(replies), self.template, self.rejected, config.max_abs_weight,
                               config.max_examples, config.max_loss)
        answers = {m.metadata.src_node_id: (m.content["arrays"].to_torch_state_dict(),
                                            m.content["metrics"]["num-examples"]) for m in kept}
        outcome = defend_round(self.global_state, answers, config, self.template)
        for node, reason in sorted(outcome.refused.items()):
            self.rejected.append(f"refused the update of node {node} in round {server_round}: {reason}")
        if outcome.state is None:
            self.failed_rounds.append(server_round)
            self.rejected.append(f"round {server_round}: {outcome.failure}; the global model is kept")
            return None, None
        accepted = [m for m in kept if m.metadata.src_node_id in outcome.accepted]
        metrics = self.train_metrics_aggr_fn([m.content for m in accepted], self.weighted_by_key)
        return ArrayRecord({k: v.to(self.template[k].dtype) for k, v in outcome.state.items()}), metrics


class DefendedFedAvg(DefendedStrategy, FedAvg):
    pass


class DefendedFedProx(DefendedStrategy, FedProx):
    pass


server_app = ServerApp()
client_app = ClientApp()
_trainers = {}  # one LocalTrainer per client and config, kept while the ClientApp process lives


def _arrays(values):
    return ArrayRecord({k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in values.items()})


def _numpy(record):
    return {k: v.double().numpy() for k, v in record.to_torch_state_dict().items()}


def _node_ids(grid, config):
    """The connected SuperNodes' ids, once at least min_clients are there (within --connect_wait_s)."""
    deadline = time.time() + config.connect_wait_s
    while len(nodes := list(grid.get_node_ids())) < config.min_clients:
        if time.time() > deadline:
            raise ProtocolError(f"fewer than {config.min_clients} SuperNodes connected within "
                                f"{config.connect_wait_s:.0f} s")
        time.sleep(1.0)
    return sorted(nodes)


def fit_rocket(grid, config, config_json, rejected, input_shape):
    """The rocket task's shared MiniRocket transform and PCA from the SuperNodes' statistics, the socket
    server's three stages (data_processing/federated_minirocket.py), then sent to every node ("query.rocket")."""
    fit, start = RocketPCA(input_shape, config.rocket_kernels, config.seed, config.rocket_dim), time.time()
    clients = {}
    for stage in STAGES:
        request = _arrays(fit.request(stage))
        messages = [Message(content=RecordDict({"arrays": request, "config": ConfigRecord(
            {"stage": stage, "config-json": config_json})}), dst_node_id=node, message_type="query.rocket")
            for node in _node_ids(grid, config)]
        answers = []
        for reply in grid.send_and_receive(messages, timeout=config.round_timeout_s):
            try:
                if reply.has_error():
                    raise ProtocolError(f"an error reply ({reply.error.reason[:200]})")
                count = reply.content["metrics"]["num-examples"]
                if type(count) is not int or not 1 <= count <= config.max_examples:
                    raise ProtocolError(f"num-examples {count!r} is not an integer in 1..{config.max_examples}")
                answer = _numpy(reply.content["arrays"])
                fit.check_answer(stage, answer, count)
                answers.append((answer, count))
            except (ProtocolError, RocketStatisticsError, KeyError, TypeError, ValueError) as err:
                rejected.append(f"rejected the rocket {stage} statistics of node {reply.metadata.src_node_id}: {err}")
        if len(answers) < config.min_clients:
            raise ProtocolError(f"the rocket task's {stage} statistics: only {len(answers)} nodes answered "
                                f"(min_clients {config.min_clients})")
        fit.combine(stage, answers)
        clients[stage] = len(answers)
    transform = fit.transform
    messages = [Message(content=RecordDict({"arrays": _arrays(transform), "config": ConfigRecord(
        {"stage": "transform", "config-json": config_json})}), dst_node_id=node, message_type="query.rocket")
        for node in _node_ids(grid, config)]
    for reply in grid.send_and_receive(messages, timeout=config.round_timeout_s):
        if reply.has_error():
            rejected.append(f"node {reply.metadata.src_node_id} failed to take the rocket transform: "
                            f"{reply.error.reason[:200]}")
    return transform_digest(transform), {"clients": clients, "windows": fit.total, "components": fit.available,
                                         "features": fit.num_features, "seconds": round(time.time() - start, 2)}

@server_app.main()
def server_main(grid: Grid, context: Context) -> None:
    config = _config(context.run_config["config-json"])
    task = HARTask(config)
    model = task.model()
    run = RunFolder(config.run_dir())
    run.start(config)
    common = dict(fraction_train=config.client_fraction, fraction_evaluate=0.0, min_train_nodes=config.min_clients,
                  min_available_nodes=config.min_clients)
    template = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    strategy = (DefendedFedProx(template, config, proximal_mu=config.proximal_mu, **common)
                if config.proximal_mu > 0 else DefendedFedAvg(template, config, **common))
    start = time.time()
    train_config = {"config-json": context.run_config["config-json"]}
    rocket_setup = {}
    if "rocket" in model.tasks:  # one MiniRocket PCA for every client, before round 1
        train_config["rocket-digest"], rocket_setup = fit_rocket(grid, config, context.run_config["config-json"],
                                                                 strategy.rejected, task.input_shape)
    result = strategy.start(grid=grid, initial_arrays=ArrayRecord(model.state_dict()), num_rounds=config.rounds,
                            train_config=ConfigRecord(train_config))
    state = result.arrays.to_torch_state_dict()
    model.load_state_dict({k: v.to(model.state_dict()[k].dtype) for k, v in state.items()})
    for server_round, metrics in sorted(result.train_metrics_clientapp.items()):
        run.log({"round": int(server_round), **dict(metrics)})
    run.save_encoder(model.encoder, task.input_shape, task.encoder_record())
    metrics = {str(r): dict(m) for r, m in result.train_metrics_clientapp.items()}
    run.write_summary({"run": config.run_name(), "backend": "flower", "rounds": config.rounds,
                       "rejected": strategy.rejected[-20:], "failed_rounds": strategy.failed_rounds,
                       **({"rocket_setup": rocket_setup} if rocket_setup else {}),
                       "train_seconds": round(time.time() - start, 2), "train_metrics": metrics})

def _trainer(msg, context):
    """(config, key, this node's LocalTrainer) for the config the message carries."""
    config_json = msg.content["config"]["config-json"]
    config = _config(config_json)
    client_id = int(context.node_config["partition-id"])
    key = (client_id, config_json)
    if key not in _trainers:
        _trainers[key] = LocalTrainer(config, HARTask(config).client_datasets()[client_id], client_id)
    return config, key, _trainers[key]


@client_app.query("rocket")
def client_rocket(msg: Message, context: Context) -> Message:
    """A stage of the rocket task's shared PCA: this node's statistics; or ("transform") the result, which
    becomes its targets."""
    config, _, local = _trainer(msg, context)
    rocket = ClientRocket(local.data.x, config.rocket_kernels, config.seed, config.rocket_dim)
    stage, request = msg.content["config"]["stage"], _numpy(msg.content["arrays"])
    if stage == "transform":
        # a ClientApp may be a fresh process for each message: the targets live in the node's run state
        transform = checked_transform(request, rocket.num_features, config.rocket_dim)
        context.state["rocket-targets"] = _arrays({"rocket": rocket.targets(transform)})
        context.state["rocket"] = ConfigRecord({"digest": transform_digest(transform)})
        return Message(content=RecordDict({"metrics": MetricRecord({"num-examples": local.num_examples})}),
                       reply_to=msg)
    if stage not in STAGES:
        raise ProtocolError(f"unknown rocket stage {str(stage)[:40]!r}")
    return Message(content=RecordDict({"arrays": _arrays(rocket.answer(stage, request)),
                                       "metrics": MetricRecord({"num-examples": local.num_examples})}), reply_to=msg)


@client_app.train()
def client_train(msg: Message, context: Context) -> Message:
    config, _, local = _trainer(msg, context)
    digest = msg.content["config"].get("rocket-digest")
    if digest is not None:
        if "rocket" not in context.state or context.state["rocket"]["digest"] != digest:
            # a node that joined after the rocket fit has no shared targets: no update from it
            raise ProtocolError("this node has not got the federation's rocket transform")
        local.use_targets({"rocket": context.state["rocket-targets"]["rocket"].numpy().astype(np.float32)})
    server_round = int(msg.content["config"].get("server-round", 1))
    state, count, losses = local.local_update(msg.content["arrays"].to_torch_state_dict(), server_round - 1,
                                              config.rounds, config.local_epochs,
                                              float(msg.content["config"].get("proximal-mu", 0.0)))
    metrics = MetricRecord({"num-examples": count, **{f"loss-{k}": float(v) for k, v in losses.items()}})
    return Message(content=RecordDict({"arrays": ArrayRecord(state), "metrics": metrics}), reply_to=msg)
