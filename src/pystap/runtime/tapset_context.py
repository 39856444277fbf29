"""Context tapset functions: who and where the probe fired.

Kernel-probe events carry their task's identity in their fields
(``pid tid ppid uid ... comm cpu``); begin/end/timer probes run in the
runtime's own process and report it, as SystemTap's begin probes report
the loader's task.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from pystap.runtime.arith import wrap
from pystap.runtime.errors import StapRuntimeError


def _proc_stat(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("latin-1")
    except OSError:
        return []
    close = data.rfind(")")
    return [data[: data.find("(")].strip(), data[data.find("(") + 1: close], *data[close + 2:].split()]


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            return f.read().decode("latin-1").rstrip("\n")
    except OSError:
        return ""


def _field(c: Any, name: str, fallback: Callable[[], Any]) -> Any:
    f = c.fields
    if f is not None and name in f:
        return f[name]
    return fallback()


def _status_ids(pid: int, line: bytes) -> list[int]:
    """Real, effective ... ids of ``pid`` from ``/proc/PID/status`` (``Uid:``/``Gid:``); [] if gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for text in f:
                if text.startswith(line):
                    return [int(x) for x in text.split()[1:]]
    except (OSError, ValueError):
        pass
    return []


def _task_id(c: Any, name: str, line: bytes, index: int, own: Callable[[], int]) -> int:
    """uid()/euid()/gid()/egid(): from the record when the daemon proved it (stapusr gate),
    else the hitting process's current ids (a kernel-probe record of a root session), else ours."""
    f = c.fields
    if f is None:
        return own()
    if name in f:
        return f[name]
    ids = _status_ids(c.pid, line)
    return ids[index] if len(ids) > index else -1


def pid(c: Any) -> int:
    return c.pid


def tid(c: Any) -> int:
    return c.tid


def ppid(c: Any) -> int:
    return _field(c, "ppid", lambda: int((_proc_stat(c.pid) or ["", "", "", "0"])[3]))


def pgrp(c: Any) -> int:
    return _field(c, "pgrp", lambda: os.getpgid(c.pid) if c.pid == os.getpid() else
                  int((_proc_stat(c.pid) or ["0"] * 5)[4]))


def sid(c: Any) -> int:
    return _field(c, "sid", lambda: int((_proc_stat(c.pid) or ["0"] * 6)[5]))


def uid(c: Any) -> int:
    return _task_id(c, "uid", b"Uid:", 0, os.getuid)


def euid(c: Any) -> int:
    return _task_id(c, "euid", b"Uid:", 1, os.geteuid)


def gid(c: Any) -> int:
    return _task_id(c, "gid", b"Gid:", 0, os.getgid)


def egid(c: Any) -> int:
    return _task_id(c, "egid", b"Gid:", 1, os.getegid)


def execname(c: Any) -> str:
    """The task's comm: from the record (uprobes capture ``$comm``), for an exec the new
    program's name (the kernel sets comm to the basename of the exec'd file), else /proc."""
    f = c.fields
    if f is not None:
        comm = f.get("comm")
        if comm is not None:
            return comm
        filename = f.get("$filename")
        exec_event = c.probe_type == "process.begin" or c.params.get("event") == "sched_process_exec"
        if exec_event and isinstance(filename, str) and filename:
            return filename.rsplit("/", 1)[-1][:15]
    return _comm(c.pid)


def pexecname(c: Any) -> str:
    return _field(c, "pcomm", lambda: _comm(ppid(c)))


def cpu(c: Any) -> int:
    return c.cpu


def pp(c: Any) -> str:
    return c.pp


def pn(c: Any) -> str:
    return c.pn


def ppfunc(c: Any) -> str:
    """The function name in ``pp()`` (``function("NAME@file:line")`` or ``statement("…")``),
    parsed from the probe point exactly as SystemTap's tapset does; "" elsewhere."""
    point = c.pp
    for marker in ('function("', 'statement("'):
        start = point.find(marker)
        if start >= 0:
            rest = point[start + len(marker):]
            end = len(rest)
            for stop in ("@", '"'):
                at = rest.find(stop)
                if 0 <= at < end:
                    end = at
            return rest[:end]
    return ""


def pnlabel(c: Any) -> str:
    return ""


def probe_type(c: Any) -> str:
    return c.probe_type


def target(c: Any) -> int:
    return c.session.target_pid


def stp_pid(c: Any) -> int:
    return os.getpid()


def module_name(c: Any) -> str:
    return c.session.module_name


UPROBE_FAMILIES = frozenset(("process.function", "process.statement", "process.mark", "process.plt"))


def is_myproc(c: Any) -> int:
    """SystemTap's is_myproc(): the task's effective uid is the session user's."""
    return 1 if euid(c) == os.geteuid() else 0


def user_mode(c: Any) -> int:
    return 1 if c.probe_type in UPROBE_FAMILIES else 0


def is_return(c: Any) -> int:
    return 1 if c.pp.endswith(".return") else 0


def registers_valid(c: Any) -> int:
    return 1 if c.probe_type in UPROBE_FAMILIES else 0


def probefunc(c: Any) -> str:
    """The function of the probe point (for a mark or statement: the function containing it)."""
    func = c.params.get("func")
    if isinstance(func, str) and func:
        return func
    start = c.pp.find('function("')
    if start >= 0:
        name = c.pp[start + 10:]
        return name.split('"', 1)[0].split("@", 1)[0]
    return ""


def probemod(c: Any) -> str:
    """SystemTap's probemod(): the kernel module of the probe point; never known for a user-space
    probe or a tracepoint on this kernel (no modules)."""
    start = c.pp.find('module("')
    if start >= 0:
        return c.pp[start + 8:].split('"', 1)[0]
    raise StapRuntimeError("Cannot determine kernel module name")


def uaddr(c: Any) -> int:
    """The user-space address of the probe hit (``%ip`` captured at the hit)."""
    f = c.fields
    value = f.get("$r__ip") if f is not None else None
    if value is None:
        return 0
    return wrap(value)


def _proc_strings(pid: int, what: str) -> list[str]:
    """NUL-separated strings of ``/proc/PID/cmdline`` or ``environ`` (read when the handler runs:
    the process may have changed or exited since the hit; documented)."""
    try:
        with open(f"/proc/{pid}/{what}", "rb") as f:
            data = f.read(1 << 20)
    except OSError:
        return []
    return [x.decode("latin-1") for x in data.split(b"\0")[:-1]] if data else []


def cmdline_args(c: Any, n: int, m: int, delim: str) -> str:
    args = _proc_strings(c.pid, "cmdline")
    last = len(args) - 1 if m < 0 else min(m, len(args) - 1)
    return delim.join(args[n:last + 1])[: c.session.maxstr] if n >= 0 else ""


def cmdline_arg(c: Any, n: int) -> str:
    args = _proc_strings(c.pid, "cmdline")
    return args[n][: c.session.maxstr] if 0 <= n < len(args) else ""


def cmdline_str(c: Any) -> str:
    return cmdline_args(c, 0, -1, " ")


def env_var(c: Any, name: str) -> str:
    for entry in _proc_strings(c.pid, "environ"):
        key, sep, value = entry.partition("=")
        if sep and key == name:
            return value[: c.session.maxstr]
    return ""


def remote_id(c: Any) -> int:
    return -1


def remote_uri(c: Any) -> str:
    return ""


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "pid": pid, "tid": tid, "ppid": ppid, "pgrp": pgrp, "sid": sid, "uid": uid, "euid": euid,
    "gid": gid, "egid": egid, "execname": execname, "pexecname": pexecname, "cpu": cpu, "cpuid": cpu,
    "pp": pp, "pn": pn, "ppfunc": ppfunc, "pnlabel": pnlabel, "probe_type": probe_type,
    "target": target, "stp_pid": stp_pid, "module_name": module_name, "is_myproc": is_myproc,
    "user_mode": user_mode, "is_return": is_return, "registers_valid": registers_valid,
    "remote_id": remote_id, "remote_uri": remote_uri, "probefunc": probefunc, "probemod": probemod,
    "uaddr": uaddr, "cmdline_args": cmdline_args, "cmdline_arg": cmdline_arg, "cmdline_str": cmdline_str,
    "env_var": env_var,
    # this runtime has no pid namespaces of its own: the ns_* view equals the global one
    "ns_pid": pid, "ns_tid": tid, "ns_ppid": ppid, "ns_pgrp": pgrp, "ns_sid": sid, "ns_uid": uid,
    "ns_euid": euid, "ns_gid": gid, "ns_egid": egid,
}
