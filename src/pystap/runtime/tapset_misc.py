"""Control, terminal, indentation, randomness and speculation tapset functions."""

from __future__ import annotations

import errno
import secrets
import sys
import time
from collections.abc import Callable
from typing import Any

from pystap.runtime.errors import AbortRequest, StapRuntimeError


def exit_(c: Any) -> None:
    c.session.request_exit()


def abort(c: Any) -> None:
    c.session.request_exit()
    raise AbortRequest()


def error(c: Any, msg: str) -> None:
    raise StapRuntimeError(msg)


def warn(c: Any, msg: str) -> None:
    c.session.warn(msg)


def log(c: Any, msg: str) -> None:
    c.w(msg + "\n")


def system(c: Any, cmd: str) -> None:
    """Queued: the session runs it after the handler, as the loader does."""
    c.session.queue_command(cmd)


def switch_file(c: Any) -> None:
    c.session.switch_file()


def randint(c: Any, n: int) -> int:
    if n > 1 << 20:
        raise StapRuntimeError("range too wide")
    if n <= 0:
        return 0
    return secrets.randbelow(n)


def errno_str(c: Any, err: int) -> str:
    return errno.errorcode.get(abs(err), "")


def _ansi(text: str) -> Callable[[Any], None]:
    def emit(c: Any) -> None:
        c.w(text)

    return emit


def ansi_cursor_move(c: Any, x: int, y: int) -> None:
    c.w(f"\033[{y};{x}H")


def ansi_set_color(c: Any, fg: int, *rest: int) -> None:
    if not rest:
        c.w(f"\033[{fg}m")
    elif len(rest) == 1:
        c.w(f"\033[{rest[0]};{fg}m")
    else:
        bg, attr = rest
        c.w(f"\033[{bg};{fg}" + (f";{attr}m" if attr else "m"))


def _indent_common(c: Any, idx: Any, desc: str, delta: int) -> str:
    s = c.session
    ts = time.time_ns() // 1000
    if not s.indent_counters.get(idx):
        s.indent_timestamps[idx] = ts
    x = s.indent_counters.get(idx, 0) + (delta if delta > 0 else 0)
    s.indent_counters[idx] = s.indent_counters.get(idx, 0) + delta
    pad = " " * (x - 1 if x > 0 else 0)
    return f"{ts - s.indent_timestamps.get(idx, ts):6d} {desc}:{pad}"[: s.maxstr]


def indent(c: Any, delta: int) -> str:
    return _indent_common(c, -1, "", delta)


def thread_indent(c: Any, delta: int) -> str:
    from pystap.runtime.tapset_context import execname

    return _indent_common(c, c.tid, f"{execname(c)}({c.tid})", delta)


def indent_depth(c: Any, delta: int) -> int:
    s = c.session
    s.indent_counters[-1] = s.indent_counters.get(-1, 0) + delta
    return s.indent_counters[-1]


def thread_indent_depth(c: Any, delta: int) -> int:
    s = c.session
    s.indent_counters[c.tid] = s.indent_counters.get(c.tid, 0) + delta
    return s.indent_counters[c.tid]


def speculation(c: Any) -> int:
    s = c.session
    s.spec_next += 1
    s.speculations[s.spec_next] = []
    return s.spec_next


def speculate(c: Any, sid: int, output: str) -> None:
    buf = c.session.speculations.get(sid)
    if buf is not None:
        buf.append(output)


def commit(c: Any, sid: int) -> None:
    buf = c.session.speculations.pop(sid, None)
    if buf:
        c.w("".join(buf))


def discard(c: Any, sid: int) -> None:
    c.session.speculations.pop(sid, None)


def _byte_order(size: int, order: str) -> Callable[[Any, int], int]:
    """``big_endian2/4/8``, ``little_endian2/4/8``: the kernel's ``cpu_to_be*``/``cpu_to_le*``
    of the low ``size`` bytes (so a swap on this host when the orders differ); 8 bytes come
    back as the int64 of the same bits, fewer zero-extended."""
    bits = 8 * size

    def convert(c: Any, val: int) -> int:
        v = int.from_bytes((val & ((1 << bits) - 1)).to_bytes(size, sys.byteorder), order)
        return v - (1 << 64) if v >= 1 << 63 else v

    return convert


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "exit": exit_, "abort": abort, "error": error, "warn": warn, "log": log, "system": system,
    "switch_file": switch_file, "randint": randint, "errno_str": errno_str,
    "ansi_clear_screen": _ansi("\033[1;1H\033[J"), "ansi_cursor_hide": _ansi("\033[?25l"),
    "ansi_cursor_show": _ansi("\033[?25h"), "ansi_cursor_save": _ansi("\033[s"),
    "ansi_cursor_restore": _ansi("\033[u"), "ansi_new_line": _ansi("\n"),
    "ansi_reset_color": _ansi("\033[0;0m"), "ansi_cursor_move": ansi_cursor_move,
    "ansi_set_color": ansi_set_color, "ansi_set_color2": ansi_set_color,
    "ansi_set_color3": ansi_set_color, "indent": indent, "thread_indent": thread_indent,
    "indent_depth": indent_depth, "thread_indent_depth": thread_indent_depth,
    "speculation": speculation, "speculate": speculate, "commit": commit, "discard": discard,
    **{f"{order}_endian{size}": _byte_order(size, order)
       for order in ("big", "little") for size in (2, 4, 8)},
}
