"""The syscall tapset's locals (``name argstr retval retstr`` and per-call arguments), at run time.

SystemTap builds ``syscall.NAME`` from tapset aliases whose prologue sets
locals from the call's arguments (``fd = int_arg(1)``, ``filename =
user_string_quoted(pointer_arg(2))``, ``argstr = sprintf(...)``).  pystap's
probe records carry the raw arguments (``$arg1..$arg6``, unsigned), the
path strings the daemon captured in the kernel at the call
(``$argN_str``) and, on return, ``$return``; this module computes the
same locals from them, in SystemTap's formats.  Generated code asks for a
local only when the handler reads it (``_ctxvar(c, "argstr")``).

The per-call argument names and types must agree with the translator's
table (:data:`pystap.probes.syscall.SYSCALL_LOCALS`); a test checks it.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

from pystap.runtime import printf
from pystap.runtime.arith import wrap
from pystap.runtime.tapset_strings import string_quoted
from pystap.syscalls import syscall_name

AT_FDCWD = -100
O_CREAT = 0o100
AT_REMOVEDIR = 0x200
MAXERRNO = 4095
# _stp_open_mode_flags_list, in SystemTap's order (x86_64 values)
OPEN_FLAGS = (
    (0o100, "O_CREAT"), (0o200, "O_EXCL"), (0o400, "O_NOCTTY"), (0o1000, "O_TRUNC"), (0o2000, "O_APPEND"),
    (0o4000, "O_NONBLOCK"), (0o4010000, "O_SYNC"), (0o10000, "O_DSYNC"), (0o20000, "O_ASYNC"),
    (0o40000, "O_DIRECT"), (0o100000, "O_LARGEFILE"), (0o200000, "O_DIRECTORY"), (0o400000, "O_NOFOLLOW"),
    (0o1000000, "O_NOATIME"), (0o2000000, "O_CLOEXEC"), (0o10000000, "O_PATH"),
)
ACCESS_MODES = ((0, "F_OK"), (4, "R_OK"), (2, "W_OK"), (1, "X_OK"))


def _raw(c: Any, n: int) -> int:
    fields = c.fields or {}
    return int(fields.get(f"$arg{n}", 0) or 0) & ((1 << 64) - 1)


def _int(c: Any, n: int) -> int:
    v = _raw(c, n) & 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


def _uint(c: Any, n: int) -> int:
    return _raw(c, n) & 0xFFFFFFFF


def _long(c: Any, n: int) -> int:
    return wrap(_raw(c, n))


def _pointer(c: Any, n: int) -> str:
    return printf.number(_raw(c, n), 16, -1, -1, printf.SPECIAL)


def _path(c: Any, n: int) -> str:
    """``user_string_quoted(pointer_arg(n))``: the string captured at the call, else the address."""
    fields = c.fields or {}
    text = fields.get(f"$arg{n}_str")
    if text is None or _raw(c, n) == 0:
        return f"0x{_raw(c, n):x}"
    return string_quoted(c, str(text))


def _lookup_or(table: tuple[tuple[int, str], ...], value: int) -> str:
    """SystemTap's ``_stp_lookup_or_str``: matching names joined by ``|``, rest in hex (0: the
    name whose value is 0, else ``0x0``)."""
    if value == 0:
        return next((name for bit, name in table if bit == 0), "0x0")
    out: list[str] = []
    for bit, name in table:
        if bit & value:
            out.append(name)
            value &= ~bit
    if value:
        out.append(f"0x{value:x}")
    return "|".join(out)


def open_flag_str(flags: int) -> str:
    acc = flags & 3
    text = {1: "O_WRONLY", 2: "O_RDWR"}.get(acc, "O_RDONLY")
    rest = flags & ~3 & 0xFFFFFFFF
    return f"{text}|{_lookup_or(OPEN_FLAGS, rest)}" if rest else text


def _dfd_str(d: int) -> str:
    return "AT_FDCWD" if d == AT_FDCWD else str(d)


def _octal(v: int) -> str:
    return printf.number(v, 8, -1, -1, printf.SPECIAL)


def _access_str(mode: int) -> str:
    return _lookup_or(ACCESS_MODES, mode)


def _unquoted(c: Any, n: int) -> str:
    """``user_string_nofault(pointer_arg(n))``."""
    fields = c.fields or {}
    text = fields.get(f"$arg{n}_str")
    return "" if text is None or _raw(c, n) == 0 else str(text)


AT_FLAGS = ((0x100, "AT_SYMLINK_NOFOLLOW"), (0x200, "AT_REMOVEDIR"), (0x400, "AT_SYMLINK_FOLLOW"),
            (0x800, "AT_NO_AUTOMOUNT"), (0x1000, "AT_EMPTY_PATH"))


def _open(c: Any, path: int, flags: int, mode: int, dfd: int = 0) -> str:
    parts = ([_dfd_str(_int(c, dfd))] if dfd else []) + [_path(c, path), open_flag_str(_int(c, flags))]
    if _int(c, flags) & O_CREAT:
        parts.append(_octal(_uint(c, mode)))
    return ", ".join(parts)


# Per call: local -> how to compute it from the record (SystemTap's sysc_<call>.stp prologues).
Local = Callable[[Any], Any]
SYSCALLS: dict[str, dict[str, Local]] = {
    "read": {"fd": lambda c: _int(c, 1), "buf_uaddr": lambda c: _long(c, 2), "count": lambda c: _long(c, 3),
             "argstr": lambda c: f"{_int(c, 1)}, {_pointer(c, 2)}, {_raw(c, 3)}"},
    "write": {"fd": lambda c: _int(c, 1), "buf_uaddr": lambda c: _long(c, 2), "count": lambda c: _long(c, 3),
              "argstr": lambda c: f"{_int(c, 1)}, {_pointer(c, 2)}, {_raw(c, 3)}"},
    "close": {"fd": lambda c: _int(c, 1), "argstr": lambda c: str(_int(c, 1))},
    "open": {"filename": lambda c: _path(c, 1), "filename_unquoted": lambda c: _unquoted(c, 1),
             "flags": lambda c: _int(c, 2), "flags_str": lambda c: open_flag_str(_int(c, 2)),
             "mode": lambda c: _uint(c, 3), "argstr": lambda c: _open(c, 1, 2, 3)},
    "openat": {"dfd": lambda c: _int(c, 1), "dfd_str": lambda c: _dfd_str(_int(c, 1)),
               "filename": lambda c: _path(c, 2), "filename_unquoted": lambda c: _unquoted(c, 2),
               "flags": lambda c: _int(c, 3), "flags_str": lambda c: open_flag_str(_int(c, 3)),
               "mode": lambda c: _uint(c, 4), "argstr": lambda c: _open(c, 2, 3, 4, dfd=1)},
    "execve": {"filename": lambda c: _path(c, 1),
               "argstr": lambda c: f"{_path(c, 1)}, {_pointer(c, 2)}, {_pointer(c, 3)}"},
    "unlink": {"pathname_uaddr": lambda c: _long(c, 1), "pathname": lambda c: _path(c, 1),
               "pathname_unquoted": lambda c: _unquoted(c, 1), "argstr": lambda c: _path(c, 1)},
    "unlinkat": {"dfd": lambda c: _int(c, 1), "dfd_str": lambda c: _dfd_str(_int(c, 1)),
                 "pathname": lambda c: _long(c, 2), "pathname_str": lambda c: _path(c, 2),
                 "pathname_str_unquoted": lambda c: _unquoted(c, 2), "flag": lambda c: _uint(c, 3),
                 "flag_str": lambda c: _lookup_or(AT_FLAGS, _uint(c, 3)),
                 "argstr": lambda c: ", ".join((_dfd_str(_int(c, 1)), _path(c, 2),
                                                _lookup_or(AT_FLAGS, _uint(c, 3))))},
    "mkdir": {"pathname_uaddr": lambda c: _long(c, 1), "pathname": lambda c: _path(c, 1),
              "pathname_unquoted": lambda c: _unquoted(c, 1), "mode": lambda c: _uint(c, 2),
              "argstr": lambda c: f"{_path(c, 1)}, {_octal(_uint(c, 2))}"},
    "rmdir": {"pathname": lambda c: _path(c, 1), "pathname_unquoted": lambda c: _unquoted(c, 1),
              "argstr": lambda c: _path(c, 1)},
    "chdir": {"path": lambda c: _path(c, 1), "path_unquoted": lambda c: _unquoted(c, 1),
              "argstr": lambda c: _path(c, 1)},
    "access": {"pathname": lambda c: _path(c, 1), "pathname_unquoted": lambda c: _unquoted(c, 1),
               "mode": lambda c: _int(c, 2), "mode_str": lambda c: _access_str(_int(c, 2)),
               "argstr": lambda c: f"{_path(c, 1)}, {_access_str(_int(c, 2))}"},
    "getpid": {"argstr": lambda c: ""},
    "getppid": {"argstr": lambda c: ""},
    "getuid": {"argstr": lambda c: ""},
    "sync": {"argstr": lambda c: ""},
}


def return_str(ret: int) -> str:
    """``return_str(1, $return)``: ``-2 (ENOENT)`` for an errno, else the number."""
    if -MAXERRNO < ret < 0 and -ret in errno.errorcode:
        return f"{ret} ({errno.errorcode[-ret]})"
    return str(ret)


def _name(c: Any) -> str:
    value = c.params.get("syscall", "")
    if value == "*" or not value:
        fields = c.fields or {}
        nr = fields.get("$syscall")
        value = fields.get("$name") or (syscall_name(int(nr)) if isinstance(nr, int) else "")
    return str(value)


def context_variable(c: Any, name: str) -> Any:
    """The value of a local a syscall probe provides (``_ctxvar(c, name)`` in generated code)."""
    if name == "name":
        return _name(c)
    fields = c.fields or {}
    if name == "retval":
        return wrap(int(fields.get("$return", 0) or 0))
    if name == "retstr":
        return return_str(wrap(int(fields.get("$return", 0) or 0)))
    table = SYSCALLS.get(_name(c), {})
    compute = table.get(name)
    if compute is None:
        return ""  # argstr of a call without a format here (documented)
    value = compute(c)
    return value[: c.session.maxstr] if isinstance(value, str) else value


# local name -> "long" | "string", per call (mirrors pystap.probes.syscall.SYSCALL_LOCALS)
_STRING_LOCALS = frozenset(("argstr", "filename", "filename_unquoted", "path", "path_unquoted", "dfd_str",
                            "flags_str", "flag_str", "mode_str", "pathname_str", "pathname_str_unquoted",
                            "pathname_unquoted"))
LOCAL_TYPES: dict[str, dict[str, str]] = {
    call: {local: "string" if local in _STRING_LOCALS or (local == "pathname" and call != "unlinkat")
           else "long" for local in table}
    for call, table in SYSCALLS.items()
}
