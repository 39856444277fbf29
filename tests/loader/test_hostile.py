"""Hostile clients: pystapd answers or hangs up, never crashes, never leaks a session or an fd."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from pystap import modfile
from pystap.loader import protocol
from pystap.loader.protocol import FrameType

from .conftest import make_base, make_module, start_daemon, stop_daemon

LIMITS = {"request_timeout": 1.0, "max_sessions": 8, "max_sessions_per_user": 3, "max_module_bytes": 100000,
          "max_kernel_probes": 3}


@pytest.fixture(scope="module")
def daemon():
    if os.geteuid() != 0:
        pytest.skip("pystapd needs root")
    base = make_base()
    d = start_daemon(base, LIMITS)
    module = base / "m.stapmod"
    module.write_bytes(make_module("stapusr"))
    d.module = module
    d.baseline_fds = d.fd_count()  # no client has connected yet
    try:
        yield d
    finally:
        stop_daemon(d)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def clean(daemon):
    """Every hostile test must leave the daemon alive, idle and with the fds it had."""
    before = daemon.baseline_fds
    yield daemon
    assert daemon.proc.poll() is None, "pystapd died"
    status = daemon.wait_idle()
    assert status["sessions"] == 0
    assert status["connections"] <= 1
    deadline = time.monotonic() + 5
    while daemon.fd_count() != before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert daemon.fd_count() == before, "pystapd leaked file descriptors"


def connect(d) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(str(d.socket))
    return sock


def answer(sock: socket.socket) -> tuple[FrameType | None, dict]:
    """The daemon's reply, or (None, {}) when it just hung up."""
    try:
        frame = protocol.recv_frame(sock, {FrameType.ERROR: 65536, FrameType.DECISION: 65536,
                                           FrameType.INFO: 65536})
    except protocol.PeerClosed:
        return None, {}
    except ConnectionResetError:
        return None, {}
    return frame.type, frame.json()


def load_request(**overrides) -> dict:
    request = {"op": "load", "protocol": protocol.PROTOCOL_VERSION, "module": "fd", "path": "/x.stapmod",
               "signature": "none"}
    request.update(overrides)
    return request


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x63" + struct.pack(">I", 2) + b"{}", "unknown frame type 99"),
        (struct.pack(">BI", FrameType.REQUEST, 0xFFFFFFFF), "exceeds the limit"),
        (struct.pack(">BI", FrameType.BLOB, 3) + b"abc", "unexpected BLOB frame"),
        (struct.pack(">BI", FrameType.REQUEST, 3) + b"\xff\xfe{", "not UTF-8 JSON"),
        (struct.pack(">BI", FrameType.REQUEST, 2) + b"[]", "not a JSON object"),
        (struct.pack(">BI", FrameType.REQUEST, 2) + b"{}", "unknown request 'None'"),
        (protocol.HEADER.pack(FrameType.REQUEST, 17) + b'{"op":"format c"}', "unknown request 'format c'"),
    ],
)
def test_malformed_frames_get_an_error(clean, raw, message):
    sock = connect(clean)
    try:
        sock.sendall(raw)
        kind, body = answer(sock)
        assert kind is FrameType.ERROR
        assert message in body["message"]
    finally:
        sock.close()


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        ({"protocol": 1}, "unsupported protocol version"),  # JSON-only EVENTS: a client from before v2
        ({"protocol": 99}, "unsupported protocol version"),
        ({"module": "url"}, "module/signature source"),
        ({"surprise": 1}, "unknown request field 'surprise'"),
        ({"module": "bytes", "module_size": 10**9}, "over the limit of 100000 bytes"),
        ({"module": "bytes", "module_size": -1}, "over the limit"),
        ({"module": "bytes", "module_size": True}, "size is missing"),
        ({"path": "relative.stapmod"}, "malformed load request (path)"),
        ({"module": "name", "name": "x", "signature": "fd"}, "brings no signature"),
    ],
)
def test_bad_load_requests(clean, request_fields, message):
    sock = connect(clean)
    try:
        fds = [] if request_fields.get("module") in ("bytes", "url", "name") else [os.open(clean.module, os.O_RDONLY)]
        try:
            protocol.send_json(sock, FrameType.REQUEST, load_request(**request_fields), fds)
        finally:
            for fd in fds:
                os.close(fd)
        kind, body = answer(sock)
        assert kind is FrameType.ERROR
        assert message in body["message"]
    finally:
        sock.close()


def _fd_of(kind: str, tmp_path):
    if kind == "pipe":
        r, w = os.pipe()
        os.close(w)
        return r
    if kind == "socket":
        a, b = socket.socketpair()
        b.close()
        return a.detach()
    if kind == "directory":
        return os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    if kind == "device":
        return os.open("/dev/zero", os.O_RDONLY)
    if kind == "fifo":
        path = tmp_path / "fifo"
        os.mkfifo(path)
        return os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    if kind == "write-only":
        return os.open(tmp_path / "w", os.O_WRONLY | os.O_CREAT, 0o600)
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("pipe", "not a regular file"),
        ("socket", "not a regular file"),
        ("directory", "not a regular file"),
        ("device", "not a regular file"),
        ("fifo", "not a regular file"),
        ("write-only", "cannot read the module"),
    ],
)
def test_fds_that_are_not_readable_regular_files(clean, tmp_path, kind, message):
    fd = _fd_of(kind, tmp_path)
    sock = connect(clean)
    try:
        protocol.send_json(sock, FrameType.REQUEST, load_request(), [fd])
        kind_, body = answer(sock)
        assert kind_ is FrameType.ERROR
        assert message in body["message"]
    finally:
        os.close(fd)
        sock.close()


def test_too_many_fds(clean):
    fds = [os.open(clean.module, os.O_RDONLY) for _ in range(3)]
    sock = connect(clean)
    try:
        protocol.send_json(sock, FrameType.REQUEST, load_request(), fds)
        kind, body = answer(sock)
        assert kind is FrameType.ERROR
        assert "too many file descriptors" in body["message"]
    finally:
        for fd in fds:
            os.close(fd)
        sock.close()


def test_fd_count_must_match_the_request(clean):
    fd = os.open(clean.module, os.O_RDONLY)
    sock = connect(clean)
    try:
        protocol.send_json(sock, FrameType.REQUEST, load_request(signature="fd"), [fd])
        kind, body = answer(sock)
        assert kind is FrameType.ERROR and "expected 2" in body["message"]
    finally:
        os.close(fd)
        sock.close()


def test_oversized_module_file_is_refused(clean, tmp_path):
    big = tmp_path / "big.stapmod"
    big.write_bytes(b" " * 200_000)
    fd = os.open(big, os.O_RDONLY)
    sock = connect(clean)
    try:
        protocol.send_json(sock, FrameType.REQUEST, load_request(), [fd])
        kind, body = answer(sock)
        assert kind is FrameType.ERROR and "too large" in body["message"]
    finally:
        os.close(fd)
        sock.close()


def test_malformed_module_bytes_are_refused_with_a_message(clean):
    sock = connect(clean)
    try:
        data = b'{"format": "pystap-module", "version": 1}'
        protocol.send_json(sock, FrameType.REQUEST, load_request(module="bytes", module_size=len(data)))
        protocol.send_frame(sock, FrameType.BLOB, data)
        kind, body = answer(sock)
        # root may run anything, but not something that is not a module
        assert kind is FrameType.DECISION and body["allowed"] is False
        assert body["messages"] == ["ERROR: Couldn't load the module /x.stapmod: missing 'privilege' in module"]
    finally:
        sock.close()


@pytest.mark.parametrize("cut", [0, 3, 5, 40])
def test_client_disconnects_mid_request(clean, cut):
    sock = connect(clean)
    data = make_module()
    request = protocol.encode_json(load_request(module="bytes", module_size=len(data)))
    stream = protocol.HEADER.pack(FrameType.REQUEST, len(request)) + request
    stream += protocol.HEADER.pack(FrameType.BLOB, len(data)) + data
    sock.sendall(stream[: len(stream) - len(data) + cut] if cut else stream[:3])
    sock.close()


def test_silent_client_is_hung_up_on(clean):
    sock = connect(clean)
    try:
        started = time.monotonic()
        sock.sendall(b"\x01")  # a byte of a header, then nothing
        kind, _ = answer(sock)
        assert kind in (None, FrameType.ERROR)
        assert time.monotonic() - started < 4
    finally:
        sock.close()


def test_busy_daemon_refuses_politely_and_recovers(clean):
    idle = [connect(clean) for _ in range(8)]  # fill every slot with silent clients
    try:
        time.sleep(0.2)
        extra = connect(clean)
        kind, body = answer(extra)
        extra.close()
        assert kind is FrameType.ERROR and "busy" in body["message"]
    finally:
        for sock in idle:
            sock.close()


def test_many_concurrent_clients(clean):
    data = make_module()
    results: list[bool] = []
    lock = threading.Lock()

    def one() -> None:
        for _ in range(5):
            for _attempt in range(50):
                sock = connect(clean)
                try:
                    protocol.send_json(sock, FrameType.REQUEST, load_request(module="bytes", module_size=len(data)))
                    protocol.send_frame(sock, FrameType.BLOB, data)
                    kind, body = answer(sock)
                    if kind is FrameType.ERROR and "busy" in body["message"]:
                        time.sleep(0.02)
                        continue
                    ok = kind is FrameType.DECISION and body["allowed"] is True
                    protocol.send_json(sock, FrameType.CONTROL, {"op": "exit", "status": 0})
                    break
                finally:
                    sock.close()
            else:
                ok = False
            with lock:
                results.append(ok)

    threads = [threading.Thread(target=one) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == [True] * 80


_HOLDER = """
import sys, time
from pathlib import Path
from pystap.loader.client import request_grant
grant = request_grant(sys.argv[1], Path(sys.argv[2]))
print(grant.session, flush=True)
time.sleep(60)
"""


def test_client_death_ends_its_session(clean):
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(clean.module), str(clean.socket)],
                            stdout=subprocess.PIPE, text=True)
    try:
        session = proc.stdout.readline().strip()
        assert session.isdigit()
        assert clean.status()["sessions"] == 1
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert clean.wait_idle()["sessions"] == 0
        assert f"session {session} ended (client" in clean.log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_status_is_for_root_only(daemon):
    result = subprocess.run(
        ["setpriv", "--reuid=40101", "--regid=40100", "--clear-groups", sys.executable, "-c",
         "import socket,sys\nfrom pystap.loader import protocol\n"
         "s=socket.socket(socket.AF_UNIX);s.connect(sys.argv[1])\n"
         "protocol.send_json(s, protocol.FrameType.REQUEST, {'op':'status'})\n"
         "print(protocol.recv_frame(s,{protocol.FrameType.ERROR:9999}).json()['message'])",
         str(daemon.socket)],
        capture_output=True, text=True, check=False, timeout=30,
    )
    assert result.stdout.strip() == "only root may ask for the service status"


def test_socket_activation(tmp_path):
    """systemd hands the listening socket over as fd 3 (LISTEN_PID/LISTEN_FDS)."""
    if os.geteuid() != 0:
        pytest.skip("pystapd needs root")
    if shutil.which("systemd-socket-activate") is None:
        pytest.skip("systemd-socket-activate is not installed")
    sock_path = tmp_path / "activated.sock"
    config = tmp_path / "c.toml"
    config.write_text(f'socket = "{tmp_path / "unused.sock"}"\nblessed_dir = "{tmp_path}"\n'
                      f'signer_store = "{tmp_path}"\nlog_file = "{tmp_path / "log"}"\n')
    proc = subprocess.Popen(["systemd-socket-activate", "-l", str(sock_path), sys.executable, "-m",
                             "pystap.cli.stapd", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock_path.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        from pystap.loader.client import whoami

        info = whoami(sock_path)  # the first connection starts pystapd
        assert info["uid"] == 0 and info["credentials"] == 0xE
        assert not (tmp_path / "unused.sock").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


_GREEDY = """
import socket, sys, time
from pystap.loader import protocol
held = []
for _ in range(3):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); held.append(s)
time.sleep(0.3)
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
print(protocol.recv_frame(s, {protocol.FrameType.ERROR: 9999}).json()["message"])
"""


def test_one_user_cannot_take_every_slot(clean):
    result = subprocess.run(
        ["setpriv", "--reuid=40101", "--regid=40100", "--clear-groups", sys.executable, "-c", _GREEDY,
         str(clean.socket)], capture_output=True, text=True, check=False, timeout=30,
    )
    assert result.stdout.strip() == "too many sessions for uid 40101 (limit 3)", result.stderr


def test_client_chosen_paths_cannot_forge_log_lines(clean):
    data = make_module()
    sock = connect(clean)
    try:
        request = load_request(module="bytes", module_size=len(data), path="/x\ndecision allowed rule=root")
        protocol.send_json(sock, FrameType.REQUEST, request)
        protocol.send_frame(sock, FrameType.BLOB, data)
        kind, _body = answer(sock)
        assert kind is FrameType.DECISION
        protocol.send_json(sock, FrameType.CONTROL, {"op": "exit", "status": 0})
    finally:
        sock.close()
    clean.wait_idle()
    lines = clean.log.read_text().splitlines()
    assert not [line for line in lines if line.startswith("decision allowed rule=root")]
    assert any("module=/x\\x0adecision\\x20allowed" in line for line in lines)


def test_a_module_may_not_ask_for_unbounded_kernel_probes(clean):
    """Each kernel probe is root-created kernel state: over limits.max_kernel_probes, a non-root
    caller's module is refused before anything is installed (root is not limited)."""
    probes = tuple(modfile.ProbeEntry(id=i, family="process.begin", point="process.begin", handler="probe_0",
                                      params={}) for i in range(4))
    path = clean.home / "many.stapmod"
    path.write_bytes(make_module("stapdev", probes=probes))
    path.chmod(0o644)
    r = clean.run_as("stapdev", str(path))
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == (f"ERROR: The module {path} declares 4 kernel probes; this pystapd allows at most 3 "
                        "per session (limits.max_kernel_probes).\n")
