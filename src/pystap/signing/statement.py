"""The signed statement: what a signer asserts about one module.

The statement binds the module bytes (SHA-256) to the facts a loader decides
on — privilege level, name, script digest, translator, target kernel release
and architecture — and to a validity window and the signer's key id, so a
signature cannot be replayed for another module, another level or forever
(SystemTap signed bare bytes; spec §9.2).  It is canonical JSON (sorted keys,
compact, ASCII) so the same facts always give the same bytes.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from pystap.modfile import Module
from pystap.privilege import LEVEL_NAMES
from pystap.signing.envelope import EnvelopeError, parse_json

TYPE = "pystap-module-statement"
VERSION = 1
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
MAX_TEXT = 1024
_HEX64 = re.compile(r"[0-9a-f]{64}")
_STRINGS = ("name", "script_digest", "translator", "release", "arch")
_FIELDS = {
    "type", "version", "module_sha256", "privilege", *_STRINGS, "issued_at", "expires_at", "keyid",
}


def format_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime(TIME_FORMAT)


_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z", re.ASCII)


def parse_time(text: str) -> datetime:
    """``TIME_FORMAT`` exactly (two-digit fields, ``Z``); ``ValueError`` otherwise.

    Not ``strptime``: it is laxer (one-digit fields) and its first use imports
    ``_strptime``, a cost every cached ``pystap`` run would pay when it checks
    the module's signature.
    """
    match = _TIME.fullmatch(text)
    if match is None:
        raise ValueError(f"time {text[:40]!r} is not in the form 2026-01-31T12:00:00Z")
    year, month, day, hour, minute, second = (int(g) for g in match.groups())
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def build(
    module: Module, module_sha256: str, keyid: str, issued_at: datetime, expires_at: datetime
) -> dict[str, Any]:
    return {
        "type": TYPE,
        "version": VERSION,
        "module_sha256": module_sha256,
        "privilege": module.privilege,
        "name": module.name,
        "script_digest": module.script_digest,
        "translator": module.translator,
        "release": module.release,
        "arch": module.arch,
        "issued_at": format_time(issued_at),
        "expires_at": format_time(expires_at),
        "keyid": keyid,
    }


def encode(statement: dict[str, Any]) -> bytes:
    return json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def decode(payload: bytes) -> dict[str, Any]:
    """Validate a statement; :class:`EnvelopeError` for anything unexpected."""
    obj = parse_json(payload, "the signed statement")
    if not isinstance(obj, dict):
        raise EnvelopeError("the signed statement must be an object")
    if obj.get("type") != TYPE:
        raise EnvelopeError("the signed statement has the wrong type")
    if type(obj.get("version")) is not int or obj["version"] != VERSION:
        raise EnvelopeError(f"unsupported statement version {obj.get('version')!r}")
    if set(obj) != _FIELDS:
        odd = sorted(set(obj) ^ _FIELDS)[0]
        raise EnvelopeError(f"the signed statement has a missing or unknown field '{odd}'")
    for key in ("module_sha256", "keyid"):
        if not isinstance(obj[key], str) or not _HEX64.fullmatch(obj[key]):
            raise EnvelopeError(f"'{key}' in the signed statement must be 64 lowercase hex digits")
    if obj["privilege"] not in LEVEL_NAMES:
        raise EnvelopeError("invalid privilege in the signed statement")
    for key in _STRINGS:
        if not isinstance(obj[key], str) or len(obj[key]) > MAX_TEXT:
            raise EnvelopeError(f"'{key}' in the signed statement must be a short string")
    for key in ("issued_at", "expires_at"):
        try:
            if not isinstance(obj[key], str):
                raise ValueError(key)
            parse_time(obj[key])
        except ValueError:
            raise EnvelopeError(f"'{key}' in the signed statement must be a UTC time like "
                                "2026-01-31T12:00:00Z") from None
    return obj
