"""A real ``pystap-server`` as an unprivileged uid, real certificates, real TLS.

The server refuses to run as root, so it is started with ``setpriv`` as
SERVER_UID, its state (TLS identity, signing key, audit log, TMPDIR) in a
temporary directory that uid owns.  Its process group is killed and the
directory removed whatever happens.  Clients run as root (or as other uids
with ``setpriv``) with ``XDG_CONFIG_HOME`` and ``PYSTAP_SYSCONFDIR`` pointing
into the same temporary directory, so no real trust store is touched.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pystap.server import protocol, tlsclient
from pystap.signing import certificates, trust_admin

SERVER_UID = SERVER_GID = 40200
HELLO = 'probe begin { println("hi"); exit() }'
READY = re.compile(r"pystap-server: listening on (\S+) port (\d+)")
# What the shared server is started with: small limits so the hostile tests are quick.
SHARED_ARGS = ("--max-threads", "1", "--max-connections", "3", "--request-timeout", "1.5",
               "--max-files", "8", "--max-compressed-request", "20000", "--max-request-size", "200000")

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="setpriv needs root")


@dataclass
class Server:
    base: Path
    home: Path
    tmp: Path
    out: Path
    proc: subprocess.Popen
    port: int = 0
    ssl_dir: Path = field(default=Path())
    signing_dir: Path = field(default=Path())

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.home / "audit.log"

    @property
    def tls_cert(self):
        return certificates.load_certificate((self.ssl_dir / "tls-cert.pem").read_bytes())

    @property
    def signing_cert(self):
        return certificates.load_certificate((self.signing_dir / "signing-cert.pem").read_bytes())

    def audit(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def leftovers(self) -> list[str]:
        return sorted(os.listdir(self.tmp))

    def alive(self) -> bool:
        return self.proc.poll() is None


def make_base(prefix: str = "pystap-server-test-") -> Path:
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(base, 0o755)
    return base


def start_server(base: Path, *args: str, ssl_dir: Path | None = None, timeout: float = 30.0) -> Server:
    """Start ``pystap-server`` as SERVER_UID on 127.0.0.1, port 0; returns once it listens."""
    home, tmp = base / "server-home", base / "server-tmp"
    for directory in (home, tmp):
        directory.mkdir(mode=0o700)
        os.chown(directory, SERVER_UID, SERVER_GID)
    out = base / "server.out"
    env = {
        "PATH": "/usr/bin:/bin", "HOME": str(home), "TMPDIR": str(tmp), "LANG": "C.UTF-8",
        # never passed on to the translator: its environment is an allowlist
        "PYSTAP_TAPSET": "/nonexistent/tapsets", "PYSTAP_TEST_JUNK": "1",
    }
    ssl_dir = ssl_dir or home / "ssl"
    command = ["setpriv", f"--reuid={SERVER_UID}", f"--regid={SERVER_GID}", "--clear-groups",
               sys.executable, "-m", "pystap.cli.server", "--listen", "127.0.0.1", "--port", "0",
               "--ssl", str(ssl_dir), "--sign-key", str(home / "signing"), "--log", str(home / "audit.log"),
               *args]
    with open(out, "wb") as sink:
        proc = subprocess.Popen(command, env=env, cwd=home, stdout=sink, stderr=subprocess.STDOUT,
                                start_new_session=True)
    server = Server(base, home, tmp, out, proc, ssl_dir=ssl_dir, signing_dir=home / "signing")
    deadline = time.monotonic() + timeout
    while True:
        match = READY.search(out.read_text(errors="replace"))
        if match:
            server.port = int(match.group(2))
            return server
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_server(server)
            raise RuntimeError(f"pystap-server did not start: {out.read_text(errors='replace')[-2000:]}")
        time.sleep(0.02)


def stop_server(server: Server) -> None:
    """SIGTERM to the whole process group, SIGKILL if it lingers."""
    if server.proc.poll() is None:
        try:
            os.killpg(server.proc.pid, signal.SIGTERM)
            server.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait()
        except ProcessLookupError:
            pass


@dataclass
class Client:
    """A client's configuration: per-user and all-users stores under ``base``."""

    base: Path

    @property
    def config(self) -> Path:
        return self.base / "client-config"

    @property
    def etc(self) -> Path:
        return self.base / "etc"

    @property
    def cwd(self) -> Path:
        return self.base / "client-cwd"

    @property
    def user_store(self) -> Path:
        return self.config / "pystap" / "ssl" / "client"

    @property
    def signer_store(self) -> Path:
        return self.etc / "staprun"

    def env(self, **extra: str) -> dict[str, str]:
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.base), "XDG_CONFIG_HOME": str(self.config),
               "XDG_CACHE_HOME": str(self.base / "client-cache"), "PYSTAP_SYSCONFDIR": str(self.etc),
               "LANG": "C.UTF-8"}
        env.update(extra)
        return env

    def stap(self, *args: str, input: str | None = None, env: dict[str, str] | None = None,
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pystap.cli.stap", *args], env=env or self.env(),
                              cwd=self.cwd, input=input if input is not None else "", capture_output=True,
                              text=True, timeout=timeout, check=False)

    def trust(self, server: Server, *, all_users: bool = False) -> None:
        store = self.etc / "ssl" / "client" if all_users else self.user_store
        trust_admin.add_certificate(store, server.tls_cert, owner_uid=0, signer=False)

    def untrust_all(self) -> None:
        for store in (self.user_store, self.etc / "ssl" / "client", self.signer_store):
            shutil.rmtree(store, ignore_errors=True)


def new_client(base: Path) -> Client:
    client = Client(base)
    for directory in (client.config, client.etc, client.cwd):
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    return client


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """One shared server per test module (starting one costs a key generation)."""
    if os.geteuid() != 0:
        pytest.skip("setpriv needs root")
    base = make_base()
    srv = None
    try:
        srv = start_server(base, *SHARED_ARGS)
        yield srv
        assert srv.alive(), f"pystap-server died: {srv.out.read_text(errors='replace')[-2000:]}"
    finally:
        if srv is not None:
            stop_server(srv)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def client(server: Server) -> Iterator[Client]:
    """A fresh client configuration that trusts the shared server as an SSL peer."""
    base = make_base("pystap-client-test-")
    c = new_client(base)
    c.trust(server)
    try:
        yield c
    finally:
        shutil.rmtree(base, ignore_errors=True)


# -- raw protocol helpers ---------------------------------------------------------------------------


def raw_tls(port: int, timeout: float = 10.0) -> ssl.SSLSocket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return tlsclient.client_context().wrap_socket(sock)


def read_answer(sock: ssl.SSLSocket) -> bytes | None:
    """The server's framed, inflated answer; None when it closed without one."""
    try:
        header = _read(sock, 4)
        if header is None:
            return None
        size = protocol.LENGTH.unpack(header)[0]
        body = _read(sock, size)
    except (ConnectionError, ssl.SSLError):
        return None
    return protocol.inflate(body, protocol.MAX_RESPONSE, "response") if body is not None else None


def _read(sock: ssl.SSLSocket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def send_raw(port: int, payload: bytes) -> protocol.Response | None:
    """Send bytes as they are (after the handshake) and decode the answer, if any."""
    with raw_tls(port) as sock:
        sock.sendall(payload)
        answer = read_answer(sock)
    return protocol.decode_response(answer) if answer is not None else None


def send_request(port: int, request: protocol.Request | dict) -> protocol.Response | None:
    body = protocol.pack(request) if isinstance(request, dict) else protocol.encode_request(request)
    return send_raw(port, protocol.frame(body))


def request(options=(), *, script: str | None = HELLO, files: dict[str, bytes] | None = None,
            release: str | None = None, arch: str | None = None, args=(), locale=None) -> protocol.Request:
    """A request as a client would send it (``script`` text is sent as ``-e``)."""
    opts = list(options)
    if script is not None:
        opts.append(("-e", script))
    return protocol.Request(release=release or os.uname().release, arch=arch or os.uname().machine,
                            options=tuple(opts), script=None, args=tuple(args), files=files or {},
                            locale=locale or {})


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
