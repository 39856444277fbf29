"""Pass 5 of a remotely compiled module, as a stapusr member, through a real pystapd.

The module comes back signed by the server's signing key; the client hands it
to pystapd like any other, and pystapd's ladder decides by the signer store:
with the server's signing certificate trusted the module runs, without it
(or with only the server's TLS certificate there) it is refused.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest
from tests.loader.conftest import CALLERS, Daemon, make_base, start_daemon, stop_daemon

from pystap.signing import certificates, trust_admin

from .conftest import HELLO, Client, Server, needs_root, new_client

pytestmark = needs_root


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    base = make_base()
    d = start_daemon(base)
    try:
        yield d
    finally:
        stop_daemon(d)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def everyone(server: Server, daemon: Daemon) -> Iterator[Client]:
    """All users trust the server as an SSL peer (the client runs as a stapusr member)."""
    c = new_client(daemon.base / "client")
    c.trust(server, all_users=True)
    yield c


def stap_as(caller: str, daemon: Daemon, client: Client, *args: str) -> subprocess.CompletedProcess[str]:
    uid, gid, groups = CALLERS[caller]
    env = {**daemon.user_env(), "PYSTAP_SYSCONFDIR": str(client.etc)}
    cmd = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--groups=" + ",".join(map(str, groups)),
           "--inh-caps=-all", sys.executable, "-m", "pystap.cli.stap", *args]
    return subprocess.run(cmd, env=env, cwd=daemon.home, capture_output=True, text=True, timeout=60, check=False)


def test_stapusr_runs_a_module_signed_by_the_trusted_server(server: Server, daemon: Daemon,
                                                            everyone: Client) -> None:
    trust_admin.add_certificate(daemon.signers, server.signing_cert, owner_uid=0, signer=True)
    r = stap_as("stapusr", daemon, everyone, f"--use-server={server.address}", "-e", HELLO)
    assert (r.returncode, r.stdout) == (0, "hi\n"), r.stderr
    requests = [line for line in server.audit() if ": request " in line]
    assert "privilege=stapusr" in requests[-1]  # selected for this user and forwarded
    assert "verdict=ok" in daemon.log.read_text()
    assert list(daemon.home.glob("*.stapmod")) == []  # pass 5 kept it in a private scratch directory


def test_without_the_signer_the_module_is_refused(server: Server, daemon: Daemon, everyone: Client) -> None:
    # Only the server's TLS certificate in the signer store: it is not a signer, nothing is trusted.
    (daemon.signers / "tls.pem").write_bytes(certificates.pem(server.tls_cert))
    r = stap_as("stapusr", daemon, everyone, f"--use-server={server.address}", "-e", HELLO)
    assert r.returncode == 1 and r.stdout == ""
    assert "which is not a trusted signer." in r.stderr
    assert "Unable to verify the signature for the module" in r.stderr
    assert "Pass 5: run failed.  [man error::pass5]" in r.stderr


def test_a_stapusr_member_cannot_get_a_stapsys_module_run(server: Server, daemon: Daemon,
                                                          everyone: Client) -> None:
    trust_admin.add_certificate(daemon.signers, server.signing_cert, owner_uid=0, signer=True)
    r = stap_as("stapusr", daemon, everyone, f"--use-server={server.address}", "--privilege=stapsys",
                "-e", HELLO)
    assert r.returncode == 1 and r.stdout == ""
    assert "insufficient" in r.stderr and "stapsys required" in r.stderr
