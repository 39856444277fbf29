"""The pystapd wire protocol: length-prefixed frames on an AF_UNIX stream socket.

A frame is a 5-byte header (type: u8, payload length: u32 big-endian) and
the payload.  Control frames carry one JSON object; ``BLOB`` frames carry
raw bytes (a module or signature sent by value); ``EVENTS`` frames carry
batched probe records (:mod:`pystap.eventwire`: per-probe schemas sent once,
then packed rows; JSON objects for the rest).  File descriptors travel with ``SCM_RIGHTS`` on the
header of the frame they belong to.

Every limit is checked *before* anything is allocated or parsed: a frame's
declared length is compared with the limit of its type, unknown types are
refused, at most :data:`MAX_FDS` descriptors are accepted (more, or a
truncated control message, closes them all and fails), and JSON must be a
UTF-8 object.  Violations raise :class:`ProtocolError`; the daemon answers
with an ``ERROR`` frame and ends the session.

Conversation (client → daemon, daemon → client)::

    → REQUEST {"op": "load", ...} [+ fds]   → BLOB* (values sent by value); "targets": [pid…]
                                              names the -c/-x processes the probes must reach
    ← DECISION {"allowed": ..., ...}        ← BLOB (module bytes, bare-name loads only)
    → CONTROL {"op": "started"}             ← EVENTS* (kernel probe records, later)
    → CONTROL {"op": "sync"}                ← EVENTS* then INFO {"op": "synced"}: every event
                                              recorded before the request has been sent
    → CONTROL {"op": "exit", "status": N}   ← EVENTS* then INFO {"op": "summary", "lost": N}
                                              then either side closes

    → REQUEST {"op": "whoami"}              ← INFO {"credentials": ..., ...}
"""

from __future__ import annotations

import array
import enum
import json
import os
import socket
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pystap import eventwire

# 2: EVENTS payloads are pystap.eventwire blocks (schemas, string tables, packed rows, JSON records).
PROTOCOL_VERSION = 2
HEADER = struct.Struct(">BI")
MAX_FDS = 2
MAX_CONTROL_BYTES = 64 * 1024
MAX_EVENT_BATCH_BYTES = 4 * 1024 * 1024


class FrameType(enum.IntEnum):
    REQUEST = 1
    BLOB = 2
    DECISION = 3
    EVENTS = 4
    CONTROL = 5
    ERROR = 6
    INFO = 7


_JSON_TYPES = frozenset({FrameType.REQUEST, FrameType.DECISION, FrameType.CONTROL, FrameType.ERROR,
                         FrameType.INFO})


class ProtocolError(Exception):
    """The peer broke the protocol (malformed, oversized or unexpected frame)."""


class PeerClosed(ProtocolError):
    """The peer closed the connection before a complete frame arrived."""


@dataclass
class Frame:
    type: FrameType
    payload: bytes
    fds: list[int] = field(default_factory=list)

    def json(self) -> dict[str, Any]:
        return decode_json(self.payload)


def decode_json(payload: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ProtocolError("malformed control frame (not UTF-8 JSON)") from None
    if not isinstance(obj, dict):
        raise ProtocolError("malformed control frame (not a JSON object)")
    return obj


def encode_json(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


def send_frame(sock: socket.socket, ftype: FrameType, payload: bytes = b"", fds: Sequence[int] = ()) -> None:
    """Send one frame; ``fds`` ride on the first bytes (the header)."""
    data = HEADER.pack(int(ftype), len(payload)) + payload
    if fds:
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
        sent = sock.sendmsg([data], ancillary)
        data = data[sent:]
    if data:
        sock.sendall(data)


def send_json(sock: socket.socket, ftype: FrameType, obj: Mapping[str, Any], fds: Sequence[int] = ()) -> None:
    send_frame(sock, ftype, encode_json(obj), fds)


def _close_all(fds: Iterable[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _take_fds(ancdata: list[tuple[int, int, bytes]], flags: int, into: list[int]) -> None:
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
            into.extend(fds)
    if flags & socket.MSG_CTRUNC or len(into) > MAX_FDS:
        _close_all(into)
        into.clear()
        raise ProtocolError(f"too many file descriptors (at most {MAX_FDS} per frame)")


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:], size - got)
        if n == 0:
            raise PeerClosed("connection closed in the middle of a frame")
        got += n
    return bytes(buf)


def recv_frame(sock: socket.socket, limits: Mapping[FrameType, int]) -> Frame:
    """Read one frame whose type is a key of ``limits`` and whose size is within it."""
    header = b""
    fds: list[int] = []
    space = socket.CMSG_SPACE(MAX_FDS * 4)
    try:
        while len(header) < HEADER.size:
            data, ancdata, flags, _addr = sock.recvmsg(
                HEADER.size - len(header), space, socket.MSG_CMSG_CLOEXEC
            )
            _take_fds(ancdata, flags, fds)
            if not data:
                if header:
                    raise PeerClosed("connection closed in the middle of a frame header")
                raise PeerClosed("connection closed")
            header += data
        code, length = HEADER.unpack(header)
        try:
            ftype = FrameType(code)
        except ValueError:
            raise ProtocolError(f"unknown frame type {code}") from None
        if ftype not in limits:
            raise ProtocolError(f"unexpected {ftype.name} frame")
        if length > limits[ftype]:
            raise ProtocolError(f"{ftype.name} frame of {length} bytes exceeds the limit of {limits[ftype]}")
        payload = _recv_exact(sock, length) if length else b""
        if ftype in _JSON_TYPES:
            decode_json(payload)
    except BaseException:
        _close_all(fds)
        raise
    return Frame(ftype, payload, fds)


def encode_events(records: Iterable[tuple[int, int, bytes]]) -> bytes:
    """An EVENTS payload of self-describing records ``(probe_id, timestamp_ns, JSON object)``
    (pystapd packs most events per schema instead: :class:`pystap.eventwire.Encoder`)."""
    encoder = eventwire.Encoder(limit=MAX_EVENT_BATCH_BYTES)
    for probe_id, timestamp, data in records:
        encoder.json(probe_id, timestamp, data)
    return b"".join(encoder.payloads())
