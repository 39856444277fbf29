"""The printf engine against the runtime's number()/%s/%c/%b rules."""

import struct

import pytest

from pystap.runtime.printf import FormatError, compile_format


@pytest.mark.parametrize(
    ("fmt", "args", "want"),
    [
        ("%d|%i", (-5, 7), "-5|7"),
        ("%5d|%-5d|%05d", (42, 42, -42), "   42|42   |-0042"),
        ("%+d % d %+d", (5, 5, -5), "+5  5 -5"),
        ("%.3d", (7,), "007"),
        ("%8.3d|", (-7,), "    -007|"),
        ("%u", (-1,), "18446744073709551615"),
        ("%x %X", (255, 255), "ff FF"),
        ("%x", (-1,), "ffffffffffffffff"),
        ("%#x %#X %#o", (255, 255, 8), "0xff 0XFF 010"),
        ("%#x|%#o", (0, 0), "0x0|00"),
        ("%#10x|%#010x|%010x", (255, 255, 255), "      0xff|      0xff|00000000ff"),
        ("%-10x|", (255,), "ff        |"),
        ("%o", (8,), "10"),
        ("%p", (4096,), "0x1000"),
        ("%10p|", (4096,), "    0x1000|"),
        ("%s|%5s|%-5s|%.2s", ("abc", "ab", "ab", "abcdef"), "abc|   ab|ab   |ab"),
        ("%c%c", (65, 0x142), "AB"),
        ("%3c|%-3c|", (65, 65), "  A|A  |"),
        ("%#c%#c%#c%#c", (10, 9, 1, 92), "\\n\\t\\001\\\\"),
        ("%*d|%-*d|%.*d", (4, 1, 4, 1, 3, 1), "   1|1   |001"),
        ("%*d", (-4, 1), "1   "),
        ("100%%", (), "100%"),
        ("%ld %lx", (5, 16), "5 10"),
        ("%d%%%s", (1, "x"), "1%x"),
    ],
)
def test_conversions(fmt, args, want):
    assert compile_format(fmt)(*args) == want


def test_binary():
    f = compile_format("%b")
    assert f(0x0102).encode("latin-1") == struct.pack("=q", 0x0102)
    assert compile_format("%1b")(0x41) == "A"
    assert compile_format("%2b")(1).encode("latin-1") == struct.pack("=h", 1)
    assert compile_format("%4b")(-1).encode("latin-1") == b"\xff" * 4
    assert compile_format("%.2b")(1).encode("latin-1") == struct.pack("=h", 1)


def test_nargs():
    assert compile_format("%*.*d %s").nargs == 4


@pytest.mark.parametrize("fmt", ["%", "%q", "%5", "%lld", "%-#x"])
def test_bad_formats(fmt):
    with pytest.raises(FormatError):
        compile_format(fmt)
