"""Tapset function implementations (called as generated code calls them)."""

from __future__ import annotations

import io

import pytest
from tests.runtime.conftest import module

from pystap.runtime import tapset_misc as misc
from pystap.runtime import tapset_strings as strings
from pystap.runtime import tapset_time as times
from pystap.runtime.context import Context
from pystap.runtime.errors import AbortRequest, StapRuntimeError
from pystap.runtime.options import RunOptions
from pystap.runtime.session import Session


@pytest.fixture
def c():
    mod = module("", [])
    s = Session(mod, RunOptions(stdout=io.BytesIO(), stderr=io.BytesIO()))
    ctx = Context(s, s.outbuf.append)
    ctx.tid = 42
    return ctx


def written(c) -> str:
    text = "".join(c.session.outbuf)
    c.session.outbuf.clear()
    return text


def test_strings(c):
    assert strings.substr(c, "hello", -3, 2) == ""  # string.stp: a start before the string gives ""
    assert strings.substr(c, "hello", 2, 100) == "llo"
    with pytest.raises(StapRuntimeError, match="Position out of bounds"):
        strings.stringat(c, "ab", 2)
    assert strings.strtol(c, "0x10", 0) == 16
    assert strings.strtol(c, "010", 0) == 8
    assert strings.strtol(c, "12abc", 10) == 12
    assert strings.strtol(c, "zz", 36) == 1295
    with pytest.raises(StapRuntimeError):
        strings.strtol(c, "1", 99)
    assert strings.isdigit(c, "") == 0
    assert strings.text_str(c, "\x01\xff'") == "\\001\\377'"  # _stp_text_str leaves ' alone
    assert strings.str_replace(c, "abc", "", "x") == "abc"


def test_text_str_follows_the_runtime(c):
    # _stp_text_str: UTF-8 as \\u escapes, an overlong form byte by byte, quoted cuts end '"...'
    assert strings.text_str(c, "\xc3\xa9\xc0\x80") == "\\u00E9\\300\\200"
    assert strings.text_strn(c, "abcdef", 6, 1) == '"a"...'
    assert strings.text_strn(c, "a\nbc", 6, 1) == '"a"...'  # room for '"...': the cut drops \\n and b
    assert strings.text_strn(c, "abc", 5, 1) == '"abc"'
    assert strings.string_quoted(c, "q\"") == '"q\\""'


def test_tokenize_skips_empty_tokens(c):
    assert strings.tokenize(c, ",,a,,b", ",") == "a"
    assert strings.tokenize(c, ",") == "b"
    assert strings.tokenize(c, ",") == ""
    assert strings.tokenize(c, ",") == ""
    assert strings.tokenize(c, "x;y z", "; ") == "x"
    assert strings.tokenize(c, "; ") == "y"
    assert strings.tokenize(c, "", "; ") == "z"  # an empty input continues the string


def test_time_strings(c):
    assert times.ctime(c, 0) == "Thu Jan  1 00:00:00 1970"
    assert times.ctime(c, 1_700_000_000) == "Tue Nov 14 22:13:20 2023"
    assert times.ctime(c, 1 << 62) == "<invalid time>"
    assert times.msecs_to_string(c, 61_234) == "1m1.234s"
    assert times.usecs_to_string(c, 5) == "0m0.000005s"
    assert times.nsecs_to_string(c, 2_000_000_001) == "0m2.000000001s"


def test_stopwatch(c):
    times.start_stopwatch(c, "w")
    times.stop_stopwatch(c, "w")
    first = times._stopwatch_read(c, "w", 1)
    assert first >= 0
    assert times._stopwatch_read(c, "w", 1) == first  # stopped: does not advance
    times.delete_stopwatch(c, "w")
    with pytest.raises(StapRuntimeError):
        times._stopwatch_read(c, "w", 1)


def test_ansi_and_indent(c):
    misc.ansi_set_color(c, 31)
    misc.ansi_set_color(c, 31, 42)
    misc.ansi_set_color(c, 31, 42, 1)
    misc.FUNCTIONS["ansi_reset_color"](c)
    misc.ansi_cursor_move(c, 3, 4)
    assert written(c) == "\033[31m\033[42;31m\033[42;31;1m\033[0;0m\033[4;3H"
    first = misc.indent(c, 1)
    assert first.endswith(" :") and len(first) == 8
    assert misc.indent(c, 1).endswith(": ")
    assert misc.indent(c, -1).endswith(": ")
    assert misc.thread_indent_depth(c, 2) == 2


def test_control(c):
    misc.warn(c, "careful")
    assert c.session.err.stream.getvalue() == b"WARNING: careful\n"
    with pytest.raises(StapRuntimeError, match="^boom$"):
        misc.error(c, "boom")
    with pytest.raises(AbortRequest):
        misc.abort(c)
    assert c.session.exit_requested
    misc.log(c, "x")
    assert written(c) == "x\n"
    assert misc.errno_str(c, 2) == "ENOENT"
    assert misc.errno_str(c, -13) == "EACCES"


def test_speculation(c):
    a = misc.speculation(c)
    b = misc.speculation(c)
    misc.speculate(c, a, "kept ")
    misc.speculate(c, b, "dropped")
    misc.discard(c, b)
    misc.commit(c, a)
    assert written(c) == "kept "
