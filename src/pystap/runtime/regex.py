"""POSIX extended regular expressions (``=~``) on top of Python's ``re``.

The script language uses POSIX EREs; Python's syntax differs in a few
places, so patterns are translated rather than passed through: bracket
expressions (``[[:alpha:]]``, ``]`` first, backslash literal inside),
``$`` meaning end of string only, and every Python-only construct
(``(?...)``, ``\\d``, backreferences, lazy quantifiers) is rejected with a
message instead of silently meaning something else.  Matching is
leftmost-first (Python) where POSIX says leftmost-longest; the difference
only shows in which alternative a group captures.
"""

from __future__ import annotations

import functools
import re

_CLASSES = {
    "alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z", "lower": "a-z",
    "space": " \\t\\n\\r\\f\\v", "blank": " \\t", "punct": "!-/:-@\\[-`{-~", "xdigit": "0-9A-Fa-f",
    "cntrl": "\\x00-\\x1f\\x7f", "print": " -~", "graph": "!-~",
}
_ESCAPABLE = set("^.[$()|*+?{}\\/")


class RegexError(ValueError):
    """The pattern is not a POSIX ERE this runtime accepts."""


def _bracket(p: str, i: int) -> tuple[str, int]:
    """Translate the bracket expression starting after ``[`` at ``i``."""
    out = ["["]
    if i < len(p) and p[i] == "^":
        out.append("^")
        i += 1
    first = True
    while True:
        if i >= len(p):
            raise RegexError("unterminated bracket expression")
        ch = p[i]
        if ch == "]" and not first:
            out.append("]")
            return "".join(out), i + 1
        first = False
        if p.startswith("[:", i):
            end = p.find(":]", i + 2)
            if end < 0:
                raise RegexError("unterminated character class")
            name = p[i + 2:end]
            if name not in _CLASSES:
                raise RegexError(f"unknown character class '{name}'")
            out.append(_CLASSES[name])
            i = end + 2
            continue
        if p.startswith("[=", i) or p.startswith("[.", i):
            raise RegexError("collating elements are not supported")
        if ch in "\\[]^":
            out.append("\\" + ch)
        else:
            out.append(ch)
        i += 1


def translate(pattern: str) -> str:
    """ERE → Python ``re`` syntax (raises :class:`RegexError`)."""
    out: list[str] = []
    i, n = 0, len(pattern)
    depth = 0
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                raise RegexError("trailing backslash")
            nxt = pattern[i + 1]
            if nxt.isalnum():
                raise RegexError(f"unsupported escape '\\{nxt}'")
            out.append(re.escape(nxt))
            i += 2
            continue
        if ch == "[":
            text, i = _bracket(pattern, i + 1)
            out.append(text)
            continue
        if ch == "(":
            if i + 1 < n and pattern[i + 1] == "?":
                raise RegexError("'(?' is not valid in a POSIX regular expression")
            depth += 1
        elif ch == ")":
            if depth == 0:
                raise RegexError("unmatched ')'")
            depth -= 1
        elif ch in "*+?":
            if i + 1 < n and pattern[i + 1] in "?+":
                raise RegexError("repeated repetition operator")
        elif ch == "$":
            out.append(r"\Z")
            i += 1
            continue
        out.append(ch)
        i += 1
    if depth:
        raise RegexError("unmatched '('")
    return "".join(out)


@functools.lru_cache(maxsize=256)
def compile_ere(pattern: str) -> re.Pattern[str]:
    """Compile (and cache) an ERE; raises :class:`RegexError` for bad patterns."""
    try:
        return re.compile(translate(pattern), re.DOTALL)
    except re.error as exc:
        raise RegexError(str(exc)) from None


def check(pattern: str) -> str | None:
    """The error text for a bad pattern, or ``None`` (used by pass 2)."""
    try:
        compile_ere(pattern)
    except RegexError as exc:
        return str(exc)
    return None
