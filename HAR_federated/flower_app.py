"""The same federated pretraining through Flower (`flwr`), for fleets of real devices.

Only the adapter differs from the socket prototype: the ClientApp trains through
common.federated.LocalTrainer (the shared loop), the ServerApp runs Flower's FedAvg (or FedProx)
strategy and saves the encoder like every other run. `run_flower` starts a SuperLink and one SuperNode
per client on 127.0.0.1 over gRPC and submits the app with `flwr run`; on a real fleet, start the
SuperNodes on the devices (`flower-supernode --superlink HOST:9092 --node-config "partition-id=K
num-partitions=N"`) and submit the app folder HAR_federated/flower/ to your SuperLink.

Install with `pip install -e .[flower]`.
"""
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common.config import config_from_dict, config_to_dict
from ground.errors import UserError
from common.federated import LocalTrainer
from common.har_task import encoder_data_record, har_client_datasets, har_model, input_shape
from common.run_folder import RunFolder
from HAR_federated.config import FederatedConfig
from HAR_federated.protocol import ProtocolError, check_tensors

APP_DIR = Path(__file__).resolve().parent / "flower"

try:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid, ServerApp
    from flwr.serverapp.strategy import FedAvg, FedProx
except ImportError:  # the socket backend works without Flower
    ClientApp = ServerApp = None


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


if ServerApp is not None:

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


def _free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _wait_for_port(host, port, processes, logs, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(p.poll() is not None for p in processes):
            raise UserError(f"a Flower process exited early; logs in {logs}")
        with socket.socket() as s:
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.2)
    raise UserError(f"a Flower process did not open port {port} within {timeout} s")


def toml_string(text):
    """A TOML basic string holding `text` exactly: JSON's escapes are TOML's, plus DEL, which TOML forbids raw."""
    return json.dumps(text).replace("\x7f", "\\u007f")


def _node_keys(folder, count):
    """One P-384 key pair per SuperNode, in OpenSSH format (what Flower's node authentication reads)."""
    keys = []
    for node in range(count):
        private = ec.generate_private_key(ec.SECP384R1())
        private_path, public_path = folder / f"node{node}", folder / f"node{node}.pub"
        private_path.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                                       serialization.NoEncryption()))
        private_path.chmod(0o600)
        public_path.write_bytes(private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                                  serialization.PublicFormat.OpenSSH))
        keys.append((private_path, public_path))
    return keys


def run_flower(config, timeout_s=1800):
    """SuperLink + one SuperNode per client (gRPC), then `flwr run` of the app; blocks.

    With --tls_cert/--tls_key/--tls_ca every Flower connection is TLS; --flower_node_auth 1 also registers
    each SuperNode's public key with the SuperLink, which then refuses any node it does not know. Without
    TLS the processes talk in plaintext, which is only safe on loopback: any other --host gets a warning.
    """
    if ServerApp is None:
        raise UserError("the flower backend needs Flower: pip install -e .[flower]")
    bin_dir = Path(sys.executable).parent
    tool = {name: str(bin_dir / name) if (bin_dir / name).exists() else shutil.which(name)
            for name in ("flower-superlink", "flower-supernode", "flwr")}
    home = Path(tempfile.mkdtemp(prefix="flwr_home_"))
    # Flower's processes start further Flower executables by name: this environment's come first
    env = {**os.environ, "FLWR_HOME": str(home), "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    tls = bool(config.tls_cert)
    if not tls and not ipaddress.ip_address(socket.gethostbyname(config.host)).is_loopback:
        print(f"warning: the Flower processes talk in plaintext on {config.host}: give --tls_cert, --tls_key and "
              f"--tls_ca (and --flower_node_auth 1) for anything beyond this machine")
    link = _free_port(config.host)  # the SuperLink serves its Fleet, Control and runtime APIs on one port
    address = f"{config.host}:{link}"
    certificates = toml_string(str(Path(config.tls_ca).resolve())) if tls else ""
    security = f"root-certificates = {certificates}\n" if tls else "insecure = true\n"
    (home / "config.toml").write_text(f'[superlink]\ndefault = "loopback"\n\n[superlink.loopback]\n'
                                      f"address = {toml_string(address)}\n{security}")
    run_config = home / "run_config.toml"
    run_config.write_text(f"config-json = {toml_string(json.dumps(config_to_dict(config)))}\n")
    logs = home / "logs"
    logs.mkdir()
    processes = []

    def start(name, args):
        log = open(logs / f"{name}.log", "w")
        processes.append(subprocess.Popen([tool[args[0]], *args[1:]], env=env, stdout=log, stderr=subprocess.STDOUT,
                                          cwd=home))

    def flwr(*args, timeout=120):
        result = subprocess.run([tool["flwr"], *args], env=env, cwd=home, capture_output=True, text=True,
                                timeout=timeout)
        (logs / f"flwr_{args[0]}.log").open("a").write(result.stdout + result.stderr)
        return result

    link_security = (["--ssl-certfile", config.tls_cert, "--ssl-keyfile", config.tls_key, "--ssl-ca-certfile",
                      config.tls_ca] if tls else ["--insecure"])
    node_security = ["--root-certificates", config.tls_ca] if tls else ["--insecure"]
    try:
        start("superlink", ["flower-superlink", *link_security, "--host", config.host, "--port", str(link),
                            "--database", str(home / "state.db"),
                            *(["--enable-supernode-auth"] if config.flower_node_auth else []),
                            # the app's dependencies are this environment's; never fetch them at run time
                            "--disable-runtime-dependency-installation"])
        _wait_for_port(config.host, link, processes, logs)
        keys = _node_keys(home, config.num_clients) if config.flower_node_auth else []
        for private, public in keys:
            if flwr("supernode", "register", str(public), "loopback").returncode != 0:
                raise UserError(f"registering a SuperNode's key failed; logs in {logs}")
        for client_id in range(config.num_clients):
            auth = ["--auth-supernode-private-key", str(keys[client_id][0])] if keys else []
            start(f"supernode{client_id}", [
                "flower-supernode", *node_security, *auth, "--superlink", address,
                "--host", "127.0.0.1", "--port", str(_free_port()),
                "--node-config", f"partition-id={client_id} num-partitions={config.num_clients}"])
        result = flwr("run", str(APP_DIR), "loopback", "--run-config", str(run_config), "--stream", timeout=timeout_s)
        if result.returncode != 0 or not (config.run_dir() / "encoder.pt").exists():
            raise UserError(f"the Flower run failed; logs in {logs}")
        print(result.stdout[-2000:])
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
    return config.run_dir()
