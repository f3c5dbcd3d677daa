"""HAR_federated/run.py: whole runs (local, enrol, TLS, per-client keys) and their resume."""
import dataclasses
import json
import socket
import threading
import time

import pytest
import torch

from common.classification import load_pretrained_encoder
from ground.errors import UserError
from har_task import HARTask
from HAR_federated import protocol
from HAR_federated import run as run_module
from HAR_federated.protocol import ProtocolError
from HAR_federated.run import run_local
from HAR_federated.server import FederatedServer
from tests.federated_helpers import cache_in_tmp  # noqa: F401 (autouse: pretext caches in tmp_path)
from tests.federated_helpers import KEY, quiet, Stop, tiny_config, tiny_datasets


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


def test_tls_round_trip(tmp_path):
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    config = tiny_config(tmp_path, rounds=1, num_clients=2, tls_cert=str(cert), tls_key=str(key), tls_ca=str(cert))
    server, history = run_local(config, tiny_datasets(2), KEY, log=quiet)
    assert history[0]["answered"] == 2 and not server.rejected


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
