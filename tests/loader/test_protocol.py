"""Framing: limits are checked before allocation, fds travel with their frame."""

import json
import os
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pystap import eventwire
from pystap.loader import protocol
from pystap.loader.protocol import FrameType, ProtocolError


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_json_frame_with_fds(pair, tmp_path):
    a, b = pair
    f = tmp_path / "f"
    f.write_text("hello")
    fd = os.open(f, os.O_RDONLY)
    protocol.send_json(a, FrameType.REQUEST, {"op": "x"}, [fd])
    os.close(fd)
    frame = protocol.recv_frame(b, {FrameType.REQUEST: 100})
    assert frame.json() == {"op": "x"}
    assert len(frame.fds) == 1
    assert os.pread(frame.fds[0], 10, 0) == b"hello"
    assert os.get_inheritable(frame.fds[0]) is False
    os.close(frame.fds[0])


def test_limit_is_checked_on_the_declared_length(pair):
    a, b = pair
    a.sendall(protocol.HEADER.pack(FrameType.BLOB, 1000))  # no payload follows: must not wait for it
    with pytest.raises(ProtocolError, match="exceeds the limit of 10"):
        protocol.recv_frame(b, {FrameType.BLOB: 10})


def test_unexpected_and_unknown_types(pair):
    a, b = pair
    protocol.send_frame(a, FrameType.BLOB, b"x")
    with pytest.raises(ProtocolError, match="unexpected BLOB"):
        protocol.recv_frame(b, {FrameType.REQUEST: 10})
    c, d = socket.socketpair()
    with c, d:
        c.sendall(b"\x00\x00\x00\x00\x00")
        with pytest.raises(ProtocolError, match="unknown frame type 0"):
            protocol.recv_frame(d, {FrameType.REQUEST: 10})


def test_extra_fds_are_closed_and_refused(pair, tmp_path):
    a, b = pair
    fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(protocol.MAX_FDS + 1)]
    protocol.send_frame(a, FrameType.REQUEST, b"{}", fds)
    for fd in fds:
        os.close(fd)
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(ProtocolError, match="too many file descriptors"):
        protocol.recv_frame(b, {FrameType.REQUEST: 10})
    assert len(os.listdir("/proc/self/fd")) == before


def test_peer_closed(pair):
    a, b = pair
    a.sendall(b"\x01\x00")
    a.close()
    with pytest.raises(protocol.PeerClosed):
        protocol.recv_frame(b, {FrameType.REQUEST: 10})


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_never_escape_as_anything_but_protocol_errors(data):
    a, b = socket.socketpair()
    try:
        a.sendall(data)
        a.close()
        try:
            frame = protocol.recv_frame(b, {FrameType.REQUEST: 32, FrameType.BLOB: 32})
        except ProtocolError:
            return
        assert frame.type in (FrameType.REQUEST, FrameType.BLOB)
    finally:
        b.close()


_JSON_OBJECTS = st.dictionaries(st.text(max_size=8), st.integers(-2**63, 2**63 - 1) | st.text(max_size=12),
                                max_size=4)


@given(st.lists(st.tuples(st.integers(0, 2**31 - 1), st.integers(0, 2**64 - 1), _JSON_OBJECTS), max_size=20))
def test_json_event_records_round_trip(records):
    payload = protocol.encode_events([(p, t, json.dumps(f).encode()) for p, t, f in records])
    assert eventwire.decode_events([payload]) == [(p, {"timestamp_ns": t, **f}) for p, t, f in records]


def test_truncated_event_records():
    payload = protocol.encode_events([(1, 2, b'{"a":1}')])
    for cut in (payload[:-1], payload[:5], payload + b"\0"):
        with pytest.raises(eventwire.WireError):
            eventwire.Decoder().decode(cut)
