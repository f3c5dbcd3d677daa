"""Federated averaging server over authenticated sockets.

Clients connect and say hello; each round the server samples a share of the connected clients, sends
them the global weights, waits for their updates (each in its own thread, with a timeout; once min_clients
answered, for a grace period only), drops any client that fails, judges each update against the global
model it answers (common.federated.screen_updates), averages the rest and checkpoints atomically. A round
with fewer than min_clients accepted answers is retried. The server never sees client data, only weights,
counts and losses, and checks every number it writes.
"""
import json
import math
import socket
import threading
import time

import numpy as np
import torch

from common.config import config_to_dict
from ground.errors import UserError
from data_processing.federated_minirocket import STAGES, RocketPCA, RocketStatisticsError, transform_digest
from HAR_federated.defence import defend_round
from HAR_federated.protocol import MemoryBudget, ProtocolError, check_tensors, line_log, server_handshake


class ClientConnection:
    def __init__(self, channel, client_id, num_examples):
        self.channel, self.sock, self.client_id, self.num_examples = channel, channel.sock, client_id, num_examples
        self.busy = False  # in a round's exchange: no keep-alive then
        self.rocket_sent = None  # digest of the rocket transform this session has received

    def close(self):
        try:  # shutdown first: close alone leaves a thread blocked in recv on this socket waiting
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


def _positive_int(value, name, at_most):
    """A JSON integer (not a bool, not a float) in 1..at_most, or a ProtocolError naming the field."""
    if type(value) is not int or not 1 <= value <= at_most:
        raise ProtocolError(f"{name} must be an integer in 1..{at_most}, got {value!r}")
    return value


class FederatedServer:
    def __init__(self, config, task, key, run, tls_context=None, log=print):
        """task: what the federation learns (its model, input shape and the encoder's data record: a HARTask).
        run: the RunFolder that receives metrics rows, checkpoints, the encoder and the summary. key: the
        shared key, or {client id: key} (the enrolment file: each client speaks only as itself)."""
        model = task.model()
        self.config, self.model, self.key, self.run_folder, self.log = config, model, key, run, line_log(log)
        self.task = task
        self.task_names = set(model.tasks)
        self.template = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        self.global_state = dict(self.template)
        self.max_payload = int(config.max_frame_mb * 2**20)
        self.budget = MemoryBudget(int(config.max_inflight_mb * 2**20))
        self.clients, self.lock = {}, threading.Lock()
        self.open_connections = 0  # accepted and not yet closed: handshaking or registered
        self.handshakes = threading.BoundedSemaphore(config.max_handshakes)
        self.rejected = []  # logged reasons, for tests and the summary
        self.refused_connections = 0
        self.tls_context = tls_context
        self.stop_event = threading.Event()
        self.listener = socket.create_server((config.host, config.port))
        self.listener.settimeout(0.5)
        self.port = self.listener.getsockname()[1]
        self.start_round = 0
        self.history = []
        self.last_answered = {}  # client id -> the last round it answered: a client without that state is not exact
        self.finished = False  # a resumed run that had already finished: run() changes nothing
        # the rocket task regresses one MiniRocket PCA for all: fit from the clients' statistics before round 1
        self.rocket_fit = RocketPCA(task.input_shape, config.rocket_kernels, config.seed, config.rocket_dim) \
            if "rocket" in self.task_names else None
        self.rocket_transform, self.rocket_setup = None, {}

    # ------------------------------------------------------------------ connections
    def serve_forever(self):
        """Accept connections until stopped; each handshake runs in its own thread, within the caps on open
        connections and concurrent handshakes. A failing accept (no file descriptors left) backs off."""
        backoff = 0.0
        while not self.stop_event.is_set():
            try:
                sock, address = self.listener.accept()
            except socket.timeout:
                continue
            except OSError as err:  # EMFILE, ENFILE, ...: wait for descriptors to come back, never spin
                if self.stop_event.is_set():
                    return
                backoff = min(max(2 * backoff, 0.05), 1.0)
                if backoff == 0.05:
                    self.log(f"accept failed ({err}); backing off")
                self.stop_event.wait(backoff)
                continue
            backoff = 0.0
            with self.lock:
                full = self.open_connections >= self.config.max_connections
                if not full:
                    self.open_connections += 1
            if full or not self.handshakes.acquire(blocking=False):
                if not full:
                    with self.lock:
                        self.open_connections -= 1
                self.refused_connections += 1
                if self.refused_connections in (1, 10, 100, 1000) or self.refused_connections % 10000 == 0:
                    self._reject(f"{address[0]}:{address[1]}", f"connection refused: {self.refused_connections} so far "
                                 f"(caps: {self.config.max_connections} connections, {self.config.max_handshakes} "
                                 f"handshakes at once)")
                sock.close()
                continue
            threading.Thread(target=self._handshake, args=(sock, address), daemon=True).start()

    def _closed(self):
        with self.lock:
            self.open_connections -= 1

    def _handshake(self, sock, address):
        try:
            sock.settimeout(self.config.io_timeout_s)
            if self.tls_context:
                sock = self.tls_context.wrap_socket(sock, server_side=True)
            hello, channel = server_handshake(sock, self.key, self.config.io_timeout_s, self.config.keepalive_s)
            client_id = hello.get("client_id")
            if type(client_id) is not int or not 0 <= client_id < self.config.num_clients:
                raise ProtocolError(f"client_id must be an integer in 0..{self.config.num_clients - 1}, "
                                    f"got {client_id!r}")
            num_examples = _positive_int(hello.get("num_examples"), "num_examples", self.config.max_examples)
        except Exception as err:  # every failure of a handshake is a rejection, never a thread's traceback
            self._reject(f"{address[0]}:{address[1]}", err if isinstance(err, (ProtocolError, OSError))
                         else f"{type(err).__name__}: {err}")
            sock.close()
            self._closed()
            return
        finally:
            self.handshakes.release()
        connection = ClientConnection(channel, client_id, num_examples)
        with self.lock:
            old = self.clients.pop(client_id, None)
            self.clients[client_id] = connection
        if old is not None:
            old.close()  # a reconnecting client (its proof checked) replaces its stale connection
            self._closed()
        self.log(f"client {client_id} joined ({num_examples} windows)")

    def _reject(self, who, err):
        reason = f"rejected {who}: {err}"
        self.rejected.append(reason)
        del self.rejected[:-1000]  # the latest reasons; a flood must not grow memory
        self.log(reason)

    def _drop(self, connection, err):
        """Reject and disconnect a client, once: a connection already dropped (a straggler cut off at the end
        of its round, whose thread then fails) is not logged again."""
        with self.lock:
            registered = self.clients.get(connection.client_id) is connection
            if registered:
                del self.clients[connection.client_id]
                self.open_connections -= 1
        if registered:
            self._reject(f"client {connection.client_id}", err)
        connection.close()

    def keep_alive(self):
        """Every keepalive_s, a ping to each client not in a round's exchange: a client whose session died
        silently notices the silence and rejoins (HAR_federated/client.py)."""
        while not self.stop_event.wait(self.config.keepalive_s):
            with self.lock:
                idle = [c for c in self.clients.values() if not c.busy]
            for connection in idle:
                try:
                    connection.channel.send({"type": "ping"})
                except OSError as err:
                    self._drop(connection, f"keep-alive failed ({err})")

    def wait_for_clients(self, count, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if len(self.clients) >= count:
                    return True
            time.sleep(0.05)
        return False

    # ------------------------------------------------------------------ the rocket task's shared targets
    def _asked_clients(self, fraction=1.0, rng=None):
        with self.lock:
            connected = sorted(self.clients)
        if rng is None:
            return connected
        count = max(1, int(round(fraction * len(connected))))
        return sorted(rng.choice(connected, size=min(count, len(connected)), replace=False).tolist())

    def _exchange(self, connection, header, tensors, traffic):
        """Send one frame to a client and read its answer (the send under the I/O timeout, the answer under the
        round's); bytes counted in `traffic`. Returns (header, tensors) of the answer."""
        connection.sock.settimeout(self.config.io_timeout_s)
        sent = connection.channel.send(header, tensors)
        connection.sock.settimeout(self.config.round_timeout_s)
        reply, answer, received = connection.channel.receive(self.max_payload, self.config.io_timeout_s, self.budget)
        with self.lock:
            traffic["sent"] += sent
            traffic["received"] += received
        return reply, answer

    def _query_rocket(self, connection, stage, request, results, traffic):
        """One client's answer to a stage of the rocket PCA (data_processing/federated_minirocket.py), checked
        like an update: a malformed or out-of-range answer drops the client, never the stage."""
        connection.busy = True
        try:
            reply, tensors = self._exchange(connection, {"type": "rocket", "stage": stage},
                                            {k: torch.from_numpy(v) for k, v in request.items()}, traffic)
            if reply.get("type") != "rocket_stats" or reply.get("stage") != stage:
                raise ProtocolError(f"expected the rocket {stage} statistics, got {reply.get('type')!r} "
                                    f"{str(reply.get('stage'))[:40]!r}")
            count = _positive_int(reply.get("num_examples"), "num_examples", connection.num_examples)
            answer = {k: v.double().numpy() if v.is_floating_point() else v.numpy() for k, v in tensors.items()}
            try:
                self.rocket_fit.check_answer(stage, answer, count)
            except RocketStatisticsError as err:
                raise ProtocolError(str(err)) from None
            with self.lock:
                results[connection.client_id] = (answer, count)
        except Exception as err:
            self._drop(connection, err if isinstance(err, (ProtocolError, OSError)) else f"{type(err).__name__}: {err}")
        finally:
            connection.busy = False

    def fit_rocket(self):
        """The rocket task's MiniRocket transform and PCA, fit from the connected clients' statistics in three
        stages (each retried like a round when fewer than min_clients answer)."""
        start, traffic, clients = time.time(), {"sent": 0, "received": 0}, {}
        for stage in STAGES:
            for attempt in range(self.config.max_round_retries + 1):
                request = self.rocket_fit.request(stage)
                asked, results, threads = self._asked_clients(), {}, []
                for client_id in asked:
                    with self.lock:
                        connection = self.clients.get(client_id)
                    if connection is not None:
                        threads.append(threading.Thread(target=self._query_rocket,
                                                        args=(connection, stage, request, results, traffic)))
                        threads[-1].start()
                self._wait_for_round(asked, threads, results, time.time())
                for thread in threads:
                    thread.join()
                if len(results) >= self.config.min_clients:
                    break
                self.log(f"rocket {stage}: only {len(results)} clients answered "
                         f"(min_clients {self.config.min_clients})")
                self.wait_for_clients(self.config.min_clients, self.config.connect_wait_s)
            else:
                raise UserError(f"the rocket task's {stage} statistics failed {attempt + 1} times: too few clients "
                                f"answer")
            self.rocket_fit.combine(stage, [results[c] for c in sorted(results)])
            clients[stage] = len(results)
        self.rocket_transform = self.rocket_fit.transform
        self.rocket_setup = {"clients": clients, "windows": self.rocket_fit.total,
                             "components": self.rocket_fit.available, "features": self.rocket_fit.num_features,
                             "bytes_sent": traffic["sent"], "bytes_received": traffic["received"],
                             "seconds": round(time.time() - start, 2),
                             "digest": transform_digest(self.rocket_transform)}
        self.log(f"rocket task: one MiniRocket PCA for all ({self.rocket_fit.available} components of "
                 f"{self.rocket_fit.num_features} features, {self.rocket_fit.total} windows of {clients['rotate']} "
                 f"clients; sent {traffic['sent'] / 2**20:.1f} MiB, received {traffic['received'] / 2**20:.1f} MiB, "
                 f"{self.rocket_setup['seconds']:.1f} s)")

    def _send_rocket_transform(self, connection):
        """The shared rocket transform, once per session, before the session's first train frame."""
        if self.rocket_transform is None:
            return
        digest = self.rocket_setup["digest"]
        if connection.rocket_sent != digest:
            connection.channel.send({"type": "rocket_transform", "digest": digest},
                                    {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
                                     for k, v in self.rocket_transform.items()})
            connection.rocket_sent = digest

    # ------------------------------------------------------------------ rounds
    def _ask(self, connection, round_index, results, traffic):
        header = {"type": "train", "round": round_index, "rounds": self.config.rounds,
                  "local_epochs": self.config.local_epochs, "proximal_mu": self.config.proximal_mu,
                  "last_answered": self.last_answered.get(connection.client_id, -1)}
        connection.busy = True
        try:
            connection.sock.settimeout(self.config.io_timeout_s)
            self._send_rocket_transform(connection)
            reply, tensors = self._exchange(connection, header, self.global_state, traffic)
            round_answered = reply.get("round")
            if reply.get("type") != "update" or round_answered != round_index or type(round_answered) is not int:
                raise ProtocolError(f"expected the update of round {round_index}, got {reply.get('type')!r} "
                                    f"of round {reply.get('round')!r}")
            # no more examples than the client declared when it joined: its weight in the average is bounded
            count = _positive_int(reply.get("num_examples"), "num_examples", connection.num_examples)
            check_tensors(tensors, self.template, self.config.max_abs_weight)
            losses = self._checked_losses(reply.get("losses"))
            if reply.get("exact") is False:  # the client had no training state for this round (a resume)
                self.log(f"client {connection.client_id} had no optimiser state for round {round_index + 1} and "
                         f"started it from its initial one: this resumed run is not exact")
            with self.lock:
                results[connection.client_id] = (tensors, count, losses)
        except Exception as err:  # a broken or hostile update drops that client, never the round
            self._drop(connection, err if isinstance(err, (ProtocolError, OSError)) else f"{type(err).__name__}: {err}")
        finally:
            connection.busy = False

    def _checked_losses(self, losses):
        """{task: loss} with exactly the model's task names and finite values within --max_loss."""
        if not isinstance(losses, dict) or set(losses) != self.task_names:
            names = sorted(map(str, losses))[:5] if isinstance(losses, dict) else type(losses).__name__
            raise ProtocolError(f"losses must name the model's tasks {sorted(self.task_names)}, got {names}")
        if not all(type(v) in (int, float) and math.isfinite(v) and abs(v) <= self.config.max_loss
                   for v in losses.values()):
            raise ProtocolError(f"losses must be finite numbers within +-{self.config.max_loss:g}")
        return {k: float(v) for k, v in losses.items()}

    def run_round(self, round_index):
        """One round: returns the metrics row, or None when fewer than min_clients answered."""
        start = time.time()
        asked = self._asked_clients(self.config.client_fraction, np.random.default_rng([self.config.seed, round_index]))
        results, traffic, threads = {}, {"sent": 0, "received": 0}, []
        for client_id in asked:
            with self.lock:
                connection = self.clients.get(client_id)
            if connection is None:
                continue
            thread = threading.Thread(target=self._ask, args=(connection, round_index, results, traffic))
            thread.start()
            threads.append(thread)
        self._wait_for_round(asked, threads, results, start)
        for thread in threads:
            thread.join()
        answered = sorted(results)
        outcome = defend_round(self.global_state, {c: results[c][:2] for c in answered}, self.config, self.template)
        for client_id, reason in sorted(outcome.refused.items()):
            self._reject(f"client {client_id}", f"round {round_index + 1}: {reason}")
        row = {"round": round_index + 1, "asked": len(asked), "answered": len(answered),
               "dropped": len(asked) - len(answered), "refused": len(outcome.refused), "bytes_sent": traffic["sent"],
               "bytes_received": traffic["received"], "seconds": round(time.time() - start, 3),
               "median_update_norm": outcome.median_update_norm}
        if outcome.state is None:  # nothing of the round is kept: every client is asked it again
            self.log(f"round {round_index + 1}: {outcome.failure}, {len(answered)} of {len(asked)} answered; "
                     f"the round is redone")
            return None
        self.global_state = outcome.state
        # the round commits: who trained in it (refused or not) is recorded now, never for a round that is redone
        for client_id in answered:
            self.last_answered[client_id] = round_index
        losses = [results[c][2] for c in outcome.accepted]
        row["mean_local_losses"] = {name: float(np.mean([loss[name] for loss in losses]))
                                    for name in sorted(self.task_names)}
        return row

    def _wait_for_round(self, asked, threads, results, start):
        """Until every asked client answered or failed; once min_clients answered, for as long again as that
        took (at least --round_grace_s), then the stragglers are cut off: a silent client costs seconds."""
        quorum_at = None
        while any(thread.is_alive() for thread in threads):
            now = time.time()
            with self.lock:
                answered = len(results)
            if quorum_at is None and answered >= self.config.min_clients:
                quorum_at = now
            if quorum_at is not None and now > quorum_at + max(self.config.round_grace_s, quorum_at - start):
                with self.lock:
                    stragglers = [self.clients[c] for c in asked if c not in results and c in self.clients]
                for connection in stragglers:
                    self._drop(connection, f"no update within the round's grace period ({now - start:.1f} s; "
                                           f"{answered} clients had answered)")
                return
            time.sleep(0.02)

    def resume(self):
        """The global model, round and history of the run folder's checkpoint; a damaged or hand-made one is
        one line naming the file and the field."""
        state = self.run_folder.load_checkpoint()
        path = self.run_folder / self.run_folder.CHECKPOINT
        if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
            raise UserError(f"{path}: no 'model' state dict: not a checkpoint of the federated server")
        if set(state["model"]) != set(self.template):
            raise UserError(f"{path} holds another architecture: use the same model flags")
        try:
            check_tensors(state["model"], self.template)
        except ProtocolError as err:
            raise UserError(f"{path}: field 'model': {err}") from None
        round_index = state.get("round")
        if type(round_index) is not int or not 0 <= round_index < 10**7:
            raise UserError(f"{path}: field 'round' must be a round number >= 0, got {round_index!r}")
        try:
            history = json.loads(state.get("history_json", ""))
            if not isinstance(history, list) or [row.get("round") for row in history] != list(
                    range(1, round_index + 2)):
                raise ValueError(f"not the rows of rounds 1..{round_index + 1}")
        except (TypeError, ValueError, AttributeError) as err:
            raise UserError(f"{path}: field 'history_json' is damaged ({str(err)[:80]})") from None
        last_answered = state.get("last_answered_json", "{}")
        try:
            self.last_answered = {int(c): r for c, r in json.loads(last_answered).items()
                                  if type(r) is int and -1 <= r <= round_index}
        except (TypeError, ValueError, AttributeError):
            raise UserError(f"{path}: field 'last_answered_json' is damaged") from None
        if self.rocket_fit is not None:
            try:
                self.rocket_transform = self.rocket_fit.checked_transform(
                    {k: v.numpy() for k, v in state["rocket_transform"].items()})
                self.rocket_setup = json.loads(state["rocket_setup_json"])
                self.rocket_setup["digest"] = transform_digest(self.rocket_transform)
            except (KeyError, TypeError, ValueError, AttributeError) as err:
                raise UserError(f"{path}: field 'rocket_transform' is missing or damaged ({str(err)[:80]})") from None
        self.global_state, self.start_round, self.history = state["model"], round_index + 1, history
        self.log(f"resumed after round {self.start_round}")

    def run(self, on_round_end=None):
        """All rounds; saves the encoder and summary in the run folder. Returns the per-round rows."""
        if self.finished:
            self.stop()
            return self.history
        acceptor = threading.Thread(target=self.serve_forever, daemon=True)
        acceptor.start()
        pinger = threading.Thread(target=self.keep_alive, daemon=True)
        pinger.start()
        try:
            if not self.wait_for_clients(self.config.min_clients, self.config.connect_wait_s):
                raise UserError(f"fewer than {self.config.min_clients} clients connected within "
                                f"{self.config.connect_wait_s:.0f} s")
            if self.rocket_fit is not None and self.rocket_transform is None:
                # the shared PCA is made once for the run: the rest of the fleet gets connect_wait_s to join it (a
                # client seconds late was only sent it, measured: 8 of 18 under load)
                self.wait_for_clients(self.config.num_clients, self.config.connect_wait_s)
                self.fit_rocket()
            round_index = self.start_round
            retries = 0
            while round_index < self.config.rounds:
                row = self.run_round(round_index)
                if row is None:
                    retries += 1
                    if retries > self.config.max_round_retries:
                        raise UserError(f"round {round_index + 1} failed {retries} times: too few clients answer")
                    self.wait_for_clients(self.config.min_clients, self.config.connect_wait_s)
                    continue
                retries = 0
                self.history.append(row)
                self._checkpoint(round_index)
                self.log(f"round {row['round']}/{self.config.rounds}: asked {row['asked']}, answered "
                         f"{row['answered']}, dropped {row['dropped']}, sent {row['bytes_sent'] / 2**20:.1f} MiB, "
                         f"received {row['bytes_received'] / 2**20:.1f} MiB, {row['seconds']:.1f} s; "
                         + " ".join(f"{k}={v:.4f}" for k, v in row["mean_local_losses"].items()))
                if on_round_end is not None:
                    on_round_end(round_index)
                round_index += 1
            self._finish()
        finally:
            self.stop()
            for thread in (acceptor, pinger):  # nothing of ours may still run when the interpreter exits
                thread.join(timeout=5)
        return self.history

    def _checkpoint(self, round_index):
        """Metrics row and checkpoint of a finished round; a failing write (a full disk, no descriptors) is
        retried, then reported in one line while the rounds go on with the state in memory."""
        checkpoint = {"model": self.global_state, "round": round_index,
                      "history_json": json.dumps(self.history, allow_nan=False),
                      "last_answered_json": json.dumps(self.last_answered), "config": config_to_dict(self.config)}
        if self.rocket_transform is not None:  # a resumed run trains on the same targets
            checkpoint["rocket_transform"] = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
                                              for k, v in self.rocket_transform.items()}
            checkpoint["rocket_setup_json"] = json.dumps(self.rocket_setup)
        for write in (lambda: self.run_folder.log(self.history[-1]),
                      lambda: self.run_folder.save_checkpoint(checkpoint)):
            for attempt in range(3):
                try:
                    write()
                    break
                except (OSError, UserError) as err:
                    if attempt == 2:
                        self.log(f"warning: round {round_index + 1}'s records were not written ({err}); "
                                 f"the run goes on and the next round's checkpoint tries again")
                    else:
                        time.sleep(0.5 * (attempt + 1))

    def _finish(self):
        self.model.load_state_dict(self.global_state)
        self.run_folder.save_encoder(self.model.encoder, self.task.input_shape, self.task.encoder_record())
        with self.lock:
            connections = list(self.clients.values())
        for connection in connections:
            try:
                connection.channel.send({"type": "done"})
            except OSError:
                pass
        summary = {"run": self.config.run_name(), "rounds": len(self.history), "tasks": list(self.model.tasks),
                   "final_losses": self.history[-1]["mean_local_losses"] if self.history else {},
                   "bytes_sent": sum(r["bytes_sent"] for r in self.history),
                   "bytes_received": sum(r["bytes_received"] for r in self.history),
                   "train_seconds": round(sum(r["seconds"] for r in self.history), 2),
                   "rejected": self.rejected[-20:],
                   **({"rocket_setup": self.rocket_setup} if self.rocket_setup else {})}
        self.run_folder.write_summary(summary)

    def stop(self):
        self.stop_event.set()
        try:
            self.listener.close()
        except OSError:
            pass
        with self.lock:
            for connection in self.clients.values():
                connection.close()
            self.clients.clear()
