"""Hostile clients on raw TLS sockets: the server refuses, stays up, serves others, leaves nothing behind.

The shared server runs with --max-threads 1, --max-connections 3,
--request-timeout 1.5, --max-files 8, --max-compressed-request 20000 and
--max-request-size 200000 (see conftest.SHARED_ARGS).
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import threading
import time
import zlib

import pytest

from pystap.server import protocol

from .conftest import (
    HELLO,
    Server,
    needs_root,
    raw_tls,
    read_answer,
    request,
    send_raw,
    send_request,
    wait_for,
)

pytestmark = needs_root


def refusal(server: Server, payload: bytes) -> str:
    response = send_raw(server.port, payload)
    assert response is not None, "the server closed the connection without an answer"
    assert response.rc == 1 and response.module is None and response.stdout == b""
    assert server.alive()
    return response.stderr.decode()


def document(**changes) -> dict:
    doc = request([("-p", "2")]).document()
    doc.update(changes)
    return doc


def test_length_prefix_is_checked_with_systemtaps_messages(server: Server) -> None:
    assert refusal(server, protocol.LENGTH.pack(-5)) == "Server: Invalid request size: negative value\n"
    assert refusal(server, protocol.LENGTH.pack(2**31 - 1)) == (
        "Server: Error size of (compressed) request file is too large\n")


def test_a_truncated_body_ends_only_that_connection(server: Server) -> None:
    with raw_tls(server.port) as sock:
        sock.sendall(protocol.LENGTH.pack(100) + b"x" * 10)
    assert wait_for(lambda: any("ended after 10 of 100 bytes" in line for line in server.audit()))
    assert server.alive()


def test_bodies_that_are_not_requests(server: Server) -> None:
    assert refusal(server, protocol.frame(b"not zlib at all")) == (
        "Server: Invalid request: the body is not a zlib stream\n")
    assert refusal(server, protocol.frame(zlib.compress(b'{"a": 1}')[:-3])) == (
        "Server: Invalid request: the body is a truncated zlib stream\n")
    assert refusal(server, protocol.frame(zlib.compress(b"{not json"))) == (
        "Server: Invalid request: not ASCII JSON\n")
    assert refusal(server, protocol.frame(zlib.compress(b"[" * 150_000))) == (
        "Server: Invalid request: not ASCII JSON\n")
    spaced = json.dumps(document(), sort_keys=True).encode()
    assert refusal(server, protocol.frame(zlib.compress(spaced))) == (
        "Server: Invalid request: not canonical JSON (sorted keys, no spaces, ASCII)\n")
    duplicate = b'{"args":[],"args":[]}'
    assert refusal(server, protocol.frame(zlib.compress(duplicate))) == (
        "Server: Invalid request: duplicate key 'args'\n")
    assert refusal(server, protocol.frame(protocol.pack(document(version=2)))) == (
        "Server: Invalid request: unsupported protocol version 2 (this side speaks version 1)\n")
    assert refusal(server, protocol.frame(protocol.pack(document(extra=1)))) == (
        "Server: Invalid request: unknown key 'extra'\n")


def test_decompression_is_bounded(server: Server) -> None:
    bomb = zlib.compress(b"0" * 10_000_000, 9)
    assert len(bomb) < 20_000
    assert refusal(server, protocol.frame(bomb)) == (
        "Server: Uncompressed request size of 10000000 bytes is not within the expected range of 1 to "
        "200000 bytes.\n")


@pytest.mark.parametrize("name", [
    "../x", "/etc/passwd", "script/../x", "script/a\x00b", "tapset/0/../../x", "script/.hidden",
    "script/", "script", "script/a/b", "tapset/1000/x.stp", "tapset/01/x.stp", "other/x", "script/a b",
    "script/\u00e9",
])
def test_file_names_outside_the_allowlist_are_refused(server: Server, name: str) -> None:
    script = name if name.startswith("script/") else None
    options = [["-p", "2"], ["-I", "tapset/0"]] + ([] if script else [["-e", HELLO]])
    doc = document(options=options, script=script, files={name: base64.b64encode(b"probe begin {}").decode()})
    message = refusal(server, protocol.frame(protocol.pack(doc)))
    assert message == f"Server: Invalid request: file name {name!a} is not allowed\n"
    assert server.leftovers() == []


def test_request_structure_is_checked(server: Server) -> None:
    b64 = base64.b64encode(b"probe begin { exit() }").decode()
    cases = {
        "the script must be one of its files": document(script="script/a.stp", files={}),
        "a second script file": document(script="script/a.stp",
                                         files={"script/a.stp": b64, "script/b.stp": b64}),
        "-I outside the request": document(options=[["-p", "2"], ["-I", "/etc"], ["-e", HELLO]]),
        "a tapset file without its -I": document(files={"tapset/0/x.stp": b64}),
        "too many files": document(options=[["-p", "2"], ["-I", "tapset/0"], ["-e", HELLO]],
                                   files={f"tapset/0/f{i}.stp": b64 for i in range(9)}),
        "a NUL in an argument": document(args=["a\x00b"]),
        "a bad option name": document(options=[["-p", "2"], ["-e=x", None]]),
        "bad sysinfo": document(sysinfo={"release": "../..", "arch": "x86_64"}),
    }
    expected = {
        "the script must be one of its files": "script must name the one script/ file of the request",
        "a second script file": "script must name the one script/ file of the request",
        "-I outside the request": "-I '/etc' does not name a tapset directory of the request",
        "a tapset file without its -I": "file 'tapset/0/x.stp' is not in a -I directory",
        "too many files": "too many files (9, limit 8)",
        "a NUL in an argument": "a script argument must be a string without NUL",
        "a bad option name": "option name '-e=x' is not allowed",
        "bad sysinfo": "sysinfo must hold a kernel release and an architecture",
    }
    for case, doc in cases.items():
        message = refusal(server, protocol.frame(protocol.pack(doc)))
        assert message.startswith("Server: Invalid request: " + expected[case]), (case, message)
    assert server.leftovers() == []


def test_a_client_tapset_directory_is_written_and_used(server: Server) -> None:
    tapset = base64.b64encode(b"function answer() { return 42 }\n").decode()
    doc = document(options=[["-p", "2"], ["-I", "tapset/0"], ["-e", "probe begin { print(answer()) }"]],
                   files={"tapset/0/answer.stp": tapset})
    response = send_raw(server.port, protocol.frame(protocol.pack(doc)))
    assert response.rc == 0, response.stderr
    assert b"answer" in response.stdout
    assert server.leftovers() == []


def test_old_tls_and_plain_text_are_refused(server: Server) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        with pytest.raises(ssl.SSLError):
            context.wrap_socket(raw)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        raw.sendall(b"GET / HTTP/1.0\r\n\r\n")
        try:
            raw.recv(100)  # a TLS alert or a reset: anything but an answer
        except ConnectionError:
            pass
    assert wait_for(lambda: sum("connection failed" in line for line in server.audit()) >= 2)
    assert server.alive()


def test_slow_clients_time_out_and_others_are_served(server: Server) -> None:
    slow = raw_tls(server.port)
    slow.sendall(b"\x00\x00")  # half a length, then nothing (slowloris)
    idle = socket.create_connection(("127.0.0.1", server.port), timeout=10)  # not even a handshake
    started = time.monotonic()
    response = send_request(server.port, request([("-p", "4")]))
    assert response.rc == 0 and response.module is not None, response.stderr
    slow.settimeout(10)
    try:
        assert slow.recv(10) == b""
    except (ConnectionError, ssl.SSLError):
        pass
    assert idle.recv(10) == b""
    assert time.monotonic() - started < 8
    slow.close()
    idle.close()
    assert wait_for(lambda: sum("no complete request within 1.5 seconds" in line
                                for line in server.audit()) >= 2)
    assert server.alive()


def test_more_clients_than_threads_and_connections(server: Server) -> None:
    # Three idle connections fill --max-connections; the next clients wait in the backlog until
    # the idle ones are cut, and only one translation runs at a time (--max-threads 1).
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(3)]
    results: list[protocol.Response | None] = [None] * 4
    before = len(server.audit())

    def one(i: int) -> None:
        results[i] = send_request(server.port, request([("-p", "4")], script=f'probe begin {{ println({i}) }}'))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for sock in idle:
        sock.close()
    assert all(r is not None and r.rc == 0 and r.module is not None for r in results), results
    def lines() -> list[str]:
        return [line for line in server.audit()[before:] if ": request " in line]

    assert wait_for(lambda: len(lines()) == 4)
    assert all(" concurrent=1 " in line for line in lines())
    assert server.leftovers() == []


def test_hello_describes_the_server(server: Server) -> None:
    with raw_tls(server.port) as sock:
        sock.sendall(protocol.LENGTH.pack(0))
        hello = protocol.decode_hello(read_answer(sock))
    assert hello.server.startswith("pystap-server")
    assert hello.signer_certificate == server.signing_cert.public_bytes(
        __import__("cryptography.hazmat.primitives.serialization", fromlist=["Encoding"]).Encoding.DER)
    assert server.alive() and server.leftovers() == []
