"""The body of an EVENTS frame: kernel probe records, packed per probe schema.

A library below everyone (standard library only): pystapd's reader encodes
with it, the client decodes with it, and neither imports the other.

Most probes fire with the same fields every time (a uprobe's fetch
arguments, a tracepoint's format), so those fields are described once, in a
*schema*, and each hit travels as a fixed-size little-endian row: no names,
no JSON, and the client unpacks a whole block of rows in one call
(``struct.iter_unpack``).  Strings (``comm``, ``user_string`` captures)
travel as indexes into the frame's string table, so a string repeated by
every hit is sent once per frame.  Records without a schema (tracepoints
whose fields are computed per event) keep the self-describing form: one
JSON object each.

An EVENTS payload is a sequence of blocks, each ``BLOCK`` (kind: u8,
schema: u16, count: u32, length: u32, big-endian) then ``length`` bytes:

* ``SCHEMA`` (3): defines schema ``schema`` for the rest of the connection
  (each id once): a JSON object ``{"probe": ID, "fields": [[NAME, CODE],
  ...]}``; ``count`` is 0.  CODE is an integer type (``b B h H i I q Q``),
  ``s`` (a string: u32 index into the string table, 0 = none), ``cN``
  (``char[N]``, NUL-terminated text) or ``xN`` (``N`` bytes, given to the
  handler as hex).
* ``STRINGS`` (4): the string table of the rest of this payload: ``count``
  times (u32 length, UTF-8 bytes); index 1 is the first.
* ``ROWS`` (2): ``count`` rows of schema ``schema``: each ``timestamp_ns``
  (u64), ``pid`` (i32), ``cpu`` (u16), ``tid`` (i32), then the schema's
  fields in order; ``length`` is exactly ``count`` times the row size.
* ``JSON`` (1): ``count`` records of probe id (u32), timestamp (u64),
  length (u32) and a UTF-8 JSON object of the event's fields.

The decoder checks every length, count, index and schema reference before
it uses it; anything inconsistent is a :class:`WireError` (never an
``IndexError``/``struct.error`` escaping to the caller).
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Callable, Iterable
from itertools import groupby
from operator import itemgetter
from typing import Any

BLOCK = struct.Struct(">BHII")
JSON_RECORD = struct.Struct(">IQI")
U32_LE = struct.Struct("<I")
JSON_KIND, ROWS, SCHEMA, STRINGS = 1, 2, 3, 4
ROW_HEAD = "<QiHi"  # timestamp_ns, pid, cpu, tid
CONTEXT_FIELDS = 4
MAX_SCHEMAS = 4096  # per connection: one per kernel event type of a session (bounded by the manifest)
MAX_SCHEMA_FIELDS = 128
MAX_SCHEMA_BYTES = 64 * 1024
MAX_NAME = 128
MAX_FIXED = 4096  # cN / xN sizes
MAX_PROBE_ID = (1 << 31) - 1
INT_CODES = frozenset("bBhHiIqQ")
_CODE = re.compile(r"[bBhHiIqQs]|[cx][1-9][0-9]{0,3}")
_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]{0,127}")
_RESERVED = frozenset({"pid", "tid", "cpu", "timestamp_ns"})


_first, _second, _third = itemgetter(0), itemgetter(1), itemgetter(2)


class WireError(ValueError):
    """A malformed EVENTS payload (the message says what is wrong)."""


def row_format(codes: Iterable[str]) -> str:
    """The ``struct`` format of one row of a schema with these field codes."""
    parts = [ROW_HEAD]
    for code in codes:
        if code == "s":
            parts.append("I")
        elif code[0] in "cx":
            parts.append(code[1:] + "s")
        else:
            parts.append(code)
    return "".join(parts)


def field_name(kernel_name: str) -> str | None:
    """The handler's name of a decoded kernel field (None: internal, never sent).

    ``comm`` stays ``comm``; ``retval`` is ``$return``; ``v_NAME`` (a
    target variable the translator had to rename) and every other field
    become ``$NAME``, which is how the handler code reads target variables.
    """
    if kernel_name.startswith("_"):
        return None
    if kernel_name == "comm":
        return "comm"
    if kernel_name == "retval":
        return "$return"
    return "$" + (kernel_name[2:] if kernel_name.startswith("v_") else kernel_name)


# ---------------------------------------------------------------------------------------- encoding


class Encoder:
    """Turns one read's events, in time order, into EVENTS payloads.

    ``add((timestamp, schema_id, packed))`` adds a packed row, ``intern(raw)`` gives the
    string index of a (NUL-terminated) kernel string, ``json(probe_id, ts,
    data)`` adds a self-describing record; :meth:`payloads` closes the read.
    A schema must be :meth:`define`-d before its first row; its definition
    is sent once, in front of the first payload that uses it.  Payloads stay
    under ``limit`` bytes (a read that does not fit is split; each part
    carries the string table).
    """

    def __init__(self, limit: int = 1 << 20) -> None:
        self.limit = limit
        self._defs: dict[int, bytes] = {}
        self._pending_defs: list[int] = []
        self._items: list[tuple[int, int, bytes]] = []  # (timestamp, schema id or 0 for JSON, bytes)
        self._strings: dict[bytes, int] = {}
        self._table: list[bytes] = []
        self.add = self._items.append
        self.interned = self._strings.get  # the index of a string already in this read's table

    def define(self, schema_id: int, probe_id: int, fields: list[tuple[str, str]]) -> None:
        if not 0 < schema_id < 1 << 16 or schema_id in self._defs:
            raise ValueError(f"bad or repeated schema id {schema_id}")
        body = json.dumps({"probe": probe_id, "fields": [list(f) for f in fields]},
                          separators=(",", ":")).encode()
        check_schema(json.loads(body))  # what the client will refuse, refused here first
        self._defs[schema_id] = body
        self._pending_defs.append(schema_id)

    def intern(self, raw: bytes) -> int:
        """The table index of a kernel string (its bytes up to the first NUL)."""
        index = self._strings.get(raw)
        if index is None:
            text = raw.split(b"\0", 1)[0]
            self._table.append(text)
            index = self._strings[raw] = len(self._table)
        return index

    def json(self, probe_id: int, timestamp: int, data: bytes) -> None:
        self._items.append((timestamp, 0, JSON_RECORD.pack(probe_id, timestamp, len(data)) + data))

    def sort(self) -> None:
        """Put what was added in time order (events read from several CPUs)."""
        self._items.sort(key=_first)

    def __len__(self) -> int:
        return len(self._items)

    def payloads(self) -> list[bytes]:
        """The EVENTS payloads of everything added since the last call (possibly none)."""
        items = self._items
        if not items:
            return []
        table = b"".join(U32_LE.pack(len(s)) + s for s in self._table)
        head = [BLOCK.pack(STRINGS, 0, len(self._table), len(table)), table] if self._table else []
        head_size = sum(len(b) for b in head)
        out: list[bytes] = []
        parts: list[bytes] = []
        for sid in self._pending_defs:
            body = self._defs[sid]
            parts += (BLOCK.pack(SCHEMA, sid, 0, len(body)), body)
        self._pending_defs = []
        parts += head
        size = sum(len(b) for b in parts)
        limit = self.limit - BLOCK.size
        for sid, group in groupby(items, key=_second):
            rows = list(map(_third, group))
            kind = JSON_KIND if sid == 0 else ROWS
            while rows:
                total = sum(map(len, rows))
                take = len(rows)
                if size + total > limit:  # split: as many as fit (at least one, in a fresh payload)
                    take, room = 0, limit - size
                    while take < len(rows) and len(rows[take]) <= room:
                        room -= len(rows[take])
                        take += 1
                    if take == 0 and size > head_size:
                        out.append(b"".join(parts))
                        parts, size = list(head), head_size
                        continue
                    take = max(take, 1)
                    total = sum(map(len, rows[:take]))
                parts.append(BLOCK.pack(kind, sid, take, total))
                parts += rows[:take]
                size += BLOCK.size + total
                del rows[:take]
        if size > head_size:
            out.append(b"".join(parts))
        items.clear()
        self._strings.clear()
        self._table.clear()
        return out


# ---------------------------------------------------------------------------------------- decoding


def check_schema(obj: Any) -> tuple[int, list[tuple[str, str]]]:
    """``(probe id, [(name, code)])`` of a schema definition, or :class:`WireError`."""
    if not isinstance(obj, dict) or set(obj) != {"probe", "fields"}:
        raise WireError("malformed event schema")
    probe, fields = obj["probe"], obj["fields"]
    if isinstance(probe, bool) or not isinstance(probe, int) or not 0 <= probe <= MAX_PROBE_ID:
        raise WireError("malformed event schema (probe id)")
    if not isinstance(fields, list) or len(fields) > MAX_SCHEMA_FIELDS:
        raise WireError("malformed event schema (fields)")
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for f in fields:
        if (not isinstance(f, list) or len(f) != 2 or not all(isinstance(x, str) for x in f)
                or not _NAME.fullmatch(f[0]) or not _CODE.fullmatch(f[1])
                or f[0] in seen or f[0] in _RESERVED):
            raise WireError("malformed event schema (field)")
        if f[1][0] in "cx" and int(f[1][1:]) > MAX_FIXED:
            raise WireError("malformed event schema (field size)")
        seen.add(f[0])
        out.append((f[0], f[1]))
    return probe, out


class Schema:
    """A decoded schema: how rows become the handler's ``fields``."""

    __slots__ = ("fields_of", "probe_id", "size", "strings", "unpack")

    def __init__(self, probe_id: int, fields: list[tuple[str, str]]) -> None:
        self.probe_id = probe_id
        st = struct.Struct(row_format(code for _, code in fields))
        self.size = st.size
        self.unpack = st.iter_unpack
        # Columns holding string indexes (checked per block against its table).
        self.strings = tuple(CONTEXT_FIELDS + i for i, (_, code) in enumerate(fields) if code == "s")
        self.fields_of = _fields_builder(fields)


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace")


Builder = Callable[[tuple[Any, ...], tuple[Any, ...]], dict[str, Any]]


def _fields_builder(fields: list[tuple[str, str]]) -> Builder:
    """``build(row, strings) -> fields``: the dict the handler reads, made only when it reads one."""
    names = tuple(name for name, _ in fields)
    plain = all(code in INT_CODES for _, code in fields)
    converts = tuple((name, CONTEXT_FIELDS + i, code[0]) for i, (name, code) in enumerate(fields)
                     if code not in INT_CODES)

    def build(row: tuple[Any, ...], strings: tuple[Any, ...]) -> dict[str, Any]:
        out = dict(zip(names, row[CONTEXT_FIELDS:]))  # noqa: B905 - row length fixed by the struct
        out["pid"], out["cpu"], out["tid"], out["timestamp_ns"] = row[1], row[2], row[3], row[0]
        if plain:
            return out
        for name, col, kind in converts:
            value = row[col]
            if kind == "s":
                out[name] = strings[value]  # checked when the block was decoded
            elif kind == "c":
                out[name] = _text(value)
            else:
                out[name] = value.hex()
        return out

    return build


class Rows:
    """One ROWS block, decoded: ``rows`` are tuples (timestamp, pid, cpu, tid, fields...);
    ``fields(row)`` is the handler's dict for one of them."""

    __slots__ = ("probe_id", "rows", "schema", "strings")

    def __init__(self, schema: Schema, rows: list[tuple[Any, ...]], strings: tuple[Any, ...]) -> None:
        self.schema = schema
        self.probe_id = schema.probe_id
        self.rows = rows
        self.strings = strings

    def fields(self, row: tuple[Any, ...]) -> dict[str, Any]:
        return self.schema.fields_of(row, self.strings)

    def __len__(self) -> int:
        return len(self.rows)


Event = tuple[int, dict[str, Any]]


class Decoder:
    """The client's side: remembers the connection's schemas, decodes payloads strictly."""

    def __init__(self) -> None:
        self.schemas: dict[int, Schema] = {}

    def decode(self, payload: bytes) -> list[Event | Rows]:
        """The payload's events, in order: ``(probe_id, fields)`` pairs and :class:`Rows` blocks."""
        out: list[Event | Rows] = []
        strings: tuple[Any, ...] = (None,)
        view = memoryview(payload)
        offset, end = 0, len(payload)
        while offset < end:
            if offset + BLOCK.size > end:
                raise WireError("truncated event block header")
            kind, sid, count, length = BLOCK.unpack_from(payload, offset)
            offset += BLOCK.size
            if length > end - offset:
                raise WireError("truncated event block")
            body = view[offset:offset + length]
            offset += length
            if kind == ROWS:
                schema = self.schemas.get(sid)
                if schema is None:
                    raise WireError(f"event block of undefined schema {sid}")
                if count * schema.size != length:
                    raise WireError("event block length does not match its row count")
                rows = list(schema.unpack(body))
                for col in schema.strings:
                    if rows and max(map(itemgetter(col), rows)) >= len(strings):
                        raise WireError("event row refers to a missing string")
                out.append(Rows(schema, rows, strings))
            elif kind == JSON_KIND:
                out.extend(_json_records(body, count))
            elif kind == STRINGS:
                strings = _string_table(body, count)
            elif kind == SCHEMA:
                if sid == 0 or sid in self.schemas or count != 0:
                    raise WireError(f"bad or repeated event schema {sid}")
                if len(self.schemas) >= MAX_SCHEMAS or length > MAX_SCHEMA_BYTES:
                    raise WireError("too many or too large event schemas")
                try:
                    obj = json.loads(bytes(body))
                except (ValueError, RecursionError):
                    raise WireError("malformed event schema (not UTF-8 JSON)") from None
                self.schemas[sid] = Schema(*check_schema(obj))
            else:
                raise WireError(f"unknown event block kind {kind}")
        return out


def _string_table(body: memoryview, count: int) -> tuple[Any, ...]:
    table: list[Any] = [None]
    pos, end = 0, len(body)
    if count > end // 4:
        raise WireError("string table count exceeds its length")
    for _ in range(count):
        if pos + 4 > end:
            raise WireError("truncated string table")
        (size,) = U32_LE.unpack_from(body, pos)
        pos += 4
        if size > end - pos:
            raise WireError("truncated string table")
        table.append(bytes(body[pos:pos + size]).decode("utf-8", errors="replace"))
        pos += size
    if pos != end:
        raise WireError("string table length does not match its strings")
    return tuple(table)


def _json_records(body: memoryview, count: int) -> list[Event]:
    out: list[Event] = []
    loads = json.loads
    pos, end = 0, len(body)
    for _ in range(count):
        if pos + JSON_RECORD.size > end:
            raise WireError("truncated event record header")
        probe_id, timestamp, size = JSON_RECORD.unpack_from(body, pos)
        pos += JSON_RECORD.size
        if size > end - pos:
            raise WireError("truncated event record")
        try:  # json.loads takes the UTF-8 bytes as they are
            fields = loads(bytes(body[pos:pos + size])) if size else {}
        except (ValueError, RecursionError):
            raise WireError("malformed event record (not UTF-8 JSON)") from None
        if not isinstance(fields, dict):
            raise WireError("malformed event record (not a JSON object)")
        fields.setdefault("timestamp_ns", timestamp)
        out.append((probe_id, fields))
        pos += size
    if pos != end:
        raise WireError("event block length does not match its records")
    return out


def decode_events(payloads: Iterable[bytes], decoder: Decoder | None = None) -> list[Event]:
    """Every event of ``payloads`` as ``(probe_id, fields)`` pairs, rows included (tests, tools)."""
    decoder = decoder or Decoder()
    out: list[Event] = []
    for payload in payloads:
        for item in decoder.decode(payload):
            if isinstance(item, Rows):
                out.extend((item.probe_id, item.fields(row)) for row in item.rows)
            else:
                out.append(item)
    return out
