"""Federated averaging on loopback: FedAvg, the wire's rejections, faults, resume."""
import dataclasses
import json
import pickle
import socket
import threading
import time

import numpy as np
import pytest
import torch

from common.checkpoint import safe_torch_load
from common.classification import load_pretrained_encoder
from common.config import parse_config
from ground.errors import UserError
from common.federated import (LocalTrainer, ProximalTerm, aggregate, aggregate_integer_buffers, clip_update, fedavg,
                              screen_updates, trimmed_count)
from har_task import HARTask
from ground.io import strict_json
from data_processing.pretext import PretextSpec, PretrainData
from HAR_federated import protocol
from HAR_federated import run as run_module
from HAR_federated.client import FederatedClient
from HAR_federated.config import FederatedConfig
from HAR_federated.protocol import ProtocolError, encode_frame, read_frame
from HAR_federated.run import run_local
from HAR_federated.server import FederatedServer

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


# --------------------------------------------------------------------------- FedAvg
def test_fedavg_against_a_hand_computation():
    a = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(2)}
    b = {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(5)}
    out = fedavg([a, b], [1, 3])  # weights 1/4 and 3/4
    torch.testing.assert_close(out["w"], torch.tensor([2.5, 5.0]))
    assert out["n"].dtype == torch.int64 and out["n"].item() == 4  # 0.25*2 + 0.75*5 = 4.25 -> 4
    with pytest.raises(ValueError):
        fedavg([a], [0])


# --------------------------------------------------------------------------- the wire
def roundtrip(frame, key=KEY, cap=protocol.DEFAULT_MAX_PAYLOAD_BYTES):
    left, right = socket.socketpair()
    with left, right:
        right.settimeout(2)
        left.sendall(frame)
        left.shutdown(socket.SHUT_WR)
        return read_frame(right, key, cap)


def test_frame_round_trip():
    tensors = {"a": torch.arange(6.0).view(2, 3), "b": torch.tensor([7], dtype=torch.int64)}
    header, got, size = roundtrip(encode_frame(KEY, {"type": "update", "round": 3}, tensors))
    assert header == {"type": "update", "round": 3} and size > 0
    torch.testing.assert_close(got["a"], tensors["a"])
    assert got["b"].dtype == torch.int64


@pytest.mark.parametrize("make_frame, reason", [
    (lambda: encode_frame(b"x" * 32, {"type": "hello"}), "bad MAC"),
    (lambda: protocol.PREFIX.pack(protocol.MAGIC, protocol.VERSION, 10, 10**12), "exceeds the cap"),
    (lambda: b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "bad magic"),
    (lambda: encode_frame(KEY, {"type": "hello"})[:-5], "truncated"),
    (lambda: protocol.PREFIX.pack(protocol.MAGIC, 9, 2, 0) + b"{}" + b"0" * 32, "version"),
])
def test_bad_frames_are_rejected(make_frame, reason):
    with pytest.raises(ProtocolError, match=reason):
        roundtrip(make_frame())


def authenticated_frame(header_bytes, payload):
    body = protocol.PREFIX.pack(protocol.MAGIC, protocol.VERSION, len(header_bytes),
                                len(payload)) + header_bytes + payload
    import hashlib
    import hmac

    return body + hmac.new(KEY, body, hashlib.sha256).digest()


def test_pickle_payload_and_malformed_json_are_rejected_unparsed():
    class Boom:
        def __reduce__(self):
            return (pytest.fail, ("a pickle was executed",))

    with pytest.raises(ProtocolError, match="not safetensors"):
        roundtrip(authenticated_frame(b'{"type":"update"}', pickle.dumps(Boom())))
    with pytest.raises(ProtocolError, match="malformed JSON"):
        roundtrip(authenticated_frame(b"{not json", b""))


def test_tensors_must_match_the_model():
    template = {"w": torch.zeros(2, 3), "b": torch.zeros(3)}
    protocol.check_tensors({"w": torch.ones(2, 3), "b": torch.ones(3)}, template)
    for bad, reason in [({"w": torch.zeros(2, 3)}, "names differ"),
                        ({"w": torch.zeros(3, 2), "b": torch.zeros(3)}, "expected"),
                        ({"w": torch.zeros(2, 3, dtype=torch.float64), "b": torch.zeros(3)}, "expected"),
                        ({"w": torch.full((2, 3), float("nan")), "b": torch.zeros(3)}, "non-finite")]:
        with pytest.raises(ProtocolError, match=reason):
            protocol.check_tensors(bad, template)


# --------------------------------------------------------------------------- end to end on loopback
def test_three_clients_two_rounds_end_to_end(tmp_path):
    # min_clients 3: every round waits for all three (with 2, a loaded CI may start a round without one)
    config = tiny_config(tmp_path, min_clients=3)
    server, history = run_local(config, tiny_datasets(), KEY, log=quiet)
    assert [r["answered"] for r in history] == [3, 3] and all(r["bytes_sent"] > 0 for r in history)
    run = config.run_dir()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [1, 2] and "mean_local_losses" in rows[0]
    model_args, state = load_pretrained_encoder(run / "encoder.pt")  # what train_classifier.py loads
    assert model_args["embedding_dim"] == 8
    # the global model moved away from its initialisation
    init = HARTask(config).model().encoder.state_dict()
    assert any(not torch.equal(init[k], state[k]) for k in init)


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


def test_a_client_crashing_mid_round_is_dropped_and_the_round_completes(tmp_path, monkeypatch):
    crashed = []

    def crash(channel, header, tensors):
        crashed.append(header["round"])
        channel.sock.close()  # dies after receiving the weights, before answering
        return "stop"

    original = run_module.make_server

    def make_server_with_crasher(config, key, log=print):
        server = original(config, key, log)
        insider(server.port, 2, crash)
        return server

    monkeypatch.setattr(run_module, "make_server", make_server_with_crasher)
    config = tiny_config(tmp_path, connect_wait_s=20.0, min_clients=2, num_clients=3)
    server, history = run_local(config, tiny_datasets(2), KEY, log=quiet)
    assert len(history) == 2 and crashed
    first = history[crashed[0]]  # the round it crashed in (it may join after round 1 on a loaded machine)
    assert first["asked"] == 3 and first["answered"] == 2 and first["dropped"] == 1
    assert any("client 2" in reason for reason in server.rejected)


def test_attacks_are_rejected_while_good_clients_complete(tmp_path, monkeypatch):
    config = tiny_config(tmp_path, num_clients=4, min_clients=2, rounds=3)

    def wrong_tensors(channel, header, tensors):
        channel.send({"type": "update", "round": header["round"], "num_examples": 5},
                     {"encoder.projection.weight": torch.zeros(3, 3)})
        return "stop"

    def hello_bytes(client_id, key=KEY):
        return encode_frame(key, {"type": "hello", "client_id": client_id, "num_examples": 1, "nonce": "a" * 32,
                                  "dir": "c2s", "seq": 0})

    original = run_module.make_server

    def attack(config, key, log=print):
        server = original(config, key, log)
        port = server.port
        raw_bytes(port, hello_bytes(2, b"w" * 32))
        raw_bytes(port, protocol.PREFIX.pack(protocol.MAGIC, protocol.VERSION, 10, 2**40))
        raw_bytes(port, b"\x00garbage\xff" * 10)
        raw_bytes(port, authenticated_frame(b'{"type":"hello","client_id":2,"num_examples":1}', pickle.dumps([1, 2])))
        raw_bytes(port, hello_bytes(2)[:20])  # truncated, then the socket closes
        raw_bytes(port, hello_bytes(2))  # a replayed hello: no proof follows

        servers.append(server)
        # the insider connects once the server accepts (its own handshake has a deadline)
        threading.Thread(target=lambda: server.wait_for_clients(2, 60) and insider(port, 3, wrong_tensors),
                         daemon=True).start()
        return server

    servers = []

    def let_the_insider_in(round_index):  # it is asked in round 2 at the latest, whatever the machine's load
        if round_index == 0:
            servers[0].wait_for_clients(3, 60)

    monkeypatch.setattr(run_module, "make_server", attack)
    server, history = run_local(config, tiny_datasets(2), KEY, on_round_end=let_the_insider_in, log=quiet)
    assert len(history) == 3 and all(r["answered"] >= 2 for r in history)
    reasons = "\n".join(server.rejected)
    for expected in ("bad MAC", "exceeds the cap", "bad magic", "exceeds the cap of 0", "truncated", "names differ"):
        assert expected in reasons, (expected, reasons)


def test_a_killed_server_resumes_from_its_last_round(tmp_path):
    config = tiny_config(tmp_path, rounds=3)

    def kill_after_first_round(round_index):
        if round_index == 0:
            raise Stop

    with pytest.raises(Stop):
        run_local(config, tiny_datasets(), KEY, on_round_end=kill_after_first_round, log=quiet)
    saved = torch.load(config.run_dir() / "checkpoint.pt", weights_only=True)
    assert saved["round"] == 0
    server, history = run_local(dataclasses.replace(config, resume=1), tiny_datasets(), KEY, log=quiet)
    assert [r["round"] for r in history] == [1, 2, 3]
    assert server.start_round == 1
    rows = (config.run_dir() / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["round"] for r in rows] == [1, 2, 3]


def test_key_is_required_for_remote_roles(tmp_path, monkeypatch):
    monkeypatch.delenv(protocol.KEY_ENV, raising=False)
    with pytest.raises(ProtocolError, match="shared key"):
        protocol.load_key("")
    key_file = tmp_path / "key"
    key_file.write_text("s" * 40)
    assert protocol.load_key(str(key_file)) == b"s" * 40


def test_tls_round_trip(tmp_path):
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    config = tiny_config(tmp_path, rounds=1, num_clients=2, tls_cert=str(cert), tls_key=str(key), tls_ca=str(cert))
    server, history = run_local(config, tiny_datasets(2), KEY, log=quiet)
    assert history[0]["answered"] == 2 and not server.rejected


# --------------------------------------------------------------------------- federation as an adapter
def test_the_federated_config_has_no_flag_it_ignores(tmp_path):
    fields = set(FederatedConfig.__dataclass_fields__)
    assert not {"epochs", "warmup_epochs"} & fields  # the schedule is rounds x local epochs
    with pytest.raises(UserError, match="unrecognized arguments: --epochs"):
        parse_config(FederatedConfig, ["--epochs", "3"])
    # device and precision reach the clients' trainers
    client = LocalTrainer(tiny_config(tmp_path, precision="bf16"), tiny_datasets(1)[0], 0)
    assert client.device.type == "cpu" and client.trainer.precision == "bf16"
    # the teacher's answers on each client's own views would differ from client to client: centralized only
    with pytest.raises(UserError, match="rocket_views is centralized only"):
        parse_config(FederatedConfig, ["--tasks", "rocket_views"])


def test_fedprox_is_a_gradient_hook_that_pulls_towards_the_global_weights():
    model = torch.nn.Linear(3, 1)
    term = ProximalTerm(0.5)
    term.anchor = {k: v.detach().clone() - 1.0 for k, v in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    term(model)
    for p in model.parameters():
        torch.testing.assert_close(p.grad, torch.full_like(p, 0.5))  # mu * (w - (w - 1))


# --------------------------------------------------------------------------- nothing lost
@pytest.mark.parametrize("weighting", ["uncertainty", "dwa"])
def test_a_resumed_federated_run_equals_an_uninterrupted_one(tmp_path, weighting):
    # each client checkpoints its optimiser and weighting state: a resume trains exactly as before
    # generous deadlines: a client late on a loaded machine would leave a round and change the weights; and
    # every round waits for all 3 clients (with min_clients 2, a client that joined late sat out round 1 of
    # one run and not of the other, about 1 run in 6)
    slow = dict(round_timeout_s=300.0, io_timeout_s=60.0, min_clients=3)
    straight = tiny_config(tmp_path / "a", rounds=3, weighting=weighting, **slow)
    run_local(straight, tiny_datasets(), KEY, log=quiet)
    killed = tiny_config(tmp_path / "b", rounds=3, weighting=weighting, **slow)

    def kill_after_second_round(round_index):
        if round_index == 1:
            raise Stop

    with pytest.raises(Stop):
        run_local(killed, tiny_datasets(), KEY, on_round_end=kill_after_second_round, log=quiet)
    run_local(dataclasses.replace(killed, resume=1), tiny_datasets(), KEY, log=quiet)
    _, expected = load_pretrained_encoder(straight.run_dir() / "encoder.pt")
    _, got = load_pretrained_encoder(killed.run_dir() / "encoder.pt")
    for key in expected:
        assert torch.equal(got[key], expected[key]), key


def test_a_finished_federated_run_is_neither_replaced_nor_resumed(tmp_path):
    config = tiny_config(tmp_path, rounds=1, num_clients=2)
    run_local(config, tiny_datasets(2), KEY, log=quiet)
    run = config.run_dir()
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(UserError, match="already holds a run"):
        tiny_config(tmp_path, rounds=1, num_clients=2).check_environment()
    messages = []
    server, history = run_local(dataclasses.replace(config, resume=1), tiny_datasets(2), KEY, log=messages.append)
    assert any("has finished all 1 rounds" in m for m in messages)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_headers_with_nan_or_infinity_and_deep_nesting_are_refused():
    for text in ('{"type": "update", "num_examples": NaN}', '{"type": "update", "x": Infinity}',
                 '{"type": "hello", "x": ' + "[" * 30000 + "]" * 30000 + "}"):  # RecursionError in json
        body = text.encode()
        prefix = protocol.PREFIX.pack(protocol.MAGIC, protocol.VERSION, len(body), 0)
        frame = prefix + body
        frame += protocol.hmac.new(KEY, frame, protocol.hashlib.sha256).digest()
        assert len(body) <= protocol.MAX_HEADER_BYTES
        a, b = socket.socketpair()
        with a, b:
            a.sendall(frame)
            with pytest.raises(ProtocolError, match="malformed JSON header"):
                read_frame(b, KEY)


def test_a_frame_dribbled_slower_than_its_deadline_is_cut_off():
    frame = encode_frame(KEY, {"type": "hello", "client_id": 0, "num_examples": 5})
    a, b = socket.socketpair()
    with a, b:
        b.settimeout(5)

        def dribble():
            for byte in frame[:20]:
                a.sendall(bytes([byte]))
                time.sleep(0.05)

        sender = threading.Thread(target=dribble)
        sender.start()
        start = time.monotonic()
        with pytest.raises(ProtocolError, match="deadline"):
            read_frame(b, KEY, deadline_s=0.3)
        assert time.monotonic() - start < 1.5
        sender.join()


def test_the_reconnect_budget_resets_after_a_completed_round(tmp_path):
    client = FederatedClient(tiny_config(tmp_path), tiny_datasets(1)[0], 0, KEY, "127.0.0.1:9")
    sessions = iter([*[("round", OSError("dropped"))] * 30, *[(None, OSError("refused"))] * 4])

    def session():
        did, error = next(sessions)
        if did:
            client.rounds_done += 1
        raise error

    client._session = session
    with pytest.raises(ProtocolError, match="gave up after 3 failed reconnects in a row"):
        client.run(max_reconnects=3, backoff_s=0)
    assert client.rounds_done == 30  # 30 drops, each after a round: never counted against the budget


def test_a_server_certificate_that_fails_verification_ends_the_client_at_once(tmp_path):
    import subprocess

    for name in ("server", "other"):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        str(tmp_path / f"{name}.key"),
                        "-out", str(tmp_path / f"{name}.pem"), "-days", "1", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    config = tiny_config(tmp_path, rounds=1, num_clients=2, tls_cert=str(tmp_path / "server.pem"),
                         tls_key=str(tmp_path / "server.key"), tls_ca=str(tmp_path / "other.pem"))
    server = run_module.make_server(dataclasses.replace(config, port=0), KEY, log=quiet)
    acceptor = threading.Thread(target=server.serve_forever, daemon=True)
    acceptor.start()
    try:
        client = FederatedClient(config, tiny_datasets(1)[0], 0, KEY, f"127.0.0.1:{server.port}",
                                 run_module.client_tls(config), log=quiet)
        start = time.monotonic()
        with pytest.raises(ProtocolError, match="certificate failed verification"):
            client.run(backoff_s=0.5)
        assert time.monotonic() - start < 5
    finally:
        server.stop()


# --------------------------------------------------------------------------- sessions, bounds, schemas, robustness
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


def test_the_handshake_binds_frames_to_a_session_a_direction_and_an_order():
    client, server, hello, sockets = session_pair()
    with sockets[0], sockets[1]:
        assert hello["client_id"] == 1 and client.session == server.session
        client.send({"type": "update", "round": 0})
        assert server.receive()[0]["round"] == 0
        # a captured server frame replayed to the client (the same bytes again) is out of order
        sent = encode_frame(server.key,
                            {"type": "done", "session": server.session, "dir": "s2c", "seq": server.send_seq})
        sockets[1].sendall(sent)
        assert client.receive()[0]["type"] == "done"
        sockets[1].sendall(sent)
        with pytest.raises(ProtocolError, match="out of order"):
            client.receive()
        # a client frame reflected back to the client has the wrong direction
        sockets[1].sendall(encode_frame(server.key,
                                        {"type": "done", "session": server.session, "dir": "c2s", "seq": 3}))
        with pytest.raises(ProtocolError, match="another session or direction"):
            client.receive()
        # another session's frame fails its MAC: the key is the session's
        other_client, other_server, _, other = session_pair()
        with other[0], other[1]:
            sockets[1].sendall(encode_frame(other_server.key, {"type": "done", "session": other_server.session,
                                                               "dir": "s2c", "seq": 4}))
            with pytest.raises(ProtocolError, match="bad MAC"):
                client.receive()


def test_a_replayed_hello_cannot_evict_a_client_nor_a_replayed_done_end_one(tmp_path):
    config = tiny_config(tmp_path, rounds=1, num_clients=2)
    server = run_module.make_server(dataclasses.replace(config, port=0), KEY, log=quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        # capture an honest hello on the wire, then replay it from an attacker's connection
        a, b = socket.socketpair()
        captured = []
        thread = threading.Thread(target=lambda: captured.append(protocol.read_frame(b, KEY, 0)))
        thread.start()
        with pytest.raises(OSError):
            protocol.client_handshake(a, KEY, 0, 10, 0.5)  # nobody answers: only the hello leaves
        thread.join()
        a.close()
        b.close()
        honest = insider(server.port, 0, lambda *args: "stop")
        assert server.wait_for_clients(1, 10)
        hello_frame = encode_frame(KEY, captured[0][0])
        for _ in range(3):
            raw_bytes(server.port, hello_frame).join()
        time.sleep(0.5)
        with server.lock:
            assert list(server.clients) == [0]  # the honest registration stands
        assert sum("rejected" in r for r in server.rejected) >= 3
        del honest
    finally:
        server.stop()


@pytest.mark.parametrize("hello_fields, reason", [
    ({"client_id": True}, "client_id must be an integer"),
    ({"client_id": 7}, "client_id must be an integer in 0..1"),
    ({"num_examples": 1e300}, "num_examples must be an integer"),
    ({"num_examples": 10**9}, "num_examples must be an integer in 1..1000000"),
])
def test_hello_fields_are_typed_and_bounded(tmp_path, hello_fields, reason):
    config = tiny_config(tmp_path, num_clients=2)
    server = run_module.make_server(dataclasses.replace(config, port=0), KEY, log=quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        fields = {"client_id": 0, "num_examples": 10, **hello_fields}
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            try:
                protocol.client_handshake(sock, KEY, fields["client_id"], fields["num_examples"], 5)
            except (OSError, ProtocolError):
                pass
        deadline = time.time() + 5
        while not any(reason in r for r in server.rejected) and time.time() < deadline:
            time.sleep(0.05)
        assert any(reason in r for r in server.rejected), server.rejected
        assert not server.clients
    finally:
        server.stop()


@pytest.mark.parametrize("aggregation", ["median", "trimmed_mean"])
def test_robust_aggregation_holds_against_one_poisoned_client_of_five(aggregation):
    torch.manual_seed(0)
    base = {"w": torch.randn(50), "n": torch.tensor(3)}
    honest = [{"w": base["w"] + 0.01 * torch.randn(50), "n": torch.tensor(3)} for _ in range(4)]
    poisoned = {"w": torch.full((50,), 1e6), "n": torch.tensor(3)}
    honest_mean = fedavg(honest, [1] * 4)["w"]
    plain = aggregate(honest + [poisoned], [1] * 5, "fedavg")["w"]
    robust = aggregate(honest + [poisoned], [1] * 5, aggregation, trim_fraction=0.2)["w"]
    assert (plain - honest_mean).norm() > 1e5
    assert (robust - honest_mean).norm() < 0.1
    # a norm bound on each update caps what one client can move, whatever the aggregation
    clipped = clip_update(poisoned, base, 1.0)
    assert (clipped["w"] - base["w"]).norm() == pytest.approx(1.0, rel=1e-5) and clipped["n"] is poisoned["n"]


def test_huge_and_negative_variance_updates_are_refused():
    template = {"bn.running_var": torch.ones(3), "w": torch.zeros(3), "n": torch.tensor(0)}
    with pytest.raises(ProtocolError, match="negative variances"):
        protocol.check_tensors({"bn.running_var": -torch.ones(3), "w": torch.zeros(3), "n": torch.tensor(0)}, template)
    with pytest.raises(ProtocolError, match="beyond"):
        protocol.check_tensors({"bn.running_var": torch.ones(3), "w": torch.full((3,), 1e30), "n": torch.tensor(0)},
                               template, max_abs=1e4)
    # a large integer counter (batches seen) is not a weight
    protocol.check_tensors({"bn.running_var": torch.ones(3), "w": torch.zeros(3), "n": torch.tensor(10**9)}, template,
                           1e4)


def test_fuzzing_a_running_server_while_an_honest_run_completes(tmp_path, monkeypatch):
    """Bounded (about 300 hostile peers, loopback only): garbage, truncated and oversized frames, wrong keys,
    replayed hellos, nesting under a valid MAC, slow senders, a flood of idle connections and insiders
    sending bad updates, while two honest clients finish their rounds."""
    rng = np.random.default_rng(0)
    config = tiny_config(tmp_path, rounds=3, num_clients=4, min_clients=2, max_connections=32, max_handshakes=8,
                         io_timeout_s=5.0)
    original = run_module.make_server
    idle = []

    def bad_update(kind):
        def answer(channel, header, tensors):
            state = {k: v.clone() for k, v in tensors.items()}
            if kind == "infinite":
                state = {k: torch.full_like(v, float("inf")) if v.is_floating_point() else v
                         for k, v in state.items()}
            fields = {"type": "update", "round": header["round"], "num_examples": 10}
            if kind == "count":
                fields["num_examples"] = 10**6
            if kind == "round":
                fields["round"] = header["round"] + 5
            channel.send(fields, state)
            return "stop"
        return answer

    servers = []

    def attack(config, key, log=print):
        server = original(config, key, log)
        servers.append(server)
        threading.Thread(target=flood, args=(server,), daemon=True).start()
        return server

    def let_the_insiders_in(round_index):  # asked from round 2 on at the latest, whatever the machine's load
        if round_index == 0:
            servers[0].wait_for_clients(4, 60)

    def flood(server):
        port = server.port
        frames = [bytes(rng.integers(0, 256, int(rng.integers(1, 300)), dtype=np.uint8)) for _ in range(120)]
        honest_hello = encode_frame(KEY, {"type": "hello", "client_id": 0, "num_examples": 5, "nonce": "b" * 32,
                                          "dir": "c2s", "seq": 0})
        frames += [honest_hello] * 30 + [honest_hello[: int(rng.integers(1, len(honest_hello)))] for _ in range(30)]
        frames += [encode_frame(b"x" * 32, {"type": "hello"}) for _ in range(20)]
        frames += [protocol.PREFIX.pack(protocol.MAGIC, protocol.VERSION, 10, 2**40) for _ in range(20)]
        nested = ('{"type":"hello","x":' + "[" * 20000 + "]" * 20000 + "}").encode()
        frames += [authenticated_frame(nested, b"") for _ in range(10)]
        server.wait_for_clients(2, 60)  # the server accepts: the two honest clients are in
        for client_id, kind in ((2, "infinite"), (3, "count")):  # insiders join before the flood fills the caps
            insider(port, client_id, bad_update(kind))
        server.wait_for_clients(4, 60)
        # one of each kind first, each answered, so every kind is seen whatever the caps refuse later
        for frame in (frames[0], honest_hello, frames[-40], frames[-20], frames[-1]):
            before = len(server.rejected)
            raw_bytes(port, frame).join()
            deadline = time.time() + 5
            while len(server.rejected) == before and time.time() < deadline:
                time.sleep(0.01)
        for _ in range(60):  # a flood of idle connections, held open
            try:
                idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            except OSError:
                pass
        for frame in frames:
            raw_bytes(port, frame)

        def slow():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                    for byte in honest_hello[:40]:  # 8 s for 40 bytes: past the 5 s frame deadline
                        sock.sendall(bytes([byte]))
                        time.sleep(0.2)
            except OSError:
                pass

        for _ in range(3):
            threading.Thread(target=slow, daemon=True).start()

    monkeypatch.setattr(run_module, "make_server", attack)
    start = time.time()
    try:
        server, history = run_local(config, tiny_datasets(2), KEY, on_round_end=let_the_insiders_in, log=quiet)
    finally:
        for sock in idle:
            sock.close()
    assert [r["round"] for r in history] == [1, 2, 3] and all(r["answered"] >= 2 for r in history)
    reasons = "\n".join(server.rejected)
    for expected in ("bad magic", "bad MAC", "exceeds the cap", "connection refused", "malformed JSON",
                     "non-finite", "num_examples must be an integer in 1..10"):
        assert expected in reasons, expected
    assert torch.isfinite(torch.cat([v.double().flatten() for v in server.global_state.values()])).all()
    assert time.time() - start < 120


def test_a_failing_accept_backs_off_instead_of_spinning(tmp_path):
    config = tiny_config(tmp_path)
    server = run_module.make_server(dataclasses.replace(config, port=0), KEY, log=quiet)
    calls = []

    class FullTable:
        def accept(self):
            calls.append(time.monotonic())
            raise OSError(24, "Too many open files")

        def close(self):
            pass

    server.listener.close()
    server.listener = FullTable()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    time.sleep(1.0)
    server.stop()
    thread.join(timeout=5)
    assert 3 <= len(calls) <= 25  # a busy loop would have made hundreds of thousands of calls


def test_failing_record_writes_are_retried_and_reported_while_the_rounds_go_on(tmp_path, monkeypatch):
    from common.run_folder import RunFolder

    messages, failures = [], {"left": 4}
    original = RunFolder.save_checkpoint

    def flaky(self, state):
        if failures["left"] > 0:
            failures["left"] -= 1
            raise OSError(28, "No space left on device")
        original(self, state)

    monkeypatch.setattr(RunFolder, "save_checkpoint", flaky)
    config = tiny_config(tmp_path, rounds=2)
    server, history = run_local(config, tiny_datasets(), KEY, log=messages.append)
    assert [r["round"] for r in history] == [1, 2]
    assert any("round 1's records were not written" in m for m in messages)
    assert safe_torch_load(config.run_dir() / "checkpoint.pt")["round"] == 1  # the next round's checkpoint landed


# --------------------------------------------------------------------------- one insider cannot end a run
def poison(value):
    """An insider's update: every float of the global model it got set to `value` (under --max_abs_weight)."""
    def on_train(channel, header, tensors):
        poisoned = {k: torch.full_like(v, value) if v.is_floating_point() else v for k, v in tensors.items()}
        channel.send({"type": "update", "round": header["round"], "num_examples": 10,
                      "losses": {t: 1.0 for t in ("augmentation", "reconstruction", "contrastive", "features")}},
                     poisoned)
    return on_train


def with_insider(monkeypatch, client_id, on_train, servers=None):
    """run_module.make_server, with an insider (holding the shared key) joining once two clients are in."""
    original = run_module.make_server

    def make(config, key, log=print):
        server = original(config, key, log)
        threading.Thread(target=lambda: server.wait_for_clients(2, 60) and insider(server.port, client_id, on_train),
                         daemon=True).start()
        if servers is not None:
            servers.append(server)
        return server

    monkeypatch.setattr(run_module, "make_server", make)


@pytest.mark.parametrize("value", [2000.0, 9999.0])
def test_a_poisoned_update_under_the_weight_cap_cannot_end_a_fedavg_run(tmp_path, monkeypatch, value):
    honest = tiny_config(tmp_path / "honest", rounds=3, num_clients=4, min_clients=3)
    run_local(honest, tiny_datasets(3), KEY, log=quiet)
    servers = []
    with_insider(monkeypatch, 3, poison(value), servers)
    attacked = tiny_config(tmp_path / "attacked", rounds=3, num_clients=4, min_clients=3)

    def let_the_insider_in(round_index):
        if round_index == 0:
            servers[0].wait_for_clients(4, 60)

    server, history = run_local(attacked, tiny_datasets(3), KEY, on_round_end=let_the_insider_in, log=quiet)
    assert len(history) == 3 and sum(r["refused"] for r in history) >= 2  # refused in rounds 2 and 3 at least
    assert any("over 10 x the median" in r and "client 3" in r for r in server.rejected)
    # honest updates were never refused, and the global model is the honest run's
    assert not any("client 0" in r or "client 1" in r or "client 2" in r for r in server.rejected)
    _, expected = load_pretrained_encoder(honest.run_dir() / "encoder.pt")
    _, got = load_pretrained_encoder(attacked.run_dir() / "encoder.pt")
    for key in expected:
        assert torch.equal(got[key], expected[key]), key


def test_updates_are_judged_against_the_global_model_they_answer():
    torch.manual_seed(0)
    reference = {"w": torch.randn(100), "bn.running_var": torch.ones(4), "bn.num_batches_tracked": torch.tensor(5)}

    def update(scale=0.01, var=1.1, steps=10):
        return {"w": reference["w"] + scale * torch.randn(100), "bn.running_var": torch.full((4,), var),
                "bn.num_batches_tracked": torch.tensor(5 + steps)}

    honest = {0: update(), 1: update(), 2: update()}
    assert screen_updates(honest, reference) == {}
    # a global model far from the origin changes nothing: only the update counts
    moved = {k: v + 1000 if v.is_floating_point() else v for k, v in reference.items()}
    assert screen_updates({c: {k: v + 1000 if v.is_floating_point() else v for k, v in s.items()}
                           for c, s in honest.items()}, moved) == {}
    refused = screen_updates({**honest, 3: update(scale=5.0)}, reference)
    assert list(refused) == [3] and "weights" in refused[3]
    refused = screen_updates({**honest, 3: update(var=500.0)}, reference)
    assert list(refused) == [3] and "batch-norm statistics" in refused[3]
    for steps in (2**63 - 6, -2**62):
        refused = screen_updates({**honest, 3: update(steps=steps)}, reference)
        assert list(refused) == [3] and "integer buffer bn.num_batches_tracked" in refused[3]
    # two clients: the one far from the other is refused, the other kept
    assert list(screen_updates({0: update(), 1: update(scale=5.0)}, reference)) == [1]
    assert list(screen_updates({0: update(scale=0.5)}, reference, max_update_norm=1.0)) == [0]
    merged = aggregate_integer_buffers([honest[0], honest[1], update(steps=30)], fedavg(list(honest.values()), [1] * 3))
    assert int(merged["bn.num_batches_tracked"]) == 15  # the median count, not a mean an outlier drags


def test_trimmed_mean_trims_at_least_one_client_or_is_refused(tmp_path):
    assert trimmed_count(0.2, 4) == 1 and trimmed_count(0.2, 5) == 1 and trimmed_count(0.25, 8) == 2
    with pytest.raises(ValueError, match="leaves no client"):
        trimmed_count(0.2, 2)
    values = [{"w": torch.tensor([float(v)])} for v in (1, 2, 3, 100)]
    assert float(aggregate(values, [1] * 4, "trimmed_mean", 0.2)["w"]) == 2.5  # 1 and 100 trimmed
    with pytest.raises(UserError, match="trimmed_mean .* over 2 clients"):
        tiny_config(tmp_path, aggregation="trimmed_mean", min_clients=2)
    tiny_config(tmp_path, aggregation="trimmed_mean", min_clients=3)


def test_per_client_keys_let_a_client_speak_only_as_itself(tmp_path):
    keys = protocol.write_enrolment(tmp_path / "keys" / "enrolment.json", 2)
    assert protocol.load_client_keys(tmp_path / "keys" / "enrolment.json") == keys
    assert protocol.load_key(str(tmp_path / "keys" / "enrolment.json.client1.key")) == keys[1]
    assert (tmp_path / "keys" / "enrolment.json").stat().st_mode & 0o777 == 0o600
    config = tiny_config(tmp_path, rounds=1, num_clients=2)
    server = run_module.make_server(dataclasses.replace(config, port=0), keys, log=quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        def handshake(client_id, key):
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
                try:
                    protocol.client_handshake(sock, key, client_id, 10, 5)
                    return "in"
                except (OSError, ProtocolError) as err:
                    return str(err)

        before = len(server.rejected)
        handshake(0, keys[1])  # client 1's key claiming client 0's id
        handshake(5, keys[1])  # an id nobody enrolled
        deadline = time.time() + 5
        while len(server.rejected) < before + 2 and time.time() < deadline:
            time.sleep(0.05)
        reasons = "\n".join(server.rejected)
        assert "bad MAC" in reasons and "not enrolled" in reasons and not server.clients
    finally:
        server.stop()
    # the local role gives every client its own key
    server, history = run_local(tiny_config(tmp_path / "local", rounds=1, num_clients=2), tiny_datasets(2), log=quiet)
    assert isinstance(server.key, dict) and len(set(server.key.values())) == 2 and history[0]["answered"] == 2


def test_enrol_role_writes_the_files_and_the_server_takes_them(tmp_path, capsys):
    run_module.main(["--role", "enrol", "--num_clients", "3", "--client_keys", str(tmp_path / "enrol.json")])
    keys = [f"enrol.json.client{i}.key" for i in range(3)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enrol.json", *keys]
    (tmp_path / "bad.json").write_text('{"0": "short"}')
    with pytest.raises(SystemExit):
        run_module.main(["--role", "server", "--client_keys", str(tmp_path / "bad.json"), "--output_dir",
                         str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert "not an enrolment file" in err and len(err.strip().splitlines()) == 1


def test_losses_logs_and_records_an_insider_cannot_forge(tmp_path, monkeypatch):
    names = ("augmentation", "reconstruction", "contrastive", "features")
    sent = []

    def forged_losses(channel, header, tensors):
        case = len(sent)
        losses = [{"x\nround 999/999: FORGED": 1.0, **{t: 1.0 for t in names[1:]}},
                  {t: 1.7e308 for t in names}, {f"t{i}": 1.0 for i in range(3000)}][min(case, 2)]
        sent.append(case)
        channel.send({"type": "update", "round": header["round"], "num_examples": 10, "losses": losses}, tensors)

    lines = []
    servers = []
    with_insider(monkeypatch, 2, forged_losses, servers)

    def let_it_in(round_index):
        if round_index == 0:
            servers[0].wait_for_clients(3, 60)

    config = tiny_config(tmp_path, rounds=3, num_clients=3)
    server, history = run_local(config, tiny_datasets(2), KEY, on_round_end=let_it_in, log=lines.append)
    assert len(history) == 3
    assert all("\n" not in line for line in lines) and not any(line.startswith("round 999") for line in lines)
    assert any("losses must name the model's tasks" in r for r in server.rejected)
    def strict(text):
        return json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in a record"))

    rows = [strict(line) for line in (config.run_dir() / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [1, 2, 3] and all(abs(v) < 1e6 for r in rows
                                                           for v in r["mean_local_losses"].values())
    strict((config.run_dir() / "summary.json").read_text())
    with pytest.raises(UserError, match="non-finite number"):
        strict_json({"loss": float("inf")}, "metrics.jsonl")


def test_a_resume_after_a_damaged_checkpoint_is_exact(tmp_path, monkeypatch):
    slow = dict(round_timeout_s=300.0, io_timeout_s=60.0, min_clients=3)  # as above: no client may miss a round
    straight = tiny_config(tmp_path / "a", rounds=4, **slow)
    run_local(straight, tiny_datasets(), KEY, log=quiet)
    killed = tiny_config(tmp_path / "b", rounds=4, **slow)
    original = FederatedServer._checkpoint

    def die_before_the_third_checkpoint(self, round_index):
        if round_index == 2:  # the clients trained and saved round 3; the server's newest checkpoint is round 2's
            raise Stop
        original(self, round_index)

    monkeypatch.setattr(FederatedServer, "_checkpoint", die_before_the_third_checkpoint)
    with pytest.raises(Stop):
        run_local(killed, tiny_datasets(), KEY, log=quiet)
    monkeypatch.setattr(FederatedServer, "_checkpoint", original)
    checkpoint = killed.run_dir() / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])  # torn: the server falls back to round 1's
    lines = []
    server, _ = run_local(dataclasses.replace(killed, resume=1), tiny_datasets(), KEY, log=lines.append)
    assert server.start_round == 1 and not any("not exact" in line for line in lines)
    _, expected = load_pretrained_encoder(straight.run_dir() / "encoder.pt")
    _, got = load_pretrained_encoder(killed.run_dir() / "encoder.pt")
    for key in expected:
        assert torch.equal(got[key], expected[key]), key


def test_a_resume_that_cannot_be_exact_says_so(tmp_path):
    config = tiny_config(tmp_path, rounds=3)

    def kill(round_index):
        if round_index == 1:
            raise Stop

    with pytest.raises(Stop):
        run_local(config, tiny_datasets(), KEY, on_round_end=kill, log=quiet)
    for path in (config.run_dir() / "clients").glob("client0_*"):
        path.unlink()  # client 0 lost its saved optimiser state
    lines = []
    run_local(dataclasses.replace(config, resume=1), tiny_datasets(), KEY, log=lines.append)
    assert any("client 0" in line and "the resumed run is not exact" in line for line in lines)
    assert any("client 0 had no optimiser state for round 3" in line for line in lines)


@pytest.mark.parametrize("damage, words", [
    (lambda s: {**s, "history_json": "{"}, "field 'history_json' is damaged"),
    (lambda s: {**s, "round": -5}, "field 'round' must be a round number"),
    (lambda s: {**s, "model": "weights"}, "no 'model' state dict"),
])
def test_hand_made_checkpoints_are_one_line_naming_the_field(tmp_path, damage, words):
    config = tiny_config(tmp_path, rounds=1, num_clients=2)
    run_local(config, tiny_datasets(2), KEY, log=quiet)
    path = config.run_dir() / "checkpoint.pt"
    torch.save(damage(torch.load(path, weights_only=True)), path)
    (config.run_dir() / "checkpoint.pt.prev").unlink(missing_ok=True)
    with pytest.raises(UserError, match=words) as error:
        run_module.make_server(dataclasses.replace(config, resume=1, rounds=2, port=0), KEY, log=quiet)
    assert str(path) in str(error.value)


def test_resume_without_a_checkpoint_deletes_nothing(tmp_path):
    config = tiny_config(tmp_path, rounds=1, num_clients=2)
    run_local(config, tiny_datasets(2), KEY, log=quiet)
    run = config.run_dir()
    for name in ("checkpoint.pt", "checkpoint.pt.prev"):
        (run / name).unlink(missing_ok=True)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(UserError, match="no checkpoint.pt to resume from"):
        run_module.make_server(dataclasses.replace(config, resume=1, port=0), KEY, log=quiet)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


# --------------------------------------------------------------------------- liveness
def test_a_client_notices_a_silent_server_and_gives_up_the_session(tmp_path):
    listener = socket.create_server(("127.0.0.1", 0))
    held = []

    def black_hole():  # a server that completes the handshake, promises pings every 0.2 s, then goes silent
        sock, _ = listener.accept()
        protocol.server_handshake(sock, KEY, 5, keepalive_s=0.2)
        held.append(sock)

    threading.Thread(target=black_hole, daemon=True).start()
    config = tiny_config(tmp_path, io_timeout_s=1.0)
    client = FederatedClient(config, tiny_datasets(1)[0], 0, KEY, f"127.0.0.1:{listener.getsockname()[1]}",
                             log=quiet)
    start = time.time()
    with pytest.raises(ProtocolError, match="nothing from the server for 2 s"):
        client._session()
    assert time.time() - start < 10
    listener.close()


def test_a_silent_insider_costs_a_round_seconds_not_the_round_timeout(tmp_path, monkeypatch):
    servers = []

    def stay_silent(channel, header, tensors):
        time.sleep(60)

    with_insider(monkeypatch, 2, stay_silent, servers)

    def let_it_in(round_index):
        if round_index == 0:
            servers[0].wait_for_clients(3, 60)

    config = tiny_config(tmp_path, rounds=2, num_clients=3, round_timeout_s=600.0, round_grace_s=1.0)
    server, history = run_local(config, tiny_datasets(2), KEY, on_round_end=let_it_in, log=quiet)
    held = [r for r in history if r["asked"] == 3]  # the round(s) the insider was asked in
    assert len(history) == 2 and held and all(r["answered"] == 2 and r["seconds"] < 30 for r in held)
    assert any("grace period" in r for r in server.rejected)


# --------------------------------------------------------------------------- the rocket task's shared PCA
def sine_windows(n, seed):
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 8 * np.pi, 128)
    return (np.sin(rng.uniform(0.5, 3, (n, 1, 1)) * t + rng.uniform(0, 6, (n, 3, 1)))
            + 0.3 * rng.standard_normal((n, 3, 128))).astype(np.float32)


def test_the_federated_rocket_pca_is_the_pca_of_the_pooled_features():
    from data_processing.federated_minirocket import (STAGES, ClientRocket, RocketPCA, RocketStatisticsError,
                                                      checked_transform, layout_digest)
    clients = [ClientRocket(sine_windows(30 + 5 * i, i), 84, 7, 68) for i in range(3)]
    server = RocketPCA((3, 128), 84, 7, 68)  # rank 68 + 16 = all 84 features: the PCA is exact
    assert server.layout == layout_digest(clients[0].transform.parameters)  # kernels fixed by the seed alone
    for stage in STAGES:
        request, answers = server.request(stage), []
        for client in clients:
            answer = client.answer(stage, request)
            server.check_answer(stage, answer, len(client.x))
            answers.append((answer, len(client.x)))
        server.combine(stage, answers)
    # one client's wild biases do not move the median
    assert np.array_equal(server.biases, np.median([c.own_biases for c in clients], 0))
    transform = checked_transform(server.transform, 84, 68)
    targets = np.concatenate([c.targets(transform) for c in clients])
    pooled = np.concatenate([c.features(server.biases) for c in clients]).astype(np.float64)
    centred = pooled - pooled.mean(0)
    reference = centred @ np.linalg.svd(centred, full_matrices=False)[2][:5].T
    reference /= np.sqrt((centred @ np.linalg.svd(centred, full_matrices=False)[2][:68].T).var(0).mean())
    for j in range(5):  # the leading components, up to their sign
        assert abs(np.corrcoef(targets[:, j], reference[:, j])[0, 1]) > 0.9999
        assert np.allclose(np.abs(targets[:, j]), np.abs(reference[:, j]), atol=1e-3)
    assert targets.var(0).mean() == pytest.approx(1.0, rel=1e-4)
    # statistics real data cannot have are refused, and so is a damaged transform
    good = clients[0].answer("rotate", server.request("rotate"))
    for bad, reason in (({**good, "sum": good["sum"] + 1e6}, "beyond"), ({**good, "sum": -good["sum"] - 1}, "negative"),
                        ({"sum": good["sum"]}, "must hold"), ({**good, "product": good["product"][:, :3]}, "shape"),
                        ({**good, "product": np.full_like(good["product"], np.nan)}, "finite")):
        with pytest.raises(RocketStatisticsError, match=reason):
            server.check_answer("rotate", bad, len(clients[0].x))
    with pytest.raises(RocketStatisticsError, match="scale"):
        checked_transform({**server.transform, "scale": np.zeros(1)}, 84, 68)


def test_a_federated_rocket_run_shares_one_transform_and_resumes_with_it(tmp_path, monkeypatch):
    config = tiny_config(tmp_path, rounds=2, tasks=("rocket",), rocket_kernels=84, rocket_dim=8)

    def kill_after_first_round(round_index):
        raise Stop

    with pytest.raises(Stop):
        run_local(config, tiny_datasets(), KEY, on_round_end=kill_after_first_round, log=quiet)
    saved = torch.load(config.run_dir() / "checkpoint.pt", weights_only=True)
    assert saved["rocket_transform"]["basis"].shape == (84, 8)
    digest = json.loads(saved["rocket_setup_json"])["digest"]
    monkeypatch.setattr(FederatedServer, "fit_rocket", lambda self: pytest.fail("a resumed run refits the PCA"))
    used = []
    original = LocalTrainer.use_targets
    monkeypatch.setattr(LocalTrainer, "use_targets",
                        lambda self, targets: used.append(targets) or original(self, targets))
    # min_clients 3: the resumed round waits for the whole fleet (with 2, a loaded CI may start without one)
    server, history = run_local(dataclasses.replace(config, resume=1, min_clients=3), tiny_datasets(), KEY, log=quiet)
    assert [r["round"] for r in history] == [1, 2] and history[1]["answered"] == 3
    assert server.rocket_setup["digest"] == digest and server.rocket_setup["clients"]["rotate"] == 3
    assert len(used) == 3 and all(t["rocket"].shape == (32, 8) for t in used)  # each client: its windows' targets
    summary = json.loads((config.run_dir() / "summary.json").read_text())
    assert summary["rocket_setup"]["components"] == 8


def test_the_rocket_pca_waits_for_the_fleet_so_a_late_client_is_in_it(tmp_path, monkeypatch):
    original = FederatedClient.run

    def late(self):
        if self.client_id == 2:
            time.sleep(2.0)  # the other two are connected: min_clients would let the PCA start without it
        return original(self)

    monkeypatch.setattr(FederatedClient, "run", late)
    config = tiny_config(tmp_path, rounds=1, tasks=("rocket",), rocket_kernels=84, rocket_dim=8)
    server, history = run_local(config, tiny_datasets(), KEY, log=quiet)
    assert server.rocket_setup["clients"] == {"biases": 3, "sketch": 3, "rotate": 3} and history[0]["answered"] == 3


def test_an_insider_poisoning_the_rocket_statistics_is_dropped_and_the_run_completes(tmp_path, monkeypatch):
    from data_processing.federated_minirocket import ClientRocket
    honest = ClientRocket.answer

    def answer(self, stage, request):
        out = honest(self, stage, request)
        return {**out, "sum": out["sum"] * 1e6} if len(self.x) == 33 and "sum" in out else out

    monkeypatch.setattr(ClientRocket, "answer", answer)
    datasets = tiny_datasets()
    datasets[2] = PretrainData(np.concatenate([datasets[2].x, datasets[2].x[:1]]),
                               np.concatenate([datasets[2].features, datasets[2].features[:1]]), datasets[2].spec, {})
    config = tiny_config(tmp_path, tasks=("rocket",), rocket_kernels=84, rocket_dim=8)
    server, history = run_local(config, datasets, KEY, log=quiet)
    assert server.rocket_setup["clients"] == {"biases": 3, "sketch": 2, "rotate": 2}
    assert any("client 2" in r and "sum holds values beyond" in r for r in server.rejected)
    assert len(history) == 2 and all(r["answered"] >= 2 for r in history)  # the honest two trained every round
