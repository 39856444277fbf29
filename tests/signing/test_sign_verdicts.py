"""Every verdict, with real keys of every type."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from conftest import make_module, store_of

from pystap import modfile
from pystap.signing import SigningError, VerdictKind, envelope, sign_module, statement, verify


def test_ok_carries_verified_statement(key, module_bytes, now):
    sgn = sign_module(module_bytes, key, now=now)
    verdict = verify(module_bytes, sgn, store_of(key), now, path="m.stapmod")
    assert verdict.kind is VerdictKind.OK, verdict.message
    assert verdict.ok and verdict.signer == key.keyid
    claims = verdict.statement
    assert claims["module_sha256"] == modfile.digest(module_bytes)
    assert claims["privilege"] == "stapusr"
    assert claims["name"] == "stap_sign_test"
    assert claims["release"] == "6.18.0" and claims["arch"] == "x86_64"
    assert claims["script_digest"] == "ab" * 32
    assert claims["translator"] == "pystap 0.1.0"
    assert claims["keyid"] == key.keyid


def test_signature_sizes_match_algorithms(keys, module_bytes):
    sizes = {kt: len(envelope.decode(sign_module(module_bytes, k)).signature) for kt, k in keys.items()}
    assert sizes["ml-dsa-65"] == 3309  # FIPS 204 ML-DSA-65, as SystemTap's test checks
    assert sizes["ed25519"] == 64
    assert sizes["rsa-4096"] == 512


def test_unsigned(module_bytes, keys, now):
    verdict = verify(module_bytes, None, store_of(keys["ed25519"]), now, path="m.stapmod")
    assert verdict.kind is VerdictKind.UNSIGNED
    assert "m.stapmod.sgn not found" in verdict.message


def test_untrusted_empty_store(key, module_bytes, now):
    sgn = sign_module(module_bytes, key, now=now)
    verdict = verify(module_bytes, sgn, store_of(), now)
    assert verdict.kind is VerdictKind.UNTRUSTED
    assert key.keyid in verdict.message and "pystap-authorize-cert" in verdict.message


@pytest.mark.parametrize("key_type", ["ml-dsa-65", "ecdsa-p256", "ed25519"])
def test_other_key_of_same_type_is_untrusted_not_altered(keys, other_keys, key_type, module_bytes, now):
    """SystemTap's ML-DSA path reports ALTERED here; the key id makes it UNTRUSTED."""
    sgn = sign_module(module_bytes, other_keys[key_type], now=now)
    verdict = verify(module_bytes, sgn, store_of(*keys.values()), now)
    assert verdict.kind is VerdictKind.UNTRUSTED


def test_altered_module(key, module_bytes, now):
    sgn = sign_module(module_bytes, key, now=now)
    altered = module_bytes.replace(b"pass", b"1+1 ")
    verdict = verify(altered, sgn, store_of(key), now, path="m.stapmod")
    assert verdict.kind is VerdictKind.ALTERED
    assert verdict.message == ("Unable to verify the signed module m.stapmod. "
                               "It may have been altered since it was created.")


def test_swapped_signature_files(keys, now):
    key = keys["ecdsa-p256"]
    usr, sys_ = make_module(), make_module(privilege="stapsys", name="other")
    sgn_usr, sgn_sys = sign_module(usr, key, now=now), sign_module(sys_, key, now=now)
    store = store_of(key)
    assert verify(usr, sgn_sys, store, now).kind is VerdictKind.ALTERED
    assert verify(sys_, sgn_usr, store, now).kind is VerdictKind.ALTERED
    assert verify(sys_, sgn_sys, store, now).statement["privilege"] == "stapsys"


def _forge(key, module: bytes, now, **changes) -> bytes:
    """A correctly signed envelope whose statement says something else about the module."""
    claims = statement.build(modfile.load(module), modfile.digest(module), key.keyid, now,
                             now + timedelta(days=1))
    claims.update(changes)
    payload = statement.encode(claims)
    sig = key.sign(envelope.pae(envelope.PAYLOAD_TYPE, payload))
    return envelope.encode(envelope.Envelope(envelope.PAYLOAD_TYPE, payload, key.keyid, sig, ()))


@pytest.mark.parametrize("field,value", [("privilege", "stapdev"), ("name", "x"), ("release", "5.0"),
                                         ("arch", "aarch64"), ("script_digest", "0" * 64),
                                         ("translator", "other 1")])
def test_statement_disagreeing_with_module_is_altered(keys, module_bytes, now, field, value):
    key = keys["ed25519"]
    verdict = verify(module_bytes, _forge(key, module_bytes, now, **{field: value}), store_of(key), now)
    assert verdict.kind is VerdictKind.ALTERED
    assert field in verdict.message


def test_statement_naming_other_key_is_error(keys, module_bytes, now):
    key = keys["ed25519"]
    sgn = _forge(key, module_bytes, now, keyid="1" * 64)
    assert verify(module_bytes, sgn, store_of(key), now).kind is VerdictKind.ERROR


def test_expired_signature(key, module_bytes, now):
    sgn = sign_module(module_bytes, key, now=now, validity=timedelta(hours=1))
    later = now + timedelta(hours=2)
    verdict = verify(module_bytes, sgn, store_of(key), later)
    assert verdict.kind is VerdictKind.EXPIRED
    assert "re-sign" in verdict.message


def test_signature_not_yet_valid(keys, module_bytes, now):
    key = keys["ecdsa-p256"]
    sgn = sign_module(module_bytes, key, now=now + timedelta(hours=1))
    assert verify(module_bytes, sgn, store_of(key), now).kind is VerdictKind.EXPIRED


def test_expired_signer_certificate(tmp_path, module_bytes, now):
    from pystap.signing import generate_signing_key

    short = generate_signing_key(tmp_path / "k", key_type="ed25519", validity=timedelta(days=2), now=now)
    sgn = sign_module(module_bytes, short, now=now, validity=timedelta(days=30))
    claims = envelope.decode(sgn)
    # the signature never outlives its certificate
    expires = statement.parse_time(json.loads(claims.payload)["expires_at"])
    assert expires <= short.certificate.not_valid_after_utc
    verdict = verify(module_bytes, sgn, store_of(short), now + timedelta(days=3))
    assert verdict.kind is VerdictKind.EXPIRED
    assert "certificate" in verdict.message
    with pytest.raises(SigningError, match="expired"):
        sign_module(module_bytes, short, now=now + timedelta(days=3))


def test_revoked_key(key, module_bytes, now):
    sgn = sign_module(module_bytes, key, now=now)
    verdict = verify(module_bytes, sgn, store_of(key, revoked_keys=[key.keyid]), now)
    assert verdict.kind is VerdictKind.REVOKED and key.keyid in verdict.message


def test_revoked_module(keys, module_bytes, now):
    key = keys["ml-dsa-65"]
    sgn = sign_module(module_bytes, key, now=now)
    store = store_of(key, revoked_modules=[modfile.digest(module_bytes)])
    assert verify(module_bytes, sgn, store, now).kind is VerdictKind.REVOKED
    other = make_module(name="fine")
    assert verify(other, sign_module(other, key, now=now), store, now).kind is VerdictKind.OK


@pytest.mark.parametrize("sgn", [b"", b"\n", b"garbage", b"{}", b"[]", b"\xff\xfe", b'{"format": 1}'])
def test_malformed_is_error(keys, module_bytes, now, sgn):
    verdict = verify(module_bytes, sgn, store_of(keys["ed25519"]), now, path="m")
    assert verdict.kind is VerdictKind.ERROR
    assert verdict.message.startswith("Invalid signature file m.sgn:")


def test_sign_refuses_non_module(keys):
    with pytest.raises(SigningError, match="not a valid pystap module"):
        sign_module(b"not a module", keys["ed25519"])


def test_naive_now_is_utc(keys, module_bytes, now):
    key = keys["ed25519"]
    sgn = sign_module(module_bytes, key, now=now)
    assert verify(module_bytes, sgn, store_of(key), now.replace(tzinfo=None)).ok
