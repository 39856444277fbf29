"""Tapset functions this substrate cannot provide, and why: one list for both sides.

The translator declares them (so scripts get SystemTap's privilege rules and
messages at pass 2) and refuses a call at pass 3 with the reason; the runtime
keeps a stub per name that fails with the same reason, so a hand-built module
that calls one anyway gets an error a user can act on, never a missing name.
A leaf module: the passes and the runtime both import it, it imports neither.
"""

from __future__ import annotations

NO_KERNEL = "this kernel offers no kernel memory, symbol or stack access to tracing scripts"
NO_USYMS = "user-space symbols and stack unwinding are not captured at the probe hit by pystap"
NO_BUFFER = "it reads a buffer of run-time length, which cannot be captured at the probe hit"

SUBSTRATE: dict[str, str] = {
    **{name: NO_KERNEL for name in (
        "addr", "backtrace", "print_backtrace", "sprint_backtrace", "kernel_string", "kernel_string_n",
        "kernel_long", "kernel_int", "kernel_short", "kernel_char", "kernel_pointer", "symname", "symdata",
        "task_current", "print_regs")},
    **{name: NO_USYMS for name in (
        "ubacktrace", "sprint_ubacktrace", "print_ubacktrace", "print_ubacktrace_brief", "usymname",
        "usymdata", "usymfile", "umodname")},
    "user_buffer_quoted": NO_BUFFER,
}
