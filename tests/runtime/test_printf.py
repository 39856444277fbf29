"""The printf engine against SystemTap's compiled printf (runtime vsprintf.c number()/%s/%c/%b).

Expected strings are worked out from the C code (translate.cxx emit_compiled_printfs and
runtime/vsprintf.c), not from this implementation."""

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
        ("%*d|", (-4, 1), "1|"),  # compiled printf clamps a * width to 0: no left-justify
        ("%.*s|%.*d|", (-1, "abc", -2, 5), "|5|"),  # negative * precision is 0
        ("%.0s|%.0d|%.0x", ("abc", 0, 0), "|0|0"),
        ("%#o|%#x|%#X", (0, 0, 0), "00|0x0|0X0"),
        ("%+u|% x|%+x|%+d|% d", (5, 255, 255, 0, 0), "5|ff|ff|+0| 0"),
        ("%08.3d|%-8.3d|", (-7, -7), "-0000007|-007    |"),
        ("%#8o|%#08x|%#x", (8, 255, 1), "     010|    0xff|0x1"),  # one flag: 08 is a width
        ("%X|%o", (-1, -1), "FFFFFFFFFFFFFFFF|1777777777777777777777"),
        ("%p|%#x|%u", (-1, -16, -2), "0xffffffffffffffff|0xfffffffffffffff0|18446744073709551614"),
        ("%c|%#c", (-1, -56), "\xff|\\310"),  # the low byte; # escapes it in octal
        ("%d|%i", (-(2**63), 2**63 - 1), "-9223372036854775808|9223372036854775807"),
        ("%05s|%-5s|%#s", ("ab", "ab", "a\n"), "   ab\0|ab   |a\n"),
        ("%#c%#c%#c%#c", (39, 200, 127, 65), "\\'\\310\\177A"),
        ("%#5c|%-4c|%c", (10, 9, 0x141), "   \\n|\t   |A"),
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
    assert compile_format("%4.2b")(1).encode("latin-1") == b"\0\0" + struct.pack("=h", 1)
    assert compile_format("%-4.2b")(1).encode("latin-1") == struct.pack("=h", 1) + b"\0\0"
    assert compile_format("%5b")(1).encode("latin-1") == struct.pack("=q", 1)  # 5 is no size: 8 bytes
    assert compile_format("%.3b")(1).encode("latin-1") == struct.pack("=q", 1)


def test_nargs():
    assert compile_format("%*.*d %s").nargs == 4


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        ("%", "invalid or missing conversion specifier"),  # stap 4.8 -p2 says the same
        ("100%", "invalid or missing conversion specifier"),
        ("%%%", "invalid or missing conversion specifier"),
        ("%q", "invalid or missing conversion specifier"),
        ("%lld", "invalid or missing conversion specifier"),
        ("%-#x", "invalid or missing conversion specifier"),
        ("%5", "trailing incomplete print format conversion"),
        ("%.*", "trailing incomplete print format conversion"),
    ],
)
def test_bad_formats(fmt, message):
    with pytest.raises(FormatError) as err:
        compile_format(fmt)
    assert str(err.value) == message


def test_formats_that_print_nothing():
    # stap accepts a conversion cut short before anything was given
    assert compile_format("a%l")() == "a"
    assert compile_format("a%.")() == "a"


@pytest.mark.parametrize("fmt", ["%m", "%#M", "%.4m"])
def test_memory_dumps_are_refused(fmt):
    with pytest.raises(FormatError) as err:
        compile_format(fmt)
    assert "memory dump at an address) is not supported by pystap" in str(err.value)
