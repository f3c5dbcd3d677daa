"""HAR_federated/server.py: what honest clients survive (crashes, insiders, fuzzing, failing disks)."""
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
from ground.errors import UserError
from ground.io import strict_json
from HAR_federated import protocol
from HAR_federated import run as run_module
from HAR_federated.client import FederatedClient
from HAR_federated.protocol import ProtocolError, encode_frame
from HAR_federated.run import run_local
from tests.federated_helpers import cache_in_tmp  # noqa: F401 (autouse: pretext caches in tmp_path)
from tests.federated_helpers import (KEY, authenticated_frame, echo, insider, poison, quiet, raw_bytes, tiny_config,
                                    tiny_datasets, with_insider)


def test_a_client_crashing_mid_round_is_dropped_and_the_round_completes(tmp_path, monkeypatch):
    crashed = []

    def crash(channel, header, tensors):
        crashed.append(header["round"])
        channel.sock.close()  # dies after receiving the weights, before answering
        return "stop"

    original = run_module.make_server

    def make_server_with_crasher(config, key, log=print, task=None):
        server = original(config, key, log, task)
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

    def attack(config, key, log=print, task=None):
        server = original(config, key, log, task)
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

    def attack(config, key, log=print, task=None):
        server = original(config, key, log, task)
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


def test_a_client_killed_mid_round_with_min_clients_at_the_live_count_completes_the_run(tmp_path, monkeypatch):
    """Killed in round 1 with --min_clients 3 of 3: the round does not commit, so the two clients that answered
    it accept its retry; the killed client's restart rejoins and the run completes."""
    config = tiny_config(tmp_path, rounds=3, num_clients=3, min_clients=3, connect_wait_s=60.0)
    restarted = []

    def crash_then_restart(channel, header, tensors):
        port = channel.sock.getpeername()[1]
        channel.sock.close()  # dies after receiving the weights, before answering
        client = FederatedClient(config, tiny_datasets(3)[2], 2, KEY, f"127.0.0.1:{port}", None, quiet)
        restarted.append((threading.Thread(target=client.run), client))
        restarted[-1][0].start()
        return "stop"

    with_insider(monkeypatch, 2, crash_then_restart)
    server, history = run_local(config, tiny_datasets(2), KEY, log=quiet)
    for thread, client in restarted:
        thread.join(timeout=120)
        assert not thread.is_alive()
    assert len(history) == 3 and len(restarted) == 1
    assert [row["answered"] for row in history] == [3, 3, 3]
    assert not any("malformed" in reason for reason in server.rejected)


@pytest.mark.parametrize("insiders, honest", [(1, 2), (2, 3)])
def test_insiders_echoing_the_global_model_leave_the_honest_run_untouched(tmp_path, monkeypatch, insiders, honest):
    reference = tiny_config(tmp_path / "honest", rounds=3, num_clients=honest, min_clients=honest)
    run_local(reference, tiny_datasets(honest), KEY, log=quiet)
    servers = []
    for i in range(insiders):  # a plain echo, and one that moves only the batch-norm statistics
        with_insider(monkeypatch, honest + i, echo(statistics_moved=i == 1), servers, after=honest)
    attacked = tiny_config(tmp_path / "attacked", rounds=3, num_clients=honest + insiders, min_clients=honest)

    def let_the_insiders_in(round_index):
        if round_index == 0:
            servers[0].wait_for_clients(honest + insiders, 60)

    server, history = run_local(attacked, tiny_datasets(honest), KEY, on_round_end=let_the_insiders_in, log=quiet)
    assert len(history) == 3 and sum(row["refused"] for row in history) >= 2 * insiders
    assert all("not a training step" in reason for reason in server.rejected if "round" in reason)
    assert not any(f"client {c}" in reason for c in range(honest) for reason in server.rejected)
    _, expected = load_pretrained_encoder(reference.run_dir() / "encoder.pt")
    _, got = load_pretrained_encoder(attacked.run_dir() / "encoder.pt")
    for key in expected:  # distance 0.0: the encoder is the honest run's, bit for bit
        assert torch.equal(got[key], expected[key]), key


def test_trimmed_mean_runs_when_more_clients_answer_than_the_quorum(tmp_path):
    # 2 * ceil(0.4 * 7) = 6 < 7 passes at start-up, while 2 * ceil(0.4 * 8) = 8 would trim every one of 8
    config = tiny_config(tmp_path, rounds=2, num_clients=8, min_clients=7, aggregation="trimmed_mean",
                         trim_fraction=0.4)
    _, history = run_local(config, tiny_datasets(8, n=16), KEY, log=quiet)
    assert len(history) == 2 and history[-1]["answered"] == 8
