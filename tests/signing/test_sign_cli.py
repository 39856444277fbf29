"""pystap-gen-cert and pystap-authorize-cert, run in-process against temporary stores."""

from __future__ import annotations

import contextlib
import os

import pytest

from pystap.cli.certs import authorize_cert_main, gen_cert_main
from pystap.privilege import PR_STAPUSR
from pystap.signing import SignerStore, VerdictKind, certificates, load_signing_key, sign_module, verify
from pystap.signing.signer_store import SignerScope

_nothing = contextlib.nullcontext


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("PYSTAP_SYSCONFDIR", str(tmp_path / "etc"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    return tmp_path


def test_create_trust_list_revoke_rotate(env, capsys, module_bytes, now):
    assert gen_cert_main(["--key-type", "ed25519", str(env / "signer"), "build.example"]) == 0
    out = capsys.readouterr().out
    assert "fingerprint:" in out and "pystap-authorize-cert" in out
    key = load_signing_key(env / "signer")
    cert_path = env / "signer" / "signing-cert.pem"
    fp = certificates.show_fingerprint(key.fingerprint)

    assert authorize_cert_main([str(cert_path), "--signer", "--expect-fingerprint", fp]) == 0
    sgn = sign_module(module_bytes, key, now=now)
    assert verify(module_bytes, sgn, SignerStore.open(), now).ok

    assert authorize_cert_main(["--list", "--signer"]) == 0
    assert fp in capsys.readouterr().out

    # rotate: new key, trust it, revoke the old one
    assert gen_cert_main(["--key-type", "ecdsa-p256", "--force", str(env / "signer")]) == 0
    new_key = load_signing_key(env / "signer")
    assert authorize_cert_main([str(cert_path), "--signer"]) == 0
    assert authorize_cert_main(["--revoke", fp, "--signer"]) == 0
    store = SignerStore.open()
    assert verify(module_bytes, sgn, store, now).kind is VerdictKind.REVOKED
    assert verify(module_bytes, sign_module(module_bytes, new_key, now=now), store, now).ok


def test_wrong_expected_fingerprint(env, capsys):
    assert gen_cert_main(["--key-type", "ed25519", str(env / "s")]) == 0
    assert authorize_cert_main([str(env / "s" / "signing-cert.pem"), "--signer",
                                "--expect-fingerprint", "00" * 32]) == 1
    assert "not the expected one" in capsys.readouterr().err
    assert len(SignerStore.open()) == 0


def test_revoke_module_and_key(env, capsys):
    assert authorize_cert_main(["--revoke-module", "ab" * 32]) == 0
    assert authorize_cert_main(["--revoke-key", "CD" * 32]) == 0
    store = SignerStore.open()
    assert store.revoked_modules == {"ab" * 32} and store.revoked_keys == {"cd" * 32}
    assert authorize_cert_main(["--revoke-key", "xyz"]) == 1
    assert "invalid key id" in capsys.readouterr().err


def test_ssl_peer_for_user_and_tls_identity(env, capsys):
    assert gen_cert_main(["--tls", str(env / "server"), "build.example"]) == 0
    assert authorize_cert_main([str(env / "server" / "tls-cert.pem"), "--ssl"]) == 0
    assert authorize_cert_main(["--list", "--ssl"]) == 0
    assert "pystap compile server" in capsys.readouterr().out
    # the TLS certificate is refused as a signer
    assert authorize_cert_main([str(env / "server" / "tls-cert.pem"), "--signer"]) == 1
    assert "not a code-signing certificate" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["--signer"], "Certificate file must be specified"),
    (["cert.pem"], "--signer or --ssl"),
    (["/nonexistent/cert.pem", "--signer"], "No such file"),
    (["--revoke", "zz", "--signer"], "invalid fingerprint"),
])
def test_usage_errors(env, capsys, argv, message):
    assert authorize_cert_main(argv) == 1
    assert message in capsys.readouterr().err


def test_garbage_certificate_file(env, capsys):
    (env / "junk.pem").write_bytes(b"junk")
    assert authorize_cert_main([str(env / "junk.pem"), "--signer"]) == 1
    assert "Unable to authorize certificate" in capsys.readouterr().err


def test_root_only_stores(env, capsys, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert authorize_cert_main(["--list", "--signer"]) == 1
    assert "Only root" in capsys.readouterr().err
    assert authorize_cert_main(["x.pem", "--ssl", "--all-users"]) == 1
    assert "Only root" in capsys.readouterr().err


def test_gen_cert_errors(env, capsys, monkeypatch):
    assert gen_cert_main(["--key-type", "dsa", str(env / "k")]) == 1
    assert "Invalid --key-type 'dsa'" in capsys.readouterr().err
    assert gen_cert_main(["--days", "0", str(env / "k")]) == 1
    pw = env / "pw"
    pw.write_text("hunter22\n")
    assert gen_cert_main(["--key-type", "ed25519", "--passphrase-file", str(pw), str(env / "k")]) == 0
    assert load_signing_key(env / "k", "hunter22").key_type == "ed25519"
    assert gen_cert_main(["--key-type", "ed25519", str(env / "k")]) == 1
    assert "already exists" in capsys.readouterr().err


def test_authorize_with_a_scope_lists_and_clears_it(env, capsys):
    assert gen_cert_main(["--key-type", "ed25519", str(env / "u")]) == 0
    cert_path = str(env / "u" / "signing-cert.pem")
    assert authorize_cert_main([cert_path, "--signer", "--max-privilege", "stapusr",
                                "--only-uid", "1234", "--only-uid", "77"]) == 0
    assert "to certify modules up to stapusr, users 77,1234" in capsys.readouterr().out
    (signer,) = SignerStore.open().all_signers()
    assert signer.scope == SignerScope(PR_STAPUSR, frozenset({77, 1234}))
    assert authorize_cert_main(["--list", "--signer"]) == 0
    assert "certifies modules up to stapusr, users 77,1234" in capsys.readouterr().out
    # trusting it again without a scope makes it unrestricted, as the command says
    assert authorize_cert_main([cert_path, "--signer"]) == 0
    assert "to certify any module, any user" in capsys.readouterr().out
    assert SignerStore.open().all_signers()[0].scope.unrestricted


@pytest.mark.parametrize("args", [["--ssl", "--max-privilege", "stapusr"], ["--signer", "--list", "--only-uid", "5"],
                                  ["--signer", "--max-privilege", "root"], ["--signer", "--only-uid", "-1"]])
def test_scope_options_need_a_signer_certificate(env, capsys, args):
    assert gen_cert_main(["--key-type", "ed25519", str(env / "u")]) == 0
    cert = [] if "--list" in args else [str(env / "u" / "signing-cert.pem")]
    with pytest.raises(SystemExit) if "root" in args else _nothing():
        assert authorize_cert_main([*cert, *args]) == 1
    assert len(SignerStore.open()) == 0
