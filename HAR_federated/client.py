"""Federated client: connects, says hello, answers each "train" with its local update, rejoins if cut off.

Between rounds the client keeps its optimiser and task-weighting state; it checkpoints that state after
each round (<run folder>/clients/client<id>.pt, the previous one kept), so a resumed run trains exactly
as an uninterrupted one would.
"""
import copy
import math
import ssl
import threading

from common.checkpoint import atomic_torch_save, safe_torch_load
from common.errors import UserError
from common.federated import LocalTrainer
from HAR_federated.protocol import ProtocolError, check_tensors, client_handshake, connect


def check_train_header(header):
    """(round, rounds, local_epochs, proximal_mu) of a train frame, each of the right type and range."""
    round_index, rounds, epochs, mu = (header.get(k) for k in ("round", "rounds", "local_epochs", "proximal_mu"))
    if header.get("type") != "train" or type(round_index) is not int or type(rounds) is not int \
            or not 0 <= round_index < rounds or type(epochs) is not int or not 1 <= epochs <= 1000 \
            or type(mu) not in (int, float) or not (math.isfinite(mu) and mu >= 0):
        raise ProtocolError(f"malformed train message: {str(header)[:200]}")
    return round_index, rounds, epochs, float(mu)


class FederatedClient:
    def __init__(self, config, data, client_id, key, server_address, tls_context=None, log=print):
        self.config, self.client_id, self.key, self.address = config, client_id, key, server_address
        self.tls_context, self.log = tls_context, log
        self.local = LocalTrainer(config, data, client_id)
        self.template = {k: v.detach().cpu() for k, v in self.local.model.state_dict().items()}
        self.max_payload = int(config.max_frame_mb * 2**20)
        self.rounds_done = 0
        self.stop_event = threading.Event()  # set by whoever runs the client in a thread, to end its rejoin loop
        self.state_path = config.run_dir() / "clients" / f"client{client_id}.pt"
        self.initial_state = copy.deepcopy(self.local.training_state(-1))
        self.state_round = None  # the round the training state in memory follows; None: not loaded yet
        if not config.resume:  # a fresh run never picks up an earlier run's client state
            for path in (self.state_path, self.state_path.with_name(self.state_path.name + ".prev")):
                path.unlink(missing_ok=True)

    def _training_state_before(self, round_index):
        """The optimiser and weighting state this client had after its last round before round_index: the one
        in memory, else the newest saved one (a resumed run, or a round the server is redoing)."""
        if self.state_round is not None and self.state_round < round_index:
            return
        chosen = self.initial_state
        for path in (self.state_path, self.state_path.with_name(self.state_path.name + ".prev")):
            try:
                saved = safe_torch_load(path) if path.exists() else None
            except UserError:
                saved = None  # a torn write: the other file still holds a complete state
            if saved is not None and chosen["round"] < saved["round"] < round_index:
                chosen = saved
        self.local.load_training_state(copy.deepcopy(chosen))
        self.state_round = chosen["round"]

    def _session(self):
        """One connection: the handshake, then train/update until "done". Returns True when the server is done."""
        sock = connect(self.address, self.config.io_timeout_s, self.tls_context)
        try:
            channel = client_handshake(sock, self.key, self.client_id, self.local.num_examples, self.config.io_timeout_s)
            while True:
                sock.settimeout(None)  # between rounds the server may be busy with other clients
                header, tensors, _ = channel.receive(self.max_payload, self.config.io_timeout_s)
                sock.settimeout(self.config.io_timeout_s)
                if header["type"] == "done":
                    return True
                round_index, rounds, local_epochs, mu = check_train_header(header)
                check_tensors(tensors, self.template)
                self._training_state_before(round_index)
                state, count, losses = self.local.local_update(tensors, round_index, rounds, local_epochs, mu)
                atomic_torch_save(self.local.training_state(round_index), self.state_path)
                self.state_round = round_index
                channel.send({"type": "update", "round": round_index, "num_examples": count, "losses": losses}, state)
                self.rounds_done += 1
        finally:
            sock.close()

    def run(self, max_reconnects=20, backoff_s=0.5):
        """Serve rounds until the server says done; reconnect (rejoin) after a dropped connection.

        Up to max_reconnects failed connections in a row: a session that completed a round resets the count,
        so a long run with occasional drops keeps its clients. A server certificate that fails verification
        ends the client at once: retrying cannot fix it.
        """
        failures = 0
        while not self.stop_event.is_set():
            rounds_before = self.rounds_done
            try:
                if self._session():
                    return self.rounds_done
            except ssl.SSLCertVerificationError as err:
                raise ProtocolError(f"client {self.client_id}: the server's TLS certificate failed verification "
                                    f"({err.verify_message}); check --tls_ca and the --server host name") from None
            except (OSError, ProtocolError) as err:
                if self.stop_event.is_set():
                    break
                self.log(f"client {self.client_id}: connection lost ({err}); rejoining")
            failures = 1 if self.rounds_done > rounds_before else failures + 1
            if failures > max_reconnects:
                raise ProtocolError(f"client {self.client_id}: gave up after {max_reconnects} failed reconnects in a row")
            self.stop_event.wait(backoff_s * min(2 ** (failures - 1), 8))
        return self.rounds_done
