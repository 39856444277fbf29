"""Build-id of an opened ELF file, read by the daemon before it places a uprobe.

Offsets in a manifest are only meaningful for the exact binary the
translator resolved them in; a rebuilt binary at the same path would be
probed at a stale offset (a corrupt instruction stream for the user's
process at best).  The translator records the GNU build-id, and the daemon
reads it here from the *fd it will probe through*, so the check and the use
name the same inode.  Standard library only, every size bounded: the file is
untrusted input.
"""

from __future__ import annotations

import hmac
import os
import stat
import struct

NT_GNU_BUILD_ID = 3
PT_NOTE = 4
MAX_PHDRS = 256
MAX_NOTE_BYTES = 1 << 16
MAX_BUILD_ID = 64


class ElfCheckError(ValueError):
    """The file is not an ELF binary we can check, or its build-id does not match."""


def _pread(fd: int, size: int, offset: int) -> bytes:
    data = os.pread(fd, size, offset)
    if len(data) != size:
        raise ElfCheckError("truncated ELF file")
    return data


def read_build_id(fd: int) -> str:
    """The GNU build-id of the ELF file open on ``fd`` as hex ("" when it has none)."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise ElfCheckError("not a regular file")
    ident = _pread(fd, 16, 0)
    if ident[:4] != b"\x7fELF":
        raise ElfCheckError("not an ELF file")
    if ident[4] != 2 or ident[5] != 1:
        raise ElfCheckError("only 64-bit little-endian ELF files are supported")
    phoff, = struct.unpack("<Q", _pread(fd, 8, 32))
    phentsize, phnum = struct.unpack("<HH", _pread(fd, 4, 54))
    if phnum > MAX_PHDRS or (phnum and phentsize < 56):
        raise ElfCheckError("implausible ELF program header table")
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack("<IIQQQQ", _pread(fd, 40, phoff + i * phentsize))
        if p_type != PT_NOTE:
            continue
        if p_filesz > MAX_NOTE_BYTES or p_offset + p_filesz > st.st_size:
            raise ElfCheckError("implausible ELF note segment")
        found = _build_id_in_notes(_pread(fd, p_filesz, p_offset))
        if found is not None:
            return found
    return ""


def _build_id_in_notes(data: bytes) -> str | None:
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from("<III", data, pos)
        name_end = pos + 12 + namesz
        desc_start = pos + 12 + ((namesz + 3) & ~3)
        desc_end = desc_start + descsz
        if name_end > len(data) or desc_end > len(data):
            raise ElfCheckError("malformed ELF note")
        if ntype == NT_GNU_BUILD_ID and data[pos + 12:name_end].rstrip(b"\0") == b"GNU":
            if not 1 <= descsz <= MAX_BUILD_ID:
                raise ElfCheckError("implausible build-id size")
            return data[desc_start:desc_end].hex()
        pos = desc_start + ((descsz + 3) & ~3)
    return None


def check_build_id(fd: int, expected: str, path: str) -> None:
    """Refuse (with a message the user can act on) when ``fd`` is not the binary the module was built for."""
    actual = read_build_id(fd)
    if not hmac.compare_digest(actual.encode(), expected.lower().encode()):
        shown = expected or "none"
        raise ElfCheckError(
            f"{path} has changed since the module was compiled (build-id {actual or 'none'}, "
            f"module expects {shown}); recompile the script against the current binary"
        )
