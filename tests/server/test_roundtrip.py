"""``pystap --use-server`` against a real ``pystap-server``: modules, signatures, outputs, policy."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pystap import modfile
from pystap.signing import SignerStore, SigningError, VerdictKind, certificates, trust_admin, verify

from .conftest import HELLO, Client, Server, needs_root, request, send_request

pytestmark = needs_root


def test_p4_round_trip_signed_by_the_servers_signing_key(server: Server, client: Client) -> None:
    r = client.stap(f"--use-server={server.address}", "-p4", "-m", "hello", "-e", HELLO)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{client.cwd / 'hello.stapmod'}\n"
    assert r.stderr == ""
    module = (client.cwd / "hello.stapmod").read_bytes()
    sgn = (client.cwd / "hello.stapmod.sgn").read_bytes()
    assert modfile.load(module).name == "hello"
    now = datetime.now(UTC)

    verdict = verify(module, sgn, SignerStore.from_certificates([server.signing_cert]), now)
    assert verdict.kind is VerdictKind.OK, verdict.message

    # The TLS identity is not a signer: no store accepts it, and a store holding it trusts nothing.
    with pytest.raises(ValueError, match="not a code-signing certificate"):
        SignerStore.from_certificates([server.tls_cert])
    with pytest.raises(SigningError, match="not a code-signing certificate"):
        trust_admin.add_certificate(client.signer_store, server.tls_cert, owner_uid=0, signer=True)
    client.signer_store.mkdir(mode=0o755, parents=True, exist_ok=True)
    (client.signer_store / "tls.pem").write_bytes(certificates.pem(server.tls_cert))
    store = SignerStore.open(client.signer_store)
    assert len(store) == 0 and "not a code-signing certificate" in store.warnings[0]
    assert verify(module, sgn, store, now).kind is VerdictKind.UNTRUSTED

    lines = [line for line in server.audit() if " request " in line and "module=hello.stapmod" in line]
    assert lines and "privilege=stapdev" in lines[-1] and "rc=0" in lines[-1]
    assert f"module_sha256={modfile.digest(module)}" in lines[-1]
    assert server.leftovers() == []


def test_default_module_name_and_a_script_file(server: Server, client: Client) -> None:
    script = client.cwd / "hello.stp"
    script.write_text(HELLO + "\n")
    r = client.stap(f"--use-server={server.address}", "-p4", "hello.stp")
    assert r.returncode == 0, r.stderr
    path = Path(r.stdout.strip())
    assert path.parent == client.cwd and path.name.startswith("stap_") and path.suffix == ".stapmod"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert Path(f"{path}.sgn").exists()


@pytest.mark.parametrize("last_pass", ["1", "2", "3"])
def test_early_passes_are_replayed_like_local_ones(server: Server, client: Client, last_pass: str) -> None:
    remote = client.stap(f"--use-server={server.address}", f"-p{last_pass}", "-e", HELLO)
    local = client.stap("--disable-cache", f"-p{last_pass}", "-e", HELLO)
    assert remote.returncode == local.returncode == 0, remote.stderr
    assert remote.stdout == local.stdout
    assert list(client.cwd.iterdir()) == []


def test_privilege_is_enforced_on_the_server(server: Server, client: Client) -> None:
    r = client.stap(f"--use-server={server.address}", "-p4", "--privilege=stapusr",
                    "-e", 'probe kernel.function("vfs_read") { exit() }')
    assert r.returncode == 1
    assert "semantic error: probe point is not allowed for --privilege=stapusr" in r.stderr
    assert r.stderr.endswith("Pass 2: analysis failed.  [man error::pass2]\n")
    assert list(client.cwd.iterdir()) == []
    assert any("privilege=stapusr" in line and "rc=1" in line for line in server.audit())


def test_a_stapusr_module_is_signed_at_its_level(server: Server, client: Client) -> None:
    r = client.stap(f"--use-server={server.address}", "-p4", "--privilege=stapusr", "-e", HELLO)
    assert r.returncode == 0, r.stderr
    module = Path(r.stdout.strip())
    verdict = verify(module.read_bytes(), Path(f"{module}.sgn").read_bytes(),
                     SignerStore.from_certificates([server.signing_cert]), datetime.now(UTC))
    assert verdict.ok and verdict.statement["privilege"] == "stapusr"


def test_server_errors_name_client_files_not_server_paths(server: Server, client: Client) -> None:
    (client.cwd / "broken.stp").write_text("probe begin { x = }\n")
    r = client.stap(f"--use-server={server.address}", "-p2", "broken.stp")
    assert r.returncode == 1
    assert "script/broken.stp:1:" in r.stderr
    assert str(server.tmp) not in r.stderr and "pystap-server." not in r.stderr


def test_options_invalid_with_client_options_are_refused_by_the_server(server: Server, client: Client) -> None:
    r = client.stap(f"--use-server={server.address}", "-p4", "--privilege=stapusr", "-D", "MAXACTION=10",
                    "-m", "x", "-e", HELLO)
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == "You can't specify -D, -m when --privilege=stapusr is specified.\n"

    # Crafted requests (what the pystap client never sends) meet the same table.
    cases = {
        ("--disable-cache", None): "ERROR: --disable-cache is invalid with --client-options\n",
        ("--no-sign", None): "ERROR: --no-sign is invalid with --client-options\n",
        ("--sign-key", "/etc"): "ERROR: --sign-key is invalid with --client-options\n",
        ("-k", None): "ERROR: -k invalid with --client-options\n",
        ("-R", "/tmp"): "ERROR: -R invalid with --client-options\n",
        ("--tmpdir", "/tmp"): "ERROR: --tmpdir is invalid with --client-options\n",
        ("--use-server", "x:1"): "ERROR: --use-server is invalid with --client-options\n",
        ("--client-options", None): "ERROR: --client-options is invalid with --client-options\n",
        ("-r", "../../etc"): "ERROR: Safety pattern mismatch for -r parameter from client ('../../etc' vs. "
                             "'^[a-z0-9_.+-]+$') rc=1\n",
    }
    for option, expected in cases.items():
        response = send_request(server.port, request([("-p", "4"), option]))
        assert response is not None and response.rc == 1, option
        assert response.stderr.decode() == expected, option
        assert response.module is None
    response = send_request(server.port, request([("-p", "4"), ("--privilege", "stapusr"), ("-g", None)]))
    assert response.stderr.decode() == "You can't specify -g and --privilege=stapusr together.\n"
    # a flag given a value would shift the translator's argv: refused before anything runs
    response = send_request(server.port, request([("-g", "/etc/passwd"), ("-p", "2")]))
    assert response.rc == 1 and response.stderr == b"Invalid request: option -g takes no value\n"
    assert server.leftovers() == []


def test_client_environment_never_reaches_the_translator(server: Server, client: Client) -> None:
    evil = client.base / "evil-tapset"
    evil.mkdir()
    (evil / "evil.stp").write_text('function evil:long() %{ /* unprivileged */ STAP_RETVALUE = 1; %}\n')
    env = client.env(PYSTAP_TAPSET=str(evil), XDG_DATA_DIRS=str(client.base), PYSTAP_RUNTIME="/x",
                     RANDOM_CLIENT_VAR="secret", LC_ALL="C")
    # locally this environment is refused below stapdev ...
    local = client.stap("-p2", "--privilege=stapusr", "-e", HELLO, env=env)
    assert local.returncode == 1 and "PYSTAP_TAPSET may not be set" in local.stderr
    # ... remotely it is simply not sent (and the server's own PYSTAP_TAPSET is not used either)
    remote = client.stap(f"--use-server={server.address}", "-p4", "--privilege=stapusr", "-e", HELLO, env=env)
    assert remote.returncode == 0, remote.stderr
    assert remote.stderr == ""
    # a script that uses the client's tapset function cannot find it on the server
    r = client.stap(f"--use-server={server.address}", "-p2", "-e", "probe begin { print(evil()) }", env=env)
    assert r.returncode == 1 and "unresolved function" in r.stderr


def test_unsupported_target_is_refused_with_systemtaps_message(server: Server, client: Client) -> None:
    r = client.stap(f"--use-server={server.address}", "-p4", "-r", "0.0.1-other", "-e", HELLO)
    assert r.returncode == 1
    assert r.stderr == "Server: Target kernel version 0.0.1-other is not supported by this server\n"


def test_untrusted_server_is_refused_before_anything_is_sent(server: Server, client: Client) -> None:
    client.untrust_all()
    before = len(server.audit())
    r = client.stap(f"--use-server={server.address}", "-p4", "-e", HELLO)
    fingerprint = certificates.show_fingerprint(certificates.fingerprint(server.tls_cert))
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith(f"Unable to connect to the server at {server.address}: "
                               "Peer's Certificate issuer is not recognized.\n")
    assert fingerprint in r.stderr
    assert r.stderr.endswith("Unable to connect to a server.\n")
    new = server.audit()[before:]
    assert new and all(": closed " in line for line in new)
    assert not any(" request " in line for line in new)


def test_trusted_for_all_users_and_a_pin_that_differs(server: Server, client: Client) -> None:
    client.untrust_all()
    client.trust(server, all_users=True)
    r = client.stap(f"--use-server={server.address}", "-p1", "-e", HELLO)
    assert r.returncode == 0, r.stderr
    wrong = "ab" * 32
    r = client.stap(f"--use-server={server.address}#sha256:{wrong}", "-p1", "-e", HELLO)
    assert r.returncode == 1
    assert "not the one given with --use-server" in r.stderr
    assert r.stderr.endswith("Unable to connect to a server.\n")


def test_host_name_mismatch_is_a_warning(server: Server, client: Client) -> None:
    r = client.stap(f"--use-server=localhost:{server.port}", "-p1", "-e", HELLO)
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith("WARNING: The domain name, localhost, does not match the DNS name(s) on the "
                               f"server certificate:\n  {os.uname().nodename}\n")


def test_invalid_server_specifications(client: Client) -> None:
    for spec in ("host:", "host:0", "host:99999", "[::1", "1.2.3.4.5:1", "00:93:49:be:2a", "h#sha256:zz",
                 "a_b:1"):
        r = client.stap(f"--use-server={spec}", "-p1", "-e", HELLO)
        assert (r.returncode, r.stderr) == (1, f"Invalid server specification: {spec}\n"), spec


def test_unreachable_server(client: Client) -> None:
    r = client.stap("--use-server=127.0.0.1:1", "-p1", "-e", HELLO)
    assert r.returncode == 1
    assert r.stderr.startswith("Unable to connect to 127.0.0.1:1: ")
    assert r.stderr.endswith("Unable to connect to a server.\n")


def test_stdin_script_and_a_tapset_directory_travel_with_the_request(server: Server, client: Client) -> None:
    tapsets = client.cwd / "tapsets"
    tapsets.mkdir()
    (tapsets / "answer.stp").write_text("function answer() { return 42 }\n")
    (tapsets / "ignored.txt").write_text("not a tapset\n")
    (tapsets / "linked.stp").symlink_to(tapsets / "answer.stp")
    r = client.stap(f"--use-server={server.address}", "-p2", "-I", str(tapsets), "-",
                    input="probe begin { println(answer()) }\n")
    assert r.returncode == 0, r.stderr
    assert "answer" in r.stdout
    assert r.stderr == f"WARNING: not sending {tapsets / 'linked.stp'} to the server: it is a symbolic link\n"
    r = client.stap(f"--use-server={server.address}", "-p2", "-I", "/", "-e", HELLO)
    assert (r.returncode, r.stderr) == (1, "Unable to send / to the server\n")
