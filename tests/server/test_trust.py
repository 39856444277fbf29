"""``--trust-servers`` (fingerprints shown and confirmed, never trust on first use), ``--list-servers``,
and certificates that are not valid now."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pystap.signing import SignerStore, algorithms, certificates, generate_tls_identity, trust_admin
from pystap.signing.ssl_peers import SslPeerStore

from .conftest import (
    HELLO,
    SERVER_GID,
    SERVER_UID,
    Client,
    Server,
    make_base,
    needs_root,
    new_client,
    start_server,
    stop_server,
)

pytestmark = needs_root


def fp(cert) -> str:
    return certificates.show_fingerprint(certificates.fingerprint(cert))


@pytest.fixture
def fresh(server: Server) -> Iterator[Client]:
    """A client that trusts nothing yet."""
    base = make_base("pystap-client-test-")
    try:
        yield new_client(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def stored(directory: Path, owner: int = 0) -> list[str]:
    return sorted(certificates.fingerprint(c) for _n, c in trust_admin.list_certificates(directory, owner)) \
        if directory.exists() else []


def test_interactive_trust_shows_the_fingerprint_and_needs_a_yes(server: Server, fresh: Client) -> None:
    spec = f"--use-server={server.address}"
    r = fresh.stap(spec, "--trust-servers", input="n\n")
    assert r.returncode == 0
    assert r.stderr == (
        "Add trust in the following servers as an SSL peer for the current user?\n"
        f'  host=127.0.0.1 address=127.0.0.1 port={server.port} certinfo="{fp(server.tls_cert)}" '
        f'signer_certinfo="{fp(server.signing_cert)}"\n'
        "[y/N] Server trust unchanged\n")
    assert stored(fresh.user_store) == []
    r = fresh.stap(spec, "--trust-servers=ssl", input="y\n")
    assert r.returncode == 0, r.stderr
    assert stored(fresh.user_store) == [certificates.fingerprint(server.tls_cert)]
    # ... and the server can be used now, for the very same command line with a script
    r = fresh.stap(spec, "-p1", "-e", HELLO)
    assert r.returncode == 0, r.stderr


def test_no_prompt_needs_the_expected_fingerprint(server: Server, fresh: Client) -> None:
    r = fresh.stap(f"--use-server={server.address}", "--trust-servers=no-prompt")
    assert r.returncode == 1
    assert r.stderr == ("--trust-servers=no-prompt needs the expected fingerprint of the server's TLS "
                        f"certificate: --use-server={server.address}#sha256:FINGERPRINT\nServer trust unchanged\n")
    wrong = "12" * 32
    r = fresh.stap(f"--use-server={server.address}#sha256:{wrong}", "--trust-servers=no-prompt")
    assert r.returncode == 1
    assert (f"The TLS certificate of {server.address} has the SHA-256 fingerprint {fp(server.tls_cert)}, "
            f"not the expected {certificates.show_fingerprint(wrong)}") in r.stderr
    assert r.stderr.endswith("Server trust unchanged\n")
    assert stored(fresh.user_store) == []
    r = fresh.stap(f"--use-server={server.address}#sha256:{fp(server.tls_cert)}", "--trust-servers=no-prompt")
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith("Adding trust in the following servers as an SSL peer for the current user\n")
    assert stored(fresh.user_store) == [certificates.fingerprint(server.tls_cert)]


def test_signer_trust_adds_the_signing_certificate_not_the_tls_one(server: Server, fresh: Client) -> None:
    pins = f"#sha256:{fp(server.tls_cert)}#signer-sha256:{fp(server.signing_cert)}"
    r = fresh.stap(f"--use-server={server.address}{pins}", "--trust-servers=ssl,signer,all-users,no-prompt")
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith("Adding trust in the following servers as an SSL peer for all users and as a "
                               "module signer for all users\n")
    signers = SignerStore.open(fresh.signer_store)
    assert [s.fingerprint for s in signers.all_signers()] == [certificates.fingerprint(server.signing_cert)]
    assert stored(fresh.etc / "ssl" / "client") == [certificates.fingerprint(server.tls_cert)]
    assert stored(fresh.user_store) == []

    # revoke, without asking the server (a pinned specification is enough)
    r = fresh.stap(f"--use-server=127.0.0.1:1{pins}", "--trust-servers=signer,revoke,no-prompt")
    assert r.returncode == 0, r.stderr
    store = SignerStore.open(fresh.signer_store)
    assert store.all_signers() == []
    assert store.revoked_keys == {algorithms.key_id(server.signing_cert.public_key())}


def test_a_wrong_signer_pin_is_refused(server: Server, fresh: Client) -> None:
    pins = f"#sha256:{fp(server.tls_cert)}#signer-sha256:{fp(server.tls_cert)}"
    r = fresh.stap(f"--use-server={server.address}{pins}", "--trust-servers=signer,no-prompt")
    assert r.returncode == 1
    assert f"The module-signing certificate of {server.address} has the SHA-256 fingerprint" in r.stderr
    assert not fresh.signer_store.exists()


def test_only_root_may_trust_signers_or_for_all_users(server: Server, fresh: Client) -> None:
    for word in ("signer", "all-users"):
        cmd = ["setpriv", "--reuid=40100", "--regid=40100", "--clear-groups", sys.executable, "-m",
               "pystap.cli.stap", f"--use-server={server.address}", f"--trust-servers=ssl,{word}"]
        r = subprocess.run(cmd, env=fresh.env(HOME="/nonexistent", XDG_CONFIG_HOME="/nonexistent"),
                           capture_output=True, text=True, timeout=30, check=False)
        assert (r.returncode, r.stderr) == (1, f"Only root can specify '{word}' on --trust-servers\n")


def test_trust_messages(fresh: Client) -> None:
    r = fresh.stap("--trust-servers")
    assert (r.returncode, r.stderr) == (1, "No servers identified for trust\n")
    r = fresh.stap("--use-server=127.0.0.1:1#sha256:" + "ab" * 32, "--trust-servers=bogus,revoke,no-prompt")
    assert r.returncode == 0
    assert r.stderr.startswith("Unrecognized server trust specification: bogus\n"
                               "Revoking trust in the following servers as an SSL peer for the current user\n")


def test_list_servers(server: Server, fresh: Client) -> None:
    fresh.trust(server)
    release, arch = os.uname().release, os.uname().machine
    line = (f' host=127.0.0.1 address=127.0.0.1 port={server.port} sysinfo="{release} {arch}" version=1 '
            f'certinfo="{fp(server.tls_cert)}" signer_certinfo="{fp(server.signing_cert)}"\n')
    r = fresh.stap(f"--use-server={server.address}", "--list-servers")
    assert (r.returncode, r.stderr) == (0, "Systemtap Compile Server Status for 'specified'\n" + line)
    r = fresh.stap(f"--use-server={server.address}", "--list-servers=online,trusted,compatible")
    assert r.stderr == "Systemtap Compile Server Status for 'online,trusted,compatible'\n" + line
    r = fresh.stap(f"--use-server={server.address}", "--list-servers=signer")
    assert r.stderr == "Systemtap Compile Server Status for 'signer'\nNo servers found\n"
    r = fresh.stap("--use-server=127.0.0.1:1", "--list-servers=all")
    assert r.stderr.splitlines()[1] == (' host=127.0.0.1 address=offline port=1 sysinfo="unknown" '
                                        'version=unknown certinfo="unknown" signer_certinfo="unknown"')
    assert f'certinfo="{fp(server.tls_cert)}"' in r.stderr.splitlines()[2]  # from the trust store


def test_known_servers_file(server: Server, fresh: Client) -> None:
    fresh.trust(server)
    (fresh.config / "pystap" / "servers").write_text(f"# the team's server\n{server.address}\n")
    r = fresh.stap("--use-server", "-p1", "-e", HELLO)
    assert r.returncode == 0, r.stderr
    r = fresh.stap("--use-server=127.0.0.1", "-p1", "-e", HELLO)  # the port comes from the file
    assert r.returncode == 0, r.stderr
    r = fresh.stap("--use-server=other.example", "-p1", "-e", HELLO)
    assert r.returncode == 1
    assert "No servers matched the selection criteria of other.example." in r.stderr


def test_an_expired_server_certificate_is_refused(fresh: Client) -> None:
    base = make_base()
    srv = None
    try:
        ssl_dir = base / "expired-ssl"
        identity = generate_tls_identity(ssl_dir, (), validity=timedelta(days=1),
                                         now=datetime.now(UTC) - timedelta(days=3))
        for path in (ssl_dir, identity.key_path, identity.cert_path):
            os.chown(path, SERVER_UID, SERVER_GID)
        srv = start_server(base, ssl_dir=ssl_dir)
        assert "clients refuse it" in srv.out.read_text()
        fresh.trust(srv)
        r = fresh.stap(f"--use-server={srv.address}", "-p1", "-e", HELLO)
        assert r.returncode == 1
        assert (f"Unable to connect to the server at {srv.address}: its certificate (SHA-256 fingerprint "
                f"{fp(identity.certificate)}) is not valid now: expired on ") in r.stderr
        assert r.stderr.endswith("Unable to connect to a server.\n")
        assert not any(": request " in line for line in srv.audit())
        assert SslPeerStore.open(fresh.user_store, 0).trusts(certificates.der(identity.certificate))
    finally:
        if srv is not None:
            stop_server(srv)
        shutil.rmtree(base, ignore_errors=True)
