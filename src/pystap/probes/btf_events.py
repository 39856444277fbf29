"""Tracepoint fields from the kernel's BTF, for translators that cannot read tracefs.

``kernel.trace("sched:sched_process_exec")`` needs the event's fields at
pass 2 (``$filename`` is a string, ``$pid`` a long).  tracefs publishes them
in ``events/SYS/EVENT/format``, but tracefs is root-only (often not even
mounted), and the translator runs as the invoking user.
``/sys/kernel/btf/vmlinux`` is world-readable and describes every event's
record as ``struct trace_event_raw_<event class>``: members after the
common ``ent`` header are the fields, ``__data_loc_<name>`` members are
the dynamic strings the format file shows as ``__data_loc char[] name``.

An event whose class has another name than the event (``DEFINE_EVENT``
instances) is not found this way; the error says so and names tracefs as
the remedy.  The root side re-reads the real ``format`` file when it
installs the probe, so a difference can only make a probe fail to install,
never read the wrong bytes.  (A separate reader from ``pystap.kernel.btf``:
the translator does not import the root side.)
"""

from __future__ import annotations

import struct

VMLINUX = "/sys/kernel/btf/vmlinux"
MAGIC = 0xEB9F
MAX_BYTES = 64 << 20
KIND_INT, KIND_PTR, KIND_ARRAY, KIND_STRUCT, KIND_UNION, KIND_ENUM = 1, 2, 3, 4, 5, 6
KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG, KIND_ENUM64 = 8, 9, 10, 11, 18, 19
_MODIFIERS = (KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG)
# Bytes after the 12-byte common header, per kind: (fixed, per vlen entry).
_EXTRA: dict[int, tuple[int, int]] = {
    1: (4, 0), 2: (0, 0), 3: (12, 0), 4: (0, 12), 5: (0, 12), 6: (0, 8), 7: (0, 0), 8: (0, 0), 9: (0, 0),
    10: (0, 0), 11: (0, 0), 12: (0, 0), 13: (0, 8), 14: (4, 0), 15: (0, 12), 16: (0, 0), 17: (4, 0),
    18: (0, 0), 19: (0, 12),
}
STRUCT_PREFIX = "trace_event_raw_"
DATA_LOC_PREFIX = "__data_loc_"


class BtfEventError(ValueError):
    """BTF is unreadable or does not describe the event; the message is for the user."""


class _Types:
    """The type table of one BTF blob, indexed by type id (records kept as raw offsets)."""

    def __init__(self, blob: bytes) -> None:
        if len(blob) < 24:
            raise BtfEventError("BTF blob too short")
        magic, _version, _flags, hdr_len = struct.unpack_from("<HBBI", blob, 0)
        if magic != MAGIC:
            raise BtfEventError("not a BTF blob (bad magic)")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", blob, 8)
        start, self.strings_at = hdr_len + type_off, hdr_len + str_off
        if start + type_len > len(blob) or self.strings_at + str_len > len(blob):
            raise BtfEventError("BTF sections out of bounds")
        self.blob = blob
        self.str_end = self.strings_at + str_len
        self.records: list[int] = [0]  # type id 0 is void
        pos, end = start, start + type_len
        while pos + 12 <= end:
            info = struct.unpack_from("<I", blob, pos + 4)[0]
            kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
            extra = _EXTRA.get(kind)
            if extra is None:
                raise BtfEventError(f"unknown BTF kind {kind}")
            self.records.append(pos)
            pos += 12 + extra[0] + extra[1] * vlen
        if pos != end:
            raise BtfEventError("BTF type section is truncated")

    def name(self, off: int) -> str:
        at = self.strings_at + off
        if at >= self.str_end:
            raise BtfEventError("BTF string offset out of bounds")
        stop = self.blob.find(b"\0", at, self.str_end)
        return self.blob[at:stop if stop >= 0 else self.str_end].decode("latin-1")

    def header(self, tid: int) -> tuple[int, int, int, int, int]:
        """(record offset, name offset, kind, vlen, size-or-type)."""
        if not 0 < tid < len(self.records):
            raise BtfEventError(f"BTF type id {tid} out of range")
        pos = self.records[tid]
        name_off, info, size = struct.unpack_from("<III", self.blob, pos)
        return pos, name_off, (info >> 24) & 0x1F, info & 0xFFFF, size

    def find_struct(self, name: str) -> int | None:
        want = name.encode("latin-1")
        for tid in range(1, len(self.records)):
            _, name_off, kind, _, _ = self.header(tid)
            if kind == KIND_STRUCT:
                at = self.strings_at + name_off
                if self.blob[at:at + len(want) + 1] == want + b"\0":
                    return tid
        return None

    def members(self, tid: int) -> list[tuple[str, int]]:
        pos, _, _, vlen, _ = self.header(tid)
        out = []
        for i in range(vlen):
            name_off, mtype, _offset = struct.unpack_from("<III", self.blob, pos + 12 + 12 * i)
            out.append((self.name(name_off), mtype))
        return out

    def resolve(self, tid: int) -> tuple[int, int]:
        """(kind, type id) after typedefs and qualifiers."""
        for _ in range(32):
            if tid == 0:
                return 0, 0
            _, _, kind, _, ref = self.header(tid)
            if kind not in _MODIFIERS:
                return kind, tid
            tid = ref
        raise BtfEventError("BTF typedef chain too long")

    def is_char_array(self, tid: int) -> bool:
        kind, tid = self.resolve(tid)
        if kind != KIND_ARRAY:
            return False
        pos = self.header(tid)[0]
        elem = struct.unpack_from("<I", self.blob, pos + 12)[0]
        ekind, etid = self.resolve(elem)
        if ekind != KIND_INT:
            return False
        _, name_off, _, _, size = self.header(etid)
        return size == 1 and "char" in self.name(name_off)


_CACHE: dict[str, _Types] = {}


def _types(path: str) -> _Types:
    types = _CACHE.get(path)
    if types is None:
        try:
            with open(path, "rb") as f:
                blob = f.read(MAX_BYTES + 1)
        except OSError as exc:
            raise BtfEventError(f"cannot read kernel BTF {path}: {exc.strerror}") from None
        if len(blob) > MAX_BYTES:
            raise BtfEventError(f"kernel BTF {path} is too large")
        types = _CACHE[path] = _Types(blob)
    return types


def event_fields(event: str, path: str = VMLINUX) -> dict[str, str] | None:
    """``{field: "string" | "long"}`` of tracepoint ``event`` from BTF; None when BTF has no record
    struct of that name (an event defined from a differently named class)."""
    types = _types(path)
    tid = types.find_struct(STRUCT_PREFIX + event)
    if tid is None:
        return None
    fields: dict[str, str] = {}
    for name, mtype in types.members(tid):
        if name in ("ent", "__data") or not name:
            continue
        if name.startswith(DATA_LOC_PREFIX):
            fields[name[len(DATA_LOC_PREFIX):]] = "string"
        elif types.is_char_array(mtype):
            fields[name] = "string"
        else:
            fields[name] = "long"
    return fields
