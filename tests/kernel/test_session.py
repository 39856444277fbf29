"""Live sessions: every probe family installed in a real tracefs instance, exact event values."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import leftovers, run_target

from pystap.kernel import KernelError, KernelSession
from pystap.kernel.tracefs import Tracefs
from pystap.privilege import Level
from pystap.probes import elfsyms
from pystap.probes.syscall import syscall_numbers


def entries_for(path: Path, family: str, args: dict[str, Any], first_id: int = 1) -> list[dict[str, Any]]:
    params = {"target": "path", "path": str(path)}
    out = elfsyms.resolve_probe(family=family, prefix=f'process("{path}")', params=params, args=args)
    return [{"id": first_id + i, "family": family, "params": e["params"]} for i, e in enumerate(out)]


def collect(reader, want: int | None = None, timeout: float = 2.0) -> list[tuple[int, dict[str, Any]]]:
    events: list[tuple[int, dict[str, Any]]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events.extend(reader.read(0.05))
        if want is not None and len(events) >= want:
            break
    events.extend(reader.read(0))
    return sorted(events, key=lambda e: e[1]["_time"])


@pytest.fixture
def session(tfs: Tracefs, sid: str):
    ks = KernelSession(sid, Level.STAPDEV, 0, tfs)
    try:
        yield ks
    finally:
        ks.close()


def test_function_entry_and_return_values(session: KernelSession, target: Path) -> None:
    entries = entries_for(target, "process.function", {"process": str(target), "function": "add",
                                                       "_names": ["process", "function"]})
    entries += entries_for(target, "process.function", {"process": str(target), "function": "add",
                                                        "_names": ["process", "function", "return"]}, 10)
    reader = session.install(entries)
    assert session.problems == []
    assert run_target(target, "4") == "6\n"
    events = collect(reader, 8)
    got = [(pid, e.get("arg1"), e.get("arg2"), e.get("retval")) for pid, e in events]
    assert got == [(1, 0, 0, None), (10, None, None, 0), (1, 0, 1, None), (10, None, None, 1),
                   (1, 1, 2, None), (10, None, None, 3), (1, 3, 3, None), (10, None, None, 6)]
    assert {e["comm"] for _, e in events} == {"target"}
    assert len({e["_pid"] for _, e in events}) == 1
    assert reader.lost() == 0


def test_string_fetch_and_dwarf_parameter(session: KernelSession, target: Path) -> None:
    entries = entries_for(target, "process.function", {"process": str(target), "function": "greet",
                                                       "_names": ["process", "function"]})
    assert "v_who=%di:s64" in entries[0]["params"]["fetch"]
    entries[0]["params"]["fetch"].append("who_s=+0(%di):ustring")
    reader = session.install(entries)
    run_target(target, "1")
    (probe_id, fields), = collect(reader, 1)
    assert probe_id == 1 and fields["who_s"] == "hello" and fields["v_n"] == 7 and fields["arg2"] == 7


def test_sdt_mark_with_semaphore(session: KernelSession, target: Path) -> None:
    entries = entries_for(target, "process.mark", {"process": str(target), "mark": "tick",
                                                   "_names": ["process", "mark"]})
    assert entries[0]["params"]["semaphore"] > 0
    reader = session.install(entries)
    run_target(target, "3")
    events = collect(reader, 3)
    # arg1 is -i (a signed 8-byte operand), arg2 the running sum.
    assert [(e["arg1"], e["arg2"]) for _, e in events] == [(0, 0), (-1, 1), (-2, 3)]


def test_process_lifecycle_by_path(session: KernelSession, target: Path) -> None:
    base = {"target": "path", "path": str(target)}
    reader = session.install([
        {"id": 1, "family": "process.begin", "params": {**base, "event": "begin"}},
        {"id": 2, "family": "process.end", "params": {**base, "event": "end"}},
        {"id": 3, "family": "process.thread.begin", "params": {**base, "event": "thread.begin"}},
        {"id": 4, "family": "process.thread.end", "params": {**base, "event": "thread.end"}},
    ])
    assert session.problems == []
    subprocess.run(["/bin/true"], check=True)  # another binary: must not show up
    run_target(target, "1", "t")
    events = collect(reader, 4)
    assert [p for p, _ in events] == [1, 3, 4, 2]
    begin, thread_begin, thread_end, end = (e for _, e in events)
    assert begin["filename"] == str(target)
    pid = begin["_pid"]
    assert end["_pid"] == pid and end["group_dead"] == 1
    assert thread_begin["_pid"] == pid and thread_begin["_tid"] != pid
    assert thread_end["_tid"] == thread_begin["_tid"]


def test_process_syscall_by_pid_and_syscall_tapset(session: KernelSession, target: Path) -> None:
    nr = syscall_numbers().get("getppid", 110)
    proc = subprocess.Popen([str(target), "1", "wp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        base = {"target": "pid", "pid": proc.pid}
        reader = session.install([
            {"id": 1, "family": "process.syscall", "params": {**base, "event": "syscall"}},
            {"id": 2, "family": "process.syscall.return", "params": {**base, "event": "syscall.return"}},
            {"id": 3, "family": "syscall", "params": {"syscall": "getppid", "nr": nr, "return": True}},
        ])
        proc.communicate("go\n", timeout=10)
    finally:
        proc.kill() if proc.poll() is None else None
    events = collect(reader, timeout=1.0)
    mine = [(p, e) for p, e in events if e["_pid"] == proc.pid]
    entries = [e for p, e in mine if p == 1 and e["syscall"] == nr]
    returns = [e for p, e in mine if p == 2 and e["syscall"] == nr]
    assert len(entries) == 1 and len(returns) == 1
    assert returns[0]["return"] == os.getpid()
    assert all(p != 1 or e["_pid"] == proc.pid for p, e in events)
    tapset = [e for p, e in events if p == 3 and e["_pid"] == proc.pid]
    assert len(tapset) == 1 and tapset[0]["name"] == "getppid" and tapset[0]["return"] == os.getpid()


def test_kernel_trace_fields(session: KernelSession, target: Path) -> None:
    reader = session.install([{"id": 7, "family": "kernel.trace",
                               "params": {"system": "sched", "event": "sched_process_exec"}}])
    run_target(target, "1")
    events = [e for p, e in collect(reader, timeout=0.5) if p == 7]
    assert str(target) in [e["filename"] for e in events]


def test_rebuilt_binary_is_refused(session: KernelSession, target: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copy(target, copy)
    entries = entries_for(copy, "process.function", {"process": str(copy), "function": "add",
                                                     "_names": ["process", "function"]})
    data = bytearray(copy.read_bytes())
    bid = bytes.fromhex(entries[0]["params"]["build_id"])
    at = data.find(bid)
    data[at] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(KernelError, match="has changed since the module was compiled"):
        session.install(entries)


def test_bad_entries_are_reported_and_the_rest_installed(session: KernelSession, target: Path) -> None:
    good = entries_for(target, "process.function", {"process": str(target), "function": "add",
                                                    "_names": ["process", "function"]})
    bad_fetch = {**good[0], "id": 2, "params": {**good[0]["params"], "fetch": ["x=@0x1234:u64"]}}
    bad_tp = {"id": 3, "family": "kernel.trace", "params": {"system": "nosuch", "event": "event"}}
    kprobe = {"id": 4, "family": "kernel.function", "params": {}}
    session.install([*good, bad_fetch, bad_tp, kprobe])
    text = "\n".join(session.problems)
    assert "probe #2: fetch argument 'x=@0x1234:u64'" in text or "probe #2: fetch argument '@0x1234'" in text
    assert "nosuch:event is not available" in text
    assert "probe #4: probe family 'kernel.function' is not available on this kernel" in text


def test_nothing_installable_is_an_error_and_leaves_nothing(tfs: Tracefs, sid: str) -> None:
    ks = KernelSession(sid, Level.STAPDEV, 0, tfs)
    with pytest.raises(KernelError, match="no probe could be installed"):
        ks.install([{"id": 1, "family": "kernel.trace", "params": {"system": "x", "event": "../y"}}])
    assert leftovers(tfs, sid) == []


def test_stapusr_is_refused_here(tfs: Tracefs, sid: str) -> None:
    with pytest.raises(KernelError, match="stapusr"):
        KernelSession(sid, Level.STAPUSR, 1000, tfs).install([])
    with pytest.raises(KernelError, match="invalid session id"):
        KernelSession("../x", Level.STAPDEV, 0, tfs)


def test_sessions_are_isolated(tfs: Tracefs, sid: str, target: Path) -> None:
    entries = entries_for(target, "process.function", {"process": str(target), "function": "add",
                                                       "_names": ["process", "function"]})
    a = KernelSession(sid, Level.STAPDEV, 0, tfs)
    b = KernelSession(sid + "b", Level.STAPDEV, 0, tfs)
    try:
        ra = a.install(entries)
        run_target(target, "2")
        rb = b.install(entries)
        run_target(target, "3")
        assert len(collect(ra, 5)) == 5
        assert len(collect(rb, 3)) == 3
    finally:
        a.close()
        b.close()
    assert leftovers(tfs, sid + "b") == []


def test_lost_events_are_counted(tfs: Tracefs, sid: str, target: Path) -> None:
    entries = entries_for(target, "process.function", {"process": str(target), "function": "add",
                                                       "_names": ["process", "function"]})
    ks = KernelSession(sid, Level.STAPDEV, 0, tfs, buffer_kb=8)
    try:
        reader = ks.install(entries)
        run_target(target, "20000")  # ~1.5 MB of records into 8 KB per CPU, nobody reading
        got = len(collect(reader, timeout=0.3))
        assert got < 20000
        assert reader.lost() + got >= 20000 * 0.9
    finally:
        ks.close()


def test_background_close(tfs: Tracefs, sid: str, target: Path) -> None:
    ks = KernelSession(sid, Level.STAPDEV, 0, tfs)
    ks.install(entries_for(target, "process.function", {"process": str(target), "function": "*",
                                                        "_names": ["process", "function"]}))
    ks.close(wait=False)
    assert ks.join(30)
