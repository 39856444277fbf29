"""The binary ring-buffer decoder on hand-built pages: every header kind, loss markers, hostile pages."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pystap.kernel.ringbuffer import (
    MISSED_EVENTS,
    MISSED_STORED,
    CpuStats,
    FormatError,
    PageStats,
    decode_page,
    parse_format,
)

EXEC_FORMAT = """name: sched_process_exec
ID: 312
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;
\tfield:pid_t pid;\toffset:12;\tsize:4;\tsigned:1;
\tfield:pid_t old_pid;\toffset:16;\tsize:4;\tsigned:1;

print fmt: "filename=%s pid=%d old_pid=%d", __get_str(filename), REC->pid, REC->old_pid
"""

EXIT_FORMAT = """name: sched_process_exit
ID: 369
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:char comm[16];\toffset:8;\tsize:16;\tsigned:0;
\tfield:pid_t pid;\toffset:24;\tsize:4;\tsigned:1;
\tfield:int prio;\toffset:28;\tsize:4;\tsigned:1;
\tfield:bool group_dead;\toffset:32;\tsize:1;\tsigned:0;
"""


def exec_record(filename: bytes, pid: int) -> bytes:
    body = struct.pack("<HBBiIii", 312, 0, 0, pid, 0, pid, pid)
    data = filename + b"\0"
    loc = len(body) | (len(data) << 16)
    return body[:8] + struct.pack("<I", loc) + body[12:] + data


def small_event(payload: bytes, delta: int) -> bytes:
    payload += b"\0" * (-len(payload) % 4)
    return struct.pack("<I", (len(payload) // 4) | (delta << 5)) + payload


def long_event(payload: bytes, delta: int) -> bytes:
    payload += b"\0" * (-len(payload) % 4)
    return struct.pack("<II", 0 | (delta << 5), len(payload) + 4) + payload


def page(events: bytes, ts: int = 1000, flags: int = 0, missed: int | None = None) -> bytes:
    data = events
    tail = struct.pack("<q", missed) if missed is not None else b""
    return struct.pack("<QQ", ts, len(data) | flags) + data + tail + b"\0" * (4096 - 16 - len(data) - len(tail))


def decode(raw: bytes) -> tuple[list[tuple[int, int, bytes]], PageStats]:
    out: list[tuple[int, int, bytes]] = []
    stats = PageStats()
    decode_page(raw, lambda t, ts, b, s, e: out.append((t, ts, bytes(b[s:e]))), stats)
    return out, stats


def test_parse_format_and_decode_data_loc() -> None:
    fmt = parse_format(EXEC_FORMAT)
    assert fmt.id == 312 and fmt.name == "sched_process_exec"
    rec = exec_record(b"/usr/bin/true", 4242)
    fields = fmt.decode(rec)
    assert fields is not None
    assert fields["filename"] == "/usr/bin/true" and fields["pid"] == 4242 and fields["common_pid"] == 4242


def test_char_array_and_bool() -> None:
    fmt = parse_format(EXIT_FORMAT)
    rec = struct.pack("<HBBi16siiB", 369, 0, 0, 7, b"cat\0junk", 7, 120, 1)
    fields = fmt.decode(rec)
    assert fields is not None
    assert (fields["comm"], fields["pid"], fields["prio"], fields["group_dead"]) == ("cat", 7, 120, 1)


def test_short_record_and_bad_data_loc_do_not_raise() -> None:
    fmt = parse_format(EXEC_FORMAT)
    assert fmt.decode(b"\x38\x01") is None
    rec = bytearray(exec_record(b"/x", 1))
    struct.pack_into("<I", rec, 8, 4000 | (100 << 16))
    fields = fmt.decode(bytes(rec))
    assert fields is not None and fields["filename"] == ""


@pytest.mark.parametrize("text", ["", "name: x\nID: 1\n", "name: x\nID: zz\nfield:int a;\toffset:0;\tsize:4;\tsigned:1;",
                                  "name: x\nID: 1\n\tfield:int a;\toffset:0;\tsize:3;\tsigned:1;",
                                  "name: x\nID: 1\n\tfield:__rel_loc char[] a;\toffset:0;\tsize:4;\tsigned:0;",
                                  "name: x\nID: 1\n\tfield:int a;\toffset:4;\tsize:4;\tsigned:1;\n"
                                  "\tfield:int b;\toffset:2;\tsize:4;\tsigned:1;"])
def test_bad_formats_are_format_errors(text: str) -> None:
    with pytest.raises(FormatError):
        parse_format(text)


def test_every_header_kind() -> None:
    rec = exec_record(b"/bin/ls", 9)
    events = (
        small_event(rec, 5)
        + struct.pack("<II", 30 | (3 << 5), 2)  # time extend: +3 + (2 << 27)
        + long_event(rec, 7)
        + struct.pack("<II", 29 | (1 << 5), 12) + b"\0" * 8  # padding with a length (discarded event)
        + struct.pack("<II", 31 | (11 << 5), 1)  # absolute time stamp: (1 << 27) + 11
        + small_event(rec, 1)
        + struct.pack("<I", 29)  # padding, delta 0: rest of the page is empty
        + small_event(rec, 1)
    )
    out, stats = decode(page(events))
    assert [t for t, _, _ in out] == [312, 312, 312]
    assert [ts for _, ts, _ in out] == [1005, 1005 + 3 + (2 << 27) + 7, (1 << 27) + 11 + 1]
    assert all(p.startswith(rec) for _, _, p in out)
    assert stats.events == 3 and stats.malformed == 0


def test_missed_events_markers() -> None:
    rec = exec_record(b"/bin/ls", 9)
    _, stats = decode(page(small_event(rec, 1), flags=MISSED_EVENTS | MISSED_STORED, missed=1234))
    assert stats.missed_pages == 1 and stats.missed_events == 1234
    _, stats = decode(page(small_event(rec, 1), flags=MISSED_EVENTS))
    assert stats.missed_pages == 1 and stats.missed_events == 0


def test_truncated_pages_are_counted_not_raised() -> None:
    rec = exec_record(b"/bin/ls", 9)
    raw = page(long_event(rec, 1))
    out, stats = decode(raw[:40])  # the commit size claims more than we have
    assert stats.malformed >= 1 and out == []
    bad_len = struct.pack("<QQ", 0, 8) + struct.pack("<II", 0, 4000)
    out, stats = decode(bad_len)
    assert out == [] and stats.malformed == 1
    out, stats = decode(b"\0" * 10)
    assert stats.malformed == 1


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=600))
def test_random_pages_never_raise(data: bytes) -> None:
    out, _stats = decode(data)
    for _, _, payload in out:
        assert len(payload) <= len(data)
    fmt = parse_format(EXEC_FORMAT)
    for _, _, payload in out:
        fmt.decode(payload)


def test_cpu_stats() -> None:
    text = "entries: 0\noverrun: 3\ncommit overrun: 1\nbytes: 0\noldest event ts: 0.0\ndropped events: 10\nread events: 5\n"
    s = CpuStats.parse(text)
    assert (s.overrun, s.commit_overrun, s.dropped, s.lost) == (3, 1, 10, 14)
