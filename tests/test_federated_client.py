"""HAR_federated/client.py: reconnects, certificate failures, a silent server."""
import dataclasses
import socket
import threading
import time

import pytest

from HAR_federated import protocol
from HAR_federated import run as run_module
from HAR_federated.client import FederatedClient
from HAR_federated.protocol import ProtocolError
from tests.federated_helpers import cache_in_tmp  # noqa: F401 (autouse: pretext caches in tmp_path)
from tests.federated_helpers import KEY, quiet, tiny_config, tiny_datasets


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
