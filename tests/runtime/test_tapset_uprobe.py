"""Register, argument, return-value and user-memory readers over captured fields (SystemTap semantics)."""

from __future__ import annotations

import io

import pytest
from tests.runtime.conftest import module

from pystap.runtime import tapset_context as context
from pystap.runtime import tapset_syscall as syscalls
from pystap.runtime import tapset_uprobe as up
from pystap.runtime.context import Context
from pystap.runtime.errors import StapRuntimeError
from pystap.runtime.options import RunOptions
from pystap.runtime.session import Session


@pytest.fixture
def c() -> Context:
    s = Session(module("", []), RunOptions(stdout=io.BytesIO(), stderr=io.BytesIO()))
    ctx = Context(s, s.outbuf.append)
    ctx.fields = {}
    ctx.probe_type = "process.function"
    ctx.pp = 'process("/bin/x").function("f")'
    return ctx


def stderr(c: Context) -> str:
    c.session.flush()
    return c.session.options.stderr.getvalue().decode()


def test_register_widths_follow_systemtap_tables(c: Context) -> None:
    c.fields = {"$r__ax": 0xFFFF_FFFF_8000_80F0, "$r__r12": 5}
    assert up.register(c, "rax") == -0x7FFF7F10
    assert up.register(c, "eax") == -0x7FFF7F10 and up.u_register(c, "eax") == 0x8000_80F0
    assert up.register(c, "ax") == -0x7F10 and up.u_register(c, "ax") == 0x80F0
    assert up.register(c, "al") == -16 and up.u_register(c, "ah") == 0x80
    assert up.register(c, "r12") == 5
    with pytest.raises(StapRuntimeError, match="^Unknown register: xyz$"):
        up.register(c, "xyz")
    with pytest.raises(StapRuntimeError, match="^cannot access CPU registers in this context$"):
        up.register(c, "rbx")


def test_arguments(c: Context) -> None:
    c.fields = {"$r__di": (1 << 64) - 1, "$r__si": 0x1_0000_0005, "$s__1": 70}
    assert (up.int_arg(c, 1), up.uint_arg(c, 1), up.long_arg(c, 1), up.ulong_arg(c, 1)) == (-1, 0xFFFFFFFF, -1, -1)
    assert (up.int_arg(c, 2), up.long_arg(c, 2)) == (5, 0x1_0000_0005)
    assert up.long_arg(c, 7) == 70
    for n, text in ((0, "cannot access arg(0)"), (3, "cannot access arg(3)")):
        with pytest.raises(StapRuntimeError, match=rf"^{text.replace('(', '[(]').replace(')', '[)]')}$"):
            up.int_arg(c, n)
    c.fields = None
    with pytest.raises(StapRuntimeError, match="cannot access function args in this context"):
        up.int_arg(c, 1)


def test_syscall_arguments_are_the_calls(c: Context) -> None:
    c.probe_type = "syscall"
    c.fields = {"$arg2": (1 << 64) - 100, "$r__si": 1}
    assert up.int_arg(c, 2) == -100


def test_return_values(c: Context) -> None:
    c.fields = {"$return": -13}
    assert (up.returnval(c), up.returnstr(c, 1)) == (-13, "-13 (EACCES)")
    c.fields = {"$return": 255}
    assert [up.returnstr(c, f) for f in (1, 2, 3)] == ["255", "0xff", "0377"]
    assert up.return_str(c, 2, -1) == "-1 (EPERM)" and up.return_str(c, 2, -5000) == "0xffffffffffffec78"
    c.fields = {}
    with pytest.raises(StapRuntimeError, match=r'^returnval\(\) not defined in this context process'):
        up.returnval(c)
    assert up.returnstr(c, 1) == "N/A"


def test_user_strings(c: Context) -> None:
    c.fields = {"$u__1": "x" * 600, "$u__2": "ab\n", "$u__3": None}
    assert len(up.user_string(c, "$u__1", 0x5000)) == 510  # user_string_n(addr, MAXSTRINGLEN): n+1 clamped
    assert up.user_string_n(c, "$u__1", 0x5000, 3) == "xxx"
    assert up.user_string_quoted(c, "$u__2", 0x5000) == '"ab\\n"'
    assert up.user_string_n_quoted(c, "$u__1", 0x5000, 10, 8) == '"xxx"...'
    with pytest.raises(StapRuntimeError) as err:
        up.user_string(c, "$u__3", 0x5000)
    assert err.value.message == "user string copy fault -14 at 0x5000 [man error::fault]"
    assert up.user_string(c, "$u__3", 0x5000, "dflt") == "dflt"
    assert up.user_string_nofault(c, None, 0) == ""
    assert up.user_string_quoted(c, "$u__3", -1) == "0xffffffffffffffff"
    assert up.user_string_warn(c, "$u__3", 0x10) == ""
    assert stderr(c) == "WARNING: user string copy fault -14 at 0x10 [man error::fault]\n"


def test_user_integers(c: Context) -> None:
    c.fields = {"$u__1": -7, "$u__2": (1 << 64) - 1}
    fns = up.FUNCTIONS
    assert fns["user_int"](c, "$u__1", 0x5000) == -7
    assert fns["user_ulong"](c, "$u__2", 0x5000) == -1
    assert fns["user_int"](c, "$u__1", 8) == 0  # the NULL page always faults
    with pytest.raises(StapRuntimeError, match=r"^read fault \[man error::fault\] at 0x8$"):
        fns["user_int_error"](c, "$u__1", 8)
    assert fns["user_long_warn"](c, "$u__1", 1 << 48) == 0
    assert stderr(c) == "WARNING: user long copy fault 0x1000000000000 [man error::fault]\n"


def test_context_of_user_probes(c: Context) -> None:
    c.params = {"func": "main"}
    c.fields = {"$r__ip": 0x401000}
    assert (context.probefunc(c), context.user_mode(c), context.registers_valid(c), context.uaddr(c)) == (
        "main", 1, 1, 0x401000)
    c.params = {}
    assert context.probefunc(c) == "f"
    with pytest.raises(StapRuntimeError, match="^Cannot determine kernel module name$"):
        context.probemod(c)
    c.probe_type = "begin"
    assert (context.user_mode(c), context.registers_valid(c)) == (0, 0)


def test_exec_comm_is_the_programs_basename(c: Context) -> None:
    c.probe_type = "process.begin"
    c.fields = {"$filename": "/usr/lib/some/very-long-program-name"}
    assert context.execname(c) == "very-long-progr"  # TASK_COMM_LEN - 1


def test_open_flags_like_systemtap() -> None:
    assert syscalls.open_flag_str(0) == "O_RDONLY"
    assert syscalls.open_flag_str(0o2 | 0o100 | 0o1000) == "O_RDWR|O_CREAT|O_TRUNC"
    # SystemTap's table matches O_SYNC on any of its bits, so O_DSYNC alone prints as O_SYNC
    assert syscalls.open_flag_str(0o10000) == "O_RDONLY|O_SYNC"
    assert syscalls.open_flag_str(0o1 | 0x40000000) == "O_WRONLY|0x40000000"


def test_syscall_locals_follow_the_tapset(c: Context) -> None:
    c.probe_type = "syscall"
    c.params = {"syscall": "unlinkat"}
    c.fields = {"$arg1": 3, "$arg2": 0x7000, "$arg2_str": "d", "$arg3": 0x200}
    got = {k: syscalls.context_variable(c, k) for k in ("pathname", "pathname_str", "flag_str", "argstr")}
    assert got == {"pathname": 0x7000, "pathname_str": '"d"', "flag_str": "AT_REMOVEDIR",
                   "argstr": '3, "d", AT_REMOVEDIR'}
    c.fields["$arg3"] = 0
    assert syscalls.context_variable(c, "argstr") == '3, "d", 0x0'
    c.params = {"syscall": "access"}
    c.fields = {"$arg1": 0x7000, "$arg1_str": "/etc", "$arg2": 0}
    assert syscalls.context_variable(c, "argstr") == '"/etc", F_OK'
    c.fields = {"$arg1": 0, "$arg2": 6}
    assert syscalls.context_variable(c, "argstr") == "0x0, R_OK|W_OK"


@pytest.mark.parametrize(("point", "expected"), [
    ('process("/bin/x").function("work@/src/x.c:2")', "work"),
    ('process("/bin/x").function("work").return', "work"),
    ('process("/bin/x").statement("loop@x.c:7")', "loop"),
    ('process("/bin/x").mark("tick")', ""),
    ("begin", ""),
])
def test_ppfunc_is_parsed_from_the_probe_point(c: Context, point: str, expected: str) -> None:
    c.pp = point
    assert context.ppfunc(c) == expected
