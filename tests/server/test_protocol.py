"""The wire format and the server specifications, as pure functions (no server needed)."""

from __future__ import annotations

import re
import zlib

import pytest

from pystap.server import protocol
from pystap.server.protocol import ProtocolError, Request
from pystap.server.spec import ServerSpec, SpecError, complete, parse_spec

FP = "ab" * 32


def sample(**changes) -> Request:
    fields = dict(release="6.1.0-13-amd64", arch="x86_64", options=(("-p", "4"), ("-I", "tapset/0")),
                  script="script/a.stp", args=("x",), files={"script/a.stp": b"probe begin {}\n",
                                                             "tapset/0/t.stp": b"function f() {}\n"},
                  locale={"LANG": "C.UTF-8"})
    fields.update(changes)
    return Request(**fields)


def test_a_request_survives_the_round_trip_in_one_canonical_form() -> None:
    request = sample()
    body = protocol.encode_request(request)
    data = protocol.inflate(body, protocol.DEFAULT_MAX_REQUEST)
    assert data == protocol.canonical(request.document())
    assert b" " not in data and data.isascii()
    assert protocol.decode_request(data) == request


def test_frame_lengths() -> None:
    assert protocol.frame(b"abc") == b"\x00\x00\x00\x03abc"
    assert protocol.frame_length(b"\x00\x00\x00\x00", 10) == 0
    with pytest.raises(ProtocolError, match="^Invalid request size: negative value$"):
        protocol.frame_length(b"\xff\xff\xff\xff", 10)
    with pytest.raises(ProtocolError, match=r"^Error size of \(compressed\) request file is too large$"):
        protocol.frame_length(b"\x00\x00\x00\x0b", 10)


def test_inflate_is_bounded_and_exact() -> None:
    assert protocol.inflate(zlib.compress(b"x" * 100), 100) == b"x" * 100
    with pytest.raises(ProtocolError, match="Uncompressed request size of 101 bytes is not within the "
                                            "expected range of 1 to 100 bytes."):
        protocol.inflate(zlib.compress(b"x" * 101), 100)
    with pytest.raises(ProtocolError, match="of 0 bytes"):
        protocol.inflate(zlib.compress(b""), 100)
    with pytest.raises(ProtocolError, match="data follows"):
        protocol.inflate(zlib.compress(b"x") + b"junk", 100)


@pytest.mark.parametrize("name", ["script/a.stp", "script/-", "tapset/0/x.stpm", "tapset/999/a+b-c_d.stp"])
def test_allowed_file_names(name: str) -> None:
    assert protocol.FILE_NAME.fullmatch(name)


@pytest.mark.parametrize("name", ["script/..", "script/.", "../script/a", "script//a", "script/a/", "/script/a",
                                  "tapset/a/x", "tapset/0/sub/x", "script/a\nb", "script/" + "a" * 129])
def test_refused_file_names(name: str) -> None:
    assert not protocol.FILE_NAME.fullmatch(name)


def test_option_argv_keeps_values_apart_from_options() -> None:
    assert protocol.option_argv([("-e", "-p5"), ("--privilege", "stapusr"), ("-g", None), ("-e", "")]) == [
        "-e", "-p5", "--privilege=stapusr", "-g", "-e", ""]


def test_response_and_hello_round_trip() -> None:
    response = protocol.Response(0, b"out", b"err\xff", "m.stapmod", b"{}", b"sig", b"cert")
    assert protocol.decode_response(protocol.canonical(response.document())) == response
    bare = protocol.Response(1, stderr=b"Server: no\n", signer_certificate=b"c")
    assert protocol.decode_response(protocol.canonical(bare.document())) == bare
    bad = response.document()
    bad["module"]["name"] = "../m.stapmod"
    with pytest.raises(ProtocolError, match="module entry is malformed"):
        protocol.decode_response(protocol.canonical(bad))
    hello = protocol.Hello("pystap-server 0.1.0", (("6.1.0", "x86_64"),), b"cert")
    assert protocol.decode_hello(protocol.canonical(hello.document())) == hello


# -- server specifications -------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "host", "port"), [
    ("build.example.org:4711", "build.example.org", 4711),
    ("10.0.0.1:22", "10.0.0.1", 22),
    ("[::1]:4711", "::1", 4711),
    ("[fe80::1]", "fe80::1", None),
    ("fe80::1:2", "fe80::1:2", None),
    ("localhost", "localhost", None),
])
def test_server_specification_forms(text: str, host: str, port: int | None) -> None:
    spec = parse_spec(text)
    assert (spec.host, spec.port, spec.tls_pin, spec.signer_pin) == (host, port, None, None)


def test_pins() -> None:
    spaced = ":".join(FP[i:i + 2].upper() for i in range(0, 64, 2))
    spec = parse_spec(f"[::1]:1#sha256:{spaced}#signer-sha256:{'cd' * 32}")
    assert (spec.tls_pin, spec.signer_pin, spec.address) == (FP, "cd" * 32, "[::1]:1")


@pytest.mark.parametrize("text", ["", ":1", "h:", "h:0", "h:65536", "h:+1", "[::1]x", "[nothost]:1", "1.2.3:1",
                                  "256.1.1.1:1", "h_1:1", "h:1#", "h:1#sha256:12", f"h:1#md5:{FP}",
                                  f"h:1#sha256:{FP}#sha256:{FP}", "00:93:49:be:2a", "00:93:49:be:2a:4711"])
def test_invalid_specifications(text: str) -> None:
    with pytest.raises(SpecError, match=f"^{re.escape(f'Invalid server specification: {text}')}$"):
        parse_spec(text)


def test_completion_from_known_servers() -> None:
    known = [parse_spec("build:4711"), parse_spec(f"build:4712#sha256:{FP}"), parse_spec("other:1")]
    assert [s.port for s in complete(parse_spec("build"), known)] == [4711, 4712]
    assert complete(parse_spec("build:9"), known) == [ServerSpec("build:9", "build", 9)]
    pinned = complete(parse_spec(f"build#sha256:{'cd' * 32}"), known)
    assert {s.tls_pin for s in pinned} == {"cd" * 32}
