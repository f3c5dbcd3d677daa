"""Federated averaging server over authenticated sockets.

Clients connect and say hello; each round the server samples a share of the connected clients, sends
them the global weights, waits for their updates (each in its own thread, with a timeout), drops any
client that fails, averages the answers by sample count and checkpoints atomically. A round with fewer
than min_clients answers is retried. The server never sees client data, only weights and counts.
"""
import json
import math
import socket
import threading
import time

import numpy as np

from common.config import config_to_dict
from common.errors import UserError
from common.federated import aggregate, clip_update
from common.har_task import encoder_data_record, input_shape
from HAR_federated.protocol import MemoryBudget, ProtocolError, check_tensors, server_handshake


class ClientConnection:
    def __init__(self, channel, client_id, num_examples):
        self.channel, self.sock, self.client_id, self.num_examples = channel, channel.sock, client_id, num_examples

    def close(self):
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
    def __init__(self, config, model, key, run, tls_context=None, log=print):
        """run: the RunFolder that receives metrics rows, checkpoints, the encoder and the summary."""
        self.config, self.model, self.key, self.run_folder, self.log = config, model, key, run, log
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
        self.finished = False  # a resumed run that had already finished: run() changes nothing

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
            hello, channel = server_handshake(sock, self.key, self.config.io_timeout_s)
            client_id = hello.get("client_id")
            if type(client_id) is not int or not 0 <= client_id < self.config.num_clients:
                raise ProtocolError(f"client_id must be an integer in 0..{self.config.num_clients - 1}, got {client_id!r}")
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
        self._reject(f"client {connection.client_id}", err)
        with self.lock:
            if self.clients.get(connection.client_id) is connection:
                del self.clients[connection.client_id]
                self.open_connections -= 1
        connection.close()

    def wait_for_clients(self, count, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if len(self.clients) >= count:
                    return True
            time.sleep(0.05)
        return False

    # ------------------------------------------------------------------ rounds
    def _ask(self, connection, round_index, results, traffic):
        header = {"type": "train", "round": round_index, "rounds": self.config.rounds,
                  "local_epochs": self.config.local_epochs, "proximal_mu": self.config.proximal_mu}
        try:
            connection.sock.settimeout(self.config.io_timeout_s)
            sent = connection.channel.send(header, self.global_state)
            connection.sock.settimeout(self.config.round_timeout_s)
            reply, tensors, received = connection.channel.receive(self.max_payload, self.config.io_timeout_s, self.budget)
            with self.lock:
                traffic["sent"] += sent
                traffic["received"] += received
            if reply.get("type") != "update" or reply.get("round") != round_index or type(reply.get("round")) is not int:
                raise ProtocolError(f"expected the update of round {round_index}, got {reply.get('type')!r} "
                                    f"of round {reply.get('round')!r}")
            # no more examples than the client declared when it joined: its weight in the average is bounded
            count = _positive_int(reply.get("num_examples"), "num_examples", connection.num_examples)
            losses = reply.get("losses", {})
            if not isinstance(losses, dict) or not all(isinstance(k, str) and type(v) in (int, float)
                                                       and math.isfinite(v) for k, v in losses.items()):
                raise ProtocolError("losses must map task names to finite numbers")
            check_tensors(tensors, self.template, self.config.max_abs_weight)
            results[connection.client_id] = (tensors, count, losses)
        except Exception as err:  # a broken or hostile update drops that client, never the round
            self._drop(connection, err if isinstance(err, (ProtocolError, OSError)) else f"{type(err).__name__}: {err}")

    def run_round(self, round_index):
        """One round: returns the metrics row, or None when fewer than min_clients answered."""
        start = time.time()
        with self.lock:
            connected = sorted(self.clients)
        rng = np.random.default_rng([self.config.seed, round_index])
        count = max(1, int(round(self.config.client_fraction * len(connected))))
        asked = sorted(rng.choice(connected, size=min(count, len(connected)), replace=False).tolist())
        results, traffic, threads = {}, {"sent": 0, "received": 0}, []
        for client_id in asked:
            with self.lock:
                connection = self.clients.get(client_id)
            if connection is None:
                continue
            thread = threading.Thread(target=self._ask, args=(connection, round_index, results, traffic), daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()
        answered = sorted(results)
        row = {"round": round_index + 1, "asked": len(asked), "answered": len(answered),
               "dropped": len(asked) - len(answered), "bytes_sent": traffic["sent"],
               "bytes_received": traffic["received"], "seconds": round(time.time() - start, 3)}
        if len(answered) < self.config.min_clients:
            self.log(f"round {round_index + 1}: only {len(answered)} of {len(asked)} answered "
                     f"(min_clients {self.config.min_clients})")
            return None
        states = [clip_update(results[c][0], self.global_state, self.config.update_clip) for c in answered]
        counts = [results[c][1] for c in answered]
        self.global_state = aggregate(states, counts, self.config.aggregation, self.config.trim_fraction)
        losses = [results[c][2] for c in answered]
        row["mean_local_losses"] = {name: float(np.mean([l[name] for l in losses if name in l]))
                                    for name in losses[0]}
        return row

    def resume(self):
        state = self.run_folder.load_checkpoint()
        if set(state["model"]) != set(self.template):
            raise UserError(f"{self.run_folder / self.run_folder.CHECKPOINT} holds another architecture: use the same model flags")
        check_tensors(state["model"], self.template)
        self.global_state = state["model"]
        self.start_round = state["round"] + 1
        self.history = json.loads(state.get("history_json", "[]"))
        self.log(f"resumed after round {self.start_round}")

    def run(self, on_round_end=None):
        """All rounds; saves the encoder and summary in the run folder. Returns the per-round rows."""
        if self.finished:
            self.stop()
            return self.history
        acceptor = threading.Thread(target=self.serve_forever, daemon=True)
        acceptor.start()
        try:
            if not self.wait_for_clients(self.config.min_clients, self.config.connect_wait_s):
                raise UserError(f"fewer than {self.config.min_clients} clients connected within "
                                f"{self.config.connect_wait_s:.0f} s")
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
        return self.history

    def _checkpoint(self, round_index):
        """Metrics row and checkpoint of a finished round; a failing write (a full disk, no descriptors) is
        retried, then reported in one line while the rounds go on with the state in memory."""
        for write in (lambda: self.run_folder.log(self.history[-1]),
                      lambda: self.run_folder.save_checkpoint({"model": self.global_state, "round": round_index,
                                                               "history_json": json.dumps(self.history),
                                                               "config": config_to_dict(self.config)})):
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
        self.run_folder.save_encoder(self.model.encoder, input_shape(self.config), encoder_data_record(self.config))
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
                   "rejected": self.rejected[-20:]}
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
