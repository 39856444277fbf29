"""String tapset functions (``string.stp``, ``tokenize.stp``; the regex ones are in :mod:`regex`).

Every function takes the probe context first (``fn(c, ...)``), the calling
convention of all runtime functions, even when it does not need it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pystap.runtime.arith import wrap
from pystap.runtime.errors import StapRuntimeError

_SHORT_ESCAPES = {7: "a", 8: "b", 12: "f", 10: "n", 13: "r", 9: "t", 11: "v", 34: '"', 92: "\\"}


def _decode_utf8(data: bytes, i: int) -> tuple[int, int]:
    """``_stp_decode_utf8``: (code point, bytes used) at ``data[i]``; anything but a valid,
    shortest-form sequence of 2-4 bytes is one byte taken verbatim."""
    b = data[i]
    if b & 0xE0 == 0xC0:
        n, c = 2, b & 0x1F
    elif b & 0xF0 == 0xE0:
        n, c = 3, b & 0x0F
    elif b & 0xF8 == 0xF0:
        n, c = 4, b & 0x07
    else:
        return b, 1
    for k in range(1, n):
        b2 = data[i + k] if i + k < len(data) else 0
        if b2 & 0xC0 != 0x80:
            return b, 1
        c = (c << 6) | (b2 & 0x3F)
    if 0xD800 <= c <= 0xDFFF or c > 0x10FFFF or c < 0x80 or (n == 3 and c < 0x800) \
            or (n == 4 and c < 0x10000):
        return b, 1
    return c, n


def stp_text_str(s: str, outlen: int, quoted: bool, maxstringlen: int) -> str:
    """The runtime's ``_stp_text_str``: printable ASCII as is, C escapes for the usual control
    characters, ``"`` and ``\\``, ``\\ooo`` for other bytes and ``\\uXXXX`` for UTF-8; at most
    ``outlen`` characters (0: MAXSTRINGLEN - 1), quoted output ending ``"...`` when cut, and
    never half an escape sequence."""
    limit = maxstringlen - 1
    data = s.encode("latin-1", "replace")[:limit]
    if outlen <= 0 or outlen > limit:
        outlen = limit
    out: list[str] = []
    if quoted:
        outlen = max(outlen, 5) - 2
        out.append('"')
    esc_at, esc_len = -1, 0  # the first escape sequence that a cut could split
    c, i, inlen = 0, 0, limit
    while inlen > 0:
        if i < len(data):
            c, n = _decode_utf8(data, i)
        else:
            c, n = 0, 1  # the string's terminating NUL
        if c == 0 or outlen <= 0:
            break
        i += n
        inlen -= n
        pos = sum(map(len, out))
        if n > 1:
            num = 6 if c <= 0xFFFF else 10
            if esc_at < 0 and outlen - 3 < num:
                esc_at, esc_len = pos, num
            if outlen < num:
                break
            out.append(("\\u" if c <= 0xFFFF else "\\U") + format(c, f"0{num - 2}X"))
        elif 32 <= c < 127 and c not in (34, 92):
            num = 1
            out.append(chr(c))
        else:
            short = _SHORT_ESCAPES.get(c)
            num = 2 if short is not None else 4
            if esc_at < 0 and outlen - 3 < num:
                esc_at, esc_len = pos, num
            if outlen < num:
                break
            out.append("\\" + (short if short is not None else format(c, "03o")))
        outlen -= num
    text = "".join(out)
    if quoted:
        if c and inlen > 0:
            cut = len(text) - 3 + outlen
            text = text[:esc_at] if 0 <= esc_at < cut < esc_at + esc_len else text[:cut]
            text += '"...'
        else:
            text += '"'
    return text


def strlen(c: Any, s: str) -> int:
    return len(s)


def substr(c: Any, s: str, start: int, length: int) -> str:
    """A start outside the string gives "" (no clamping to 0, unlike Python slicing); the
    length is clamped as the tapset does, ``length + 1`` included (so INT64_MAX wraps)."""
    if not 0 <= start < len(s):
        return ""
    size = min(max(wrap(length + 1), 0), c.session.maxstr + 1)
    return s[start:start + size - 1] if size > 0 else ""


def stringat(c: Any, s: str, pos: int) -> int:
    if 0 <= pos < len(s):
        return ord(s[pos])
    raise StapRuntimeError("Position out of bounds")


def isinstr(c: Any, s1: str, s2: str) -> int:
    return 1 if s2 in s1 else 0


def strpos(c: Any, s1: str, s2: str) -> int:
    return s1.find(s2)


def str_replace(c: Any, s: str, find: str, repl: str) -> str:
    if not find:
        return s
    return s.replace(find, repl)[: c.session.maxstr]


_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def strtol(c: Any, s: str, base: int) -> int:
    """The kernel's ``simple_strtol``: stops at the first invalid digit, no error."""
    if base != 0 and not 2 <= base <= 36:
        raise StapRuntimeError(f"base {base} is invalid")
    i, neg = 0, False
    if s[:1] == "-":
        neg, i = True, 1
    rest = s[i:].lower()
    if base == 0:
        if rest.startswith("0x") and len(rest) > 2 and rest[2] in _DIGITS[:16]:
            base, rest = 16, rest[2:]
        elif rest.startswith("0"):
            base = 8
        else:
            base = 10
    elif base == 16 and rest.startswith("0x"):
        rest = rest[2:]
    value = 0
    for ch in rest:
        d = _DIGITS.find(ch)
        if d < 0 or d >= base:
            break
        value = value * base + d
    return wrap(-value if neg else value)


def isdigit(c: Any, s: str) -> int:
    return 1 if s[:1].isdigit() and s[:1].isascii() else 0


def text_str(c: Any, s: str) -> str:
    return stp_text_str(s, 0, False, c.session.maxstr + 1)


def text_strn(c: Any, s: str, length: int, quoted: int) -> str:
    maxstringlen = c.session.maxstr + 1
    return stp_text_str(s, min(max(length, 0), maxstringlen), bool(quoted), maxstringlen)


def string_quoted(c: Any, s: str) -> str:
    return stp_text_str(s, c.session.maxstr + 1, True, c.session.maxstr + 1)


def _next_token(c: Any) -> str:
    state = c.tok_state
    if state is None:
        return ""
    text, delim = state
    while True:
        if not text:
            c.tok_state = None
            return ""
        cut = min((p for p in (text.find(d) for d in delim) if p >= 0), default=-1) if delim else -1
        if cut < 0:
            token, text = text, ""
        else:
            token, text = text[:cut], text[cut + 1:]
        c.tok_state = (text, delim) if text else None
        if token:
            return token


def tokenize(c: Any, *args: str) -> str:
    """``tokenize(input, delim)`` starts a new string, ``tokenize(delim)`` continues it."""
    text, delim = args if len(args) == 2 else ("", args[0])
    if text:
        c.tok_state = (text, delim)
    elif c.tok_state is not None:  # an empty input continues the previous string, as in stap
        c.tok_state = (c.tok_state[0], delim)
    return _next_token(c)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "strlen": strlen, "substr": substr, "stringat": stringat, "isinstr": isinstr, "strpos": strpos,
    "str_replace": str_replace, "strtol": strtol, "isdigit": isdigit, "text_str": text_str,
    "text_strn": text_strn, "string_quoted": string_quoted, "tokenize": tokenize,
}
