"""The built-in tapset: every function a script may call without defining it.

One line per function: a privilege tag, then the signature in SystemTap's
own syntax.  The tags are structured values
(:class:`pystap.policy.functions.FunctionPrivilege`), not comment text:

* ``U`` unprivileged: any level may call it;
* ``M`` myproc-unprivileged: stapusr may call it, and at run time it only
  works inside a probe on one of the user's own processes;
* ``P`` privileged: stapsys and stapdev only (reads kernel memory …);
* ``G`` guru: only from a ``-g`` script or a tapset file.

The runtime implements each of these under the same name (a registry of
Python callables, :mod:`pystap.runtime`); the translator only needs the
signature.  Several lines with one name and different arity are unrelated
functions, exactly as script overloads by arity are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pystap.lang.ast import Type
from pystap.policy.functions import FunctionPrivilege, allowed_at_level

FnPrivilege = FunctionPrivilege

_TAGS = {
    "U": FnPrivilege.UNPRIVILEGED,
    "M": FnPrivilege.MYPROC,
    "P": FnPrivilege.PRIVILEGED,
    "G": FnPrivilege.GURU,
}


@dataclass(frozen=True)
class Builtin:
    name: str
    params: tuple[tuple[str, Type], ...]
    returns: Type  # Type.UNKNOWN: returns nothing
    privilege: FnPrivilege
    # reads user memory of the current process (confinement marker for codegen)
    user_memory: bool = False


# fmt: off
TABLE = """
U exit()
U abort()
U error(msg:string)
U warn(msg:string)
U log(msg:string)
U system(cmd:string)
U switch_file()
U strlen:long(s:string)
U substr:string(str:string, start:long, length:long)
U stringat:long(str:string, pos:long)
U isinstr:long(s1:string, s2:string)
U strpos:long(s1:string, s2:string)
U str_replace:string(prnt_str:string, srch_str:string, rplc_str:string)
U strtol:long(str:string, base:long)
U isdigit:long(str:string)
U text_str:string(input:string)
U text_strn:string(input:string, len:long, quoted:long)
U string_quoted:string(str:string)
U tokenize:string(input:string, delim:string)
U tokenize:string(delim:string)
U matched:string(n:long)
U matched_str:string()
U ngroups:long()
U pid:long()
U tid:long()
U ppid:long()
U pgrp:long()
U sid:long()
U uid:long()
U euid:long()
U gid:long()
U egid:long()
U ns_pid:long()
U ns_tid:long()
U ns_ppid:long()
U ns_pgrp:long()
U ns_sid:long()
U ns_uid:long()
U ns_euid:long()
U ns_gid:long()
U ns_egid:long()
U execname:string()
U pexecname:string()
U cpu:long()
U cpuid:long()
U pp:string()
U ppfunc:string()
U pn:string()
U pnlabel:string()
U probe_type:string()
U target:long()
U stp_pid:long()
U module_name:string()
U is_myproc:long()
U user_mode:long()
U is_return:long()
U registers_valid:long()
U remote_id:long()
U remote_uri:string()
U probefunc:string()
U probemod:string()
M register:long(name:string)
M u_register:long(name:string)
M int_arg:long(n:long)
M uint_arg:long(n:long)
M long_arg:long(n:long)
M ulong_arg:long(n:long)
M longlong_arg:long(n:long)
M ulonglong_arg:long(n:long)
M pointer_arg:long(n:long)
M s32_arg:long(n:long)
M u32_arg:long(n:long)
M s64_arg:long(n:long)
M u64_arg:long(n:long)
M returnval:long()
M returnstr:string(format:long)
U return_str:string(format:long, ret:long)
U gettimeofday_s:long()
U gettimeofday_ms:long()
U gettimeofday_us:long()
U gettimeofday_ns:long()
U get_cycles:long()
U jiffies:long()
U HZ:long()
U local_clock_s:long()
U local_clock_ms:long()
U local_clock_us:long()
U local_clock_ns:long()
U cpu_clock_s:long(cpu:long)
U cpu_clock_ms:long(cpu:long)
U cpu_clock_us:long(cpu:long)
U cpu_clock_ns:long(cpu:long)
U ktime_get_ns:long()
U ctime:string()
U ctime:string(epochsecs:long)
U tz_ctime:string(epochsecs:long)
U tz_gmtoff:long()
U tz_name:string()
U msecs_to_string:string(msecs:long)
U usecs_to_string:string(usecs:long)
U nsecs_to_string:string(nsecs:long)
U randint:long(n:long)
U errno_str:string(err:long)
U ansi_clear_screen()
U ansi_cursor_hide()
U ansi_cursor_show()
U ansi_cursor_save()
U ansi_cursor_restore()
U ansi_cursor_move(x:long, y:long)
U ansi_new_line()
U ansi_reset_color()
U ansi_set_color(fg:long)
U ansi_set_color(fg:long, bg:long)
U ansi_set_color(fg:long, bg:long, attr:long)
U ansi_set_color2(fg:long, bg:long)
U ansi_set_color3(fg:long, bg:long, attr:long)
U indent:string(delta:long)
U indent_depth:long(delta:long)
U thread_indent:string(delta:long)
U thread_indent_depth:long(delta:long)
U start_stopwatch(name:string)
U stop_stopwatch(name:string)
U delete_stopwatch(name:string)
U read_stopwatch_s:long(name:string)
U read_stopwatch_ms:long(name:string)
U read_stopwatch_us:long(name:string)
U read_stopwatch_ns:long(name:string)
U speculation:long()
U speculate(id:long, output:string)
U commit(id:long)
U discard(id:long)
M user_string:string(addr:long)
M user_string:string(addr:long, err_msg:string)
M user_string2:string(addr:long, err_msg:string)
M user_string_warn:string(addr:long)
M user_string_warn:string(addr:long, warn_msg:string)
M user_string2_warn:string(addr:long, warn_msg:string)
M user_string_nofault:string(addr:long)
M user_string_quoted:string(addr:long)
M user_string_n:string(addr:long, n:long)
M user_string_n:string(addr:long, n:long, err_msg:string)
M user_string_n2:string(addr:long, n:long, err_msg:string)
M user_string_n_warn:string(addr:long, n:long)
M user_string_n_warn:string(addr:long, n:long, warn_msg:string)
M user_string2_n_warn:string(addr:long, n:long, warn_msg:string)
M user_string_n_nofault:string(addr:long, n:long)
M user_string_n_quoted:string(addr:long, n:long)
M user_string_n_quoted:string(addr:long, inlen:long, outlen:long)
M user_string_n2_quoted:string(addr:long, inlen:long, outlen:long)
M user_buffer_quoted:string(addr:long, inlen:long, outlen:long)
M user_char:long(addr:long)
M user_short:long(addr:long)
M user_ushort:long(addr:long)
M user_int:long(addr:long)
M user_uint:long(addr:long)
M user_long:long(addr:long)
M user_ulong:long(addr:long)
M user_int8:long(addr:long)
M user_uint8:long(addr:long)
M user_int16:long(addr:long)
M user_uint16:long(addr:long)
M user_int32:long(addr:long)
M user_uint32:long(addr:long)
M user_int64:long(addr:long)
M user_uint64:long(addr:long)
M user_char_warn:long(addr:long)
M user_short_warn:long(addr:long)
M user_int_warn:long(addr:long)
M user_long_warn:long(addr:long)
M user_char_error:long(addr:long)
M user_short_error:long(addr:long)
M user_int_error:long(addr:long)
M user_long_error:long(addr:long)
M user_ushort_error:long(addr:long)
M user_uint_error:long(addr:long)
M user_ulong_error:long(addr:long)
M user_int8_error:long(addr:long)
M user_uint8_error:long(addr:long)
M user_int16_error:long(addr:long)
M user_uint16_error:long(addr:long)
M user_int32_error:long(addr:long)
M user_uint32_error:long(addr:long)
M user_int64_error:long(addr:long)
M user_uint64_error:long(addr:long)
M user_ushort_warn:long(addr:long)
M user_ulong_warn:long(addr:long)
M usymname:string(addr:long)
M usymdata:string(addr:long)
M usymfile:string(addr:long)
M umodname:string(addr:long)
M ubacktrace:string()
M sprint_ubacktrace:string()
M print_ubacktrace()
M print_ubacktrace_brief()
M uaddr:long()
M cmdline_str:string()
M cmdline_args:string(n:long, m:long, delim:string)
M cmdline_arg:string(n:long)
M env_var:string(name:string)
P kernel_string:string(addr:long)
P kernel_string:string(addr:long, err_msg:string)
P kernel_string_n:string(addr:long, n:long)
P kernel_long:long(addr:long)
P kernel_int:long(addr:long)
P kernel_short:long(addr:long)
P kernel_char:long(addr:long)
P kernel_pointer:long(addr:long)
P backtrace:string()
P print_backtrace()
P sprint_backtrace:string()
P symname:string(addr:long)
P symdata:string(addr:long)
P addr:long()
P task_current:long()
P print_regs()
G printk(level:long, msg:string)
G raise(signo:long)
G panic(msg:string)
G mdelay(ms:long)
G udelay(us:long)
G set_kernel_long(addr:long, val:long)
G set_kernel_int(addr:long, val:long)
G set_kernel_string(addr:long, val:string)
G set_user_long(addr:long, val:long)
G set_user_int(addr:long, val:long)
G set_user_string(addr:long, val:string)
"""
# fmt: on

# Declared (so scripts pass pass 2 with SystemTap's privilege rules and messages) but impossible
# on this substrate: pass 3 refuses a call with the reason, and the runtime's stub says the same.
_NO_KERNEL = "this kernel offers no kernel memory, symbol or stack access to tracing scripts"
_NO_USYMS = "user-space symbols and stack unwinding are not captured at the probe hit by pystap"
UNAVAILABLE: dict[str, str] = {
    **{name: _NO_KERNEL for name in (
        "addr", "backtrace", "print_backtrace", "sprint_backtrace", "kernel_string", "kernel_string_n",
        "kernel_long", "kernel_int", "kernel_short", "kernel_char", "kernel_pointer", "symname", "symdata",
        "task_current", "print_regs")},
    **{name: _NO_USYMS for name in (
        "ubacktrace", "sprint_ubacktrace", "print_ubacktrace", "print_ubacktrace_brief", "usymname",
        "usymdata", "usymfile", "umodname")},
    "user_buffer_quoted": "it reads a buffer of run-time length, which cannot be captured at the probe hit",
}

_LINE = re.compile(r"^([UMPG])\s+(\w+)(?::(long|string))?\((.*)\)$")
_TYPES = {"long": Type.LONG, "string": Type.STRING, None: Type.UNKNOWN}


def _parse(table: str) -> dict[tuple[str, int], Builtin]:
    out: dict[tuple[str, int], Builtin] = {}
    for raw in table.strip().splitlines():
        m = _LINE.match(raw.strip())
        if m is None:
            raise ValueError(f"bad builtin line: {raw!r}")
        tag, name, ret, params_text = m.groups()
        params: list[tuple[str, Type]] = []
        for p in filter(None, (x.strip() for x in params_text.split(","))):
            pname, ptype = p.split(":")
            params.append((pname.strip(), _TYPES[ptype.strip()]))
        key = (name, len(params))
        if key in out:
            raise ValueError(f"duplicate builtin {name}/{len(params)}")
        privilege = _TAGS[tag]
        out[key] = Builtin(
            name, tuple(params), _TYPES[ret], privilege, user_memory=privilege is FnPrivilege.MYPROC
        )
    return out


BUILTINS: dict[tuple[str, int], Builtin] = _parse(TABLE)
NAMES: frozenset[str] = frozenset(name for name, _ in BUILTINS)


def lookup(name: str, arity: int) -> Builtin | None:
    return BUILTINS.get((name, arity))


def arities(name: str) -> list[int]:
    return sorted(a for n, a in BUILTINS if n == name)


def allowed(fn: Builtin, level: int) -> bool:
    """May a session at ``level`` call ``fn`` (guru is checked separately)?"""
    return allowed_at_level(fn.privilege, level)
