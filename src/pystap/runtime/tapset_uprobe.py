"""Context of user-space probe hits: registers, function arguments, return values, user memory.

SystemTap reads these from ``pt_regs`` and the probed process's memory while
the process is stopped in the probe.  pystap's handlers run later, in
another process, so every value they can see was *captured in the kernel
at the hit* as a uprobe fetch argument and arrives in the event's fields
(nothing can race with the traced process).  The translator decides what
to capture (:mod:`pystap.probes.captures`) and passes each reader the key
of its captured value; the key names are the contract below, shared by
both sides:

* ``$r__<reg>`` a 64-bit register (``%di`` ...) as ``u64``;
* ``$s__<k>`` the k-th 64-bit user stack slot above the return address
  (function arguments 7 and up);
* ``$u__<n>`` the value a ``user_*`` reader call reads (a string or a
  typed integer at a captured address);
* ``$return`` the return value of a ``.return`` probe.

A reader whose key is ``None`` was given an address the translator proved
to fault (``user_string(0)``).  Kernel semantics shape the fault rules: a
faulting string fetch arrives as ``None``; a faulting integer fetch is
not marked by the kernel, so addresses in the NULL page or above the user
address range count as faults here, and other faults are not detected
(documented in docs/language.md).
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

from pystap.runtime import printf
from pystap.runtime.arith import wrap
from pystap.runtime.errors import StapRuntimeError
from pystap.runtime.tapset_strings import string_quoted

MASK64 = (1 << 64) - 1
NULL_PAGE = 4096
USER_TOP = 1 << 47  # x86-64 user addresses lie below 0x0000800000000000
MAXERRNO = 4095

# register name -> (captured 64-bit register, width in bits, bit shift); x86_64/registers.stp's tables
REGISTERS: dict[str, tuple[str, int, int]] = {}
for _name, _reg in (("rax", "ax"), ("rbx", "bx"), ("rcx", "cx"), ("rdx", "dx"), ("rsi", "si"), ("rdi", "di"),
                    ("rbp", "bp"), ("rsp", "sp"), ("rip", "ip"), *((f"r{n}", f"r{n}") for n in range(8, 16))):
    REGISTERS[_name] = (_reg, 64, 0)
for _reg in ("ax", "bx", "cx", "dx", "si", "di", "bp", "sp", "ip"):
    REGISTERS["e" + _reg] = (_reg, 32, 0)
    REGISTERS[_reg] = (_reg, 16, 0)
for _reg in ("a", "b", "c", "d"):
    REGISTERS[_reg + "l"] = (_reg + "x", 8, 0)
    REGISTERS[_reg + "h"] = (_reg + "x", 8, 8)
# In SystemTap's tables but not capturable by a uprobe through pystapd's fetch allowlist.
UNCAPTURABLE_REGISTERS = frozenset(("orig_rax", "xcs", "eflags", "xss", "orig_eax", "orig_ax", "cs", "flags",
                                    "ss"))
ARG_REGISTERS = ("di", "si", "dx", "cx", "r8", "r9")
SYSCALL_FAMILIES = frozenset(("syscall", "process.syscall", "process.syscall.return"))


def register_key(reg: str) -> str:
    return f"$r__{reg}"


def stack_key(slot: int) -> str:
    return f"$s__{slot}"


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


# ------------------------------------------------------------------ registers and arguments


def _register(c: Any, name: str, sign_extend: bool) -> int:
    spec = REGISTERS.get(name)
    if spec is None:
        raise StapRuntimeError(f"Unknown register: {name}")
    reg, bits, shift = spec
    fields = c.fields
    value = fields.get(register_key(reg)) if fields is not None else None
    if value is None:
        raise StapRuntimeError("cannot access CPU registers in this context")
    value = (value & MASK64) >> shift
    if bits == 64:
        return wrap(value)
    return _signed(value, bits) if sign_extend else value & ((1 << bits) - 1)


def register(c: Any, name: str) -> int:
    """The named register, sign-extended from its width (x86_64 names as SystemTap's)."""
    return _register(c, name, True)


def u_register(c: Any, name: str) -> int:
    return _register(c, name, False)


def _arg(c: Any, n: int, sign_extend: bool, truncate: bool) -> int:
    """SystemTap's ``_stp_arg2`` for a 64-bit process: six register arguments, then the stack."""
    fields = c.fields
    if fields is None:
        raise StapRuntimeError("cannot access function args in this context")
    if n < 1:
        raise StapRuntimeError(f"cannot access arg({n})")
    if c.probe_type in SYSCALL_FAMILIES:
        # a syscall probe's arguments are the call's (SystemTap's syscall-in-pt_regs mode)
        key = f"$arg{n}" if n <= len(ARG_REGISTERS) else ""
    elif n <= len(ARG_REGISTERS):
        key = register_key(ARG_REGISTERS[n - 1])
    else:
        key = stack_key(n - len(ARG_REGISTERS))
    value = fields.get(key)
    if value is None:
        raise StapRuntimeError(f"cannot access arg({n})")
    if truncate:
        return _signed(value, 32) if sign_extend else value & 0xFFFFFFFF
    return wrap(value)


def int_arg(c: Any, n: int) -> int:
    return _arg(c, n, True, True)


def uint_arg(c: Any, n: int) -> int:
    return _arg(c, n, False, True)


def long_arg(c: Any, n: int) -> int:
    return _arg(c, n, True, False)


def ulong_arg(c: Any, n: int) -> int:
    return _arg(c, n, False, False)


def returnval(c: Any) -> int:
    """The return-value register: ``$return`` in a .return probe, ``%ax`` elsewhere."""
    fields = c.fields
    if fields is not None:
        value = fields.get("$return")
        if value is None:
            value = fields.get(register_key("ax"))
        if value is not None:
            return wrap(value)
    raise StapRuntimeError(f"returnval() not defined in this context {c.pp}")


def _errno_name(value: int) -> str:
    return errno.errorcode.get(-value, "") if -MAXERRNO < value < 0 else ""


def returnstr(c: Any, fmt: int) -> str:
    try:
        ret = returnval(c)
    except StapRuntimeError:
        return "N/A"
    name = _errno_name(ret)
    if name:
        return f"{ret} ({name})"
    return _format_number(fmt, ret)


def return_str(c: Any, fmt: int, ret: int) -> str:
    name = _errno_name(ret)
    if name:
        return f"{ret} ({name})"
    return _format_number(fmt, ret)


def _format_number(fmt: int, value: int) -> str:
    if fmt == 2:
        return f"0x{value & MASK64:x}"
    if fmt == 3:
        return printf.number(value, 8, -1, -1, printf.SPECIAL)
    return str(value)


def format_parms(c: Any, parms: tuple[tuple[str, str, str | None], ...], pretty: int) -> str:
    """``$$parms`` (``name=0x7``), ``$$parms$``/``$$parms$$`` (``name=7``, char pointers as their
    quoted string) and ``$$return``, from the captured values (``_parms`` in generated code)."""
    fields = c.fields or {}
    out = []
    for name, key, string_key in parms:
        value = fields.get(key)
        if value is None:
            out.append(f"{name}=?")
            continue
        value = wrap(value)
        if not pretty:
            out.append(f"{name}=0x{value & MASK64:x}")
        elif string_key is not None and value != 0 and fields.get(string_key) is not None:
            out.append(f"{name}={string_quoted(c, str(fields[string_key]))}")
        elif string_key is not None:
            out.append(f"{name}=0x{value & MASK64:x}")
        else:
            out.append(f"{name}={value}")
    return " ".join(out)[: c.session.maxstr]


MAX_ENTRY_DEPTH = 1024  # per thread and probe: deeper recursion keeps the newest calls
MAX_ENTRY_THREADS = 65536


def entry_push(c: Any, slot: int, keys: tuple[str, ...]) -> None:
    """A .return probe's companion entry hit: keep the values captured at the entry, per thread.

    (``_entry_push`` in generated code.)  The stacks live on the session, so
    recursion pairs each return with its own entry.
    """
    stacks = c.session.__dict__.setdefault("entry_stacks", {})
    fields = c.fields or {}
    key = (slot, c.tid)
    stack = stacks.get(key)
    if stack is None:
        if len(stacks) >= MAX_ENTRY_THREADS:
            stacks.clear()  # returns that never came (threads gone): start over rather than grow
        stack = stacks[key] = []
    stack.append(tuple(fields.get(k) for k in keys))
    if len(stack) > MAX_ENTRY_DEPTH:
        del stack[0]


def entry_pop(c: Any, slot: int, keys: tuple[str, ...]) -> None:
    """The matching return: put the entry's values into this event's fields (``_entry_pop``)."""
    stacks = c.session.__dict__.get("entry_stacks")
    stack = stacks.get((slot, c.tid)) if stacks else None
    if not stack:
        return  # the call began before the probe was armed: the values stay unknown
    values = stack.pop()
    if not stack:
        del stacks[(slot, c.tid)]
    fields = c.fields
    if fields is not None:
        for k, v in zip(keys, values, strict=True):
            if v is not None or k.startswith("$u__"):
                fields[k] = v


# ------------------------------------------------------------------ user memory (captured)


class _Fault(Exception):
    """The captured read faulted (internal; each reader turns it into its own behaviour)."""


def _captured(c: Any, key: str | None, addr: int) -> Any:
    address = addr & MASK64
    if key is None or address < NULL_PAGE or address >= USER_TOP:
        raise _Fault()
    fields = c.fields
    value = fields.get(key) if fields is not None else None
    if value is None:
        raise _Fault()
    return value


def _string_limit(c: Any, n: int) -> int:
    """How many characters ``user_string_n(addr, n)`` keeps: clamp(n + 1, 1, MAXSTRINGLEN - 1) - 1."""
    return min(max(n + 1, 1), c.session.limits["MAXSTRINGLEN"] - 1) - 1


def _string_fault(addr: int) -> str:
    return f"user string copy fault -{errno.EFAULT} at 0x{addr & MASK64:x} [man error::fault]"


def user_string_n(c: Any, key: str | None, addr: int, n: int, err_msg: str | None = None) -> str:
    try:
        text = _captured(c, key, addr)
    except _Fault:
        if err_msg is not None:
            return err_msg[: c.session.maxstr]
        raise StapRuntimeError(_string_fault(addr)) from None
    return str(text)[: _string_limit(c, n)]


def user_string(c: Any, key: str | None, addr: int, err_msg: str | None = None) -> str:
    return user_string_n(c, key, addr, c.session.limits["MAXSTRINGLEN"], err_msg)


def user_string2(c: Any, key: str | None, addr: int, err_msg: str) -> str:
    return user_string(c, key, addr, err_msg)


def user_string_n2(c: Any, key: str | None, addr: int, n: int, err_msg: str) -> str:
    return user_string_n(c, key, addr, n, err_msg)


def user_string_n_warn(c: Any, key: str | None, addr: int, n: int, warn_msg: str = "") -> str:
    try:
        return str(_captured(c, key, addr))[: _string_limit(c, n)]
    except _Fault:
        c.session.warn(_string_fault(addr))
        return warn_msg[: c.session.maxstr]


def user_string_warn(c: Any, key: str | None, addr: int, warn_msg: str = "") -> str:
    return user_string_n_warn(c, key, addr, c.session.limits["MAXSTRINGLEN"], warn_msg)


def user_string2_warn(c: Any, key: str | None, addr: int, warn_msg: str) -> str:
    return user_string_warn(c, key, addr, warn_msg)


def user_string2_n_warn(c: Any, key: str | None, addr: int, n: int, warn_msg: str) -> str:
    return user_string_n_warn(c, key, addr, n, warn_msg)


def user_string_nofault(c: Any, key: str | None, addr: int) -> str:
    return user_string_n(c, key, addr, c.session.limits["MAXSTRINGLEN"], "")


def user_string_n_nofault(c: Any, key: str | None, addr: int, n: int) -> str:
    return user_string_n(c, key, addr, n, "")


def user_string_quoted(c: Any, key: str | None, addr: int) -> str:
    try:
        return string_quoted(c, user_string(c, key, addr))
    except StapRuntimeError:
        return f"0x{addr & MASK64:x}"


def user_string_n_quoted(c: Any, key: str | None, addr: int, inlen: int, outlen: int | None = None) -> str:
    """SystemTap >= 3.0: quoted, shortened to ``outlen`` with ``"...`` (two-argument form: MAXSTRINGLEN)."""
    if outlen is None:
        outlen = c.session.limits["MAXSTRINGLEN"]
    try:
        text = string_quoted(c, user_string_n(c, key, addr, inlen))
    except StapRuntimeError:
        return f"0x{addr & MASK64:x}"
    if len(text) > outlen - 2:
        text = text[: max(outlen - 4, 0)] + '"...'
    return text[: c.session.maxstr]


def user_string_n2_quoted(c: Any, key: str | None, addr: int, inlen: int, outlen: int) -> str:
    return user_string_n_quoted(c, key, addr, inlen, outlen)


# integer readers: name -> warning text of the *_warn variant (None: SystemTap has no _warn form)
_INT_READERS: dict[str, str | None] = {
    "char": "user char copy fault at {} [man error::fault]",
    "short": "user short copy fault {} [man error::fault]",
    "ushort": "user unsigned short copy fault {} [man error::fault]",
    "int": "user int copy fault {} [man error::fault]",
    "uint": None,
    "long": "user long copy fault {} [man error::fault]",
    "ulong": "user unsigned long copy fault {} [man error::fault]",
    **{name: None for name in ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64")},
}


def _int_reader(kind: str) -> tuple[Callable[..., int], Callable[..., int], Callable[..., int]]:
    warning = _INT_READERS[kind]

    def error_form(c: Any, key: str | None, addr: int) -> int:
        try:
            return wrap(_captured(c, key, addr))
        except _Fault:
            raise StapRuntimeError(f"read fault [man error::fault] at 0x{addr & MASK64:x}") from None

    def plain(c: Any, key: str | None, addr: int) -> int:
        try:
            return wrap(_captured(c, key, addr))
        except _Fault:
            return 0

    def warn_form(c: Any, key: str | None, addr: int) -> int:
        try:
            return wrap(_captured(c, key, addr))
        except _Fault:
            c.session.warn((warning or "").format(printf.number(addr, 16, -1, -1, printf.SPECIAL)))
            return 0

    return plain, warn_form, error_form


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "register": register, "u_register": u_register,
    "int_arg": int_arg, "uint_arg": uint_arg, "long_arg": long_arg, "ulong_arg": ulong_arg,
    "longlong_arg": long_arg, "ulonglong_arg": ulong_arg, "pointer_arg": ulong_arg,
    "s32_arg": int_arg, "u32_arg": uint_arg, "s64_arg": long_arg, "u64_arg": ulong_arg,
    "returnval": returnval, "returnstr": returnstr, "return_str": return_str,
    "user_string": user_string, "user_string2": user_string2, "user_string_n": user_string_n,
    "user_string_n2": user_string_n2, "user_string_warn": user_string_warn,
    "user_string2_warn": user_string2_warn, "user_string_n_warn": user_string_n_warn,
    "user_string2_n_warn": user_string2_n_warn, "user_string_nofault": user_string_nofault,
    "user_string_n_nofault": user_string_n_nofault, "user_string_quoted": user_string_quoted,
    "user_string_n_quoted": user_string_n_quoted, "user_string_n2_quoted": user_string_n2_quoted,
}
for _kind, _warning in _INT_READERS.items():
    _plain, _warn, _error = _int_reader(_kind)
    FUNCTIONS[f"user_{_kind}"] = _plain
    FUNCTIONS[f"user_{_kind}_error"] = _error
    if _warning is not None:
        FUNCTIONS[f"user_{_kind}_warn"] = _warn
