"""Per-process perf events on trace events, read through their mmap rings.

This is how a stapusr session consumes its probes: a tracefs-defined event
opened with ``perf_event_open(PERF_TYPE_TRACEPOINT, id, pid=P, cpu=c,
inherit=1)`` puts the uprobe breakpoint only into process P (and the
children it forks after that), never into other users' processes running
the same binary; and everything is fd-scoped, so a killed daemon leaves
nothing armed.  Samples carry ``PERF_SAMPLE_RAW`` (the same record layout
as the tracefs ring buffer) plus pid/tid/time/cpu.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import mmap
import os
import select
import struct
from collections.abc import Callable

SYS_PERF_EVENT_OPEN = 298  # x86-64
PERF_TYPE_TRACEPOINT = 2
PERF_SAMPLE_TID = 1 << 1
PERF_SAMPLE_TIME = 1 << 2
PERF_SAMPLE_CPU = 1 << 7
PERF_SAMPLE_RAW = 1 << 10
FLAG_DISABLED = 1 << 0
FLAG_INHERIT = 1 << 1
FLAG_WATERMARK = 1 << 14
FLAG_USE_CLOCKID = 1 << 25
PERF_FLAG_FD_CLOEXEC = 1 << 3
CLOCK_MONOTONIC = 1
ATTR_SIZE = 128
IOC_ENABLE = 0x2400
IOC_DISABLE = 0x2401
IOC_SET_BPF = 0x40042408
RECORD_LOST = 2
RECORD_SAMPLE = 9
DATA_PAGES = 64  # per CPU; a power of two

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long
_HEADER = struct.Struct("<IHH")
_SAMPLE = struct.Struct("<IIQIII")  # pid, tid, time, cpu, res, raw size
_U64 = struct.Struct("<Q")


class PerfError(OSError):
    """perf_event_open or an ioctl failed."""


def open_tracepoint(event_id: int, pid: int, cpu: int, *, watermark: int = 4096, inherit: bool = True) -> int:
    """A disabled, per-CPU sampling event bound to process ``pid`` (and its future children)."""
    attr = ctypes.create_string_buffer(ATTR_SIZE)
    flags = FLAG_DISABLED | FLAG_WATERMARK | FLAG_USE_CLOCKID | (FLAG_INHERIT if inherit else 0)
    sample = PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_CPU | PERF_SAMPLE_RAW
    struct.pack_into("<IIQQQQQII", attr, 0, PERF_TYPE_TRACEPOINT, ATTR_SIZE, event_id, 1, sample, 0, flags,
                     watermark, 0)
    struct.pack_into("<i", attr, 92, CLOCK_MONOTONIC)
    fd = _libc.syscall(SYS_PERF_EVENT_OPEN, attr, pid, cpu, -1, PERF_FLAG_FD_CLOEXEC)
    if fd < 0:
        err = ctypes.get_errno()
        what = f"perf_event_open(tracepoint {event_id}, pid {pid}, cpu {cpu})"
        raise PerfError(err, f"{what}: {os.strerror(err)}")
    return int(fd)


def ioctl(fd: int, request: int, arg: int = 0) -> None:
    try:
        fcntl.ioctl(fd, request, arg)
    except OSError as exc:
        raise PerfError(exc.errno, f"perf ioctl 0x{request:x}: {exc.strerror}") from None


class Ring:
    """The mmap ring of one perf fd: records between ``data_tail`` and ``data_head``."""

    def __init__(self, fd: int, pages: int = DATA_PAGES) -> None:
        self.fd = fd
        self.page = mmap.PAGESIZE
        self.size = pages * self.page
        self.map = mmap.mmap(fd, self.page + self.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self.lost = 0
        self.corrupt = 0

    def drain(self, sink: Callable[[int, int, int, int, memoryview], None]) -> int:
        """Call ``sink(pid, tid, time, cpu, raw)`` per sample; return records read."""
        m = self.map
        head = _U64.unpack_from(m, 1024)[0]
        tail = _U64.unpack_from(m, 1032)[0]
        if head == tail:
            return 0
        base, size = self.page, self.size
        count = 0
        while tail < head:
            start = tail % size
            if start + 8 <= size:
                rtype, _misc, rsize = _HEADER.unpack_from(m, base + start)
            else:
                hdr = bytes(m[base + start:base + size]) + bytes(m[base:base + 8 - (size - start)])
                rtype, _misc, rsize = _HEADER.unpack_from(hdr, 0)
            if rsize < 8:
                self.corrupt += 1
                tail = head  # corrupt ring: skip what is there rather than loop or stall
                break
            if start + rsize <= size:
                rec = memoryview(m)[base + start:base + start + rsize]
            else:
                first = size - start
                rec = memoryview(bytes(m[base + start:base + size]) + bytes(m[base:base + rsize - first]))
            if rtype == RECORD_SAMPLE and rsize >= 8 + _SAMPLE.size:
                pid, tid, time, cpu, _res, raw = _SAMPLE.unpack_from(rec, 8)
                if 8 + _SAMPLE.size + raw <= rsize:
                    sink(pid, tid, time, cpu, rec[8 + _SAMPLE.size:8 + _SAMPLE.size + raw])
                    count += 1
            elif rtype == RECORD_LOST and rsize >= 24:
                self.lost += _U64.unpack_from(rec, 16)[0]
            tail += rsize
        _U64.pack_into(m, 1032, tail)
        return count

    def close(self) -> None:
        # The kernel keeps an event busy while its ring is mapped: unmap before closing.
        self.map.close()


class PerfGroup:
    """Every perf fd of a session, with an epoll over them."""

    def __init__(self) -> None:
        self.fds: list[int] = []
        self.rings: list[Ring] = []
        self.epoll = select.epoll()

    def add(self, fd: int, with_ring: bool = True) -> None:
        self.fds.append(fd)
        if with_ring:
            self.rings.append(Ring(fd))
            self.epoll.register(fd, select.EPOLLIN)

    def enable(self) -> None:
        for fd in self.fds:
            ioctl(fd, IOC_ENABLE)

    def lost(self) -> int:
        return sum(r.lost for r in self.rings)

    def close(self) -> None:
        for ring in self.rings:
            try:
                ring.close()
            except (BufferError, ValueError):
                pass
        self.rings = []
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds = []
        self.epoll.close()
