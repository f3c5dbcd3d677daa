"""The wire between federated server and clients: authenticated sessions of length-prefixed frames.

Frame = prefix | header | payload | mac
  prefix  b"MTFL", version (1 byte), header length (4 bytes), payload length (8 bytes), big-endian
  header  JSON object: "type" (hello, challenge, proof, welcome, train, update, done; rocket, rocket_stats,
          rocket_transform: the rocket task's shared PCA, HAR_federated/server.py), "dir" ("c2s" client
          to server, "s2c" server to client), "seq" (the frame's number in its direction: 0 for the hello
          and the challenge, then 1, 2, ... each exactly one more than the last), "session" (after the
          handshake), and the message's own fields
  payload safetensors bytes of the model's tensors (may be empty)
  mac     HMAC-SHA256 over prefix + header + payload: with the shared key for hello and challenge, with the
          session key for every later frame

Handshake (both sides prove they hold the client's key, for this session only):
  client -> server  hello {client_id, num_examples, nonce: fresh client nonce}           (client's key)
  server -> client  challenge {client_nonce: echoed, nonce: fresh server nonce}           (client's key)
  both derive       session key = HMAC(key, "session" | client nonce | server nonce), session id
  client -> server  proof {}                                                             (session key)
  server -> client  welcome {keepalive_s}                                                (session key)
The client's key is its own (the server's enrolment file maps client ids to keys: one client cannot speak as
another), or one key shared by all (then any holder can claim any id). With per-client keys the server parses
the hello's header (bounded, strict JSON) only to pick the key named by its client_id, then checks the MAC.
The server registers a client only after its proof; the client trusts the server only after the welcome.
Between rounds the server sends "ping" frames every keepalive_s; a client that hears nothing for 3 x that
(+ the I/O timeout) takes its session for dead and rejoins.
A captured hello replayed later cannot produce the proof for a new server nonce; a captured frame of an
old session fails the new session's MAC; a frame out of order or sent back the other way fails the seq or
dir check. Lengths are checked against caps before anything is read, the MAC before anything is parsed;
tensors are parsed by safetensors (nothing received is ever unpickled), then checked against the model.
"""
import hashlib
import hmac
import json
import os
import secrets
import socket
import struct
import threading
import time
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save

MAGIC = b"MTFL"
VERSION = 2  # 2: sessions (nonces, session keys, seq and dir under the MAC)
PREFIX = struct.Struct(">4sBIQ")
MAC_SIZE = 32
MAX_HEADER_BYTES = 64 * 1024
DEFAULT_MAX_PAYLOAD_BYTES = 64 * 2**20
KEY_ENV = "MTSSL_FED_KEY"


class ProtocolError(Exception):
    """A frame that must be rejected; the message is the logged reason."""


# control characters (and Unicode line breaks) a peer could put in a field to forge log lines
_LINE_ESCAPES = {i: f"\\x{i:02x}" for i in (*range(32), 0x7F, 0x85)} | {0x2028: "\\u2028", 0x2029: "\\u2029"}


class LineLog:
    """The federated log: each message one whole line, whatever thread writes it, with control characters
    escaped (a newline inside a peer's field cannot start a forged line)."""

    def __init__(self, sink=print):
        self.sink, self.lock = sink, threading.Lock()

    def __call__(self, message):
        text = str(message).translate(_LINE_ESCAPES)
        with self.lock:
            self.sink(text)


def line_log(log):
    return log if isinstance(log, LineLog) else LineLog(log)


class MemoryBudget:
    """Bytes of frame payloads being read at once, across every connection: a frame that would exceed it
    is refused before its payload is read."""

    def __init__(self, limit_bytes):
        self.limit, self.used, self.lock = limit_bytes, 0, threading.Lock()

    def reserve(self, size):
        with self.lock:
            if self.used + size > self.limit:
                raise ProtocolError(f"payload of {size} bytes refused: {self.used} of the {self.limit}-byte budget "
                                    f"for frames in flight are taken")
            self.used += size

    def release(self, size):
        with self.lock:
            self.used -= size


# --------------------------------------------------------------------------- keys
def load_key(key_file=""):
    """The shared key: from key_file, else the MTSSL_FED_KEY environment variable (hex or text)."""
    if key_file:
        path = Path(key_file)
        if not path.is_file():
            raise ProtocolError(f"key file {path} does not exist")
        try:
            text = path.read_bytes().decode("utf-8").strip()
        except UnicodeDecodeError:
            raise ProtocolError(f"key file {path} is not text: write the key as hex or text") from None
    else:
        text = os.environ.get(KEY_ENV, "").strip()
    if len(text) < 16:
        raise ProtocolError(f"a shared key of at least 16 characters is needed (--key_file or ${KEY_ENV})")
    return text.encode()


def generate_key():
    return secrets.token_hex(32).encode()


def load_client_keys(path):
    """The server's enrolment file, {"client id": "key", ...} (JSON), as {id: key bytes}; one line if malformed."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(), parse_constant=_reject_constant)
        if not isinstance(raw, dict) or not raw:
            raise ValueError("not a non-empty JSON object")
        keys = {}
        for client_id, key in raw.items():
            if not client_id.isdigit() or not isinstance(key, str) or len(key) < 16:
                raise ValueError(f"entry {client_id[:20]!r} is not 'client id': 'key of 16+ characters'")
            keys[int(client_id)] = key.encode()
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        raise ProtocolError(f"--client_keys {path}: not an enrolment file ({err})") from None
    if len(set(keys.values())) != len(keys):
        raise ProtocolError(f"--client_keys {path}: two clients share a key")
    return keys


def write_enrolment(path, num_clients):
    """A fresh key per client: the server's file {id: key} at path (mode 600) and <path>.client<id>.key for
    each client (mode 600, to hand to that client alone). Returns {id: key}."""
    path = Path(path)
    keys = {client_id: generate_key() for client_id in range(num_clients)}
    def private(file, text):
        file.parent.mkdir(parents=True, exist_ok=True)
        with os.fdopen(os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(text)
    private(path, json.dumps({str(c): k.decode() for c, k in keys.items()}, indent=1) + "\n")
    for client_id, key in keys.items():
        private(path.with_name(f"{path.name}.client{client_id}.key"), key.decode() + "\n")
    return keys


# --------------------------------------------------------------------------- frames
def encode_frame(key, header, tensors=None):
    header_bytes = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()  # NaN is not JSON
    payload = safetensors_save({k: v.contiguous() for k, v in tensors.items()}) if tensors else b""
    prefix = PREFIX.pack(MAGIC, VERSION, len(header_bytes), len(payload))
    body = prefix + header_bytes + payload
    return body + hmac.new(key, body, hashlib.sha256).digest()


def _reject_constant(name):
    raise ValueError(f"non-finite number {name} in a header")


def _recv_exact(sock, size, deadline=None):
    """size bytes; with a deadline (time.monotonic), a sender that dribbles them too slowly is cut off."""
    chunks, remaining = [], size
    while remaining:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProtocolError(f"frame not complete before its deadline ({remaining} of {size} bytes unread)")
            sock.settimeout(left)
        try:
            chunk = sock.recv(min(remaining, 1 << 20))
        except TimeoutError:
            if deadline is not None and time.monotonic() >= deadline:
                raise ProtocolError(f"frame not complete before its deadline ({remaining} of {size} bytes "
                                    f"unread)") from None
            raise
        if not chunk:
            raise ProtocolError(f"connection closed with {remaining} of {size} bytes unread (truncated frame)")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(sock, key, max_payload_bytes=DEFAULT_MAX_PAYLOAD_BYTES, deadline_s=None, budget=None):
    """(header dict, tensors dict, bytes read) of the next frame; ProtocolError on anything wrong.

    The first byte may take as long as the socket's timeout allows; once it is in, the rest of the frame
    must arrive within deadline_s (None: no deadline), whatever the pace of single reads. With a
    MemoryBudget, the payload's bytes are reserved before they are read and released once parsed.
    """
    first = _recv_exact(sock, 1)
    deadline = time.monotonic() + deadline_s if deadline_s is not None else None
    prefix = first + _recv_exact(sock, PREFIX.size - 1, deadline)
    magic, version, header_len, payload_len = PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise ProtocolError("bad magic: not a frame of this protocol")
    if version != VERSION:
        raise ProtocolError(f"protocol version {version}, expected {VERSION}")
    if header_len > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {header_len} bytes exceeds the cap of {MAX_HEADER_BYTES}")
    if payload_len > max_payload_bytes:
        raise ProtocolError(f"payload of {payload_len} bytes exceeds the cap of {max_payload_bytes}")
    if budget is not None:
        budget.reserve(payload_len)
    try:
        return _read_rest(sock, key, prefix, header_len, payload_len, deadline)
    finally:
        if budget is not None:
            budget.release(payload_len)


def _parse_header(raw):
    try:
        header = json.loads(raw.decode(), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:  # JSONDecodeError is a ValueError
        raise ProtocolError(f"malformed JSON header ({type(err).__name__})") from None
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise ProtocolError("header is not a JSON object with a 'type'")
    return header


def _read_rest(sock, key, prefix, header_len, payload_len, deadline):
    rest = _recv_exact(sock, header_len + payload_len + MAC_SIZE, deadline)
    body, mac = prefix + rest[:-MAC_SIZE], rest[-MAC_SIZE:]
    header = None
    if callable(key):  # a per-client key: the header names whose (checked by the MAC right after)
        header = _parse_header(rest[:header_len])
        key = key(header)
    if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).digest()):
        raise ProtocolError("bad MAC: wrong key or tampered frame")
    header = header if header is not None else _parse_header(rest[:header_len])
    tensors = {}
    if payload_len:
        try:
            tensors = safetensors_load(rest[header_len:-MAC_SIZE])
        except (SafetensorError, ValueError, RuntimeError) as err:
            raise ProtocolError(f"payload is not safetensors ({str(err)[:80]})") from None
    return header, tensors, PREFIX.size + len(rest)


def send_frame(sock, key, header, tensors=None):
    frame = encode_frame(key, header, tensors)
    sock.sendall(frame)
    return len(frame)


# --------------------------------------------------------------------------- sessions
def _session_key(key, client_nonce, server_nonce):
    material = hmac.new(key, b"session|" + client_nonce.encode() + b"|" + server_nonce.encode(), hashlib.sha256)
    return material.digest(), hashlib.sha256(b"id|" + material.digest()).hexdigest()[:32]


def _nonce(header, name):
    value = header.get(name)
    if not isinstance(value, str) or len(value) != 32 or any(c not in "0123456789abcdef" for c in value):
        raise ProtocolError(f"{header.get('type')!r} without a fresh 128-bit hex {name}")
    return value


def _expect(header, kind, direction, seq):
    if header.get("type") != kind or header.get("dir") != direction or header.get("seq") != seq:
        raise ProtocolError(f"expected {kind} ({direction} #{seq}), got {header.get('type')!r} "
                            f"({header.get('dir')!r} #{header.get('seq')!r})")


class Channel:
    """One authenticated session: frames under the session key, carrying its id, their direction and a
    sequence number one more than the last; anything else is refused."""

    def __init__(self, sock, session_key, session_id, role):
        self.sock, self.key, self.session = sock, session_key, session_id
        self.send_dir, self.recv_dir = ("c2s", "s2c") if role == "client" else ("s2c", "c2s")
        self.send_seq = self.recv_seq = 1
        self.send_lock = threading.Lock()  # the round's thread and the keep-alive thread share the socket
        self.keepalive_s = None  # the client's: the server's keep-alive interval, from its welcome

    def send(self, header, tensors=None):
        with self.send_lock:
            size = send_frame(self.sock, self.key, {**header, "session": self.session, "dir": self.send_dir,
                                                     "seq": self.send_seq}, tensors)
            self.send_seq += 1
        return size

    def receive(self, max_payload_bytes=DEFAULT_MAX_PAYLOAD_BYTES, deadline_s=None, budget=None):
        header, tensors, size = read_frame(self.sock, self.key, max_payload_bytes, deadline_s, budget)
        if header.get("session") != self.session or header.get("dir") != self.recv_dir:
            raise ProtocolError(f"frame of another session or direction ({header.get('dir')!r})")
        if header.get("seq") != self.recv_seq:
            raise ProtocolError(f"frame #{header.get('seq')!r} out of order (expected #{self.recv_seq}): a replay?")
        self.recv_seq += 1
        return header, tensors, size


def _handshake_read(sock, key, deadline, max_payload_bytes=0):
    sock.settimeout(max(0.001, deadline - time.monotonic()))
    return read_frame(sock, key, max_payload_bytes, max(0.001, deadline - time.monotonic()))


def client_handshake(sock, key, client_id, num_examples, timeout_s):
    """The client's half of the handshake: a Channel once the server has proved it holds the key."""
    deadline = time.monotonic() + timeout_s
    client_nonce = secrets.token_hex(16)
    send_frame(sock, key, {"type": "hello", "client_id": client_id, "num_examples": num_examples,
                           "nonce": client_nonce, "dir": "c2s", "seq": 0})
    challenge, _, _ = _handshake_read(sock, key, deadline)
    _expect(challenge, "challenge", "s2c", 0)
    if challenge.get("client_nonce") != client_nonce:
        raise ProtocolError("challenge for another hello: a replayed server frame?")
    channel = Channel(sock, *_session_key(key, client_nonce, _nonce(challenge, "nonce")), "client")
    channel.send({"type": "proof"})
    sock.settimeout(max(0.001, deadline - time.monotonic()))
    welcome, _, _ = channel.receive(0, max(0.001, deadline - time.monotonic()))
    if welcome.get("type") != "welcome":
        raise ProtocolError(f"expected welcome, got {welcome.get('type')!r}")
    keepalive = welcome.get("keepalive_s")
    if keepalive is not None:
        if type(keepalive) not in (int, float) or not 0 < keepalive <= 3600:
            raise ProtocolError(f"welcome with a keep-alive interval of {keepalive!r} s")
        channel.keepalive_s = float(keepalive)
    return channel


def key_lookup(client_keys):
    """A per-client key source for server_handshake: the hello's client_id picks its key from {id: key}."""
    def key_for(header):
        client_id = header.get("client_id")
        if header.get("type") != "hello" or type(client_id) is not int or client_id not in client_keys:
            raise ProtocolError(f"hello from a client that is not enrolled (client_id {str(client_id)[:20]!r})")
        return client_keys[client_id]
    return key_for


def server_handshake(sock, key, timeout_s, keepalive_s=None):
    """The server's half: (the client's hello header, a Channel) once the client has proved it holds the key.
    key: the shared key (bytes), or {client id: key} with one key per client."""
    deadline = time.monotonic() + timeout_s
    hello, _, _ = _handshake_read(sock, key_lookup(key) if isinstance(key, dict) else key, deadline)
    _expect(hello, "hello", "c2s", 0)
    key = key[hello["client_id"]] if isinstance(key, dict) else key
    client_nonce, server_nonce = _nonce(hello, "nonce"), secrets.token_hex(16)
    send_frame(sock, key, {"type": "challenge", "client_nonce": client_nonce, "nonce": server_nonce, "dir": "s2c",
                           "seq": 0})
    channel = Channel(sock, *_session_key(key, client_nonce, server_nonce), "server")
    sock.settimeout(max(0.001, deadline - time.monotonic()))
    proof, _, _ = channel.receive(0, max(0.001, deadline - time.monotonic()))
    if proof.get("type") != "proof":
        raise ProtocolError(f"expected proof, got {proof.get('type')!r}")
    channel.send({"type": "welcome", **({"keepalive_s": keepalive_s} if keepalive_s else {})})
    return hello, channel


def check_tensors(tensors, template, max_abs=None):
    """The received tensors must be exactly the model's: same names, shapes, dtypes, all finite (and, with
    max_abs, no floating value larger in magnitude), batch-norm variances non-negative."""
    if set(tensors) != set(template):
        missing, extra = sorted(set(template) - set(tensors)), sorted(set(tensors) - set(template))
        raise ProtocolError(f"tensor names differ from the model's (missing {missing[:3]}, unexpected {extra[:3]})")
    for name, reference in template.items():
        value = tensors[name]
        if value.shape != reference.shape or value.dtype != reference.dtype:
            raise ProtocolError(f"tensor {name}: {tuple(value.shape)} {value.dtype}, expected "
                                f"{tuple(reference.shape)} {reference.dtype}")
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise ProtocolError(f"tensor {name} has non-finite values")
        if max_abs is not None and value.is_floating_point() and value.numel() and value.abs().max() > max_abs:
            raise ProtocolError(f"tensor {name} holds values beyond +-{max_abs:g}")
        if name.endswith("running_var") and (value < 0).any():
            raise ProtocolError(f"tensor {name} holds negative variances")


def connect(address, timeout, tls_context=None):
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sock.settimeout(timeout)
    return tls_context.wrap_socket(sock, server_hostname=host) if tls_context else sock
