"""Signing keys: creation, permissions, passphrases, the user's key, TLS identities."""

from __future__ import annotations

import os
import stat
from datetime import timedelta

import pytest
from conftest import store_of

from pystap.signing import (
    SigningError,
    SslPeerStore,
    certificates,
    generate_signing_key,
    generate_tls_identity,
    load_signing_key,
    sign_module,
    sign_module_file,
    signature_path,
    user_signing_key,
    verify,
)
from pystap.signing.keys import CERT_FILE, KEY_FILE


def _mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_generated_files_and_certificate(keys):
    for key_type, key in keys.items():
        assert key.key_type == key_type
        assert _mode(key.directory) == 0o700
        assert _mode(key.directory / KEY_FILE) == 0o600
        assert _mode(key.directory / CERT_FILE) == 0o644
        cert = key.certificate
        assert certificates.is_code_signing(cert)
        assert "pystap module signer" in certificates.subject(cert)
        span = cert.not_valid_after_utc - cert.not_valid_before_utc
        assert timedelta(days=365) <= span <= timedelta(days=365, minutes=6)
        loaded = load_signing_key(key.directory)
        assert loaded.keyid == key.keyid and loaded.fingerprint == key.fingerprint


def test_refuses_to_overwrite_then_rotates(tmp_path):
    first = generate_signing_key(tmp_path / "k", key_type="ed25519")
    with pytest.raises(SigningError, match="already exists"):
        generate_signing_key(tmp_path / "k", key_type="ed25519")
    second = generate_signing_key(tmp_path / "k", key_type="ecdsa-p256", replace=True)
    assert second.keyid != first.keyid
    assert (tmp_path / "k" / (KEY_FILE + ".old")).exists()
    assert load_signing_key(tmp_path / "k").keyid == second.keyid


def test_encrypted_key(tmp_path, module_bytes, now):
    key = generate_signing_key(tmp_path / "k", key_type="ecdsa-p256", passphrase="s3cret")
    assert b"ENCRYPTED" in (tmp_path / "k" / KEY_FILE).read_bytes()
    with pytest.raises(SigningError, match="passphrase is needed"):
        load_signing_key(tmp_path / "k")
    with pytest.raises(SigningError, match="wrong passphrase"):
        load_signing_key(tmp_path / "k", "wrong")
    loaded = load_signing_key(tmp_path / "k", "s3cret")
    assert verify(module_bytes, sign_module(module_bytes, loaded, now=now), store_of(key), now).ok


def test_key_readable_by_others_is_refused(tmp_path):
    generate_signing_key(tmp_path / "k", key_type="ed25519")
    os.chmod(tmp_path / "k" / KEY_FILE, 0o644)
    with pytest.raises(SigningError, match="chmod 600"):
        load_signing_key(tmp_path / "k")


def test_key_symlink_is_refused(tmp_path):
    generate_signing_key(tmp_path / "k", key_type="ed25519")
    (tmp_path / "link.pem").symlink_to(tmp_path / "k" / KEY_FILE)
    with pytest.raises(SigningError, match="cannot read signing key"):
        load_signing_key(tmp_path / "link.pem")


def test_key_and_certificate_must_match(tmp_path):
    generate_signing_key(tmp_path / "a", key_type="ed25519")
    generate_signing_key(tmp_path / "b", key_type="ed25519")
    os.replace(tmp_path / "b" / CERT_FILE, tmp_path / "a" / CERT_FILE)
    with pytest.raises(SigningError, match="does not belong"):
        load_signing_key(tmp_path / "a")


def test_key_file_bundle(tmp_path):
    key = generate_signing_key(tmp_path / "k", key_type="ed25519")
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes((tmp_path / "k" / KEY_FILE).read_bytes() + (tmp_path / "k" / CERT_FILE).read_bytes())
    os.chmod(bundle, 0o600)
    assert load_signing_key(bundle).keyid == key.keyid


def test_missing_and_garbage_keys(tmp_path):
    with pytest.raises(SigningError, match="pystap-gen-cert"):
        load_signing_key(tmp_path)
    bad = tmp_path / "bad.pem"
    bad.write_bytes(b"junk")
    os.chmod(bad, 0o600)
    with pytest.raises(SigningError, match="cannot load signing key"):
        load_signing_key(bad)


def test_user_key_created_on_first_use(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("PYSTAP_SIGN_KEY_TYPE", "Ed25519")
    with pytest.raises(SigningError):
        user_signing_key(create=False)
    key = user_signing_key()
    directory = tmp_path / "cfg" / "pystap" / "signing"
    assert key.directory == directory and key.key_type == "ed25519"
    assert _mode(directory) == 0o700 and _mode(directory / KEY_FILE) == 0o600
    assert _mode(tmp_path / "cfg" / "pystap") == 0o700
    assert user_signing_key().keyid == key.keyid
    assert [p.name for p in (tmp_path / "cfg" / "pystap").iterdir()] == ["signing"]


def test_default_key_type_is_ml_dsa(tmp_path, monkeypatch):
    monkeypatch.delenv("PYSTAP_SIGN_KEY_TYPE", raising=False)
    assert generate_signing_key(tmp_path / "k").key_type == "ml-dsa-65"


def test_invalid_key_type(tmp_path, monkeypatch):
    monkeypatch.setenv("PYSTAP_SIGN_KEY_TYPE", "dsa")
    with pytest.raises(SigningError, match="Invalid PYSTAP_SIGN_KEY_TYPE 'dsa'"):
        generate_signing_key(tmp_path / "k")
    assert not (tmp_path / "k").exists()


def test_sign_module_file(tmp_path, keys, module_bytes, now):
    module = tmp_path / "stap_x.stapmod"
    module.write_bytes(module_bytes)
    written = sign_module_file(module, keys["ed25519"], now=now)
    assert written == signature_path(module) == tmp_path / "stap_x.stapmod.sgn"
    assert verify(module_bytes, written.read_bytes(), store_of(keys["ed25519"]), now).ok
    with pytest.raises(SigningError, match="cannot read module"):
        sign_module_file(tmp_path / "absent.stapmod", keys["ed25519"])


def test_tls_identity_and_ssl_peer_store(tmp_path, monkeypatch):
    identity = generate_tls_identity(tmp_path / "server", ["build.example"])
    assert _mode(identity.key_path) == 0o600
    assert not certificates.is_code_signing(identity.certificate)
    san = identity.certificate.extensions.get_extension_for_class(
        certificates.x509.SubjectAlternativeName).value.get_values_for_type(certificates.x509.DNSName)
    assert "build.example" in san
    from pystap.signing import trust_admin

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("PYSTAP_SYSCONFDIR", str(tmp_path / "etc"))
    trust_admin.add_certificate(SslPeerStore.user().path, identity.certificate, owner_uid=os.getuid(),
                                signer=False)
    der = certificates.der(identity.certificate)
    assert SslPeerStore.user().trusts(der)
    assert SslPeerStore.combined().trusts(der)
    assert not SslPeerStore.all_users().trusts(der)
    other = generate_tls_identity(tmp_path / "other")
    assert not SslPeerStore.user().trusts(certificates.der(other.certificate))
    os.chmod(SslPeerStore.user().path, 0o777)
    refused = SslPeerStore.user()
    assert refused.problems and not refused.trusts(der)


def test_concurrent_first_use_yields_one_key(tmp_path):
    """Two processes creating the user's key at once end up with the same key."""
    import subprocess
    import sys

    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "cfg"), PYSTAP_SIGN_KEY_TYPE="ml-dsa-65")
    code = "from pystap.signing import user_signing_key; print(user_signing_key().keyid)"
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    outputs = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(outputs) == 1
    leftovers = [p.name for p in (tmp_path / "cfg" / "pystap").iterdir()]
    assert leftovers == ["signing"]
