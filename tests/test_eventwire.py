"""EVENTS payloads: schemas, string tables and packed rows round-trip; malformed input is refused."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pystap import eventwire as ew
from pystap.eventwire import BLOCK, JSON_KIND, ROWS, SCHEMA, STRINGS, Decoder, Encoder, WireError

FIELDS = [("$a", "q"), ("$u", "B"), ("$arr", "x3"), ("$name", "c6"), ("comm", "s"), ("$path", "s")]
PACK = struct.Struct(ew.row_format(code for _, code in FIELDS)).pack


def encoder_with_schema(limit: int = 1 << 20) -> Encoder:
    enc = Encoder(limit=limit)
    enc.define(1, 42, FIELDS)
    return enc


def add_row(enc: Encoder, ts: int, a: int, comm: bytes, path: bytes | None) -> None:
    path_index = 0 if path is None else enc.intern(path)
    enc.add((ts, 1, PACK(ts, 10, 1, 11, a, 255, b"\x00\x01\xff", b"ab\0junk", enc.intern(comm), path_index)))


def test_rows_round_trip_with_strings_json_and_order() -> None:
    enc = encoder_with_schema()
    add_row(enc, 5, -1, b"gen\0", b"/etc/x\0")
    enc.json(7, 6, b'{"pid":3,"$b":"x"}')
    add_row(enc, 7, 2, b"gen\0", None)
    (payload,) = enc.payloads()
    events = ew.decode_events([payload])
    assert events == [
        (42, {"$a": -1, "$u": 255, "$arr": "0001ff", "$name": "ab", "comm": "gen", "$path": "/etc/x",
              "pid": 10, "cpu": 1, "tid": 11, "timestamp_ns": 5}),
        (7, {"pid": 3, "$b": "x", "timestamp_ns": 6}),
        (42, {"$a": 2, "$u": 255, "$arr": "0001ff", "$name": "ab", "comm": "gen", "$path": None,
              "pid": 10, "cpu": 1, "tid": 11, "timestamp_ns": 7}),
    ]
    # the schema travels once per connection, the string table once per payload
    add_row(enc, 8, 3, b"gen\0", None)
    (second,) = enc.payloads()
    assert SCHEMA not in _kinds(second) and STRINGS in _kinds(second)
    decoder = Decoder()
    assert [p for p, _ in ew.decode_events([payload, second], decoder)] == [42, 7, 42, 42]


def test_sort_merges_cpus_by_time() -> None:
    enc = encoder_with_schema()
    add_row(enc, 9, 1, b"a\0", None)
    add_row(enc, 3, 2, b"b\0", None)
    enc.json(1, 5, b"{}")
    enc.sort()
    assert [f["timestamp_ns"] for _, f in ew.decode_events(enc.payloads())] == [3, 5, 9]


@given(st.lists(st.tuples(st.integers(0, 2**40), st.integers(-2**63, 2**63 - 1), st.binary(max_size=30)),
                min_size=1, max_size=60),
       st.integers(200, 2000))
def test_split_payloads_keep_every_event_and_stay_under_the_limit(rows, limit) -> None:
    enc = encoder_with_schema(limit)
    for ts, a, comm in rows:
        add_row(enc, ts, a, comm + b"\0", None)
    payloads = enc.payloads()
    decoded = ew.decode_events(payloads)
    assert [(f["timestamp_ns"], f["$a"], f["comm"]) for _, f in decoded] == [
        (ts, a, comm.split(b"\0")[0].decode("utf-8", "replace")) for ts, a, comm in rows]
    table = sum(4 + len(c.split(b"\0")[0]) for c in {c + b"\0" for _, _, c in rows}) + BLOCK.size
    row_size = struct.calcsize(ew.row_format(code for _, code in FIELDS))
    for payload in payloads[1:]:  # the first also carries the schema
        assert len(payload) <= max(limit, table + 2 * BLOCK.size + row_size)


def _kinds(payload: bytes) -> list[int]:
    kinds, offset = [], 0
    while offset < len(payload):
        kind, _, _, length = BLOCK.unpack_from(payload, offset)
        kinds.append(kind)
        offset += BLOCK.size + length
    return kinds


def block(kind: int, sid: int, count: int, body: bytes, length: int | None = None) -> bytes:
    return BLOCK.pack(kind, sid, count, len(body) if length is None else length) + body


SCHEMA_BODY = json.dumps({"probe": 1, "fields": [["comm", "s"], ["$a", "q"]]}).encode()
ROW = struct.Struct(ew.row_format(["s", "q"]))


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x02\x00", "truncated event block header"),
        (block(ROWS, 1, 1, b"x" * 4, length=100), "truncated event block"),
        (block(ROWS, 9, 0, b""), "undefined schema 9"),
        (block(SCHEMA, 1, 0, SCHEMA_BODY) + block(SCHEMA, 1, 0, SCHEMA_BODY), "repeated event schema 1"),
        (block(SCHEMA, 0, 0, SCHEMA_BODY), "bad or repeated event schema 0"),
        (block(SCHEMA, 1, 0, b"\xff{"), "not UTF-8 JSON"),
        (block(SCHEMA, 1, 0, b"[]"), "malformed event schema"),
        (block(SCHEMA, 1, 0, b'{"probe": -1, "fields": []}'), "probe id"),
        (block(SCHEMA, 1, 0, b'{"probe": true, "fields": []}'), "probe id"),
        (block(SCHEMA, 1, 0, b'{"probe": 1, "fields": [["$a", "Z"]]}'), "field"),
        (block(SCHEMA, 1, 0, b'{"probe": 1, "fields": [["$a", "x0"]]}'), "field"),
        (block(SCHEMA, 1, 0, b'{"probe": 1, "fields": [["$a", "c99999"]]}'), "field"),
        (block(SCHEMA, 1, 0, b'{"probe": 1, "fields": [["$a", "q"], ["$a", "q"]]}'), "field"),
        (block(SCHEMA, 1, 0, b'{"probe": 1, "fields": [["pid", "q"]]}'), "field"),
        (block(SCHEMA, 1, 0, b'{"probe": 1, "fields": [["a b", "q"]]}'), "field"),
        (block(SCHEMA, 1, 0, json.dumps({"probe": 1, "fields": [[f"$f{i}", "q"] for i in range(200)]}).encode()),
         "fields"),
        (block(SCHEMA, 1, 0, SCHEMA_BODY) + block(ROWS, 1, 2, ROW.pack(1, 2, 0, 3, 0, 5)),
         "does not match its row count"),
        (block(SCHEMA, 1, 0, SCHEMA_BODY) + block(ROWS, 1, 1, ROW.pack(1, 2, 0, 3, 1, 5)), "missing string"),
        (block(SCHEMA, 1, 0, SCHEMA_BODY) + block(STRINGS, 0, 1, struct.pack("<I", 1) + b"a")
         + block(ROWS, 1, 1, ROW.pack(1, 2, 0, 3, 2, 5)), "missing string"),
        (block(STRINGS, 0, 2, struct.pack("<I", 1) + b"axyz"), "truncated string table"),
        (block(STRINGS, 0, 1, struct.pack("<I", 9) + b"a"), "truncated string table"),
        (block(STRINGS, 0, 1, struct.pack("<I", 1) + b"ab"), "does not match its strings"),
        (block(STRINGS, 0, 10**9, b""), "count exceeds its length"),
        (block(JSON_KIND, 0, 1, ew.JSON_RECORD.pack(1, 2, 3) + b"[1]"), "not a JSON object"),
        (block(JSON_KIND, 0, 1, ew.JSON_RECORD.pack(1, 2, 3) + b"\xff\xfe{"), "not UTF-8 JSON"),
        (block(JSON_KIND, 0, 2, ew.JSON_RECORD.pack(1, 2, 2) + b"{}"), "truncated event record header"),
        (block(JSON_KIND, 0, 1, ew.JSON_RECORD.pack(1, 2, 9) + b"{}"), "truncated event record"),
        (block(JSON_KIND, 0, 1, ew.JSON_RECORD.pack(1, 2, 2) + b"{}  "), "does not match its records"),
        (block(77, 0, 0, b""), "unknown event block kind 77"),
    ],
)
def test_malformed_payloads_are_refused(payload: bytes, message: str) -> None:
    with pytest.raises(WireError, match=message):
        Decoder().decode(payload)


def test_schema_count_is_bounded() -> None:
    decoder = Decoder()
    for sid in range(1, ew.MAX_SCHEMAS + 1):
        decoder.decode(block(SCHEMA, sid, 0, SCHEMA_BODY))
    with pytest.raises(WireError, match="too many"):
        decoder.decode(block(SCHEMA, ew.MAX_SCHEMAS + 1, 0, SCHEMA_BODY))


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_escape_as_other_errors(data: bytes) -> None:
    decoder = Decoder()
    decoder.decode(block(SCHEMA, 1, 0, SCHEMA_BODY))
    try:
        ew.decode_events([data], decoder)
    except WireError:
        pass


def test_encoder_refuses_what_the_decoder_would() -> None:
    enc = Encoder()
    with pytest.raises(ValueError):
        enc.define(1, 1, [("$a", "x5000")])
    enc.define(1, 1, [("$a", "q")])
    with pytest.raises(ValueError):
        enc.define(1, 1, [("$a", "q")])


@pytest.mark.parametrize(("kernel", "wire"), [("comm", "comm"), ("retval", "$return"), ("v_who", "$who"),
                                              ("arg1", "$arg1"), ("__probe_ip", None), ("_pid", None)])
def test_field_names(kernel: str, wire: str | None) -> None:
    assert ew.field_name(kernel) == wire


def test_eventwire_needs_only_the_standard_library() -> None:
    """pystapd (root) and the client (the user) both load it: it must pull in nothing else."""
    import subprocess
    import sys

    code = "import sys, pystap.eventwire; print(' '.join(m for m in sys.modules if m.startswith('pystap')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert sorted(out.split()) == ["pystap", "pystap.eventwire"]
