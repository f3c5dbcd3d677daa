"""Defaults of the federated HAR experiment. Every field is also a flag of HAR_federated/run.py.

FederatedConfig is composed of field groups (common/config.py, compose_config): the model, task and pretext
fields every pretraining shares (common/pretrain_config.py), the HAR data, and the federation's own, so a
federated encoder is evaluated by HAR_centralized/train_classifier.py unchanged. The schedule is counted
in rounds and local epochs: there is no --epochs here.
"""
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from common.config import Config, compose_config, field
from ground.errors import UserError
from common.federated import AGGREGATIONS, trimmed_count
from common.pretrain_config import SSLConfig
from har_task.config import DEFAULT_RECIPE, HARDataConfig, HARPretrainDataConfig


ROLES = ("local", "server", "client", "enrol")
# the socket server's transport and keys: the flower backend has its own (TLS, node authentication) and refuses these
SOCKET_ONLY = ("max_round_retries", "port", "server", "client_id", "key_file", "client_keys", "max_connections",
               "max_handshakes", "max_inflight_mb", "round_grace_s", "keepalive_s", "max_frame_mb", "io_timeout_s")


@dataclass
class FederationConfig(Config):
    """The federation's fields: engine, roles, rounds, clients, transport, authentication and the server's
    defences."""
    backend: str = field("socket", "socket: this repository's prototype; flower: the Flower engine",
                         choices=("socket", "flower"))
    role: str = field("local", "local: server + clients as threads of one process; server; client; enrol: write "
                                "--client_keys (the server's file) and one key file per client", choices=ROLES)
    # sized like centralized pretraining: rounds x local_epochs x client_fraction = its epochs
    rounds: int = field(15, "federated rounds")
    local_epochs: int = field(2, "client epochs per round")
    client_fraction: float = field(1.0, "share of connected clients asked each round")
    num_clients: int = field(18, "clients; the 18 train subjects are grouped into this many")
    min_clients: int = field(2, "a round counts only if at least this many clients answered")
    max_round_retries: int = field(3, "retries of a round that got too few answers")
    proximal_mu: float = field(0.0, "FedProx proximal term; 0 is plain FedAvg")
    host: str = field("127.0.0.1", "server address to bind (server) or of the local run")
    port: int = field(8765, "server port (the local role always picks a free one)")
    server: str = field("127.0.0.1:8765", "HOST:PORT of the server (client role)")
    client_id: int = field(0, "which client this process is (client role)")
    key_file: str = field("", "a client's own key file (from --role enrol), or the shared key file of a "
                              "shared-key run; empty: $MTSSL_FED_KEY")
    client_keys: str = field("", "server: the enrolment file (client id -> key, from --role enrol), so each client "
                                 "can only speak as itself; empty: one key shared by every client (weaker: any "
                                 "holder can claim any client id)")
    tls_cert: str = field("", "server certificate (PEM): enables TLS")
    tls_key: str = field("", "server private key (PEM)")
    tls_ca: str = field("", "CA certificate the client verifies the server against: enables TLS")
    flower_node_auth: int = field(0, "flower backend: the SuperLink accepts only SuperNodes whose keys it registered "
                                     "(needs --tls_cert, --tls_key, --tls_ca)")
    # fedavg stays the default: with the screening it bounds every measured insider as the median does, at no
    # cost to the honest run's quality (docs/federated.md, "Which aggregation by default")
    aggregation: str = field("fedavg", "fedavg (weighted by sample counts), or robust to a minority of bad "
                                       "clients: median, trimmed_mean", choices=AGGREGATIONS)
    trim_fraction: float = field(0.2, "trimmed_mean: share of clients dropped at each end, per coordinate "
                                               "(rounded up: at least one; refused when it would leave none)")
    update_clip: float = field(0.0, "bound on the L2 norm of each client's update (its weights minus the global "
                                    "ones); 0: no bound")
    max_connections: int = field(64, "server: open connections at most; more are closed at once")
    max_handshakes: int = field(16, "server: handshakes in progress at most")
    max_inflight_mb: float = field(512.0, "server: payload bytes being received at once, over all connections")
    max_examples: int = field(1_000_000, "server: the largest sample count a client may declare (with fedavg it "
                                         "bounds one client's weight: set it near the real per-client size)")
    max_abs_weight: float = field(1e4, "server: an update holding a weight larger in magnitude is refused")
    update_norm_factor: float = field(10.0, "server: an update (weights minus the global ones; batch-norm statistics "
                                            "apart) whose norm exceeds this many times the median of the other "
                                            "clients' this round is refused; 0: no such check")
    max_update_norm: float = field(0.0,
                                   "server: an update of the weights with a larger L2 norm is refused; 0: no bound")
    max_loss: float = field(1e6, "server: a client reporting a loss larger in magnitude is refused")
    round_grace_s: float = field(5.0, "once --min_clients answered, the round waits for the others as long again as "
                                      "that took, at least this many seconds, then closes without them")
    keepalive_s: float = field(10.0, "server: seconds between keep-alive frames to idle clients; a client that hears "
                                     "nothing for 3 x this (+ --io_timeout_s) rejoins")
    max_frame_mb: float = field(64.0, "frames larger than this are rejected")
    io_timeout_s: float = field(30.0,
                                "socket timeout for connecting and handshakes; a started frame must be whole within it")
    round_timeout_s: float = field(600.0, "how long the server waits for a client's update")
    connect_wait_s: float = field(60.0, "how long the server waits for min_clients to connect")

    def check_values(self):
        if self.backend == "flower":  # a flag the backend cannot honour is refused, never ignored
            defaults = {f.name: f.default for f in dataclasses.fields(FederationConfig)}
            changed = [name for name in SOCKET_ONLY if getattr(self, name) != defaults[name]]
            if changed or self.role != "local":
                raise UserError(f"--backend flower cannot honour {', '.join('--' + n for n in changed or ['role'])}: "
                                f"{'they are' if len(changed) > 1 else 'it is'} the socket server's (Flower's own "
                                f"SuperLink and SuperNodes have their settings; --role takes local)")
        # the checks across groups: a federated run refuses HARPretrainDataConfig's centralized-only fields
        if self.pretrain_extra:
            raise UserError("--pretrain_extra adds recordings to centralized pretraining: federated clients keep "
                            "their own data")
        if self.pretrain_corpus:
            raise UserError("--pretrain_corpus streams one corpus to centralized (or torchrun) pretraining: "
                            "federated clients keep their own data")
        if "rocket_views" in getattr(self, "tasks", ()):  # its targets: the teacher on every client's views
            raise UserError("--tasks rocket_views is centralized only: a federation shares the rocket task's "
                            "MiniRocket PCA, not the teacher's answers on each client's views")
        for name in ("rounds", "local_epochs", "num_clients", "min_clients"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name} must be at least 1")
        if not 0 < self.client_fraction <= 1:
            raise UserError("--client_fraction must be in (0, 1]")
        if self.min_clients > self.num_clients:
            raise UserError("--min_clients cannot exceed --num_clients")
        if self.proximal_mu < 0 or self.max_frame_mb <= 0:
            raise UserError("--proximal_mu must be non-negative and --max_frame_mb positive")
        for name in ("max_connections", "max_handshakes", "max_examples"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.trim_fraction < 0.5 or self.update_clip < 0 or not self.max_inflight_mb >= self.max_frame_mb \
                or not self.max_abs_weight > 0:
            raise UserError("--trim_fraction must be in [0, 0.5), --update_clip non-negative, --max_inflight_mb "
                            "at least --max_frame_mb and --max_abs_weight positive")
        if self.aggregation == "trimmed_mean":
            try:
                trimmed_count(self.trim_fraction, self.min_clients)
            except ValueError as err:
                raise UserError(f"{err} (raise --min_clients or --trim_fraction)") from None
        for name in ("update_norm_factor", "max_update_norm"):
            if getattr(self, name) < 0:
                raise UserError(f"--{name} must be >= 0 (0: off), got {getattr(self, name)}")
        if self.role == "enrol" and not self.client_keys:
            raise UserError("--role enrol writes --client_keys FILE: name the file")
        for name in ("io_timeout_s", "round_timeout_s", "connect_wait_s", "max_loss", "round_grace_s", "keepalive_s"):
            if not getattr(self, name) > 0:
                raise UserError(f"--{name} must be a positive number of seconds, got {getattr(self, name)}")
        if not 0 <= self.port <= 65535:
            raise UserError(f"--port must be in 0..65535, got {self.port}")
        if self.role == "client":
            server_address(self.server)
        if self.flower_node_auth not in (0, 1) or (self.flower_node_auth and not (self.tls_cert and self.tls_ca)):
            raise UserError("--flower_node_auth takes 0 or 1, and 1 needs TLS: --tls_cert, --tls_key and --tls_ca")
        if self.backend == "flower" and self.tls_cert and not self.tls_ca:
            raise UserError("the flower backend with TLS also needs --tls_ca (what the SuperNodes verify the "
                            "SuperLink by)")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise UserError("--tls_cert and --tls_key go together: give the server's certificate and its private key")

    def check_machine(self):
        if self.client_keys and self.role not in ("enrol",) and not Path(self.client_keys).is_file():
            raise UserError(f"--client_keys {self.client_keys} does not exist or is not a file")
        for name in ("key_file", "tls_cert", "tls_key", "tls_ca"):
            path = getattr(self, name)
            if path and not Path(path).is_file():
                raise UserError(f"--{name} {path} does not exist or is not a file")


# run.py's config: the run, model, tasks and optimiser (SSLConfig), the HAR data and the federation. The
# default recipe (har_task/config.py, DEFAULT_RECIPE; its MiniRocket PCA is fit from the clients' statistics,
# data_processing/federated_minirocket.py) with as many passes over the data: rounds x local_epochs = its
# epochs. Batches of 32, not 128: a client holds a few hundred windows, and 128 left it 2 steps an epoch
# (measured below centralized by several points at 10% labels; 32 closes most of it)
FederatedConfig = compose_config(
    "FederatedConfig", __name__, (SSLConfig, HARDataConfig, HARPretrainDataConfig, FederationConfig),
    defaults={"output_dir": "HAR_federated/outputs", "experiment_name": "fedavg", "batch_size": 32,
              **{k: v for k, v in DEFAULT_RECIPE.defaults().items() if k != "epochs"},
              "rounds": DEFAULT_RECIPE.epochs // FederationConfig.local_epochs},
    DEFAULT_TASKS=DEFAULT_RECIPE.tasks)


def server_address(text):
    """HOST:PORT -> (host, port); anything else is a one-line error naming --server."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise UserError(f"--server takes HOST:PORT with a port in 1..65535, got {text!r}")
    return host.strip("[]"), int(port)
