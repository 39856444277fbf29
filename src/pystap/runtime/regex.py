"""``=~`` / ``!~`` at run time, and the ``regex.stp`` functions ``matched``, ``matched_str``, ``ngroups``.

The pattern language and the matcher live in :mod:`pystap.ere`, shared with
pass 2 so both sides agree on what a pattern means (see there for why it
sits outside ``lang/`` and ``runtime/``).  This module adds what belongs to
the running module:

* the match test runs on every ``=~`` and is cheap (Python's ``re`` on the
  translated pattern); the POSIX leftmost-longest spans are computed only
  when the handler calls ``matched(n)`` / ``matched_str()``, once per match;
* ``c.match`` remembers the last ``=~`` of the context, failed or not, as
  SystemTap's ``CONTEXT->last_match`` does, so after a failed match the
  functions raise SystemTap's errors (``Attempted to get subexpression 0 from
  failed match``), and an index past the last group raises ``Attempted to
  get nonexistent subexpression N``; a group that took no part yields ``""``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pystap.ere import EreError, Pattern, compile_pattern
from pystap.runtime.errors import StapRuntimeError

RegexError = EreError

__all__ = ["FUNCTIONS", "LastMatch", "RegexError", "check", "compile_ere", "match"]


def compile_ere(pattern: str) -> Pattern:
    """Compile (and cache) a pattern; raises :class:`RegexError` for one stapregex refuses."""
    return compile_pattern(pattern)


def check(pattern: str) -> str | None:
    """The refusal text for a bad pattern, or ``None``."""
    try:
        compile_pattern(pattern)
    except EreError as exc:
        return exc.diagnostic()
    return None


class LastMatch:
    """One successful ``=~``: the text, where the match starts, spans computed on demand."""

    __slots__ = ("_spans", "pattern", "start", "text")

    def __init__(self, pattern: Pattern, text: str, start: int) -> None:
        self.pattern = pattern
        self.text = text
        self.start = start
        self._spans: list[tuple[int, int]] | None = None

    def spans(self) -> list[tuple[int, int]]:
        if self._spans is None:
            self._spans = self.pattern.spans(self.text, self.start)
        return self._spans

    def group(self, n: int) -> str:
        a, b = self.spans()[n]
        return "" if a < 0 else self.text[a:b]


def match(c: Any, pattern: Pattern, text: str) -> int:
    """``text =~ pattern`` for generated code: 1 or 0, remembering the match in ``c``."""
    start = pattern.search(text)
    if start < 0:
        c.match = None
        return 0
    c.match = LastMatch(pattern, text, start)
    return 1


def matched(c: Any, n: int) -> str:
    m: LastMatch | None = c.match
    if m is None:
        raise StapRuntimeError(f"Attempted to get subexpression {n} from failed match")
    if n < 0 or n > m.pattern.groups:
        raise StapRuntimeError(f"Attempted to get nonexistent subexpression {n}")
    return m.group(n)


def matched_str(c: Any) -> str:
    return matched(c, 0)


def ngroups(c: Any) -> int:
    m: LastMatch | None = c.match
    if m is None:
        raise StapRuntimeError("Attempted to get subexpression count from failed match")
    return m.pattern.groups + 1


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "matched": matched, "matched_str": matched_str, "ngroups": ngroups,
}
