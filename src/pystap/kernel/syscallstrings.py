"""String arguments of system calls, read in the kernel at the call (root/stapsys/stapdev).

A syscall tracepoint records only the pointer of a path argument, and by
the time a reader could look at the process's memory the string may be
gone or changed.  For the calls in :data:`STRING_ARGS` a daemon-owned BPF
template on ``syscalls:sys_enter_<name>`` copies the record and the user
strings with ``bpf_probe_read_user_str`` into a BPF ring buffer at the hit;
the reader decodes them into the same ``(probe_id, fields)`` events as the
tracefs path (``argN_str`` beside ``argN``).

The template's only parameters are the probe id, the syscall's tracepoint
and which arguments are strings (from the allowlist below, never from the
module), so a module cannot make the daemon read anything else.
"""

from __future__ import annotations

import mmap
import os
import select
import struct
from collections.abc import Callable

from pystap.kernel import bpf, perf
from pystap.kernel.ringbuffer import parse_format
from pystap.kernel.tracefs import Tracefs
from pystap.syscalls import STRING_ARGS

STR_MAX = 256
HEADER = struct.Struct("<IIIIQQ6Q")  # probe id, tid, tgid, cpu, nr, time, args[6]
RINGBUF_BYTES = 1 << 22
HELPER_KTIME_GET_NS = 5
HELPER_SMP_PROCESSOR_ID = 8
HELPER_GET_CURRENT_PID_TGID = 14
HELPER_PROBE_READ_USER_STR = 114
HELPER_RINGBUF_RESERVE = 131
HELPER_RINGBUF_SUBMIT = 132
RINGBUF_BUSY = 1 << 31
RINGBUF_DISCARD = 1 << 30


def _st_w(dst: int, off: int, imm: int) -> bytes:
    return bpf._insn(0x62, dst, off=off, imm=imm)


def _stx_w(dst: int, src: int, off: int) -> bytes:
    return bpf._insn(0x63, dst, src, off)


def _stx_dw(dst: int, src: int, off: int) -> bytes:
    return bpf._insn(0x7B, dst, src, off)


def _rsh_imm(dst: int, imm: int) -> bytes:
    return bpf._insn(0x77, dst, imm=imm)


def program(ringbuf_fd: int, probe_id: int, nr: int, strings: tuple[int, ...], nargs: int = 6,
            drops_fd: int | None = None) -> bytes:
    """The template: copy pid/tid/cpu/time/args and the string arguments into one ring record.

    Only the call's own ``nargs`` arguments are read: the kernel refuses a
    program that reads past the end of the event's record (EACCES at attach).
    """
    if not 0 <= nargs <= 6 or any(not 1 <= a <= nargs for a in strings):
        raise ValueError("string argument out of range")
    size = HEADER.size + STR_MAX * len(strings)
    out = [
        bpf.mov_reg(6, 1),                                    # r6 = ctx
        bpf.ld_map_fd(1, ringbuf_fd), bpf.mov_imm(2, size), bpf.mov_imm(3, 0),
        bpf.call(HELPER_RINGBUF_RESERVE),
    ]
    body = [
        bpf.mov_reg(7, 0),                                    # r7 = record
        _st_w(7, 0, probe_id),
        bpf.call(HELPER_GET_CURRENT_PID_TGID),
        _stx_w(7, 0, 4), _rsh_imm(0, 32), _stx_w(7, 0, 8),    # tid, tgid
        bpf.call(HELPER_SMP_PROCESSOR_ID), _stx_w(7, 0, 12),
        _st_w(7, 16, nr), _st_w(7, 20, 0),
        bpf.call(HELPER_KTIME_GET_NS), _stx_dw(7, 0, 24),
    ]
    for i in range(6):
        if i < nargs:
            body += [bpf.load_u64(1, 6, 16 + 8 * i), _stx_dw(7, 1, 32 + 8 * i)]
        else:
            body += [bpf.mov_imm(1, 0), _stx_dw(7, 1, 32 + 8 * i)]
    for k, arg in enumerate(strings):
        body += [bpf.mov_reg(1, 7), bpf.add_imm(1, HEADER.size + STR_MAX * k), bpf.mov_imm(2, STR_MAX),
                 bpf.load_u64(3, 6, 16 + 8 * (arg - 1)), bpf.call(HELPER_PROBE_READ_USER_STR)]
    body += [bpf.mov_reg(1, 7), bpf.mov_imm(2, 0), bpf.call(HELPER_RINGBUF_SUBMIT)]
    code = b"".join(body)
    out.append(bpf.jeq_imm(0, 0, len(code) // 8 + 2))        # ring full -> count the drop
    out.append(code)
    out += [bpf.mov_imm(0, 0), bpf.EXIT]
    if drops_fd is not None:
        out += [_st_w(10, -4, 0), bpf.ld_map_fd(1, drops_fd), bpf.mov_reg(2, 10), bpf.add_imm(2, -4),
                bpf.call(bpf.HELPER_MAP_LOOKUP_ELEM), bpf.jeq_imm(0, 0, 2), bpf.mov_imm(1, 1),
                bpf.atomic_add_u64(0, 1)]
    out += [bpf.mov_imm(0, 0), bpf.EXIT]
    return b"".join(out)


class Ringbuf:
    """Consumer side of a ``BPF_MAP_TYPE_RINGBUF`` map, through its two mmaps."""

    def __init__(self, map_fd: int, size: int) -> None:
        self.page = mmap.PAGESIZE
        self.size = size
        self.consumer = mmap.mmap(map_fd, self.page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE,
                                  offset=0)
        # producer page, then the data mapped twice so records never wrap for the reader
        self.producer = mmap.mmap(map_fd, self.page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ,
                                  offset=self.page)

    def drain(self, sink: Callable[[bytes], None]) -> int:
        cons = struct.unpack_from("<Q", self.consumer, 0)[0]
        prod = struct.unpack_from("<Q", self.producer, 0)[0]
        mask = self.size - 1
        base = self.page
        count = 0
        while cons < prod:
            at = base + (cons & mask)
            length = struct.unpack_from("<I", self.producer, at)[0]
            if length & RINGBUF_BUSY:
                break
            real = length & ~(RINGBUF_BUSY | RINGBUF_DISCARD)
            if real > self.size:
                cons = prod  # corrupt: skip rather than stall
                break
            if not length & RINGBUF_DISCARD:
                sink(self.producer[at + 8:at + 8 + real])
                count += 1
            cons += (real + 8 + 7) & ~7
        struct.pack_into("<Q", self.consumer, 0, cons)
        return count

    def close(self) -> None:
        self.consumer.close()
        self.producer.close()


class SyscallStrings:
    """The BPF template for one session's named syscall probes with string arguments."""

    def __init__(self, tfs: Tracefs) -> None:
        self.tfs = tfs
        self.map_fd = bpf.map_create_ringbuf(RINGBUF_BYTES)
        self.drops_fd = bpf.map_create_array(8, 1)
        self.ring = Ringbuf(self.map_fd, RINGBUF_BYTES)
        self.progs: list[int] = []
        self.group = perf.PerfGroup()
        self.strings: dict[int, tuple[str, tuple[int, ...]]] = {}

    def add(self, probe_id: int, name: str, nr: int) -> None:
        """Attach the template to ``syscalls:sys_enter_<name>`` on every CPU."""
        strings = STRING_ARGS[name]
        fmt = parse_format(self.tfs.event_format("syscalls", f"sys_enter_{name}"))
        nargs = sum(1 for f in fmt.fields if not f.name.startswith("common_") and f.name != "__syscall_nr")
        prog = bpf.prog_load(program(self.map_fd, probe_id, nr, strings, min(nargs, 6), self.drops_fd),
                             bpf.PROG_TYPE_TRACEPOINT, name="pystap_sysstr")
        event_id = fmt.id
        self.progs.append(prog)
        for i, cpu in enumerate(self.tfs.cpus()):
            fd = perf.open_tracepoint(event_id, -1, cpu, inherit=False)
            self.group.add(fd, with_ring=False)
            if i == 0:
                perf.ioctl(fd, perf.IOC_SET_BPF, prog)
        self.strings[probe_id] = (name, strings)

    def enable(self) -> None:
        self.group.enable()

    def drain(self, append: Callable[[tuple[int, dict]], None]) -> int:
        def sink(record: bytes) -> None:
            if len(record) < HEADER.size:
                return
            probe_id, tid, tgid, cpu, nr, ts, *args = HEADER.unpack_from(record, 0)
            entry = self.strings.get(probe_id)
            if entry is None:
                return
            fields: dict = {"syscall": nr, "name": entry[0], "_pid": tgid, "_tid": tid, "_cpu": cpu,
                            "_time": ts}
            for i, value in enumerate(args):
                fields[f"arg{i + 1}"] = value
            for k, arg in enumerate(entry[1]):
                raw = record[HEADER.size + STR_MAX * k:HEADER.size + STR_MAX * (k + 1)]
                fields[f"arg{arg}_str"] = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
            append((probe_id, fields))

        return self.ring.drain(sink)

    def lost(self) -> int:
        """Records the kernel could not write because the ring was full."""
        try:
            return struct.unpack("<Q", bpf.map_lookup(self.drops_fd, struct.pack("<I", 0), 8))[0]
        except OSError:
            return 0

    def register(self, epoll: select.epoll) -> None:
        epoll.register(self.map_fd, select.EPOLLIN)

    def close(self) -> None:
        self.group.close()
        self.ring.close()
        for prog in self.progs:
            os.close(prog)
        self.progs = []
        os.close(self.map_fd)
        os.close(self.drops_fd)
