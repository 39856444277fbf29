"""A minimal pure-Python BTF reader: struct member offsets from ``/sys/kernel/btf/vmlinux``.

The euid gate reads ``current->cred->euid`` with ``bpf_probe_read_kernel``,
so it needs two offsets that change with every kernel build.  BTF is the
kernel's own description of its types, always present with
``CONFIG_DEBUG_INFO_BTF``; reading it here avoids kernel headers, clang and
libbpf.  Only what the gate needs is implemented: walk the type records,
find named structs, return member byte offsets.  Every length is checked
against the blob: the file is large and its format is the kernel's.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

VMLINUX = "/sys/kernel/btf/vmlinux"
MAGIC = 0xEB9F
MAX_BYTES = 64 << 20

KIND_STRUCT, KIND_UNION = 4, 5
# Bytes that follow the 12-byte common header, per kind: (fixed, per vlen entry).
_EXTRA: dict[int, tuple[int, int]] = {
    1: (4, 0), 2: (0, 0), 3: (12, 0), 4: (0, 12), 5: (0, 12), 6: (0, 8), 7: (0, 0), 8: (0, 0), 9: (0, 0),
    10: (0, 0), 11: (0, 0), 12: (0, 0), 13: (0, 8), 14: (4, 0), 15: (0, 12), 16: (0, 0), 17: (4, 0),
    18: (0, 0), 19: (0, 12),
}


class BtfError(ValueError):
    """The BTF blob is missing, malformed, or lacks what we need."""


@dataclass(frozen=True)
class CredOffsets:
    """Byte offsets for ``task_struct.cred``, ``cred.uid`` and ``cred.euid``."""

    task_cred: int
    cred_uid: int
    cred_euid: int


def struct_members(blob: bytes, wanted: set[str]) -> dict[str, dict[str, int]]:
    """``{struct name: {member: byte offset}}`` for the named structs in a BTF blob."""
    if len(blob) < 24:
        raise BtfError("BTF blob too short")
    magic, _version, _flags, hdr_len = struct.unpack_from("<HBBI", blob, 0)
    if magic != MAGIC:
        raise BtfError("not a BTF blob (bad magic)")
    type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", blob, 8)
    types_start = hdr_len + type_off
    strings_start = hdr_len + str_off
    if types_start + type_len > len(blob) or strings_start + str_len > len(blob):
        raise BtfError("BTF sections out of bounds")
    strings = blob[strings_start:strings_start + str_len]

    def name(off: int) -> str:
        if off >= len(strings):
            raise BtfError("BTF string offset out of bounds")
        end = strings.find(b"\0", off)
        return strings[off:end if end >= 0 else len(strings)].decode("ascii", "replace")

    found: dict[str, dict[str, int]] = {}
    pos, end = types_start, types_start + type_len
    while pos + 12 <= end and len(found) < len(wanted):
        name_off, info, _size = struct.unpack_from("<III", blob, pos)
        kind = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        kind_flag = info >> 31
        extra = _EXTRA.get(kind)
        if extra is None:
            raise BtfError(f"unknown BTF kind {kind}")
        body = pos + 12
        nxt = body + extra[0] + extra[1] * vlen
        if nxt > end:
            raise BtfError("BTF type record out of bounds")
        if kind in (KIND_STRUCT, KIND_UNION) and name_off:
            sname = name(name_off)
            if sname in wanted and sname not in found:
                members: dict[str, int] = {}
                for i in range(vlen):
                    m_name, _m_type, m_off = struct.unpack_from("<III", blob, body + 12 * i)
                    bits = m_off & 0xFFFFFF if kind_flag else m_off
                    if m_name and bits % 8 == 0:
                        members[name(m_name)] = bits // 8
                found[sname] = members
        pos = nxt
    return found


def cred_offsets(path: str = VMLINUX) -> CredOffsets:
    """Offsets the euid gate needs, from this kernel's BTF."""
    try:
        with open(path, "rb") as f:
            blob = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise BtfError(f"cannot read kernel BTF ({path}): {exc.strerror}") from None
    if len(blob) > MAX_BYTES:
        raise BtfError("kernel BTF is implausibly large")
    structs = struct_members(blob, {"task_struct", "cred"})
    try:
        return CredOffsets(structs["task_struct"]["cred"], structs["cred"]["uid"], structs["cred"]["euid"])
    except KeyError as exc:
        raise BtfError(f"kernel BTF lacks {exc.args[0]}") from None
