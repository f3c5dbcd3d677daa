"""Federated client: connects, says hello, answers each "train" with its local update, rejoins if cut off.

Between rounds the client keeps its optimiser and task-weighting state; it checkpoints that state after
each round (<run folder>/clients/client<id>_round<r>.pt, the last KEPT_ROUNDS rounds), so a resumed run
trains exactly as an uninterrupted one would, even when the server falls back to its previous checkpoint
(two rounds behind the newest client state at most). Where the state a round needs is gone the client says
so in one line and tells the server ("exact": false).
Between frames the client waits at most 3 x the server's keep-alive interval (+ the I/O timeout): a session
that died without a FIN is noticed and the client rejoins.
"""
import copy
import math
import ssl
import threading

import numpy as np
import torch

from common.checkpoint import atomic_torch_save, safe_torch_load
from ground.errors import UserError
from common.federated import LocalTrainer
from data_processing.federated_minirocket import (STAGES, ClientRocket, RocketStatisticsError, checked_transform,
                                                  transform_digest)
from HAR_federated.protocol import ProtocolError, check_tensors, client_handshake, connect, line_log

KEPT_ROUNDS = 3  # server checkpoint fallback (1 round) + a client one round ahead of the server's newest


def check_train_header(header):
    """(round, rounds, local_epochs, proximal_mu, last_answered) of a train frame, each of the right type and
    range (last_answered: the last round the server heard from this client, -1 none)."""
    round_index, rounds, epochs, mu = (header.get(k) for k in ("round", "rounds", "local_epochs", "proximal_mu"))
    last = header.get("last_answered", -1)
    if header.get("type") != "train" or type(round_index) is not int or type(rounds) is not int \
            or not 0 <= round_index < rounds or type(epochs) is not int or not 1 <= epochs <= 1000 \
            or type(mu) not in (int, float) or not (math.isfinite(mu) and mu >= 0) \
            or type(last) is not int or not -1 <= last < round_index:
        raise ProtocolError(f"malformed train message: {str(header)[:200]}")
    return round_index, rounds, epochs, float(mu), last


class FederatedClient:
    def __init__(self, config, data, client_id, key, server_address, tls_context=None, log=print):
        self.config, self.client_id, self.key, self.address = config, client_id, key, server_address
        self.tls_context, self.log = tls_context, line_log(log)
        self.local = LocalTrainer(config, data, client_id)
        self.template = {k: v.detach().cpu() for k, v in self.local.model.state_dict().items()}
        self.max_payload = int(config.max_frame_mb * 2**20)
        self.rounds_done = 0
        self.stop_event = threading.Event()  # set by whoever runs the client in a thread, to end its rejoin loop
        self.state_dir = config.run_dir() / "clients"
        self.initial_state = copy.deepcopy(self.local.training_state(-1))
        self.state_round = None  # the round the training state in memory follows; None: not loaded yet
        self.data = data
        self.needs_rocket = "rocket" in self.local.model.tasks
        self.rocket, self.rocket_digest = None, None  # ClientRocket (built at the first request), targets' digest
        if not config.resume:  # a fresh run never picks up an earlier run's client state
            for path in self._saved_states().values():
                path.unlink(missing_ok=True)

    def _state_path(self, round_index):
        return self.state_dir / f"client{self.client_id}_round{round_index}.pt"

    def _saved_states(self):
        """{round: path} of this client's saved training states."""
        found = self.state_dir.glob(f"client{self.client_id}_round*.pt") if self.state_dir.is_dir() else ()
        return {int(p.stem.rsplit("_round", 1)[1]): p for p in found if p.stem.rsplit("_round", 1)[1].isdigit()}

    def _load_state(self, round_index):
        try:
            state = safe_torch_load(self._state_path(round_index))
        except UserError:
            return None  # missing or torn
        return state if isinstance(state, dict) and state.get("round") == round_index else None

    def _save_training_state(self, round_index, from_round):
        """The state after round_index (trained from the state after from_round); rounds after it (a future the
        server undid) go, and only the KEPT_ROUNDS newest stay."""
        atomic_torch_save({**self.local.training_state(round_index), "from_round": from_round},
                          self._state_path(round_index), keep_previous=False)
        saved = self._saved_states()
        for number, path in saved.items():
            if number > round_index or number < sorted(r for r in saved if r <= round_index)[-KEPT_ROUNDS:][0]:
                path.unlink(missing_ok=True)

    def _training_state_before(self, round_index, last_answered=-1):
        """Load the optimiser and weighting state an uninterrupted run would start round_index from: the one in
        memory when this client's last round came before it; else (a resumed run, a round the server redoes)
        the one the saved state of the undone round started from, or the newest saved before it. Returns the
        round that state follows (-1: the initial one), or None when it is gone (older than the last round the
        server heard from this client): the round then starts from the initial state and the run is not exact
        (said in one line)."""
        if self.state_round is not None and self.state_round < round_index:
            return self.state_round
        saved = self._saved_states()
        undone = sorted(r for r in saved if r >= round_index)
        needed = (self._load_state(undone[0]) or {}).get("from_round") if undone else None
        if needed is None:
            needed = max((r for r in saved if r < round_index), default=-1)
        chosen = self.initial_state if needed == -1 else self._load_state(needed)
        if needed < last_answered:
            needed, chosen = last_answered, None
        if chosen is None:
            self.log(f"client {self.client_id}: the optimiser state of its round {needed + 1} is gone; starting round "
                     f"{round_index + 1} from the initial state: the resumed run is not exact")
        self.local.load_training_state(copy.deepcopy(chosen or self.initial_state))
        self.state_round = needed if chosen is not None else -1
        return needed if chosen is not None else None

    def _rocket(self):
        if self.rocket is None:
            config = self.config
            self.rocket = ClientRocket(self.data.x, config.rocket_kernels, config.seed, config.rocket_dim)
        return self.rocket

    def _answer_rocket(self, channel, header, tensors):
        """A stage of the federation's rocket PCA: this client's statistics (data_processing/
        federated_minirocket.py), never its windows."""
        stage = header.get("stage")
        if not self.needs_rocket or stage not in STAGES:
            raise ProtocolError(f"unexpected rocket stage {str(stage)[:40]!r}")
        try:
            answer = self._rocket().answer(stage, {k: v.double().numpy() for k, v in tensors.items()})
        except RocketStatisticsError as err:
            raise ProtocolError(f"the server's rocket {stage} request: {err}") from None
        channel.send({"type": "rocket_stats", "stage": stage, "num_examples": self.local.num_examples},
                     {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in answer.items()})

    def _use_rocket_transform(self, header, tensors):
        """The federation's rocket transform: this client's targets from then on."""
        rocket = self._rocket()
        try:
            transform = checked_transform({k: v.double().numpy() for k, v in tensors.items()}, rocket.num_features,
                                          self.config.rocket_dim)
        except RocketStatisticsError as err:
            raise ProtocolError(f"the server's rocket transform: {err}") from None
        digest = transform_digest(transform)
        if digest != self.rocket_digest:  # a rejoining client gets the same transform again: nothing to redo
            self.local.use_targets({"rocket": rocket.targets(transform)})
            self.rocket_digest = digest

    def _session(self):
        """One connection: the handshake, then train/update until "done". Returns True when the server is done."""
        sock = connect(self.address, self.config.io_timeout_s, self.tls_context)
        try:
            channel = client_handshake(sock, self.key, self.client_id, self.local.num_examples,
                                       self.config.io_timeout_s)
            # between rounds the server may be busy with other clients, but it pings: silence means a dead session
            silence = 3 * channel.keepalive_s + self.config.io_timeout_s if channel.keepalive_s else None
            while True:
                sock.settimeout(silence)
                try:
                    header, tensors, _ = channel.receive(self.max_payload, self.config.io_timeout_s)
                except TimeoutError:
                    raise ProtocolError(f"nothing from the server for {silence:.0f} s: the session is dead") from None
                sock.settimeout(self.config.io_timeout_s)
                if header["type"] == "ping":
                    continue
                if header["type"] == "done":
                    return True
                if header["type"] == "rocket":
                    self._answer_rocket(channel, header, tensors)
                    continue
                if header["type"] == "rocket_transform":
                    self._use_rocket_transform(header, tensors)
                    continue
                if self.needs_rocket and self.rocket_digest is None:
                    raise ProtocolError("the server asked for a round before sending the rocket task's transform")
                round_index, rounds, local_epochs, mu, last_answered = check_train_header(header)
                check_tensors(tensors, self.template)
                from_round = self._training_state_before(round_index, last_answered)
                state, count, losses = self.local.local_update(tensors, round_index, rounds, local_epochs, mu)
                self._save_training_state(round_index, -1 if from_round is None else from_round)
                self.state_round = round_index
                channel.send({"type": "update", "round": round_index, "num_examples": count, "losses": losses,
                              **({} if from_round is not None else {"exact": False})}, state)
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
                raise ProtocolError(f"client {self.client_id}: gave up after {max_reconnects} failed reconnects "
                                    f"in a row")
            self.stop_event.wait(backoff_s * min(2 ** (failures - 1), 8))
        return self.rounds_done
