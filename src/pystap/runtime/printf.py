"""The printf engine: SystemTap's format conversions, as its runtime prints them.

Formats are compiled once, when a module is loaded (:func:`compile_format`),
into a list of literal pieces and conversion callables, so a ``printf`` on
the hot path only runs the conversions.  The format is split by the
translator's own parser (:mod:`pystap.printf_format`).  What each conversion
prints is SystemTap's *compiled printf* (``emit_compiled_printfs`` in
``translate.cxx``, the default since 4.0), which calls the runtime's
``vsprintf.c`` helpers per component:

* integers: ``number()`` on 64-bit values -- ``#`` always adds the
  ``0``/``0x``/``0X`` prefix, also for zero (``%#x`` of 0 is ``0x0``, unlike
  glibc); ``%p`` is ``%#x``; ``%u``/``%x``/``%o`` print the unsigned 64-bit
  pattern (``%x`` of -1 is ``ffffffffffffffff``); precision is a minimum digit
  count and ``0`` still pads with it (``%08.3d``); ``+``/space only act on
  ``%d``/``%i``;
* ``%s``: precision truncates, width pads with spaces, the ``0`` flag appends a
  NUL byte (``_stp_vsprint_memory``); ``#`` changes nothing;
* ``%c``: the low byte; ``#`` escapes non-printables as ``\n``-style or
  three-digit octal (``_stp_vsprint_char``);
* ``%b``: the value's bytes in native order, precision/width 1, 2, 4 or 8
  (default 8), the rest of the width NUL-padded (``_stp_vsprint_binary``);
* ``*`` widths and precisions are C ``int`` values clamped to 0.. (a negative ``*``
  width does not left-justify), static ones likewise, at most ``MAX_FIELD``;
* ``%m``/``%M`` (memory at an address) are refused: see
  :func:`pystap.printf_format.memory_dump_refusal`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

from pystap import printf_format as shared

LEFT, PLUS, SPACE, SPECIAL, ZEROPAD, LARGE, SIGN = 1, 2, 4, 8, 16, 32, 64
_MASK64 = (1 << 64) - 1
# The runtime clamps widths and precisions to its print buffer size.
MAX_FIELD = 8192


class FormatError(ValueError):
    """A format the runtime cannot use (the translator normally rejects these first)."""


def number(num: int, base: int, size: int, precision: int, flags: int) -> str:
    """The runtime's ``number()``: one integer field."""
    if flags & LEFT:
        flags &= ~ZEROPAD
    pad = "0" if flags & ZEROPAD else " "
    sign = ""
    num &= _MASK64
    if flags & SIGN:
        if num >= 1 << 63:
            sign = "-"
            num = (1 << 64) - num
            size -= 1
        elif flags & PLUS:
            sign = "+"
            size -= 1
        elif flags & SPACE:
            sign = " "
            size -= 1
    prefix = ""
    if flags & SPECIAL:
        if base == 16:
            size -= 2
            prefix = "0X" if flags & LARGE else "0x"
        elif base == 8:
            size -= 1
            prefix = "0"
    if base == 10:
        digits = str(num)
    elif base == 16:
        digits = f"{num:X}" if flags & LARGE else f"{num:x}"
    else:
        digits = f"{num:o}"
    precision = max(precision, len(digits))
    size -= precision
    out = []
    if not flags & (ZEROPAD | LEFT) and size > 0:
        out.append(" " * size)
        size = 0
    out.append(sign)
    out.append(prefix)
    if not flags & LEFT and size > 0:
        out.append(pad * size)
        size = 0
    out.append("0" * (precision - len(digits)))
    out.append(digits)
    if size > 0:
        out.append(" " * size)
    return "".join(out)


_CHAR_ESCAPES = {7: "a", 8: "b", 12: "f", 10: "n", 13: "r", 9: "t", 11: "v", 39: "'", 92: "\\"}


def char_field(value: int, width: int, flags: int) -> str:
    """``%c``: one byte; with ``#`` non-printables are escaped (``\\n``, octal)."""
    c = value & 0xFF
    if flags & SPECIAL and (not (32 <= c < 127) or c in (39, 92)):
        esc = _CHAR_ESCAPES.get(c)
        text = "\\" + esc if esc else "\\" + format(c, "03o")
    else:
        text = chr(c)
    if width > len(text):
        return text.ljust(width) if flags & LEFT else text.rjust(width)
    return text


def string_field(value: str, width: int, precision: int, flags: int) -> str:
    """``%s``: precision truncates, width pads with spaces (``0`` appends a NUL, as the runtime does)."""
    text = value if precision < 0 else value[:precision]
    if width > len(text):
        text = text.ljust(width) if flags & LEFT else text.rjust(width)
    if flags & ZEROPAD:
        text += "\0"
    return text


_BINARY_SIZES = (1, 2, 4, 8)
_BINARY_FMT = {1: "=b", 2: "=h", 4: "=i", 8: "=q"}


def binary_field(value: int, width: int, precision: int, flags: int) -> str:
    """``%b``: the value's bytes in native order (width = byte count, default 8)."""
    if precision not in _BINARY_SIZES:
        precision = -1
    if width == -1:
        if precision == -1:
            width = precision = 8
        else:
            width = precision
    elif precision == -1:
        precision = width if width in _BINARY_SIZES else 8
    bits = precision * 8
    v = value & ((1 << bits) - 1)
    if v >= 1 << (bits - 1):
        v -= 1 << bits
    data = struct.pack(_BINARY_FMT[precision], v).decode("latin-1")
    padding = "\0" * max(0, width - precision)
    return data + padding if flags & LEFT else padding + data


Part = str | Callable[[list], str]


class Conversion:
    """One ``%...`` conversion, from the shared parser's component."""

    __slots__ = ("conv", "flags", "prec_star", "precision", "width", "width_star")

    def __init__(self, conv: str, flags: int, width: int, width_star: bool, precision: int,
                 prec_star: bool) -> None:
        self.conv = conv
        self.flags = flags
        self.width = width
        self.width_star = width_star
        self.precision = precision
        self.prec_star = prec_star

    def arg_count(self) -> int:
        return 1 + self.width_star + self.prec_star

    def render(self, args: Sequence, i: int) -> tuple[str, int]:
        """Render from ``args[i:]``; returns the text and the next argument index.

        ``*`` widths and precisions are clamped to 0.. as SystemTap's compiled
        printf does (``clamp_t(int, arg, 0, …)``): a negative ``*`` width does
        *not* left-justify (that was the legacy ``vsnprintf`` path), and a
        negative ``*`` precision is 0.
        """
        flags = self.flags
        width = self.width
        if self.width_star:
            width = _clamp(int(args[i]))
            i += 1
        precision = self.precision
        if self.prec_star:
            precision = _clamp(int(args[i]))
            i += 1
        value = args[i]
        i += 1
        conv = self.conv
        if conv == "s":
            return string_field(value, width, precision, flags), i
        if conv == "c":
            return char_field(value, width, flags), i
        if conv == "b":
            return binary_field(value, width, precision, flags), i
        base = 10
        if conv in "di":
            flags |= SIGN
        elif conv == "x":
            base = 16
        elif conv == "X":
            base = 16
            flags |= LARGE
        elif conv == "o":
            base = 8
        elif conv == "p":
            base = 16
            flags |= SPECIAL
        return number(value, base, width, precision, flags), i


def _clamp(v: int) -> int:
    """``clamp_t(int, v, 0, MAX_FIELD)``: the C ``int`` cast first, then the clamp."""
    v = ((v + 2**31) % 2**32) - 2**31
    return max(0, min(v, MAX_FIELD))


_NAMED_FLAGS = {"left": LEFT, "plus": PLUS, "space": SPACE, "special": SPECIAL, "zeropad": ZEROPAD}


def parse_format(fmt: str) -> list[str | Conversion]:
    """Split a format into literal text and conversions, with the translator's own parser
    (:mod:`pystap.printf_format`), so both sides accept exactly the same formats."""
    try:
        comps = shared.parse_format(fmt)
    except shared.FormatError as exc:
        raise FormatError(str(exc)) from None
    refusal = shared.memory_dump_refusal(fmt)
    if refusal is not None:
        raise FormatError(refusal)
    parts: list[str | Conversion] = []
    for c in comps:
        if c.kind == "literal":
            parts.append(c.text)
            continue
        flags = 0
        for name in c.flags:
            flags |= _NAMED_FLAGS.get(name, 0)
        width = -1 if c.width is None else _clamp(c.width)
        precision = -1 if c.precision is None else _clamp(c.precision)
        parts.append(Conversion(c.conversion, flags, width, c.width_dynamic, precision, c.precision_dynamic))
    return parts


class Format:
    """A compiled format; call it with the argument values to get the text."""

    __slots__ = ("_fast", "_parts", "nargs", "text")

    def __init__(self, fmt: str) -> None:
        self.text = fmt
        self._parts = parse_format(fmt)
        self.nargs = sum(p.arg_count() for p in self._parts if isinstance(p, Conversion))
        self._fast = _fast_template(self._parts)

    def __call__(self, *args: object) -> str:
        if self._fast is not None:
            return self._fast % args
        out: list[str] = []
        i = 0
        for part in self._parts:
            if isinstance(part, str):
                out.append(part)
            else:
                text, i = part.render(args, i)
                out.append(text)
        return "".join(out)


def _fast_template(parts: list[str | Conversion]) -> str | None:
    """A Python ``%`` template when every conversion means the same in Python.

    Only plain ``%s`` without width/precision and ``%d``/``%i`` without flags
    and precision qualify: for those, Python and the runtime agree exactly.
    """
    out: list[str] = []
    for p in parts:
        if isinstance(p, str):
            out.append(p.replace("%", "%%"))
            continue
        if p.width_star or p.prec_star or p.precision != -1:
            return None
        if p.conv == "s" and p.flags == 0 and p.width == -1:
            out.append("%s")
        elif p.conv in "di" and p.flags in (0, LEFT, ZEROPAD):
            flag = {0: "", LEFT: "-", ZEROPAD: "0"}[p.flags]
            out.append("%" + flag + ("" if p.width == -1 else str(p.width)) + "d")
        else:
            return None
    return "".join(out)


def compile_format(fmt: str) -> Format:
    return Format(fmt)


def to_string_long(value: int) -> str:
    """How ``print``/``sprint`` render a long (``%d``)."""
    return str(value)

