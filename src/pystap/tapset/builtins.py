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
signature.  ``STOCK_TABLE`` adds SystemTap tapset functions that pystap
does not implement (``UNAVAILABLE``): declaring them keeps SystemTap's
pass-2 answers (a privilege refusal rather than "unresolved function"),
and pass 3 refuses any call that survives.

Several lines with one name and different arity are unrelated
functions, exactly as script overloads by arity are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pystap import unavailable
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
P big_endian2:long(val:long)
P big_endian4:long(val:long)
P big_endian8:long(val:long)
P little_endian2:long(val:long)
P little_endian4:long(val:long)
P little_endian8:long(val:long)
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

# SystemTap tapset functions pystap declares only so that pass 2 gives SystemTap's answer
# (the privilege refusal at stapusr/-g, arity and types) instead of "unresolved function":
# kernel readers, embedded-C helpers of the syscall/networking tapsets, guru writers.
# Every one is in UNAVAILABLE below: pass 3 refuses a call to it with the reason.
STOCK_TABLE = """
P MAJOR:long(dev:long)
P MINOR:long(dev:long)
P MKDEV:long(major:long, minor:long)
P __arch_ptrace_request_str:string(request:long)
P __get_skb_iphdr:long(skb:long)
P __iov_length:long(iov:long, nr_segs:long, check_flag:long, access_flags:long)
P _fildes_index_u:long(uaddr:long, index:long)
P _get_kretprobe_long:long(i:long)
P _get_kretprobe_string:string(i:long)
P _set_kretprobe_long(i:long, value:long)
P _set_kretprobe_string(i:long, value:string)
P _struct_compat_itimerspec_u:string(uaddr:long)
P _struct_compat_itimerval_u:string(uaddr:long)
P _struct_compat_timespec_u:string(uaddr:long, n:long)
P _struct_compat_timeval_u:string(uaddr:long, n:long)
P _struct_compat_utimbuf_actime:long(uaddr:long)
P _struct_compat_utimbuf_modtime:long(uaddr:long)
P _struct_itimerspec_u:string(uaddr:long)
P _struct_itimerval_u:string(uaddr:long)
P _struct_rlimit_u:string(uaddr:long)
P _struct_timespec_u:string(uaddr:long, n:long)
P _struct_timeval_u:string(uaddr:long, n:long)
P _struct_timezone_u:string(uaddr:long)
P _struct_user_desc_u:string(uaddr:long)
P _struct_utimbuf_actime:long(uaddr:long)
P _struct_utimbuf_modtime:long(uaddr:long)
P addr_to_node:long(addr:long)
P atomic_long_read:long(addr:long)
P atomic_read:long(addr:long)
P callers:string(n:long)
P current_exe_file:long()
P describe_data_direction:string(state:long)
P describe_device_state:string(state:long)
P disk_major_from_request:long(var_q:long)
P disk_minor_from_request:long(var_q:long)
P dump_stack()
P errno_p:long(err:long)
P format_ipaddr:string(addr:long, family:long)
P fp32_to_fp64:long(input:long)
P fp_add:long(add1:long, add2:long)
P fp_div:long(div1:long, div2:long)
P fp_eq:long(infp1:long, infp2:long)
P fp_le:long(infp1:long, infp2:long)
P fp_lt:long(infp1:long, infp2:long)
P fp_mul:long(mul1:long, mul2:long)
P fp_rem:long(div1:long, div2:long)
P fp_sqrt:long(infp:long)
P fp_sub:long(sub1:long, sub2:long)
P fp_to_long:long(infp:long, roundingMode:long, exact:long)
P fp_to_string:string(infp:long, precision:long)
P ftrace(msg:string)
P ftype:string(type:long)
P get_loadavg_index:long(indx:long)
P get_sigset:long(sigset:long)
P htonl:long(x:long)
P htonll:long(x:long)
P htons:long(x:long)
P is_sig_blocked:long(task:long, sig:long)
P kernel_buffer_quoted:string(addr:long, inlen:long)
P kernel_buffer_quoted:string(addr:long, inlen:long, outlen:long)
P kernel_buffer_quoted_error:string(addr:long, inlen:long, outlen:long)
P kernel_string_quoted:string(addr:long)
P kernel_string_utf16:string(addr:long)
P kernel_string_utf16:string(addr:long, err_msg:string)
P kernel_string_utf32:string(addr:long)
P kernel_string_utf32:string(addr:long, err_msg:string)
P long_to_fp:long(input:long)
P modname:string(addr:long)
P msg_flags_num2str:string(flags:long)
P nfs3_cmode:string(cmode:long)
P nfs4_ctype:string(cmode:long)
P nfsderror:string(err:long)
P ntohl:long(x:long)
P ntohll:long(x:long)
P ntohs:long(x:long)
P pid2task:long(pid:long)
P print_backtrace_fileline()
P print_syms(callers:string)
P python2_get_locals:string(frame:long, flags:long)
P python2_get_var_obj:long(frame:long, var:string)
P python2_get_var_obj:long(frame:long, var:string, index:long)
P python3_get_locals:string(frame:long, flags:long)
P python3_get_var_obj:long(frame:long, var:string)
P python3_get_var_obj:long(frame:long, var:string, index:long)
P rcu_dereference:long(protected_pointer:long)
P rlimit_from_str:long(lim_str:string)
P sa_flags_str:string(sa_flags:long)
G set_kernel_char(addr:long, val:long)
G set_kernel_pointer(addr:long, val:long)
G set_kernel_short(addr:long, val:long)
G set_kernel_string_n(addr:long, n:long, val:string)
G set_user_char(addr:long, val:long)
G set_user_pointer(addr:long, val:long)
G set_user_short(addr:long, val:long)
G set_user_string_n(addr:long, n:long, val:string)
P sigset_mask_str:string(mask:long)
P sock_flags_num2str:string(flags:long)
P sprint_loadavg:string()
P sprint_syms:string(callers:string)
P stack:long(n:long)
P string_to_fp:long(input:string)
P symfile:string(addr:long)
P symfileline:string(addr:long)
P symline:string(addr:long)
P task_cwd_path:long(task:long)
P task_egid:long(task:long)
P task_euid:long(task:long)
P task_fd_lookup:long(task:long, fd:long)
P task_gid:long(task:long)
P task_max_file_handles:long(task:long)
P task_nice:long(task:long)
P task_ns_egid:long(task:long)
P task_ns_euid:long(task:long)
P task_ns_gid:long(task:long)
P task_ns_pid:long(task:long)
P task_ns_tid:long(task:long)
P task_ns_uid:long(task:long)
P task_open_file_handles:long(task:long)
P task_prio:long(task:long)
P task_uid:long(task:long)
P tcp_get_info_rto:long(sock:long)
P tcp_get_info_snd_cwnd:long(sock:long)
P tcp_ts_get_info_rcv_mss:long(sock:long)
P tcp_ts_get_info_snd_ssthresh:long(sock:long)
P tcp_ts_get_info_state:long(sock:long)
P umodaddr:long(address:long)
P umodbuildid:string(address:long)
P usrdev2kerndev:long(dev:long)
P vm_fault_contains:long(value:long, test:long)
M ucallers:string(n:long)
M ustack:long(n:long)
M print_usyms(callers:string)
M sprint_usyms:string(callers:string)
"""
# fmt: on

# Declared (so scripts pass pass 2 with SystemTap's privilege rules and messages) but impossible
# on this substrate: pass 3 refuses a call with the reason, and the runtime's stub says the same.
UNAVAILABLE: dict[str, str] = dict(unavailable.SUBSTRATE)

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


STOCK: dict[tuple[str, int], Builtin] = _parse(STOCK_TABLE)
_NOT_PROVIDED = "a SystemTap tapset function pystap declares for its privilege rules but does not implement"
for _key, _fn in STOCK.items():
    _why = unavailable.NO_USYMS if _fn.privilege is FnPrivilege.MYPROC else _NOT_PROVIDED
    UNAVAILABLE.setdefault(_fn.name, _why)
_NATIVE: dict[tuple[str, int], Builtin] = _parse(TABLE)
# UNAVAILABLE is keyed by name: a stock arity of a natively implemented name would
# make pass 3 refuse the native one too, so the two tables must not share names.
if {n for n, _ in _NATIVE} & {n for n, _ in STOCK}:
    raise ValueError(f"declared twice: {sorted({n for n, _ in _NATIVE} & {n for n, _ in STOCK})}")
BUILTINS: dict[tuple[str, int], Builtin] = {**_NATIVE, **STOCK}
NAMES: frozenset[str] = frozenset(name for name, _ in BUILTINS)


def lookup(name: str, arity: int) -> Builtin | None:
    return BUILTINS.get((name, arity))


def arities(name: str) -> list[int]:
    return sorted(a for n, a in BUILTINS if n == name)


def allowed(fn: Builtin, level: int) -> bool:
    """May a session at ``level`` call ``fn`` (guru is checked separately)?"""
    return allowed_at_level(fn.privilege, level)
