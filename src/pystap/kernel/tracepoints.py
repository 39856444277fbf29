"""Static tracepoints behind ``process.begin/end``, ``thread.*``, ``process.syscall`` and ``syscall.*``.

Each manifest entry becomes a :class:`TracepointUse`: which event to enable
in the session's instance, an in-kernel filter (when one expresses the
target exactly), and a Python predicate plus a field mapping applied to each
decoded record.  Several entries may share one event; the kernel filter is
then the OR of theirs and every record is re-checked in Python per entry.

Process targets by path need the set of processes *currently running* that
binary (``process("/bin/ls").end`` has no filename in the exit record), so
:class:`ProcessTracker` follows exec and fork events for those paths and
seeds itself from ``/proc`` at install time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

CLONE_THREAD = 0x00010000
# The command name of every thread of the daemon (set at its start, inherited by its threads):
# the syscall events its own reader threads cause are filtered out in the kernel by it.
DAEMON_COMM = "pystapd"
MAX_TRACKED = 1 << 16
MAX_FILTER_TIDS = 64

Fields = dict[str, Any]
Predicate = Callable[[Fields], bool]
Mapper = Callable[[Fields], Fields]

_SAFE_PATH = re.compile(r"/[A-Za-z0-9_./+\-@%,~]{0,4095}")
_TP_NAME = re.compile(r"[A-Za-z0-9_]{1,128}")


class TracepointError(ValueError):
    """A manifest entry names a tracepoint use the daemon will not install."""


@dataclass
class ProcessTracker:
    """Which pids currently run one of the followed binaries (by exec path)."""

    paths: set[str] = field(default_factory=set)
    pids: dict[int, str] = field(default_factory=dict)

    def seed_from_proc(self) -> None:
        if not self.paths:
            return
        try:
            entries = os.listdir("/proc")
        except OSError:
            return
        for name in entries:
            if not name.isdigit():
                continue
            try:
                exe = os.readlink(f"/proc/{name}/exe")
            except OSError:
                continue
            if exe in self.paths:
                self.pids[int(name)] = exe

    def on_exec(self, pid: int, filename: str) -> None:
        if filename in self.paths:
            if len(self.pids) < MAX_TRACKED:
                self.pids[pid] = filename
        else:
            self.pids.pop(pid, None)

    def on_fork(self, parent_tgid: int, child: int, clone_flags: int) -> None:
        if clone_flags & CLONE_THREAD:
            return
        path = self.pids.get(parent_tgid)
        if path is not None and len(self.pids) < MAX_TRACKED:
            self.pids[child] = path

    def on_exit(self, pid: int) -> None:
        self.pids.pop(pid, None)


@dataclass
class TracepointUse:
    """One entry's use of a tracepoint."""

    system: str
    event: str
    kernel_filter: str = ""
    predicate: Predicate | None = None
    mapper: Mapper | None = None
    follows_path: str = ""
    # When ``predicate`` only tests the hitting process (``_pid``): that test, on the pid alone
    # (lets the reader filter records it never turns into dicts).
    pid_predicate: Callable[[int], bool] | None = None


def _quoted_path(path: Any) -> str:
    if not isinstance(path, str) or not _SAFE_PATH.fullmatch(path) or ".." in path.split("/"):
        raise TracepointError(f"process path {str(path)[:200]!r} cannot be used in a filter")
    return path


def _pid(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 1 << 22:
        raise TracepointError(f"invalid pid {value!r}")
    return value


def _pid_test(params: Fields, tracker: ProcessTracker) -> tuple[Callable[[int], bool] | None, str]:
    """(test of a process id, followed path) for a target; None: every process."""
    target = params.get("target", "any")
    if target == "any":
        return None, ""
    if target == "pid":
        want = _pid(params.get("pid"))
        return (lambda pid: pid == want), ""
    if target == "path":
        path = _quoted_path(params.get("path"))
        tracker.paths.add(path)
        return (lambda pid: tracker.pids.get(pid) == path), path
    raise TracepointError(f"unknown process target {str(target)[:40]!r}")


def _target_predicate(params: Fields, tracker: ProcessTracker, pid_key: str) -> tuple[Predicate | None, str]:
    """(predicate on the record's process id, followed path) for a target."""
    test, path = _pid_test(params, tracker)
    if test is None:
        return None, ""
    return (lambda f: test(f.get(pid_key, -1))), path


def _exec_context(f: Fields) -> Fields:
    """exec runs in the (new) thread-group leader: its ``pid`` is pid and tid."""
    return {**f, "_pid": f.get("pid"), "_tid": f.get("pid")}


def _exit_context(f: Fields) -> Fields:
    return {**f, "_tid": f.get("pid")}


def _new_thread(f: Fields) -> Fields:
    """task_newtask fires in the creating thread; the new thread's id is ``pid``."""
    return {**f, "_tid": f.get("pid")}


def _lifecycle(params: Fields, tracker: ProcessTracker) -> TracepointUse:
    event = params.get("event")
    target = params.get("target", "any")
    if event == "begin":
        use = TracepointUse("sched", "sched_process_exec")
        if target == "path":
            path = _quoted_path(params.get("path"))
            tracker.paths.add(path)
            use.kernel_filter = f'filename == "{path}"'
            use.predicate = lambda f: f.get("filename") == path
        elif target == "pid":
            want = _pid(params.get("pid"))
            use.kernel_filter = f"pid == {want}"
            use.predicate = lambda f: f.get("pid") == want
        elif target != "any":
            raise TracepointError(f"unknown process target {str(target)[:40]!r}")
        use.mapper = _exec_context
        return use
    if event in ("end", "thread.end"):
        last = 1 if event == "end" else 0
        pred, path = _target_predicate(params, tracker, "_pid")
        use = TracepointUse("sched", "sched_process_exit", kernel_filter=f"group_dead == {last}",
                            follows_path=path, mapper=_exit_context)
        use.predicate = (lambda f: f.get("group_dead") == last and pred(f)) if pred else (
            lambda f: f.get("group_dead") == last)
        return use
    if event == "thread.begin":
        pred, path = _target_predicate(params, tracker, "_pid")
        use = TracepointUse("task", "task_newtask", kernel_filter=f"clone_flags & {CLONE_THREAD}",
                            follows_path=path)
        use.predicate = (lambda f: bool(f.get("clone_flags", 0) & CLONE_THREAD) and pred(f)) if pred else (
            lambda f: bool(f.get("clone_flags", 0) & CLONE_THREAD))
        use.mapper = _new_thread
        return use
    raise TracepointError(f"unknown process event {str(event)[:40]!r}")


def _syscall_args(f: Fields) -> Fields:
    raw = f.get("args", b"")
    out = dict(f)
    out["syscall"] = f.get("id", -1)
    if isinstance(raw, bytes) and len(raw) == 48:
        for i in range(6):
            out[f"arg{i + 1}"] = int.from_bytes(raw[i * 8:i * 8 + 8], "little")
    out.pop("args", None)
    return out


def _syscall_ret(f: Fields) -> Fields:
    out = dict(f)
    out["syscall"] = f.get("id", -1)
    out["return"] = f.get("ret", 0)
    return out


def _threads(pid: int) -> list[int]:
    try:
        return sorted(int(t) for t in os.listdir(f"/proc/{pid}/task") if t.isdigit())[:MAX_FILTER_TIDS]
    except OSError:
        return [pid]


def not_ours(exclude: tuple[int, ...] = ()) -> str:
    """A kernel filter dropping the system calls of the reader itself and of ``exclude``.

    Without it, reading the events causes system calls that are events in
    turn: a loop that never idles.  ``common_pid`` is a *thread* id, so the
    daemon's threads are recognised by their command name (``DAEMON_COMM``,
    set once at daemon start and inherited by every thread; a process that
    names itself so is not traced by syscall probes, documented), the calling
    process by its pid (tests run sessions in the calling thread), and the
    client (``exclude``: single-threaded) by its pid.
    """
    pids = dict.fromkeys((os.getpid(), *(_pid(p) for p in exclude)))
    return " && ".join([*(f"common_pid != {p}" for p in pids), f'COMM != "{DAEMON_COMM}"'])


def _process_syscall(params: Fields, tracker: ProcessTracker, exclude: tuple[int, ...] = ()) -> TracepointUse:
    """Every syscall of the machine passes here, so filter in the kernel what we can.

    A pid target is filtered on the threads it has at install time (threads
    it creates later are missed; documented), other targets exclude the
    reading daemon and its client (:func:`not_ours`), whose reads would
    otherwise feed back.
    """
    is_return = params.get("event") == "syscall.return"
    pred, path = _target_predicate(params, tracker, "_pid")
    use = TracepointUse("raw_syscalls", "sys_exit" if is_return else "sys_enter", predicate=pred,
                        mapper=_syscall_ret if is_return else _syscall_args, follows_path=path)
    if params.get("target") == "pid":
        use.kernel_filter = " || ".join(f"common_pid == {t}" for t in _threads(_pid(params.get("pid"))))
    else:
        use.kernel_filter = not_ours(exclude)
    return use


def _syscall_tapset(params: Fields, exclude: tuple[int, ...] = ()) -> TracepointUse:
    is_return = bool(params.get("return"))
    name = params.get("syscall")
    nr = params.get("nr", -1)
    if not isinstance(name, str) or not (name == "*" or _TP_NAME.fullmatch(name)):
        raise TracepointError(f"invalid syscall name {str(name)[:40]!r}")
    if isinstance(nr, bool) or not isinstance(nr, int) or not -1 <= nr < 4096:
        raise TracepointError(f"invalid syscall number {nr!r}")
    use = TracepointUse("raw_syscalls", "sys_exit" if is_return else "sys_enter",
                        mapper=_syscall_ret if is_return else _syscall_args)
    use.kernel_filter = not_ours(exclude)
    if name != "*":
        if nr < 0:
            raise TracepointError(f"syscall '{name}' has no number on this machine")
        use.kernel_filter = f"id == {nr} && {not_ours(exclude)}"
        use.predicate = lambda f: f.get("id") == nr
        mapper = use.mapper
        use.mapper = lambda f: {**mapper(f), "name": name}  # type: ignore[misc]
    return use


def _kernel_trace(params: Fields) -> TracepointUse:
    system, event = params.get("system"), params.get("event")
    for value in (system, event):
        if not isinstance(value, str) or not _TP_NAME.fullmatch(value):
            raise TracepointError(f"invalid tracepoint name {str(value)[:80]!r}")
    return TracepointUse(system, event)  # type: ignore[arg-type]


def uprobe_use(group: str, event: str, params: Fields, tracker: ProcessTracker) -> TracepointUse | None:
    """The process filter of a uprobe entry in a tracefs session (None: every hit is the entry's).

    A tracefs uprobe fires in every process that maps the file, so a pid
    target, or a program path when the probed file is a library of it, is
    selected here by the hitting process (in Python: a pid may gain threads).
    """
    target = params.get("target", "any")
    if target == "any" or (target == "path" and params.get("path") == params.get("binary")):
        return None
    test, path = _pid_test(params, tracker)
    pred = None if test is None else (lambda f: test(f.get("_pid", -1)))  # type: ignore[misc]
    return TracepointUse(group, event, predicate=pred, follows_path=path, pid_predicate=test)


def use_for(family: str, params: Fields, tracker: ProcessTracker,
            exclude: tuple[int, ...] = ()) -> TracepointUse:
    """The tracepoint use of one manifest entry (raises :class:`TracepointError`); ``exclude``:
    pids whose system calls are never events of this session (the client's)."""
    if family in ("process.begin", "process.end", "process.thread.begin", "process.thread.end"):
        return _lifecycle(params, tracker)
    if family in ("process.syscall", "process.syscall.return"):
        return _process_syscall(params, tracker, exclude)
    if family == "syscall":
        return _syscall_tapset(params, exclude)
    if family == "kernel.trace":
        return _kernel_trace(params)
    raise TracepointError(f"probe family '{family[:60]}' is not a tracepoint family")


def combined_filter(filters: list[str]) -> str:
    """The OR of several entries' filters; empty (no filter) when any entry has none."""
    if not filters or any(not f for f in filters):
        return ""
    unique = sorted(set(filters))
    return unique[0] if len(unique) == 1 else " || ".join(f"({f})" for f in unique)
