"""Run-time stubs of tapset functions this substrate cannot provide.

Pass 3 already refuses a call to any of them with the reason
(``pystap.tapset.builtins.UNAVAILABLE``); a module that calls one anyway
(hand-built, or from an older translator) fails with a run-time error that
says the same, never with a missing name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pystap.runtime.errors import StapRuntimeError

_NO_KERNEL = "this kernel offers no kernel memory, symbol or stack access to tracing scripts"
_NO_USYMS = "user-space symbols and stack unwinding are not captured at the probe hit by pystap"
_NO_BUFFER = "it reads a buffer of run-time length, which cannot be captured at the probe hit"


def _stub(name: str, reason: str) -> Callable[..., Any]:
    def unavailable(c: Any, *args: Any) -> Any:
        raise StapRuntimeError(f"function {name}() is not available with pystap ({reason})")

    return unavailable


FUNCTIONS: dict[str, Callable[..., Any]] = {
    **{n: _stub(n, _NO_KERNEL) for n in (
        "addr", "backtrace", "print_backtrace", "sprint_backtrace", "kernel_string", "kernel_string_n",
        "kernel_long", "kernel_int", "kernel_short", "kernel_char", "kernel_pointer", "symname", "symdata",
        "task_current", "print_regs")},
    **{n: _stub(n, _NO_USYMS) for n in (
        "ubacktrace", "sprint_ubacktrace", "print_ubacktrace", "print_ubacktrace_brief", "usymname",
        "usymdata", "usymfile", "umodname")},
    "user_buffer_quoted": _stub("user_buffer_quoted", _NO_BUFFER),
}
