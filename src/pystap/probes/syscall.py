"""``syscall.NAME[.return]`` and ``syscall_any[.return]``: system calls of every process.

SystemTap builds these as tapset aliases over kernel probes; pystap builds
them over the ``raw_syscalls`` tracepoints, so they share ``kernel.trace``'s
privilege (stapsys and up).  The aliases' well-known locals are provided by
the runtime before the handler runs: ``name argstr`` on entry, ``name
retval retstr`` on return, plus ``$syscall $argN $return``.
"""

from __future__ import annotations

import re
from typing import Any

from pystap.lang.ast import ProbePoint, Type
from pystap.lang.diagnostics import SemanticError
from pystap.probes.registry import ANY, BuildContext, Built, shape
from pystap.syscalls import syscall_numbers


def _target(is_return: bool):
    def resolve(name: str, write: bool) -> Type:
        if write:
            raise SemanticError(f"write to syscall variable '{name}' not permitted; need stap -g")
        if name == "$syscall" or (is_return and name == "$return"):
            return Type.LONG
        if not is_return and re.fullmatch(r"\$arg[1-6]", name):
            return Type.LONG
        raise SemanticError(f"unable to find syscall variable '{name}'")

    return resolve


# The per-call locals of the common calls (SystemTap's names); the runtime computes them from the
# record (pystap.runtime.tapset_syscall.SYSCALLS, kept equal by a test).  Other calls provide
# ``name`` and an empty ``argstr``.
_S, _L = Type.STRING, Type.LONG
SYSCALL_LOCALS: dict[str, dict[str, Type]] = {
    "read": {"fd": _L, "buf_uaddr": _L, "count": _L},
    "write": {"fd": _L, "buf_uaddr": _L, "count": _L},
    "close": {"fd": _L},
    "open": {"filename": _S, "filename_unquoted": _S, "flags": _L, "flags_str": _S, "mode": _L},
    "openat": {"dfd": _L, "dfd_str": _S, "filename": _S, "filename_unquoted": _S, "flags": _L,
               "flags_str": _S, "mode": _L},
    "execve": {"filename": _S},
    "unlink": {"pathname_uaddr": _L, "pathname": _S, "pathname_unquoted": _S},
    "unlinkat": {"dfd": _L, "dfd_str": _S, "pathname": _L, "pathname_str": _S, "pathname_str_unquoted": _S,
                 "flag": _L, "flag_str": _S},
    "mkdir": {"pathname_uaddr": _L, "pathname": _S, "pathname_unquoted": _S, "mode": _L},
    "rmdir": {"pathname": _S, "pathname_unquoted": _S},
    "chdir": {"path": _S, "path_unquoted": _S},
    "access": {"pathname": _S, "pathname_unquoted": _S, "mode": _L, "mode_str": _S},
    "getpid": {}, "getppid": {}, "getuid": {}, "sync": {},
}


def _provides(is_return: bool, call: str = "") -> dict[str, Type]:
    if is_return:
        return {"name": Type.STRING, "retval": Type.LONG, "retstr": Type.STRING}
    return {"name": Type.STRING, "argstr": Type.STRING, **SYSCALL_LOCALS.get(call, {})}


def _named(is_return: bool):
    def build(pp: ProbePoint, args: dict[str, Any], ctx: BuildContext) -> list[Built]:
        wanted = args["_names"][1]
        table = syscall_numbers()
        if table and wanted not in table:
            raise SemanticError(f"unknown system call '{wanted}'")
        suffix = ".return" if is_return else ""
        return [
            Built(
                point=f"syscall.{wanted}{suffix}",
                family="syscall",
                params={"syscall": wanted, "nr": table.get(wanted, -1), "return": is_return},
                provides=_provides(is_return, wanted),
                target=_target(is_return),
            )
        ]

    return build


def _any(is_return: bool):
    def build(pp: ProbePoint, args: dict[str, Any], ctx: BuildContext) -> list[Built]:
        suffix = ".return" if is_return else ""
        return [
            Built(
                point=f"syscall_any{suffix}",
                family="syscall",
                params={"syscall": "*", "nr": -1, "return": is_return},
                provides=_provides(is_return),
                target=_target(is_return),
            )
        ]

    return build


def expand_names() -> list[str]:
    """Concrete names a ``syscall.*`` wildcard expands to."""
    return sorted(syscall_numbers())


SHAPES = [
    shape(f"syscall.{ANY}", "syscall", _named(False), expand_names),
    shape(f"syscall.{ANY}.return", "syscall", _named(True), expand_names),
    shape("syscall_any", "syscall", _any(False)),
    shape("syscall_any.return", "syscall", _any(True)),
]
