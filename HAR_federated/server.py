"""Federated averaging server over authenticated sockets.

Clients connect and say hello; each round the server samples a share of the connected clients, sends
them the global weights, waits for their updates (each in its own thread, with a timeout), drops any
client that fails, averages the answers by sample count and checkpoints atomically. A round with fewer
than min_clients answers is retried. The server never sees client data, only weights and counts.
"""
import json
import socket
import threading
import time

import numpy as np

from common.config import config_to_dict
from common.errors import UserError
from common.federated import fedavg
from common.har_task import HAR_INPUT_SHAPE
from HAR_federated.protocol import ProtocolError, check_tensors, read_frame, send_frame


class ClientConnection:
    def __init__(self, sock, client_id, num_examples):
        self.sock, self.client_id, self.num_examples = sock, client_id, num_examples

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class FederatedServer:
    def __init__(self, config, model, key, run, tls_context=None, log=print):
        """run: the RunFolder that receives metrics rows, checkpoints, the encoder and the summary."""
        self.config, self.model, self.key, self.run_folder, self.log = config, model, key, run, log
        self.template = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        self.global_state = dict(self.template)
        self.max_payload = int(config.max_frame_mb * 2**20)
        self.clients, self.lock = {}, threading.Lock()
        self.rejected = []  # logged reasons, for tests and the summary
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
        """Accept connections until stopped; each handshake runs in its own thread."""
        while not self.stop_event.is_set():
            try:
                sock, address = self.listener.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self._handshake, args=(sock, address), daemon=True).start()

    def _handshake(self, sock, address):
        try:
            sock.settimeout(self.config.io_timeout_s)
            if self.tls_context:
                sock = self.tls_context.wrap_socket(sock, server_side=True)
            header, _, _ = read_frame(sock, self.key, self.max_payload, self.config.io_timeout_s)
            if header.get("type") != "hello" or not isinstance(header.get("client_id"), int) \
                    or not isinstance(header.get("num_examples"), int) or header["num_examples"] < 1:
                raise ProtocolError(f"expected a hello with client_id and num_examples, got {header.get('type')!r}")
        except (ProtocolError, OSError, ValueError) as err:
            self._reject(f"{address[0]}:{address[1]}", err)
            sock.close()
            return
        connection = ClientConnection(sock, header["client_id"], header["num_examples"])
        with self.lock:
            old = self.clients.pop(connection.client_id, None)
            self.clients[connection.client_id] = connection
        if old is not None:
            old.close()  # a reconnecting client replaces its stale connection
        self.log(f"client {connection.client_id} joined ({connection.num_examples} windows)")

    def _reject(self, who, err):
        reason = f"rejected {who}: {err}"
        self.rejected.append(reason)
        self.log(reason)

    def _drop(self, connection, err):
        self._reject(f"client {connection.client_id}", err)
        with self.lock:
            if self.clients.get(connection.client_id) is connection:
                del self.clients[connection.client_id]
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
            sent = send_frame(connection.sock, self.key, header, self.global_state)
            connection.sock.settimeout(self.config.round_timeout_s)
            reply, tensors, received = read_frame(connection.sock, self.key, self.max_payload, self.config.io_timeout_s)
            with self.lock:
                traffic["sent"] += sent
                traffic["received"] += received
            if reply.get("type") != "update" or reply.get("round") != round_index:
                raise ProtocolError(f"expected the update of round {round_index}, got {reply.get('type')!r} "
                                    f"of round {reply.get('round')!r}")
            if not isinstance(reply.get("num_examples"), int) or reply["num_examples"] < 1:
                raise ProtocolError("update without a positive num_examples")
            check_tensors(tensors, self.template)
            results[connection.client_id] = (tensors, reply["num_examples"], reply.get("losses", {}))
        except (ProtocolError, OSError, ValueError) as err:
            self._drop(connection, err)

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
        states = [results[c][0] for c in answered]
        counts = [results[c][1] for c in answered]
        self.global_state = fedavg(states, counts)
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
        self.run_folder.log(self.history[-1])
        self.run_folder.save_checkpoint({"model": self.global_state, "round": round_index,
                                  "history_json": json.dumps(self.history), "config": config_to_dict(self.config)})

    def _finish(self):
        self.model.load_state_dict(self.global_state)
        self.run_folder.save_encoder(self.model.encoder, HAR_INPUT_SHAPE)
        with self.lock:
            connections = list(self.clients.values())
        for connection in connections:
            try:
                send_frame(connection.sock, self.key, {"type": "done"})
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
