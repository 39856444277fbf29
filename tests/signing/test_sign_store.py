"""The signer store on disk: ownership, modes, symlinks, odd entries, revocations."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime, timedelta

import pytest
from conftest import make_module
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pystap import modfile
from pystap.privilege import PR_STAPUSR
from pystap.signing import (
    SignerStore,
    SigningError,
    VerdictKind,
    certificates,
    generate_tls_identity,
    sign_module,
    trust_admin,
    verify,
)
from pystap.signing.signer_store import SignerScope

OTHER_UID = 65534


@pytest.fixture
def store_dir(tmp_path, keys):
    """A correct root-owned store trusting the Ed25519 and ECDSA keys."""
    path = tmp_path / "staprun"
    for kt in ("ed25519", "ecdsa-p256"):
        trust_admin.add_certificate(path, keys[kt].certificate, owner_uid=0, signer=True)
    return path


def test_good_store(store_dir, keys, module_bytes, now):
    store = SignerStore.open(store_dir)
    assert store.usable and not store.problems and len(store) == 2
    assert oct(store_dir.stat().st_mode & 0o777) == "0o755"
    sgn = sign_module(module_bytes, keys["ed25519"], now=now)
    assert verify(module_bytes, sgn, store, now).ok


def test_default_path_follows_sysconfdir(store_dir, monkeypatch):
    monkeypatch.setenv("PYSTAP_SYSCONFDIR", str(store_dir.parent))
    os.rename(store_dir, store_dir.parent / "staprun2")
    os.rename(store_dir.parent / "staprun2", store_dir)
    assert SignerStore.open().path == store_dir and len(SignerStore.open()) == 2


def test_missing_store_is_empty(tmp_path):
    store = SignerStore.open(tmp_path / "absent")
    assert not store.usable and "does not exist" in store.problems[0] and len(store) == 0


def _refused(store_dir, keys, module_bytes, now, fragment):
    store = SignerStore.open(store_dir)
    assert not store.usable and len(store) == 0
    assert any(fragment in p for p in store.problems), store.problems
    verdict = verify(module_bytes, sign_module(module_bytes, keys["ed25519"], now=now), store, now)
    assert verdict.kind is VerdictKind.UNTRUSTED
    assert fragment in verdict.message


def test_directory_not_owned_by_root(store_dir, keys, module_bytes, now):
    os.chown(store_dir, OTHER_UID, -1)
    _refused(store_dir, keys, module_bytes, now, "must be owned by uid 0")


@pytest.mark.parametrize("mode", [0o775, 0o757, 0o777])
def test_directory_writable_by_others(store_dir, keys, module_bytes, now, mode):
    os.chmod(store_dir, mode)
    _refused(store_dir, keys, module_bytes, now, "must not be writable by the group or others")


def test_file_not_owned_by_root(store_dir, keys, module_bytes, now):
    name = sorted(os.listdir(store_dir))[0]
    os.chown(store_dir / name, OTHER_UID, -1)
    _refused(store_dir, keys, module_bytes, now, "must be owned by uid 0")


def test_file_writable_by_group(store_dir, keys, module_bytes, now):
    name = sorted(os.listdir(store_dir))[0]
    os.chmod(store_dir / name, 0o664)
    _refused(store_dir, keys, module_bytes, now, "must not be writable")


def test_store_directory_is_symlink(store_dir, tmp_path, keys, module_bytes, now):
    link = tmp_path / "link"
    link.symlink_to(store_dir)
    _refused(link, keys, module_bytes, now, "symbolic link")


def test_symlink_inside_store(store_dir, tmp_path, keys, module_bytes, now):
    target = tmp_path / "elsewhere.pem"
    target.write_bytes(certificates.pem(keys["ml-dsa-65"].certificate))
    (store_dir / "extra.pem").symlink_to(target)
    _refused(store_dir, keys, module_bytes, now, "symbolic link")


def test_fifo_and_subdirectory_inside_store(store_dir, keys, module_bytes, now):
    os.mkfifo(store_dir / "pipe.pem")
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("store", SignerStore.open(store_dir)))
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "a FIFO in the store must not block the reader"
    assert "not a regular file" in " ".join(result["store"].problems)
    os.unlink(store_dir / "pipe.pem")
    os.mkdir(store_dir / "sub", 0o755)
    _refused(store_dir, keys, module_bytes, now, "not a regular file")


def test_oversized_file(store_dir, keys, module_bytes, now):
    big = store_dir / "big.pem"
    with open(big, "wb") as fh:
        fh.truncate(5 * 1024 * 1024)
    os.chmod(big, 0o644)
    _refused(store_dir, keys, module_bytes, now, "too large")


def test_garbage_certificate_is_skipped_with_warning(store_dir, keys, module_bytes, now):
    (store_dir / "junk.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    os.chmod(store_dir / "junk.pem", 0o644)
    store = SignerStore.open(store_dir)
    assert store.usable and len(store) == 2 and "junk.pem" in store.warnings[0]


def _self_signed(key, hash_alg, eku):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weak")])
    now = datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([eku]), critical=False).sign(key, hash_alg))


@pytest.fixture(scope="module")
def rsa2048():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _as_sha1(cert):
    """The same certificate claiming sha1WithRSAEncryption (cryptography no longer signs with SHA-1)."""
    sha256_rsa = bytes.fromhex("06092a864886f70d01010b")
    der = certificates.der(cert)
    assert der.count(sha256_rsa) == 2
    return x509.load_der_x509_certificate(der.replace(sha256_rsa, sha256_rsa[:-1] + b"\x05"))


def test_weak_certificates_refused(store_dir, rsa2048, keys):
    weak_rsa = _self_signed(rsa2048, hashes.SHA256(), ExtendedKeyUsageOID.CODE_SIGNING)
    sha1 = _as_sha1(keys["rsa-4096"].certificate)
    odd_curve = _self_signed(ec.generate_private_key(ec.SECP521R1()), hashes.SHA512(),
                             ExtendedKeyUsageOID.CODE_SIGNING)
    for cert, why in ((weak_rsa, "too weak"), (sha1, "SHA1"), (odd_curve, "not allowed")):
        with pytest.raises(SigningError, match=why):
            trust_admin.add_certificate(store_dir, cert, owner_uid=0, signer=True)
        (store_dir / "manual.pem").write_bytes(certificates.pem(cert))
        os.chmod(store_dir / "manual.pem", 0o644)
        store = SignerStore.open(store_dir)
        assert store.usable and len(store) == 2
        assert any("manual.pem" in w and why in w for w in store.warnings), store.warnings


def test_tls_certificate_is_never_a_signer(store_dir, tmp_path):
    identity = generate_tls_identity(tmp_path / "tls", ["build.example"])
    with pytest.raises(SigningError, match="not a code-signing certificate"):
        trust_admin.add_certificate(store_dir, identity.certificate, owner_uid=0, signer=True)
    (store_dir / "tls.pem").write_bytes(identity.cert_path.read_bytes())
    os.chmod(store_dir / "tls.pem", 0o644)
    assert len(SignerStore.open(store_dir)) == 2


def test_revocation_list_on_disk(store_dir, keys, module_bytes, now):
    key = keys["ed25519"]
    sgn = sign_module(module_bytes, key, now=now)
    trust_admin.add_revocations(store_dir, keyids=[key.keyid], owner_uid=0)
    assert verify(module_bytes, sgn, SignerStore.open(store_dir), now).kind is VerdictKind.REVOKED
    other = make_module(name="two")
    trust_admin.add_revocations(store_dir, modules=[modfile.digest(other)], owner_uid=0)
    store = SignerStore.open(store_dir)
    assert store.revoked_keys == {key.keyid} and store.revoked_modules == {modfile.digest(other)}
    ec_sgn = sign_module(other, keys["ecdsa-p256"], now=now)
    assert verify(other, ec_sgn, store, now).kind is VerdictKind.REVOKED


@pytest.mark.parametrize("content", [b"{", b"[]", b'{"format":"pystap-revocations","version":1,"keyids":["x"]}',
                                     b'{"format":"pystap-revocations","version":2}'])
def test_malformed_revocation_list_disables_store(store_dir, keys, module_bytes, now, content):
    (store_dir / "revocations.json").write_bytes(content)
    os.chmod(store_dir / "revocations.json", 0o644)
    _refused(store_dir, keys, module_bytes, now, "revocations.json")


def test_remove_certificate(store_dir, keys):
    fp = certificates.fingerprint(keys["ed25519"].certificate)
    keyids = trust_admin.remove_certificate(store_dir, certificates.show_fingerprint(fp).upper(), owner_uid=0)
    assert keyids == [keys["ed25519"].keyid]
    assert len(SignerStore.open(store_dir)) == 1
    with pytest.raises(SigningError, match="no trusted certificate"):
        trust_admin.remove_certificate(store_dir, fp, owner_uid=0)


def test_admin_refuses_badly_owned_store(store_dir, keys):
    os.chmod(store_dir, 0o777)
    with pytest.raises(SigningError, match="must not be writable"):
        trust_admin.add_certificate(store_dir, keys["ml-dsa-65"].certificate, owner_uid=0, signer=True)


def test_revocations_json_format(store_dir):
    trust_admin.add_revocations(store_dir, keyids=["AB" * 32], owner_uid=0)
    data = json.loads((store_dir / "revocations.json").read_text())
    assert data == {"format": "pystap-revocations", "version": 1, "keyids": ["ab" * 32], "modules": []}


def test_signer_scopes_on_disk(store_dir, keys, module_bytes, now):
    """scopes.json narrows what a signer certifies; the OK verdict carries it to the loader."""
    key = keys["ed25519"]
    fp = certificates.fingerprint(key.certificate)
    scope = SignerScope(PR_STAPUSR, frozenset({1234, 99}))
    trust_admin.set_scope(store_dir, certificates.show_fingerprint(fp), scope, owner_uid=0)
    data = json.loads((store_dir / "scopes.json").read_text())
    assert data == {"format": "pystap-signer-scopes", "version": 1,
                    "scopes": {fp: {"max_privilege": "stapusr", "uids": [99, 1234]}}}
    store = SignerStore.open(store_dir)
    assert {s.fingerprint: s.scope for s in store.all_signers()}[fp] == scope
    verdict = verify(module_bytes, sign_module(module_bytes, key, now=now), store, now)
    assert verdict.ok and verdict.scope == scope
    ec = verify(module_bytes, sign_module(module_bytes, keys["ecdsa-p256"], now=now), store, now)
    assert ec.ok and ec.scope is not None and ec.scope.unrestricted
    trust_admin.set_scope(store_dir, fp, SignerScope(), owner_uid=0)  # back to unrestricted: entry gone
    assert json.loads((store_dir / "scopes.json").read_text())["scopes"] == {}


@pytest.mark.parametrize("content", [
    b"{", b'{"format":"pystap-signer-scopes","version":1}',
    b'{"format":"pystap-signer-scopes","version":2,"scopes":{}}',
    b'{"format":"pystap-signer-scopes","version":1,"scopes":{"xy":{"uids":[1]}}}',
    ('{"format":"pystap-signer-scopes","version":1,"scopes":{"' + "ab" * 32 + '":{"max_privilege":"root"}}}').encode(),
    ('{"format":"pystap-signer-scopes","version":1,"scopes":{"' + "ab" * 32 + '":{"uids":[-1]}}}').encode(),
    ('{"format":"pystap-signer-scopes","version":1,"scopes":{"' + "ab" * 32 + '":{"uids":[true]}}}').encode(),
    ('{"format":"pystap-signer-scopes","version":1,"scopes":{"' + "ab" * 32 + '":{}}}').encode(),
    ('{"format":"pystap-signer-scopes","version":1,"scopes":{"' + "ab" * 32 + '":{"x":1}}}').encode(),
])
def test_malformed_scope_list_disables_store(store_dir, keys, module_bytes, now, content):
    """A store that might be missing a limit vouches for nothing (fail closed)."""
    (store_dir / "scopes.json").write_bytes(content)
    os.chmod(store_dir / "scopes.json", 0o644)
    _refused(store_dir, keys, module_bytes, now, "scopes.json")


def test_removing_a_certificate_removes_its_scope(store_dir, keys):
    fp = certificates.fingerprint(keys["ed25519"].certificate)
    trust_admin.set_scope(store_dir, fp, SignerScope(PR_STAPUSR, None), owner_uid=0)
    trust_admin.remove_certificate(store_dir, fp, owner_uid=0)
    assert json.loads((store_dir / "scopes.json").read_text())["scopes"] == {}
