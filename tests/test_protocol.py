"""HAR_federated/protocol.py: authenticated frames, the handshake, strict headers."""
import pickle
import socket
import threading
import time

import pytest
import torch

from HAR_federated import protocol
from HAR_federated.protocol import ProtocolError, encode_frame, read_frame
from tests.federated_helpers import cache_in_tmp  # noqa: F401 (autouse: pretext caches in tmp_path)
from tests.federated_helpers import authenticated_frame, KEY, roundtrip, session_pair


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
