"""The Flower task code: the same federated pretraining as the socket prototype, as a Flower ServerApp and
ClientApp (what HAR_federated/flower/pyproject.toml names). The ClientApp trains through
common.federated.LocalTrainer (the shared loop); the ServerApp runs Flower's FedAvg (or FedProx) strategy,
checks every update like the socket server and saves the encoder like every other run.

Starting the processes (a SuperLink, SuperNodes, `flwr run`) is HAR_federated/flower_launch.py's. This
module needs Flower (`pip install -e .[flower]`): only Flower's processes and the tests import it.
"""
import json
import time

from common.config import config_from_dict
from common.federated import LocalTrainer
from common.har_task import encoder_data_record, har_client_datasets, har_model, input_shape
from common.run_folder import RunFolder
from HAR_federated.config import FederatedConfig
from HAR_federated.protocol import ProtocolError, check_tensors
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg, FedProx


def _config(json_text):
    return config_from_dict(FederatedConfig, json.loads(json_text))


def checked_replies(replies, template, rejected, max_abs=None):
    """The training replies whose update passes the socket server's checks (names, shapes, dtypes, finite
    values, a positive integer num-examples); the others are logged in `rejected` and left out of the average."""
    kept = []
    for message in replies:
        if message.has_error():
            kept.append(message)  # Flower's strategy logs and drops these itself
            continue
        try:
            check_tensors(message.content["arrays"].to_torch_state_dict(), template, max_abs)
            count = message.content["metrics"]["num-examples"]
            if type(count) is not int or count < 1:
                raise ProtocolError(f"num-examples {count!r} is not a positive integer")
        except (ProtocolError, KeyError, TypeError, ValueError) as err:
            rejected.append(f"rejected the update of node {message.metadata.src_node_id}: {err}")
            continue
        kept.append(message)
    return kept



class CheckedUpdates:
    """Mixed into a Flower strategy: each client's update is checked before it is averaged."""

    def __init__(self, template, max_abs, **kwargs):
        super().__init__(**kwargs)
        self.template, self.max_abs, self.rejected = template, max_abs, []

    def aggregate_train(self, server_round, replies):
        return super().aggregate_train(server_round, checked_replies(list(replies), self.template, self.rejected,
                                                                     self.max_abs))

class CheckedFedAvg(CheckedUpdates, FedAvg):
    pass

class CheckedFedProx(CheckedUpdates, FedProx):
    pass

server_app = ServerApp()
client_app = ClientApp()
_trainers = {}  # one LocalTrainer per client and config, kept while the ClientApp process lives

@server_app.main()
def server_main(grid: Grid, context: Context) -> None:
    config = _config(context.run_config["config-json"])
    model = har_model(config)
    run = RunFolder(config.run_dir())
    run.start(config)
    common = dict(fraction_train=config.client_fraction, fraction_evaluate=0.0, min_train_nodes=config.min_clients,
                  min_available_nodes=config.min_clients)
    template = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    strategy = (CheckedFedProx(template, config.max_abs_weight, proximal_mu=config.proximal_mu, **common)
                if config.proximal_mu > 0 else CheckedFedAvg(template, config.max_abs_weight, **common))
    start = time.time()
    result = strategy.start(grid=grid, initial_arrays=ArrayRecord(model.state_dict()), num_rounds=config.rounds,
                            train_config=ConfigRecord({"config-json": context.run_config["config-json"]}))
    state = result.arrays.to_torch_state_dict()
    model.load_state_dict({k: v.to(model.state_dict()[k].dtype) for k, v in state.items()})
    for server_round, metrics in sorted(result.train_metrics_clientapp.items()):
        run.log({"round": int(server_round), **dict(metrics)})
    run.save_encoder(model.encoder, input_shape(config), encoder_data_record(config))
    metrics = {str(r): dict(m) for r, m in result.train_metrics_clientapp.items()}
    run.write_summary({"run": config.run_name(), "backend": "flower", "rounds": config.rounds,
                       "rejected": strategy.rejected[-20:],
                       "train_seconds": round(time.time() - start, 2), "train_metrics": metrics})

@client_app.train()
def client_train(msg: Message, context: Context) -> Message:
    config_json = msg.content["config"]["config-json"]
    config = _config(config_json)
    client_id = int(context.node_config["partition-id"])
    key = (client_id, config_json)
    if key not in _trainers:
        _trainers[key] = LocalTrainer(config, har_client_datasets(config)[client_id], client_id)
    local = _trainers[key]
    server_round = int(msg.content["config"].get("server-round", 1))
    state, count, losses = local.local_update(msg.content["arrays"].to_torch_state_dict(), server_round - 1,
                                              config.rounds, config.local_epochs,
                                              float(msg.content["config"].get("proximal-mu", 0.0)))
    metrics = MetricRecord({"num-examples": count, **{f"loss-{k}": float(v) for k, v in losses.items()}})
    return Message(content=RecordDict({"arrays": ArrayRecord(state), "metrics": metrics}), reply_to=msg)
