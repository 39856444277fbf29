"""String tapset functions (``string.stp``, ``tokenize.stp``; the regex ones are in :mod:`regex`).

Every function takes the probe context first (``fn(c, ...)``), the calling
convention of all runtime functions, even when it does not need it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pystap.runtime.arith import wrap
from pystap.runtime.errors import StapRuntimeError

_ESCAPES = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v",
            34: '\\"', 39: "\\'", 92: "\\\\"}


def escape_text(s: str) -> str:
    """C-style escaping as the runtime's ``_stp_text_str`` does it."""
    out = []
    for ch in s:
        o = ord(ch)
        esc = _ESCAPES.get(o)
        if esc is not None:
            out.append(esc)
        elif 32 <= o < 127:
            out.append(ch)
        else:
            out.append("\\" + format(o & 0xFF, "03o"))
    return "".join(out)


def strlen(c: Any, s: str) -> int:
    return len(s)


def substr(c: Any, s: str, start: int, length: int) -> str:
    start = max(start, 0)
    length = max(length, 0)
    if start >= len(s):
        return ""
    return s[start:start + length]


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
    return escape_text(s)[: c.session.maxstr]


def text_strn(c: Any, s: str, length: int, quoted: int) -> str:
    truncated = 0 < length < len(s)
    text = escape_text(s[:length] if length > 0 else s)
    if quoted:
        text = '"' + text + '"' + ("..." if truncated else "")
    return text[: c.session.maxstr]


def string_quoted(c: Any, s: str) -> str:
    return ('"' + escape_text(s) + '"')[: c.session.maxstr]


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
    if len(args) == 2:
        c.tok_state = (args[0], args[1]) if args[0] else None
    elif c.tok_state is not None:
        c.tok_state = (c.tok_state[0], args[0])
    return _next_token(c)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "strlen": strlen, "substr": substr, "stringat": stringat, "isinstr": isinstr, "strpos": strpos,
    "str_replace": str_replace, "strtol": strtol, "isdigit": isdigit, "text_str": text_str,
    "text_strn": text_strn, "string_quoted": string_quoted, "tokenize": tokenize,
}
