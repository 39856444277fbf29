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
    return _field(c, "uid", os.getuid)


def euid(c: Any) -> int:
    return _field(c, "euid", os.geteuid)


def gid(c: Any) -> int:
    return _field(c, "gid", os.getgid)


def egid(c: Any) -> int:
    return _field(c, "egid", os.getegid)


def execname(c: Any) -> str:
    return _field(c, "comm", lambda: _comm(c.pid))


def pexecname(c: Any) -> str:
    return _field(c, "pcomm", lambda: _comm(ppid(c)))


def cpu(c: Any) -> int:
    return c.cpu


def pp(c: Any) -> str:
    return c.pp


def pn(c: Any) -> str:
    return c.pn


def ppfunc(c: Any) -> str:
    return _field(c, "func", lambda: "")


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


def is_myproc(c: Any) -> int:
    return 1 if _field(c, "uid", os.getuid) == os.getuid() else 0


def user_mode(c: Any) -> int:
    return _field(c, "user_mode", lambda: 0)


def is_return(c: Any) -> int:
    return 1 if c.pp.endswith(".return") else 0


def registers_valid(c: Any) -> int:
    return 0


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
    "remote_id": remote_id, "remote_uri": remote_uri,
    # this runtime has no pid namespaces of its own: the ns_* view equals the global one
    "ns_pid": pid, "ns_tid": tid, "ns_ppid": ppid, "ns_pgrp": pgrp, "ns_sid": sid, "ns_uid": uid,
    "ns_euid": euid, "ns_gid": gid, "ns_egid": egid,
}
