"""Fuzzing the envelope parser: every input yields a verdict, never an exception.

Random bytes, random JSON shapes and mutations of a valid envelope must end
in ERROR (or the precise verdict for valid-but-wrong input); a mutation may
only be OK if it left the signed statement unchanged.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import pytest
from conftest import make_module, store_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pystap.signing import Verdict, VerdictKind, generate_signing_key, sign_module, verify

NOW = datetime.now(UTC)
MODULE = make_module()
_STATE: dict[str, object] = {}


@pytest.fixture(scope="module", autouse=True)
def _key_dir(tmp_path_factory):
    """One key for the module's examples, in a directory pytest removes."""
    _STATE["dir"] = tmp_path_factory.mktemp("fuzz-key")
    yield
    _STATE.clear()


def _signed():
    if "key" not in _STATE:
        key = generate_signing_key(f"{_STATE['dir']}/k", key_type="ed25519")
        _STATE.update(key=key, sgn=sign_module(MODULE, key, now=NOW), store=store_of(key))
        reference = verify(MODULE, _STATE["sgn"], _STATE["store"], NOW)
        assert reference.ok
        _STATE["statement"] = reference.statement
    return _STATE


def _check(sgn: bytes) -> Verdict:
    state = _signed()
    verdict = verify(MODULE, sgn, state["store"], NOW)
    assert isinstance(verdict, Verdict)
    assert isinstance(verdict.message, str) and verdict.message
    assert "internal error" not in verdict.message, verdict.message
    if verdict.ok:
        assert verdict.statement == state["statement"]
    return verdict


# PYSTAP_FUZZ_EXAMPLES raises the budget for a long run outside the normal suite.
FUZZ = settings(max_examples=int(os.environ.get("PYSTAP_FUZZ_EXAMPLES", "300")), deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes(data):
    assert _check(data).kind in (VerdictKind.ERROR, VerdictKind.UNTRUSTED)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children,
                                                                       max_size=4),
    max_leaves=20,
)


@FUZZ
@given(st.dictionaries(st.sampled_from(["format", "version", "payloadType", "payload", "signatures",
                                        "certificates", "x"]), json_values, max_size=7))
def test_random_envelope_shapes(obj):
    obj.setdefault("format", "pystap-signature")
    _check(json.dumps(obj).encode())


@FUZZ
@given(st.data())
def test_mutations_of_a_valid_envelope(data):
    sgn = bytearray(_signed()["sgn"])
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "delete", "insert", "truncate"]))
        pos = data.draw(st.integers(0, max(len(sgn) - 1, 0)))
        if op == "flip" and sgn:
            sgn[pos] ^= data.draw(st.integers(1, 255))
        elif op == "delete" and sgn:
            del sgn[pos:pos + data.draw(st.integers(1, 16))]
        elif op == "insert":
            sgn[pos:pos] = data.draw(st.binary(min_size=1, max_size=16))
        else:
            del sgn[pos:]
    _check(bytes(sgn))


@FUZZ
@given(st.sampled_from(["payload", "sig", "keyid", "certificates"]), st.data())
def test_field_replacements(field, data):
    obj = json.loads(_signed()["sgn"])
    value = data.draw(json_values)
    if field in ("sig", "keyid"):
        obj["signatures"][0][field] = value
    else:
        obj[field] = value
    _check(json.dumps(obj).encode())
