"""Shared pieces of the federated tests: tiny configs and datasets, raw-socket insiders, frames."""
import socket
import threading

import numpy as np
import pytest
import torch

from data_processing.pretext import PretextSpec, PretrainData
from HAR_federated import protocol
from HAR_federated import run as run_module
from HAR_federated.config import FederatedConfig
from HAR_federated.protocol import ProtocolError, read_frame


KEY = b"k" * 32


class Stop(Exception):
    pass


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setattr("data_processing.pretext.CACHE_DIR", tmp_path / "cache")


def tiny_config(tmp_path, **overrides):
    values = dict(output_dir=str(tmp_path / "runs"), rounds=2, local_epochs=1, num_clients=3, min_clients=2,
                  batch_size=16, encoder_width=4, embedding_dim=8, n_variants=1, device="cpu",
                  io_timeout_s=10.0, round_timeout_s=30.0, connect_wait_s=20.0, experiment_name="fed",
                  tasks=("augmentation", "reconstruction", "contrastive", "features"))  # the rocket task: below
    values.update(overrides)
    config = FederatedConfig(**values)
    config.validate()
    return config


def tiny_datasets(n_clients=3, n=32):
    rng = np.random.default_rng(0)
    return {c: PretrainData(rng.normal(size=(n, 9, 128)).astype(np.float32),
                            rng.normal(size=(n, 561)).astype(np.float32), PretextSpec(n_variants=1, seed=c), {})
            for c in range(n_clients)}


def quiet(*_):
    pass


def roundtrip(frame, key=KEY, cap=protocol.DEFAULT_MAX_PAYLOAD_BYTES):
    left, right = socket.socketpair()
    with left, right:
        right.settimeout(2)
        left.sendall(frame)
        left.shutdown(socket.SHUT_WR)
        return read_frame(right, key, cap)


def authenticated_frame(header_bytes, payload):
    body = protocol.PREFIX.pack(protocol.MAGIC, protocol.VERSION, len(header_bytes),
                                len(payload)) + header_bytes + payload
    import hashlib
    import hmac

    return body + hmac.new(KEY, body, hashlib.sha256).digest()


def raw_bytes(port, data):
    """A one-shot attacker: sends `data`, then hangs up."""
    def run():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(data)
        except OSError:
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def insider(port, client_id, on_train, num_examples=10):
    """A peer holding the key: a real handshake, then on_train(channel, header, tensors) at each train."""
    def run():
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            channel = protocol.client_handshake(sock, KEY, client_id, num_examples, 10)
            # the handshake leaves its deadline's remainder on the socket: wait as long as a loaded round takes
            sock.settimeout(120)
            while True:
                header, tensors, _ = channel.receive()
                if header["type"] == "ping":  # the server's keep-alive between rounds
                    continue
                if header["type"] != "train" or on_train(channel, header, tensors) == "stop":
                    break
        except (OSError, ProtocolError):
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def session_pair():
    """A server and a client channel over a socket pair, after a real handshake."""
    a, b = socket.socketpair()
    result = {}
    server = threading.Thread(target=lambda: result.update(zip(("hello", "channel"),
                                                               protocol.server_handshake(b, KEY, 5))))
    server.start()
    client = protocol.client_handshake(a, KEY, 1, 10, 5)
    server.join()
    return client, result["channel"], result["hello"], (a, b)


def poison(value):
    """An insider's update: every float of the global model it got set to `value` (under --max_abs_weight)."""
    def on_train(channel, header, tensors):
        poisoned = {k: torch.full_like(v, value) if v.is_floating_point() else v for k, v in tensors.items()}
        channel.send({"type": "update", "round": header["round"], "num_examples": 10,
                      "losses": {t: 1.0 for t in ("augmentation", "reconstruction", "contrastive", "features")}},
                     poisoned)
    return on_train


def with_insider(monkeypatch, client_id, on_train, servers=None, after=2):
    """run_module.make_server, with an insider (holding the shared key) joining once `after` clients are in."""
    original = run_module.make_server

    def make(config, key, log=print, task=None):
        server = original(config, key, log, task)
        threading.Thread(target=lambda: server.wait_for_clients(after, 60)
                         and insider(server.port, client_id, on_train), daemon=True).start()
        if servers is not None:
            servers.append(server)
        return server

    monkeypatch.setattr(run_module, "make_server", make)


def sine_windows(n, seed):
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 8 * np.pi, 128)
    return (np.sin(rng.uniform(0.5, 3, (n, 1, 1)) * t + rng.uniform(0, 6, (n, 3, 1)))
            + 0.3 * rng.standard_normal((n, 3, 128))).astype(np.float32)


def echo(statistics_moved=False):
    """An insider's update that is no training: the global model sent back (norm 0), or with only its
    batch-norm running means moved (the weights' update still 0)."""
    def on_train(channel, header, tensors):
        update = {k: v + 0.05 if statistics_moved and k.endswith("running_mean") else v for k, v in tensors.items()}
        channel.send({"type": "update", "round": header["round"], "num_examples": 10,
                      "losses": {t: 1.0 for t in ("augmentation", "reconstruction", "contrastive", "features")}},
                     update)
    return on_train
