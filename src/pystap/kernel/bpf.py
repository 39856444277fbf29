"""Raw ``bpf()`` through ctypes, and the one program pystap loads: the euid gate.

No compiler and no libbpf: the daemon loads a fixed template whose only
parameters are three offsets from BTF and the user's uid.  Attached to a
perf event, a program's return value decides whether the sample is kept
(0 drops it in the kernel), so the gate makes "only processes whose
*effective* uid is the user's" a kernel-enforced property at every hit.
``bpf_get_current_uid_gid()`` would give the real uid, which a setuid
program keeps, hence the walk ``current->cred->euid``.

Programs are fd-scoped: closing the fd (or the daemon dying) frees them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import struct

from pystap.kernel.btf import CredOffsets

SYS_BPF = 321  # x86-64
BPF_MAP_CREATE, BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM, BPF_MAP_DELETE_ELEM, BPF_PROG_LOAD = 0, 1, 2, 3, 5
MAP_TYPE_HASH = 1
MAP_TYPE_ARRAY = 2
MAP_TYPE_RINGBUF = 27
HELPER_MAP_LOOKUP_ELEM = 1
PROG_TYPE_KPROBE = 2  # what uprobe trace events accept
PROG_TYPE_TRACEPOINT = 5  # what static tracepoints accept
HELPER_GET_CURRENT_TASK = 35
HELPER_PROBE_READ_KERNEL = 113
ATTR_SIZE = 144
LOG_SIZE = 1 << 16

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long


class BpfError(OSError):
    """A bpf() call failed; for program loads the verifier log is in the message."""


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def mov_imm(dst: int, imm: int) -> bytes:
    return _insn(0xB7, dst, imm=imm)


def mov_reg(dst: int, src: int) -> bytes:
    return _insn(0xBF, dst, src)


def add_imm(dst: int, imm: int) -> bytes:
    return _insn(0x07, dst, imm=imm)


def load_u64(dst: int, src: int, off: int) -> bytes:
    return _insn(0x79, dst, src, off)


def load_u32(dst: int, src: int, off: int) -> bytes:
    return _insn(0x61, dst, src, off)


def jne_imm(dst: int, imm: int, off: int) -> bytes:
    return _insn(0x55, dst, off=off, imm=imm)


def call(helper: int) -> bytes:
    return _insn(0x85, imm=helper)


EXIT = _insn(0x95)


def euid_gate(offsets: CredOffsets, uid: int) -> bytes:
    """Bytecode returning 1 only when ``current->cred->euid == uid`` (and the reads succeed)."""
    if not 0 <= uid < 1 << 31:
        raise ValueError(f"uid {uid} out of range")
    body = b"".join((
        call(HELPER_GET_CURRENT_TASK),        # r0 = current
        mov_reg(3, 0),                        # r3 = current
        add_imm(3, offsets.task_cred),        # r3 = &current->cred
        mov_reg(1, 10), add_imm(1, -8),       # r1 = fp - 8
        mov_imm(2, 8),                        # r2 = sizeof(ptr)
        call(HELPER_PROBE_READ_KERNEL),       # *(fp-8) = current->cred
        jne_imm(0, 0, 11),                    # read failed -> drop
        load_u64(3, 10, -8),                  # r3 = cred
        add_imm(3, offsets.cred_euid),        # r3 = &cred->euid
        mov_reg(1, 10), add_imm(1, -16),      # r1 = fp - 16
        mov_imm(2, 4),                        # r2 = sizeof(kuid_t)
        call(HELPER_PROBE_READ_KERNEL),       # *(fp-16) = cred->euid
        jne_imm(0, 0, 4),                     # read failed -> drop
        load_u32(1, 10, -16),                 # r1 = euid
        jne_imm(1, uid, 2),                   # other euid -> drop
        mov_imm(0, 1), EXIT,                  # keep the sample
        mov_imm(0, 0), EXIT,                  # drop
    ))
    return body


def ld_map_fd(dst: int, map_fd: int) -> bytes:
    """The two-slot ``ld_imm64`` the kernel rewrites into a map pointer (BPF_PSEUDO_MAP_FD)."""
    return _insn(0x18, dst, 1, imm=map_fd) + _insn(0)


def jeq_imm(dst: int, imm: int, off: int) -> bytes:
    return _insn(0x15, dst, off=off, imm=imm)


def euid_set_gate(offsets: CredOffsets, map_fd: int) -> bytes:
    """Bytecode returning 1 only when ``current->cred->euid`` is a key of the hash map ``map_fd``.

    Static tracepoints are one kernel object shared by every session, and the
    kernel ANDs the results of all programs attached to an event, so those
    events carry one daemon-owned gate over the set of uids with a live
    stapusr session (each session's own perf events, bound to its own
    processes, do the per-session part).
    """
    return b"".join((
        call(HELPER_GET_CURRENT_TASK),
        mov_reg(3, 0), add_imm(3, offsets.task_cred),
        mov_reg(1, 10), add_imm(1, -8), mov_imm(2, 8),
        call(HELPER_PROBE_READ_KERNEL),
        jne_imm(0, 0, 15),                    # -> drop
        load_u64(3, 10, -8), add_imm(3, offsets.cred_euid),
        mov_reg(1, 10), add_imm(1, -16), mov_imm(2, 4),
        call(HELPER_PROBE_READ_KERNEL),
        jne_imm(0, 0, 8),                     # -> drop
        ld_map_fd(1, map_fd),                 # 2 slots
        mov_reg(2, 10), add_imm(2, -16),      # key = &euid
        call(HELPER_MAP_LOOKUP_ELEM),
        jeq_imm(0, 0, 2),                     # not a live stapusr uid -> drop
        mov_imm(0, 1), EXIT,
        mov_imm(0, 0), EXIT,
    ))


def map_create_hash(key_size: int, value_size: int, max_entries: int) -> int:
    attr = ctypes.create_string_buffer(ATTR_SIZE)
    struct.pack_into("<IIIII", attr, 0, MAP_TYPE_HASH, key_size, value_size, max_entries, 0)
    try:
        return _bpf(BPF_MAP_CREATE, attr)
    except BpfError as exc:
        raise BpfError(exc.errno, f"BPF map creation failed: {exc.strerror}") from None


def map_create_array(value_size: int, max_entries: int) -> int:
    attr = ctypes.create_string_buffer(ATTR_SIZE)
    struct.pack_into("<IIIII", attr, 0, MAP_TYPE_ARRAY, 4, value_size, max_entries, 0)
    try:
        return _bpf(BPF_MAP_CREATE, attr)
    except BpfError as exc:
        raise BpfError(exc.errno, f"BPF map creation failed: {exc.strerror}") from None


def map_lookup(map_fd: int, key: bytes, value_size: int) -> bytes:
    k = ctypes.create_string_buffer(key, len(key))
    v = ctypes.create_string_buffer(value_size)
    attr = ctypes.create_string_buffer(ATTR_SIZE)
    struct.pack_into("<IIQQ", attr, 0, map_fd, 0, ctypes.addressof(k), ctypes.addressof(v))
    _bpf(BPF_MAP_LOOKUP_ELEM, attr)
    return v.raw


def atomic_add_u64(dst: int, src: int, off: int = 0) -> bytes:
    """``lock *(u64 *)(dst + off) += src``."""
    return _insn(0xDB, dst, src, off, 0)


def map_create_ringbuf(size: int) -> int:
    """A ``BPF_MAP_TYPE_RINGBUF`` of ``size`` bytes (a power-of-two multiple of the page size)."""
    attr = ctypes.create_string_buffer(ATTR_SIZE)
    struct.pack_into("<IIIII", attr, 0, MAP_TYPE_RINGBUF, 0, 0, size, 0)
    try:
        return _bpf(BPF_MAP_CREATE, attr)
    except BpfError as exc:
        raise BpfError(exc.errno, f"BPF ring buffer creation failed: {exc.strerror}") from None


def map_update(map_fd: int, key: bytes, value: bytes) -> None:
    k = ctypes.create_string_buffer(key, len(key))
    v = ctypes.create_string_buffer(value, len(value))
    attr = ctypes.create_string_buffer(ATTR_SIZE)
    struct.pack_into("<IIQQQ", attr, 0, map_fd, 0, ctypes.addressof(k), ctypes.addressof(v), 0)
    _bpf(BPF_MAP_UPDATE_ELEM, attr)


def map_delete(map_fd: int, key: bytes) -> None:
    k = ctypes.create_string_buffer(key, len(key))
    attr = ctypes.create_string_buffer(ATTR_SIZE)
    struct.pack_into("<IIQ", attr, 0, map_fd, 0, ctypes.addressof(k))
    try:
        _bpf(BPF_MAP_DELETE_ELEM, attr)
    except BpfError as exc:
        if exc.errno != errno.ENOENT:
            raise


def _bpf(cmd: int, attr: ctypes.Array) -> int:
    ret = _libc.syscall(SYS_BPF, cmd, ctypes.byref(attr), ctypes.sizeof(attr))
    if ret < 0:
        err = ctypes.get_errno()
        raise BpfError(err, f"bpf({cmd}): {os.strerror(err)}")
    return ret


def prog_load(insns: bytes, prog_type: int, name: str = "pystap_gate") -> int:
    """Load a program; return its fd (O_CLOEXEC).  The verifier log is in the error on failure."""
    if len(insns) % 8 or not insns:
        raise ValueError("instructions must be a non-empty multiple of 8 bytes")
    code = ctypes.create_string_buffer(insns, len(insns))
    license_ = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(LOG_SIZE)
    attr = ctypes.create_string_buffer(ATTR_SIZE)
    struct.pack_into("<IIQQIIQ", attr, 0, prog_type, len(insns) // 8, ctypes.addressof(code),
                     ctypes.addressof(license_), 1, LOG_SIZE, ctypes.addressof(log))
    struct.pack_into("16s", attr, 48, name.encode()[:15])
    try:
        return _bpf(BPF_PROG_LOAD, attr)
    except BpfError as exc:
        text = log.value.decode("utf-8", "replace").strip()
        if exc.errno == errno.EPERM:
            text = text or "bpf() is not permitted (needs CAP_BPF/CAP_SYS_ADMIN, or lockdown refuses it)"
        message = f"BPF program load failed: {exc.strerror}; verifier: {text[-2000:]}"
        raise BpfError(exc.errno, message) from None


def load_euid_gate(offsets: CredOffsets, uid: int, *, tracepoint: bool = False) -> int:
    """Load the gate for a uprobe event (kprobe type) or a static tracepoint."""
    return prog_load(euid_gate(offsets, uid), PROG_TYPE_TRACEPOINT if tracepoint else PROG_TYPE_KPROBE)
