"""``printf`` format strings → components (SystemTap's ``string_to_components``).

The format of ``printf``/``sprintf`` is a literal, so it is split at parse
time: pass 2 checks argument count and types against the conversions, and
the runtime compiles the same components into its formatter.  One parser
for both sides, at the top of the package (like :mod:`pystap.ere`), because
DESIGN's import rules keep ``lang/`` and ``runtime/`` from importing each
other and two parsers had drifted apart (``"100%"`` passed pass 1 and then
failed when the module loaded).

The accepted syntax is SystemTap's, quirks included (checked against
``stap -p2`` 4.8): at most one flag character, one optional ``l``; a
conversion cut short by the end of the string is an error only when
something (a flag, width or precision) was already given (``"%l"`` and
``"%."`` print nothing), and a lone ``%`` at the very end is "invalid or
missing conversion specifier" (SystemTap's parser steps past the end there).
"""

from __future__ import annotations

from dataclasses import dataclass


class FormatError(ValueError):
    """The format string is malformed; the message is SystemTap's text."""


@dataclass(frozen=True)
class FormatComponent:
    """One piece of a format: literal text, or one conversion.

    ``kind``: ``literal`` | ``number`` | ``pointer`` | ``string`` | ``char`` |
    ``binary`` | ``memory`` | ``memory_hex`` (``%m``/``%M``: see
    :func:`memory_dump_refusal`).  ``flags`` holds ``left plus
    space special zeropad`` as written, plus ``sign`` (for ``%d``/``%i``) and
    ``large`` (for ``%X``).  ``width``/``precision`` are ``None`` when absent;
    the ``*_dynamic`` forms (``*``) take an extra long argument.
    """

    kind: str
    text: str = ""
    conversion: str = ""
    flags: frozenset[str] = frozenset()
    width: int | None = None
    width_dynamic: bool = False
    precision: int | None = None
    precision_dynamic: bool = False
    base: int = 10

    @property
    def arguments(self) -> int:
        """How many script values this component consumes."""
        if self.kind == "literal":
            return 0
        return 1 + int(self.width_dynamic) + int(self.precision_dynamic)


_FLAGS = {"0": "zeropad", "+": "plus", "-": "left", " ": "space", "#": "special"}
_CONVERSIONS = {
    "b": ("binary", 10),
    "c": ("char", 10),
    "s": ("string", 10),
    "m": ("memory", 10),
    "M": ("memory_hex", 10),
    "d": ("number", 10),
    "i": ("number", 10),
    "u": ("number", 10),
    "o": ("number", 8),
    "x": ("number", 16),
    "X": ("number", 16),
    "p": ("pointer", 16),
}


def parse_format(fmt: str) -> list[FormatComponent]:
    """Split ``fmt``; raises :class:`FormatError` with SystemTap's message."""
    out: list[FormatComponent] = []
    literal: list[str] = []
    i = 0
    n = len(fmt)
    while i < n:
        c = fmt[i]
        if c != "%":
            j = fmt.find("%", i)
            if j < 0:
                j = n
            literal.append(fmt[i:j])
            i = j
            continue
        if i + 1 >= n:
            raise FormatError("invalid or missing conversion specifier")
        if fmt[i + 1] == "%":
            literal.append("%")
            i += 2
            continue
        if literal:
            out.append(FormatComponent("literal", "".join(literal)))
            literal = []
        i += 1
        flags: set[str] = set()
        precision: int | None = None
        precision_dynamic = False
        started = False  # something beyond '%' seen: a cut-off conversion is then an error
        if fmt[i] in _FLAGS:
            flags.add(_FLAGS[fmt[i]])
            started = True
            i += 1
        width, width_dynamic, j = _count(fmt, i)
        started = started or j > i
        i = j
        if i < n and fmt[i] == ".":
            i += 1
            precision, precision_dynamic, j = _count(fmt, i)
            started = started or j > i
            i = j
        if i < n and fmt[i] == "l":
            i += 1
        if i >= n:
            if started:
                raise FormatError("trailing incomplete print format conversion")
            return _finish(out, literal)
        conv = fmt[i]
        if conv not in _CONVERSIONS:
            raise FormatError("invalid or missing conversion specifier")
        kind, base = _CONVERSIONS[conv]
        if conv in "di":
            flags.add("sign")
        elif conv == "X":
            flags.add("large")
        elif conv == "p":
            flags.add("special")
        out.append(
            FormatComponent(
                kind,
                conversion=conv,
                flags=frozenset(flags),
                width=width,
                width_dynamic=width_dynamic,
                precision=precision,
                precision_dynamic=precision_dynamic,
                base=base,
            )
        )
        i += 1
    return _finish(out, literal)


def _count(fmt: str, i: int) -> tuple[int | None, bool, int]:
    """A width or precision at ``i``: ``*`` (dynamic) or digits; (value, dynamic, next index)."""
    if i < len(fmt) and fmt[i] == "*":
        return None, True, i + 1
    j = i
    while j < len(fmt) and fmt[j] in "0123456789":
        j += 1
    return (_c_int(fmt[i:j]) if j > i else None), False, j


def _c_int(digits: str) -> int:
    """Digits accumulated into a C ``int`` (wrapping as SystemTap's does); also
    keeps Python's limit on long decimal conversions out of the way."""
    value = 0
    for k in range(0, len(digits), 18):
        chunk = digits[k : k + 18]
        value = (value * 10 ** len(chunk) + int(chunk)) % 2**32
    return value - 2**32 if value >= 2**31 else value


def _finish(out: list[FormatComponent], literal: list[str]) -> list[FormatComponent]:
    if literal:
        out.append(FormatComponent("literal", "".join(literal)))
    return out


def memory_dump_refusal(fmt: str) -> str | None:
    """Why a format cannot be run here, or ``None``.

    ``%m``/``%M`` print memory *at an address* (``#``: user memory).  SystemTap
    reads it from inside the kernel; pystap's handlers run in an ordinary
    process of the user, outside the kernel and outside the traced process,
    and see only what a probe captured into its event record, so an address
    means nothing to them.  The translator accepts the format at ``-p2``
    exactly as ``stap`` does, and refuses it when generating the module
    (pass 3) with this text.
    """
    try:
        comps = parse_format(fmt)
    except FormatError:
        return None
    for c in comps:
        if c.kind in ("memory", "memory_hex"):
            return (f"printf conversion '%{c.conversion}' (memory dump at an address) is not supported by"
                    " pystap: handlers run in a separate user process and cannot read kernel or"
                    " traced-process memory by address")
    return None
