"""The ``.sgn`` file: a versioned, DSSE-style signature envelope.

Layout (canonical JSON: sorted keys, ASCII, no insignificant whitespace, one
trailing newline)::

    {"certificates": ["<base64 DER of the signer's certificate>"],
     "format": "pystap-signature",
     "payload": "<base64 of the canonical JSON statement>",
     "payloadType": "application/vnd.pystap.module-statement+json",
     "signatures": [{"keyid": "<sha256 hex of the signer's SPKI>", "sig": "<base64>"}],
     "version": 1}

What is signed is DSSE's pre-authentication encoding of the payload type and
payload (:func:`pae`), never the JSON around it, so the envelope can be
re-serialised without breaking signatures and the type cannot be swapped.
Version 1 carries exactly one signature and at most one certificate; the
certificate is informational (it lets an administrator see *who* signed) and is
never trusted because it is there.

:func:`decode` is the parser of hostile input: bounded sizes, ASCII only,
strict base64, no duplicate keys, no unknown keys, exact types.  Every failure
is an :class:`EnvelopeError` with a short reason.
"""

from __future__ import annotations

import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from pystap import modfile

FORMAT = "pystap-signature"
VERSION = 1
PAYLOAD_TYPE = "application/vnd.pystap.module-statement+json"
MAX_SGN_BYTES = 256 * 1024
MAX_PAYLOAD_BYTES = 16 * 1024
MAX_SIGNATURE_BYTES = 8 * 1024
MAX_CERT_DER_BYTES = 32 * 1024
_KEYS = {"format", "version", "payloadType", "payload", "signatures", "certificates"}
_HEX64 = re.compile(r"[0-9a-f]{64}")


class EnvelopeError(ValueError):
    """The bytes are not a well-formed signature envelope."""


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    keyid: str
    signature: bytes
    certificates: tuple[bytes, ...] = ()


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: ``DSSEv1 SP len SP type SP len SP body``."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def encode(envelope: Envelope) -> bytes:
    obj = {
        "format": FORMAT,
        "version": VERSION,
        "payloadType": envelope.payload_type,
        "payload": _b64(envelope.payload),
        "signatures": [{"keyid": envelope.keyid, "sig": _b64(envelope.signature)}],
        "certificates": [_b64(c) for c in envelope.certificates],
    }
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii") + b"\n"


def parse_json(data: bytes, what: str) -> Any:
    """Strict JSON: ASCII, no duplicate keys, no NaN/Infinity, bounded nesting."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise EnvelopeError(f"{what} is not ASCII JSON") from None
    try:
        return modfile.strict_json(text)
    except modfile.StrictJsonError as exc:
        raise EnvelopeError(str(exc)) from None
    except (ValueError, RecursionError) as exc:
        raise EnvelopeError(f"{what} is not valid JSON ({type(exc).__name__})") from None


def _b64decode(value: Any, what: str, limit: int) -> bytes:
    if not isinstance(value, str) or not value:
        raise EnvelopeError(f"{what} must be a non-empty base64 string")
    if len(value) > (limit * 4) // 3 + 4:
        raise EnvelopeError(f"{what} is too large")
    try:
        return binascii.a2b_base64(value.encode("ascii"), strict_mode=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise EnvelopeError(f"{what} is not valid base64") from None


def decode(data: bytes) -> Envelope:
    """Parse ``.sgn`` bytes; raise :class:`EnvelopeError` if they are not a v1 envelope."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise EnvelopeError("signature data must be bytes")
    data = bytes(data)
    if not data.strip():
        raise EnvelopeError("the signature file is empty")
    if len(data) > MAX_SGN_BYTES:
        raise EnvelopeError(f"the signature file is too large ({len(data)} bytes, limit {MAX_SGN_BYTES})")
    obj = parse_json(data, "the signature file")
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise EnvelopeError("not a pystap signature (missing format marker)")
    version = obj.get("version")
    if type(version) is not int:
        raise EnvelopeError("'version' must be an integer")
    if version != VERSION:
        raise EnvelopeError(f"unsupported signature version {version} (this pystap reads version {VERSION})")
    extra = sorted(set(obj) - _KEYS)
    if extra:
        raise EnvelopeError(f"unknown key '{extra[0]}'")
    missing = sorted(_KEYS - set(obj))
    if missing:
        raise EnvelopeError(f"missing '{missing[0]}'")
    payload_type = obj["payloadType"]
    if payload_type != PAYLOAD_TYPE:
        raise EnvelopeError(f"unsupported payload type {str(payload_type)[:80]!r}")
    payload = _b64decode(obj["payload"], "'payload'", MAX_PAYLOAD_BYTES)
    signatures = obj["signatures"]
    if not isinstance(signatures, list) or len(signatures) != 1:
        raise EnvelopeError("'signatures' must hold exactly one signature in version 1")
    entry = signatures[0]
    if not isinstance(entry, dict) or set(entry) != {"keyid", "sig"}:
        raise EnvelopeError("a signature must be an object with exactly 'keyid' and 'sig'")
    keyid = entry["keyid"]
    if not isinstance(keyid, str) or not _HEX64.fullmatch(keyid):
        raise EnvelopeError("'keyid' must be 64 lowercase hex digits (SHA-256 of the signer's key)")
    signature = _b64decode(entry["sig"], "'sig'", MAX_SIGNATURE_BYTES)
    certs_raw = obj["certificates"]
    if not isinstance(certs_raw, list) or len(certs_raw) > 1:
        raise EnvelopeError("'certificates' must be a list of at most one certificate")
    certs = tuple(_b64decode(c, "certificate", MAX_CERT_DER_BYTES) for c in certs_raw)
    return Envelope(PAYLOAD_TYPE, payload, keyid, signature, certs)
