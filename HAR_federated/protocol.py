"""The wire between federated server and clients: authenticated, length-prefixed frames.

Frame = prefix | header | payload | mac
  prefix  b"MTFL", version (1 byte), header length (4 bytes), payload length (8 bytes), big-endian
  header  JSON object with at least "type" (hello, train, update, done, error)
  payload safetensors bytes of the model's tensors (may be empty)
  mac     HMAC-SHA256 over prefix + header + payload with the shared key

Lengths are checked against caps before anything is read, the MAC before anything is parsed, and
tensors are parsed by safetensors (a flat format: nothing received is ever unpickled), then checked
against the model's names, shapes and dtypes and for non-finite values.
"""
import hashlib
import hmac
import json
import os
import secrets
import socket
import struct
import time
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save

MAGIC = b"MTFL"
VERSION = 1
PREFIX = struct.Struct(">4sBIQ")
MAC_SIZE = 32
MAX_HEADER_BYTES = 64 * 1024
DEFAULT_MAX_PAYLOAD_BYTES = 64 * 2**20
KEY_ENV = "MTSSL_FED_KEY"


class ProtocolError(Exception):
    """A frame that must be rejected; the message is the logged reason."""


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


# --------------------------------------------------------------------------- frames
def encode_frame(key, header, tensors=None):
    header_bytes = json.dumps(header, separators=(",", ":")).encode()
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
                raise ProtocolError(f"frame not complete before its deadline ({remaining} of {size} bytes unread)") from None
            raise
        if not chunk:
            raise ProtocolError(f"connection closed with {remaining} of {size} bytes unread (truncated frame)")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(sock, key, max_payload_bytes=DEFAULT_MAX_PAYLOAD_BYTES, deadline_s=None):
    """(header dict, tensors dict, bytes read) of the next frame; ProtocolError on anything wrong.

    The first byte may take as long as the socket's timeout allows; once it is in, the rest of the frame
    must arrive within deadline_s (None: no deadline), whatever the pace of single reads.
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
    rest = _recv_exact(sock, header_len + payload_len + MAC_SIZE, deadline)
    body, mac = prefix + rest[:-MAC_SIZE], rest[-MAC_SIZE:]
    if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).digest()):
        raise ProtocolError("bad MAC: wrong key or tampered frame")
    try:
        header = json.loads(rest[:header_len].decode(), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:  # JSONDecodeError is a ValueError
        raise ProtocolError(f"malformed JSON header ({type(err).__name__})") from None
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise ProtocolError("header is not a JSON object with a 'type'")
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


def check_tensors(tensors, template):
    """The received tensors must be exactly the model's: same names, shapes, dtypes, all finite."""
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


def connect(address, timeout, tls_context=None):
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sock.settimeout(timeout)
    return tls_context.wrap_socket(sock, server_hostname=host) if tls_context else sock
