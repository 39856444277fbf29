"""The perf mmap ring reader on a hand-filled ring: wrap-around, lost records, corruption."""

from __future__ import annotations

import mmap
import struct

from pystap.kernel import perf


def make_ring(pages: int = 1) -> perf.Ring:
    ring = perf.Ring.__new__(perf.Ring)
    ring.fd = -1
    ring.page = mmap.PAGESIZE
    ring.size = pages * mmap.PAGESIZE
    ring.map = mmap.mmap(-1, ring.page + ring.size)
    ring.lost = 0
    ring.corrupt = 0
    return ring


def sample(pid: int, raw: bytes) -> bytes:
    body = struct.pack("<IIQIII", pid, pid + 1, 1000 + pid, 0, 0, len(raw)) + raw
    body += b"\0" * (-(len(body) + 8) % 8)
    return struct.pack("<IHH", perf.RECORD_SAMPLE, 0, len(body) + 8) + body


def write(ring: perf.Ring, start: int, data: bytes) -> int:
    for i, b in enumerate(data):
        ring.map[ring.page + (start + i) % ring.size] = b
    return start + len(data)


def drain(ring: perf.Ring) -> list[tuple[int, int, int, bytes]]:
    got: list[tuple[int, int, int, bytes]] = []
    ring.drain(lambda pid, tid, ts, cpu, raw: got.append((pid, tid, ts, bytes(raw))))
    return got


def test_records_across_the_wrap_and_lost_counts() -> None:
    ring = make_ring()
    start = ring.size - 20  # the second record straddles the end of the ring
    struct.pack_into("<Q", ring.map, 1032, start)
    pos = write(ring, start, sample(1, b"\x01\x02\x03"))
    pos = write(ring, pos, sample(2, b"x" * 50))
    pos = write(ring, pos, struct.pack("<IHHQQ", perf.RECORD_LOST, 0, 24, 7, 42))
    struct.pack_into("<Q", ring.map, 1024, pos)
    got = drain(ring)
    assert [(p, t, ts) for p, t, ts, _ in got] == [(1, 2, 1001), (2, 3, 1002)]
    assert got[0][3] == b"\x01\x02\x03" and got[1][3] == b"x" * 50
    assert ring.lost == 42
    assert struct.unpack_from("<Q", ring.map, 1032)[0] == pos
    assert drain(ring) == []


def test_corrupt_record_stops_the_drain() -> None:
    ring = make_ring()
    pos = write(ring, 0, struct.pack("<IHH", perf.RECORD_SAMPLE, 0, 0))  # size 0 would loop forever
    struct.pack_into("<Q", ring.map, 1024, pos + 64)
    assert drain(ring) == []
    assert ring.corrupt == 1 and struct.unpack_from("<Q", ring.map, 1032)[0] == pos + 64  # skipped, no stall
    bad_raw = sample(3, b"abc")
    bad = bytearray(bad_raw)
    struct.pack_into("<I", bad, 8 + 24, 10_000)  # raw size larger than the record
    ring2 = make_ring()
    pos = write(ring2, 0, bytes(bad))
    struct.pack_into("<Q", ring2.map, 1024, pos)
    assert drain(ring2) == []
