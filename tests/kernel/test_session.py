"""Live sessions: every probe family installed in a real tracefs instance, exact event values."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import leftovers, run_target

from pystap.kernel import KernelError, KernelSession
from pystap.kernel.tracefs import Tracefs
from pystap.privilege import Level
from pystap.probes import elfsyms
from pystap.syscalls import syscall_numbers


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
    assert {e["_cpu"] for _, e in events} <= set(session.tracefs.cpus())
    assert reader.lost() == 0


def test_string_fetch_and_dwarf_parameter(session: KernelSession, target: Path) -> None:
    entries = entries_for(target, "process.function", {"process": str(target), "function": "greet",
                                                       "_names": ["process", "function"]})
    assert "v_who=%di:u64" in entries[0]["params"]["fetch"]  # a pointer: DWARF-typed (elfsyms)
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
    events = collect(reader, timeout=0.5)
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


@pytest.mark.parametrize(("change", "message"), [
    ({"binary": "relative/bin"}, "without an absolute 'binary' path"),
    ({"build_id": "zz"}, "malformed 'build_id'"),
    ({"fetch": "a=%di"}, "'fetch' must be a list of strings"),
    ({"fetch": [1]}, "'fetch' must be a list of strings"),
    ({"return": "yes"}, "'return' must be true or false"),
    ({"offset": "0x10"}, "invalid offset"),
    ({"offset": 1 << 45}, "invalid offset"),
    ({"semaphore": -1}, "invalid semaphore"),
])
def test_malformed_uprobe_params_are_reported(session: KernelSession, target: Path, change, message) -> None:
    good = entries_for(target, "process.function", {"process": str(target), "function": "add",
                                                    "_names": ["process", "function"]})
    bad = {"id": 99, "family": "process.function", "params": {**good[0]["params"], **change}}
    session.install([*good, bad])
    assert any(p.startswith("probe #99:") and message in p for p in session.problems), session.problems


def test_hostile_binaries_are_refused(session: KernelSession, target: Path, tmp_path: Path) -> None:
    good = entries_for(target, "process.function", {"process": str(target), "function": "add",
                                                    "_names": ["process", "function"]})
    link = tmp_path / "link"
    link.symlink_to(target)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    bad = [{"id": 10 + i, "family": "process.function", "params": {**good[0]["params"], "binary": str(p)}}
           for i, p in enumerate((link, fifo, tmp_path, tmp_path / "missing"))]
    session.install([*good, *bad])
    problems = "\n".join(session.problems)
    assert "probe #10:" in problems and "Too many levels of symbolic links" in problems
    assert "probe #11:" in problems and "not a regular file" in problems
    assert "probe #12:" in problems and "probe #13:" in problems


def _pid_target_run(session: KernelSession, target: Path) -> tuple[Any, int]:
    """A uprobe on ``add`` bound to one process (3 calls) while another process runs the same
    binary (5 calls); returns the session's reader and the bound process's pid."""
    (entry,) = entries_for(target, "process.function", {"process": str(target), "function": "add",
                                                        "_names": ["process", "function"]})
    mine = subprocess.Popen([str(target), "3", "w"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        entry["params"].update({"target": "pid", "pid": mine.pid})
        reader = session.install([entry])
        run_target(target, "5")  # another process running the same binary
        assert mine.communicate("go\n", timeout=10)[0] == "3\n"
    finally:
        mine.kill() if mine.poll() is None else None
        mine.wait()
    return reader, mine.pid


def test_uprobe_with_pid_target_sees_only_that_process(session: KernelSession, target: Path) -> None:
    reader, mine_pid = _pid_target_run(session, target)
    events = collect(reader, 3, timeout=1.0)
    assert [(e["_pid"], e["arg2"]) for _, e in events] == [(mine_pid, 0), (mine_pid, 1), (mine_pid, 2)]


def test_unprobeable_instruction_is_reported_per_event(session: KernelSession, target: Path) -> None:
    good = entries_for(target, "process.function", {"process": str(target), "function": "add",
                                                    "_names": ["process", "function"]})
    locked = entries_for(target, "process.function", {"process": str(target), "function": "locked",
                                                      "_names": ["process", "function"]}, 5)
    # The kernel checks the instruction when it places the breakpoint, so the binary must be
    # mapped by a process when the event is enabled.
    running = subprocess.Popen([str(target), "1", "w"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        reader = session.install([*good, *locked])
        assert running.communicate("go\n", timeout=10)[0] == "0\n"
    finally:
        running.kill() if running.poll() is None else None
        running.wait()
    assert any(p.startswith("probe #5: cannot enable") and "ENOTSUPP" in p for p in session.problems), \
        session.problems
    assert [p for p, _ in collect(reader, 1)] == [1]


def test_plt_probe_fires(session: KernelSession, target: Path) -> None:
    entries = entries_for(target, "process.plt", {"process": str(target), "plt": "strlen",
                                                  "_names": ["process", "plt"]})
    reader = session.install(entries)
    run_target(target, "1")
    events = collect(reader, 1)
    assert [p for p, _ in events] == [1] and events[0][1]["comm"] == "target"


def test_syscall_string_arguments_are_read_in_the_kernel(session: KernelSession, tmp_path: Path) -> None:
    nr = syscall_numbers().get("openat", 257)
    reader = session.install([{"id": 4, "family": "syscall",
                               "params": {"syscall": "openat", "nr": nr, "return": False}}])
    assert session.problems == []
    marker = tmp_path / "pystap-marker-file"
    proc = subprocess.run(["cat", str(marker)], capture_output=True, check=False)
    assert proc.returncode != 0
    events = collect(reader, timeout=0.5)
    mine = [e for p, e in events if p == 4 and e.get("arg2_str") == str(marker)]
    assert len(mine) == 1
    e = mine[0]
    assert e["name"] == "openat" and e["syscall"] == nr and e["_pid"] == e["_tid"] > 0
    assert abs(e["_time"] - time.monotonic_ns()) < 10 * 10**9


def test_syscall_string_ring_overflow_is_counted(session: KernelSession, tmp_path: Path) -> None:
    nr = syscall_numbers().get("openat", 257)
    reader = session.install([{"id": 4, "family": "syscall",
                               "params": {"syscall": "openat", "nr": nr, "return": False}}])
    calls = 20000  # 336-byte records into a 4 MiB ring that nobody reads meanwhile
    code = f"import os\nfor i in range({calls}):\n    try: os.open({str(tmp_path / 'x')!r}, 0)\n    except OSError: pass\n"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    got = len(collect(reader, timeout=0.3))
    lost = reader.lost()
    assert lost > 0 and got + lost >= calls


@pytest.mark.parametrize("entry", [
    {"id": -1, "family": "kernel.trace", "params": {}}, {"id": "1", "family": "kernel.trace", "params": {}},
    {"id": True, "family": "kernel.trace", "params": {}}, {"id": 1 << 40, "family": "kernel.trace", "params": {}},
    {"id": 1, "family": 5, "params": {}}, {"id": 1, "family": "kernel.trace", "params": []}, {"family": "x"},
])
def test_malformed_entries_are_refused_cleanly(tfs: Tracefs, sid: str, entry) -> None:
    ks = KernelSession(sid, Level.STAPDEV, 0, tfs)
    with pytest.raises(KernelError, match="invalid probe id|malformed manifest entry"):
        ks.install([entry])
    assert leftovers(tfs, sid) == []


def collect_encoded(reader, want: int, timeout: float = 2.0) -> tuple[list[Any], list[tuple[int, dict]]]:
    """What pystapd's pump sends: (decoded items, (probe_id, wire fields) pairs)."""
    from pystap import eventwire
    from pystap.kernel.installer import json_adder

    encoder = eventwire.Encoder()
    decoder = eventwire.Decoder()
    items: list[Any] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and sum(len(i) if isinstance(i, eventwire.Rows) else 1
                                              for i in items) < want:
        reader.read_encoded(encoder, json_adder(encoder, None), 0.05)
        for payload in encoder.payloads():
            items += decoder.decode(payload)
    flat = [(p, f) for i in items for p, f in (
        [(i.probe_id, i.fields(r)) for r in i.rows] if isinstance(i, eventwire.Rows) else [i])]
    return items, flat


def test_encoded_rows_filter_a_pid_target_in_the_reader(session: KernelSession, target: Path) -> None:
    """The daemon's path: a pid-target uprobe travels as packed rows, other processes filtered out."""
    from pystap import eventwire

    reader, mine_pid = _pid_target_run(session, target)
    items, events = collect_encoded(reader, 3, timeout=1.0)
    assert items and all(isinstance(i, eventwire.Rows) for i in items)
    assert [(p, f["pid"], f["tid"], f["$arg2"], f["comm"]) for p, f in events] == [
        (1, mine_pid, mine_pid, n, "target") for n in range(3)]
