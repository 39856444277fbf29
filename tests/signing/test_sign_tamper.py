"""Tampering with each region of a signed module, and hostile sizes."""

from __future__ import annotations

import base64
import json

import pytest
from conftest import store_of

from pystap import modfile
from pystap.signing import VerdictKind, sign_module, verify
from pystap.signing import envelope as env_mod


def _edit(sgn: bytes, fn) -> bytes:
    obj = json.loads(sgn)
    fn(obj)
    return json.dumps(obj).encode()


def _flip_b64(text: str, index: int) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[index % len(raw)] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize("where", [0, 100, -2])
def test_module_bytes(key, module_bytes, now, where):
    sgn = sign_module(module_bytes, key, now=now)
    tampered = bytearray(module_bytes)
    tampered[where] ^= 0x01
    assert verify(bytes(tampered), sgn, store_of(key), now).kind is VerdictKind.ALTERED


@pytest.mark.parametrize("index", [0, 20, 200, -1])
def test_statement_bytes(key, module_bytes, now, index):
    sgn = sign_module(module_bytes, key, now=now)
    tampered = _edit(sgn, lambda o: o.__setitem__("payload", _flip_b64(o["payload"], index)))
    assert verify(module_bytes, tampered, store_of(key), now).kind is VerdictKind.ALTERED


def test_statement_privilege_raised(key, module_bytes, now):
    """Rewriting the signed privilege is detected by the signature, before any field check."""
    sgn = sign_module(module_bytes, key, now=now)

    def raise_level(o):
        claims = json.loads(base64.b64decode(o["payload"]))
        claims["privilege"] = "stapdev"
        o["payload"] = base64.b64encode(json.dumps(claims, sort_keys=True).encode()).decode()

    assert verify(module_bytes, _edit(sgn, raise_level), store_of(key), now).kind is VerdictKind.ALTERED


@pytest.mark.parametrize("index", [0, 31, -1])
def test_signature_bytes(key, module_bytes, now, index):
    sgn = sign_module(module_bytes, key, now=now)

    def flip(o):
        o["signatures"][0]["sig"] = _flip_b64(o["signatures"][0]["sig"], index)

    assert verify(module_bytes, _edit(sgn, flip), store_of(key), now).kind is VerdictKind.ALTERED


def test_keyid_pointing_at_another_trusted_key(keys, module_bytes, now):
    signer, other = keys["ed25519"], keys["ml-dsa-65"]
    sgn = sign_module(module_bytes, signer, now=now)

    def repoint(o):
        o["signatures"][0]["keyid"] = other.keyid
        o["certificates"] = []

    verdict = verify(module_bytes, _edit(sgn, repoint), store_of(signer, other), now)
    assert verdict.kind is VerdictKind.ALTERED


def test_embedded_certificate_is_not_trusted(keys, other_keys, module_bytes, now):
    """An attacker's certificate in the file changes nothing: trust comes from the store."""
    attacker = other_keys["ed25519"]
    sgn = sign_module(module_bytes, attacker, now=now)
    assert verify(module_bytes, sgn, store_of(keys["ed25519"]), now).kind is VerdictKind.UNTRUSTED


def test_certificate_of_another_key_is_error(keys, module_bytes, now):
    key, other = keys["ecdsa-p256"], keys["ed25519"]
    sgn = sign_module(module_bytes, key, now=now)
    other_der = base64.b64encode(env_mod.decode(sign_module(module_bytes, other)).certificates[0]).decode()
    swapped = _edit(sgn, lambda o: o.__setitem__("certificates", [other_der]))
    assert verify(module_bytes, swapped, store_of(key), now).kind is VerdictKind.ERROR


@pytest.mark.parametrize("index", [0, 1, 4, -1])
def test_certificate_bytes_corrupted(keys, module_bytes, now, index):
    key = keys["ed25519"]
    sgn = sign_module(module_bytes, key, now=now)

    def corrupt(o):
        der = bytearray(base64.b64decode(o["certificates"][0]))
        der[index] ^= 0xFF
        o["certificates"][0] = base64.b64encode(bytes(der)).decode()

    verdict = verify(module_bytes, _edit(sgn, corrupt), store_of(key), now)
    assert verdict.kind in (VerdictKind.ERROR, VerdictKind.OK)
    assert verdict.kind is VerdictKind.ERROR or verdict.statement["module_sha256"] == modfile.digest(module_bytes)


def test_certificate_may_be_absent(keys, module_bytes, now):
    key = keys["ed25519"]
    sgn = _edit(sign_module(module_bytes, key, now=now), lambda o: o.__setitem__("certificates", []))
    assert verify(module_bytes, sgn, store_of(key), now).ok


@pytest.mark.parametrize("edit", [
    lambda o: o.__setitem__("payloadType", "application/vnd.in-toto+json"),
    lambda o: o.__setitem__("version", 2),
    lambda o: o.__setitem__("version", True),
    lambda o: o.__setitem__("extra", 1),
    lambda o: o.pop("certificates"),
    lambda o: o["signatures"].append(dict(o["signatures"][0])),
    lambda o: o.__setitem__("signatures", []),
    lambda o: o["signatures"][0].__setitem__("keyid", o["signatures"][0]["keyid"].upper()),
    lambda o: o["signatures"][0].__setitem__("sig", "not base64!"),
    lambda o: o.__setitem__("payload", o["payload"] + "="),
])
def test_structural_tampering_is_error(keys, module_bytes, now, edit):
    key = keys["ed25519"]
    sgn = _edit(sign_module(module_bytes, key, now=now), edit)
    assert verify(module_bytes, sgn, store_of(key), now).kind is VerdictKind.ERROR


def test_duplicate_keys_are_error(keys, module_bytes, now):
    key = keys["ed25519"]
    sgn = sign_module(module_bytes, key, now=now)
    doubled = sgn.replace(b'{"certificates"', b'{"version":1,"certificates"', 1)
    assert verify(module_bytes, doubled, store_of(key), now).kind is VerdictKind.ERROR


def test_truncated_everywhere(keys, module_bytes, now):
    key = keys["ecdsa-p256"]
    sgn = sign_module(module_bytes, key, now=now)
    store = store_of(key)
    for cut in range(0, len(sgn) - 1, 7):
        assert verify(module_bytes, sgn[:cut], store, now).kind is VerdictKind.ERROR, cut


def test_oversized_inputs(keys, module_bytes, now):
    key = keys["ed25519"]
    sgn = sign_module(module_bytes, key, now=now)
    store = store_of(key)
    huge_sgn = sgn[:-2] + b" " * env_mod.MAX_SGN_BYTES + b"}\n"
    assert verify(module_bytes, huge_sgn, store, now).kind is VerdictKind.ERROR
    huge_module = b" " * (modfile.MAX_MODULE_BYTES + 1)
    assert verify(huge_module, sgn, store, now).kind is VerdictKind.ERROR
    deep = b"[" * 100_000 + b"]" * 100_000
    assert verify(module_bytes, deep, store, now).kind is VerdictKind.ERROR


def test_reserialised_envelope_still_verifies(keys, module_bytes, now):
    """Only the PAE is signed: whitespace and key order of the JSON do not matter."""
    key = keys["ml-dsa-65"]
    sgn = sign_module(module_bytes, key, now=now)
    pretty = json.dumps(json.loads(sgn), indent=4).encode()
    assert verify(module_bytes, pretty, store_of(key), now).ok


def test_pae_encoding():
    assert env_mod.pae("t", b"body") == b"DSSEv1 1 t 4 body"
