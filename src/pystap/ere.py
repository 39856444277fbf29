"""The ``=~`` regular expressions: SystemTap's stapregex dialect, parsed once, matched POSIX-style.

Why a module of its own, at the top of the package: pass 2 must reject a bad
pattern with SystemTap's message (``lang/checks.py``) and pass 5 must match it
(``runtime/regex.py``), and DESIGN's import rules forbid either side to import
the other (the passes do not import the runtime; the runtime never imports the
translator).  Like :mod:`pystap.modfile` and :mod:`pystap.privilege`, this
module is shared by both and imports nothing of pystap, so one parser decides
what a pattern means everywhere.

Syntax -- exactly what ``stapregex-parse.cxx`` accepts, errors and positions
included (checked against ``stap -p2`` 4.8):

* the pattern is the string literal's *source* text: C escapes (``\\n``,
  ``\\t``, ``\\xHH``, ``\\ooo`` with three octal digits) are decoded here, and a
  decoded backslash then escapes the next character (so ``"a\\\\.b"`` matches
  ``a.b``; ``\\d`` is a plain ``d``; there are no back-references);
* ``| * + ? {m} {m,} {m,n}`` (counts below 12345), ``( )`` groups, ``(?: )``
  non-capturing groups (any other ``(?`` is an error), ``.``, ``^``, ``$``
  (anchors at the ends of the string only), bracket expressions with ranges,
  ``]`` first, ``\\`` escapes, and the classes ``[:alpha:]`` ``alnum blank
  cntrl digit/d xdigit graph lower/l print punct space/s upper/u``;
* a closure first in a factor (``*a``, ``{a``) or on an anchor (``^*``) is an
  error; a trailing ``)`` at the very end is ignored, as stapregex does.

Matching -- POSIX leftmost-longest, like stapregex's tagged DFA: among the
matches that start leftmost, the longest wins (``"abcd" =~ "a|ab|abc"``
matches ``abc``, where Python's ``re`` would say ``a``), and each
subexpression, left to right, takes the longest text that still lets the
whole match succeed; a group inside a repetition reports its last
iteration.  Whether there *is* a match does not depend on those rules, so the
test itself runs on a translation to Python's ``re`` (C speed, the hot path);
the POSIX spans are computed only when a script asks for them
(``matched(n)``), by a position-set simulation over the parsed pattern
(memoised per (node, position), polynomial, no backtracking blow-up).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

MAX_REPETITIONS = 12345  # stapregex's MAX_DFA_REPETITIONS
MAX_NESTING = 200  # ours: keeps the recursive parser far from Python's recursion limit

_HEX = "0123456789abcdef"
_OCT = "01234567"
_SPECIAL = set(".[{()\\*+?|^$")
_ALL = frozenset(range(1, 256))  # what '.' and negated classes range over (strings hold no NUL)


def _chars(spec: str) -> frozenset[int]:
    out: set[int] = set()
    i = 0
    while i < len(spec):
        if i + 2 < len(spec) and spec[i + 1] == "-":
            out.update(range(ord(spec[i]), ord(spec[i + 2]) + 1))
            i += 3
        else:
            out.add(ord(spec[i]))
            i += 1
    return frozenset(out)


_CLASSES = {
    "alpha": _chars("A-Za-z"),
    "alnum": _chars("A-Za-z0-9"),
    "blank": _chars(" \t"),
    "cntrl": _chars("\x01-\x1f\x7f"),
    "digit": _chars("0-9"),
    "xdigit": _chars("0-9a-fA-F"),
    "graph": _chars("\x21-\x7e"),
    "lower": _chars("a-z"),
    "print": _chars("\x20-\x7e"),
    "punct": frozenset(map(ord, "!\"#$%&'()*+,./:;<=>?@[\\]^_`{|}~-")),
    "space": _chars(" \t\r\n\v\f"),
    "upper": _chars("A-Z"),
}
_CLASSES.update(d=_CLASSES["digit"], l=_CLASSES["lower"], s=_CLASSES["space"], u=_CLASSES["upper"])


class EreError(ValueError):
    """A pattern stapregex refuses; ``pos`` is its character position (``None``: unknown)."""

    def __init__(self, message: str, pos: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos

    def diagnostic(self) -> str:
        """SystemTap's pass-2 text (without the ``: string '…'`` token suffix)."""
        if self.pos is not None and self.pos >= 0:
            return f"regex compilation error (at position {self.pos}): {self.message}"
        return f"regex compilation error: {self.message}"


# -- the parsed pattern ----------------------------------------------------------------------


@dataclass(eq=False)
class Node:
    """One regex node; ``kind`` is chars/empty/bol/eol/cat/alt/rep/group."""

    kind: str
    chars: frozenset[int] = frozenset()
    kids: list[Node] = field(default_factory=list)
    lo: int = 0
    hi: int = -1  # -1: unbounded
    group: int = -1  # capturing group number; -1 for (?: )


def _cat(a: Node, b: Node) -> Node:
    if a.kind == "empty":
        return b
    if b.kind == "empty":
        return a
    kids = (a.kids if a.kind == "cat" else [a]) + (b.kids if b.kind == "cat" else [b])
    return Node("cat", kids=kids)


class _Cursor:
    """stapregex's ``cursor``: C-unescaping reader whose position quirks the messages show."""

    def __init__(self, text: str) -> None:
        self.input = text
        self.pos = 0
        self.last_pos = 0
        self.next_c = ""  # "" = nothing pending (C's 0)
        self.finished = not text

    def next(self) -> str:
        if not self.next_c and self.finished:
            raise EreError("unexpected end of regex", self.pos)
        if not self.next_c:
            self._unescape()
        c = self.next_c
        self.next_c = ""
        return c

    def peek(self) -> str:
        if not self.next_c and not self.finished:
            self._unescape()
        return self.next_c

    def has(self, n: int) -> bool:
        size = len(self.input)
        return size < n or self.pos <= size - n  # unsigned wrap-around in the C original

    def _unescape(self) -> None:
        s = self.input
        self.last_pos = self.pos
        c = s[self.pos]
        if c != "\\":
            self._take(c, 1)
            return
        self.pos += 1
        if self.pos >= len(s):
            raise EreError("unexpected end of regex", self.pos)
        pos = self.pos
        c = s[pos]
        simple = {"a": "\a", "b": "\b", "t": "\t", "n": "\n", "v": "\v", "f": "\f", "r": "\r"}
        if c in simple:
            c = simple[c]
        elif c == "x":
            if len(s) < 2 or pos >= len(s) - 2:
                raise EreError("two hex digits required in escape sequence", pos)
            d1, d2 = s[pos + 1].lower(), s[pos + 2].lower()
            if d1 not in _HEX or d2 not in _HEX:
                raise EreError("two hex digits required in escape sequence", pos + (1 if d1 in _HEX else 2))
            c = chr(_HEX.index(d1) * 16 + _HEX.index(d2))
            self.pos += 2
        elif c in "4567":
            raise EreError("octal escape sequence out of range", pos)
        elif c in "0123":
            if len(s) < 2 or pos >= len(s) - 2:
                raise EreError("three octal digits required in escape sequence", pos)
            d1, d2 = s[pos + 1], s[pos + 2]
            if d1 not in _OCT or d2 not in _OCT:
                where = pos + (1 if d1 in _OCT else 2)
                raise EreError("three octal digits required in escape sequence", where)
            c = chr((int(c) * 64 + int(d1) * 8 + int(d2)) & 0xFF)
            self.pos += 2
        self._take(c, 1)

    def _take(self, c: str, width: int) -> None:
        self.next_c = c
        self.pos += width
        self.finished = self.pos >= len(self.input)


def _signed(c: str) -> int:
    v = ord(c) & 0xFF
    return v - 256 if v >= 128 else v


class _Parser:
    """A transcription of ``regex_parser`` (parse_expr/term/factor/char_range)."""

    def __init__(self, text: str) -> None:
        self.cur = _Cursor(text)
        self.groups = 0
        self.depth = 0

    def error(self, message: str, pos: int | None = None) -> EreError:
        return EreError(message, self.cur.last_pos if pos is None else pos)

    def parse(self) -> Node:
        result = self.expr()
        cur = self.cur
        if not cur.finished:
            c = cur.peek()
            if c == ")":
                raise self.error("unbalanced ')'", cur.pos)
            raise self.error("regex parse failed to finish", cur.pos)
        return result

    def expr(self) -> Node:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(f"groups nested more than {MAX_NESTING} deep")
        alts = [self.term()]
        while self.cur.peek() == "|":
            self.cur.next()
            alts.append(self.term())
        self.depth -= 1
        return alts[0] if len(alts) == 1 else Node("alt", kids=alts)

    def term(self) -> Node:
        result = self.factor()
        c = self.cur.peek()
        while c and c not in "|)":
            result = _cat(result, self.factor())
            c = self.cur.peek()
        return result

    def factor(self) -> Node:
        cur = self.cur
        c = cur.peek()
        if not c or c in "|)":
            return Node("empty")
        if c in "*+?{":
            raise self.error(f"unexpected '{c}'")
        if c in _SPECIAL and c != "\\":
            cur.next()
        old: Node | None = None
        if c == ".":
            result = Node("chars", chars=_ALL)
        elif c == "[":
            result = self.char_range()
            self.expect("]")
        elif c == "(":
            group = -1
            if cur.peek() == "?":
                cur.next()
                q = cur.peek()
                if q != ":":
                    raise self.error(f"unexpected '(?{q}'")
                cur.next()
            else:
                group = self.groups = self.groups + 1
            inner = self.expr()
            self.expect(")")
            result = Node("group", kids=[inner], group=group)
        elif c in "^$":
            result = Node("bol" if c == "^" else "eol")
        else:
            text: list[str] = []
            last = ""
            while c and (c not in _SPECIAL or c == "\\"):
                if c == "\\":
                    cur.next()
                    c = cur.peek()
                cur.next()
                d = cur.peek()
                if d and d in "*+?{":
                    last = c
                    break
                text.append(c)
                c = d
            result = Node("empty")
            for ch in text:
                result = _cat(result, Node("chars", chars=frozenset((ord(ch),))))
            if last:
                old = result
                result = Node("chars", chars=frozenset((ord(last),)))
        c = cur.peek()
        while c and c in "*+?{":
            cur.next()
            if result.kind in ("bol", "eol"):
                raise self.error(f"postfix closure '{c}' applied to anchoring operator")
            if c == "*":
                result = Node("rep", kids=[result], lo=0, hi=-1)
            elif c == "+":
                result = Node("rep", kids=[result], lo=1, hi=-1)
            elif c == "?":
                result = Node("rep", kids=[result], lo=0, hi=1)
            else:
                lo = self.number()
                c = cur.next()
                if c == ",":
                    c = cur.peek()
                    if c == "}":
                        cur.next()
                        hi = -1
                    elif c and c.isdigit():
                        hi = self.number()
                        self.expect("}")
                    else:
                        raise self.error("expected '}' or number", cur.pos)
                elif c == "}":
                    hi = lo
                else:
                    raise self.error("expected ',' or '}'")
                if hi != -1 and hi < lo:
                    # stapregex 4.8 dies on an assertion here; we refuse
                    raise self.error(f"invalid repetition count {{{lo},{hi}}}", cur.last_pos)
                result = Node("rep", kids=[result], lo=lo, hi=hi)
            c = cur.peek()
        if old is not None:
            result = _cat(old, result)
        return result

    def expect(self, want: str) -> None:
        """stapregex's ``expect``: the next character must be ``want``."""
        try:
            got = self.cur.next()
        except EreError:
            raise self.error(f"expected {want}, found end of regex") from None
        if got != want:
            raise self.error(f"expected {want}, found {got}")

    def number(self) -> int:
        cur = self.cur
        digits = ""
        c = cur.peek()
        while c and c in "0123456789":
            cur.next()
            digits += c
            c = cur.peek()
        if not digits:
            raise self.error("expected number", cur.pos)
        if int(digits) >= MAX_REPETITIONS:
            raise self.error(f"{digits} is too large", cur.pos)
        return int(digits)

    def char_range(self) -> Node:
        cur = self.cur
        inv = False
        if cur.peek() == "^":
            inv = True
            cur.next()
        chars: set[int] = set()
        while True:
            if cur.finished:
                raise self.error("unclosed character class")
            chars |= self.getrange()
            if cur.peek() == "]":
                break
        result = (_ALL - chars) if inv else frozenset(chars)
        return Node("chars", chars=frozenset(result))

    def getrange(self) -> frozenset[int]:
        cur = self.cur
        c = cur.peek()
        if c == "\\":
            cur.next()
            c = cur.peek()
            cur.next()
        elif c == "[":
            cur.next()
            c = cur.peek()
            if c == ":":
                cur.next()
                c = cur.peek()
                name = ""
                while True:
                    if cur.finished:
                        raise EreError(f"unclosed character class '[:{name}'", cur.pos)
                    if cur.has(2) and c == ":" and cur.input[cur.pos] == "]":
                        cur.next()
                        cur.next()
                        if name not in _CLASSES:
                            raise EreError(f"unknown character class '{name}'")
                        return _CLASSES[name]
                    name += c
                    cur.next()
                    c = cur.peek()
            c = "["
        else:
            cur.next()
        lb = c
        if not cur.has(2) or cur.peek() != "-" or cur.input[cur.pos] == "]":
            ub = lb
        else:
            cur.next()
            ub = cur.peek()
            if _signed(ub) < _signed(lb):
                raise EreError(f"Inverted character range {lb}-{ub}", cur.pos)
            cur.next()
        lo, hi = ord(lb) & 0xFF, ord(ub) & 0xFF
        return frozenset(range(lo, hi + 1))


# -- compiled patterns ------------------------------------------------------------------------


def _class_text(chars: frozenset[int]) -> str:
    if not chars:
        return "(?!)"
    if len(chars) == 1:
        return re.escape(chr(next(iter(chars))))
    parts: list[str] = []
    run: list[int] = []
    for c in sorted(chars):
        if run and c == run[-1] + 1:
            run.append(c)
            continue
        if run:
            parts.append(_run_text(run))
        run = [c]
    parts.append(_run_text(run))
    return "[" + "".join(parts) + "]"


def _run_text(run: list[int]) -> str:
    if len(run) == 1:
        return f"\\x{run[0]:02x}"
    return f"\\x{run[0]:02x}-\\x{run[-1]:02x}"


def _python(node: Node) -> str:
    """The node as Python ``re`` syntax (only whether it matches is used)."""
    k = node.kind
    if k == "chars":
        return _class_text(node.chars)
    if k == "empty":
        return ""
    if k == "bol":
        return r"\A"
    if k == "eol":
        return r"\Z"
    if k == "cat":
        return "".join(_python(n) for n in node.kids)
    if k == "alt":
        return "(?:" + "|".join(_python(n) for n in node.kids) + ")"
    if k == "group":
        return "(?:" + _python(node.kids[0]) + ")"
    inner = "(?:" + _python(node.kids[0]) + ")"
    if node.hi == -1:
        return inner + ("*" if node.lo == 0 else "+" if node.lo == 1 else f"{{{node.lo},}}")
    return inner + f"{{{node.lo},{node.hi}}}"


class Pattern:
    """A compiled ``=~`` pattern: ``search`` is the test, :meth:`spans` the POSIX submatches."""

    __slots__ = ("_grouped", "_search", "groups", "python", "root", "source")

    def __init__(self, source: str) -> None:
        parser = _Parser(source)
        self.source = source
        self.root = parser.parse()
        self.groups = parser.groups  # capturing groups, not counting group 0
        self.python = _python(self.root)
        self._search = re.compile(self.python, re.DOTALL).search
        self._grouped: dict[int, bool] = {}

    def has_groups(self, node: Node) -> bool:
        """Does ``node`` contain a capturing group (memoised per pattern)?"""
        got = self._grouped.get(id(node))
        if got is None:
            got = self._grouped[id(node)] = bool(_groups_in(node))
        return got

    def search(self, text: str) -> int:
        """Where the leftmost match starts, or -1 (the leftmost start is the same for every rule)."""
        m = self._search(text)
        return -1 if m is None else m.start()

    def spans(self, text: str, start: int | None = None) -> list[tuple[int, int]]:
        """POSIX spans of group 0..N (``(-1, -1)``: did not take part); ``[]`` if no match."""
        if start is None:
            start = self.search(text)
        if start < 0:
            return []
        return _Posix(self, text).spans(start)


class _Posix:
    """Leftmost-longest spans for one text: the end-position sets of every (node, start)
    are memoised, then the parse is chosen top-down, longest-first, left to right."""

    def __init__(self, pattern: Pattern, text: str) -> None:
        self.pattern = pattern
        self.text = text
        self.n = len(text)
        self.memo: dict[tuple[int, int], frozenset[int]] = {}
        self.rep_memo: dict[tuple[int, int, int, int], frozenset[int]] = {}
        self.cat_memo: dict[tuple[int, int, int], frozenset[int]] = {}
        self.caps: list[tuple[int, int]] = [(-1, -1)] * (pattern.groups + 1)
        self.runs: dict[int, list[int]] = {}

    def spans(self, start: int) -> list[tuple[int, int]]:
        root = self.pattern.root
        ends = self.ends(root, start)
        if not ends:
            return []
        end = max(ends)
        self.caps[0] = (start, end)
        self.build(root, start, end)
        return self.caps

    # -- which end positions a node can reach from a start position

    def ends(self, node: Node, i: int) -> frozenset[int]:
        key = (id(node), i)
        got = self.memo.get(key)
        if got is not None:
            return got
        k = node.kind
        if k == "chars":
            got = frozenset((i + 1,)) if i < self.n and (ord(self.text[i]) in node.chars) else frozenset()
        elif k == "empty":
            got = frozenset((i,))
        elif k == "bol":
            got = frozenset((i,)) if i == 0 else frozenset()
        elif k == "eol":
            got = frozenset((i,)) if i == self.n else frozenset()
        elif k == "group":
            got = self.ends(node.kids[0], i)
        elif k == "alt":
            acc: set[int] = set()
            for kid in node.kids:
                acc |= self.ends(kid, i)
            got = frozenset(acc)
        elif k == "cat":
            got = self.cat_ends(node, 0, i)
        else:
            got = self.rep_ends(node, i, node.lo, node.hi)
        self.memo[key] = got
        return got

    def cat_ends(self, node: Node, index: int, i: int) -> frozenset[int]:
        key = (id(node), index, i)
        got = self.cat_memo.get(key)
        if got is not None:
            return got
        cur = {i}
        for kid in node.kids[index:]:
            nxt: set[int] = set()
            for p in cur:
                nxt |= self.ends(kid, p)
            cur = nxt
            if not cur:
                break
        got = frozenset(cur)
        self.cat_memo[key] = got
        return got

    def suffix_reach(self, node: Node, i: int, j: int) -> list[set[int]]:
        """For a cat node spanning [i, j]: reach[k] = the positions, reachable from ``i``
        through kids[:k], from which kids[k:] end exactly at ``j``.  A forward sweep of
        the reachable positions, then a backward one, so choosing every split is one
        membership test instead of a forward simulation per candidate."""
        kids = node.kids
        forward: list[set[int]] = [{i}]
        for kid in kids:
            nxt: set[int] = set()
            for p in forward[-1]:
                nxt |= self.ends(kid, p)
            forward.append({e for e in nxt if e <= j})
        reach: list[set[int]] = [set() for _ in kids]
        reach.append({j})
        for index in range(len(kids) - 1, -1, -1):
            kid, nxt, here = kids[index], reach[index + 1], reach[index]
            for p in forward[index]:
                if not nxt.isdisjoint(self.ends(kid, p)):
                    here.add(p)
        return reach

    def rep_ends(self, node: Node, i: int, lo: int, hi: int) -> frozenset[int]:
        key = (id(node), i, lo, hi)
        got = self.rep_memo.get(key)
        if got is not None:
            return got
        kid = node.kids[0]
        if kid.kind == "chars":  # [a-z]+, .*: the ends are one run of matching characters
            got = self.run_ends(kid, i, lo, hi)
            self.rep_memo[key] = got
            return got
        cur = {i}
        count = 0
        while count < lo and cur:
            nxt: set[int] = set()
            for p in cur:
                nxt |= self.ends(kid, p)
            cur = nxt
            count += 1
        if hi == -1:
            acc: set[int] = set()
            for p in cur:
                acc |= self.star_ends(node, p)
            got = frozenset(acc)
        else:
            seen = set(cur)
            frontier = set(cur)
            while frontier and count < hi:
                nxt = set()
                for p in frontier:
                    nxt |= self.ends(kid, p)
                frontier = nxt - seen
                seen |= nxt
                count += 1
            got = frozenset(seen)
        self.rep_memo[key] = got
        return got

    def run_ends(self, kid: Node, i: int, lo: int, hi: int) -> frozenset[int]:
        run = self.runs.get(id(kid))
        if run is None:
            # run[q]: how many characters from q on are in the class (filled right to left)
            chars, text = kid.chars, self.text
            run = [0] * (self.n + 1)
            for q in range(self.n - 1, -1, -1):
                run[q] = run[q + 1] + 1 if ord(text[q]) in chars else 0
            self.runs[id(kid)] = run
        longest = run[i] if hi == -1 else min(run[i], hi)
        if longest < lo:
            return frozenset()
        return frozenset(range(i + lo, i + longest + 1))

    def star_ends(self, node: Node, i: int) -> frozenset[int]:
        """Ends of zero or more iterations from ``i``: S(q) = {q} + S(e) for e in ends(kid, q), e > q.

        Filled from the end of the text down to ``i`` in one loop, so every
        position is computed once per node (the unions run in C) and a long
        text costs no deep recursion."""
        key = (id(node), i, -2, -2)
        got = self.rep_memo.get(key)
        if got is not None:
            return got
        kid = node.kids[0]
        memo = self.rep_memo
        nid = id(node)
        for q in range(self.n, i - 1, -1):
            if (nid, q, -2, -2) in memo:
                continue
            acc = {q}
            for e in self.ends(kid, q):
                if e > q:
                    acc |= memo[(nid, e, -2, -2)]
            memo[(nid, q, -2, -2)] = frozenset(acc)
        return memo[key]

    # -- choosing the POSIX parse of a node over a fixed span

    def build(self, node: Node, i: int, j: int) -> None:
        if not self.pattern.has_groups(node):
            return  # nothing to record below: any parse of the span will do
        k = node.kind
        if k == "group":
            if node.group >= 0:
                self.caps[node.group] = (i, j)
            self.build(node.kids[0], i, j)
        elif k == "alt":
            for kid in node.kids:
                if j in self.ends(kid, i):
                    self.build(kid, i, j)
                    return
        elif k == "cat":
            kids = node.kids
            reach = self.suffix_reach(node, i, j)
            pos = i
            for index, kid in enumerate(kids[:-1]):
                split = max(e for e in self.ends(kid, pos) if e in reach[index + 1])
                self.build(kid, pos, split)
                pos = split
            self.build(kids[-1], pos, j)
        elif k == "rep":
            self.build_rep(node, i, j)

    def build_rep(self, node: Node, i: int, j: int) -> None:
        kid = node.kids[0]
        lo, hi = node.lo, node.hi
        inner = _groups_in(kid)
        pos, count = i, 0
        while True:
            if pos == j and count >= lo:
                return
            need = max(lo - count - 1, 0)
            left = -1 if hi == -1 else hi - count - 1
            choice = -1
            for e in sorted(self.ends(kid, pos), reverse=True):
                if e == pos and pos != j:
                    continue  # an empty iteration in the middle never helps
                if j in self.rep_ends(node, e, need, left) or (e == j and need == 0):
                    choice = e
                    break
            if choice < 0:
                return  # cannot happen: the span was reachable
            for g in inner:
                self.caps[g] = (-1, -1)  # only the last iteration's groups count
            self.build(kid, pos, choice)
            pos, count = choice, count + 1


def _groups_in(node: Node) -> tuple[int, ...]:
    out: list[int] = []
    stack = [node]
    while stack:
        n = stack.pop()
        if n.kind == "group" and n.group >= 0:
            out.append(n.group)
        stack.extend(n.kids)
    return tuple(out)


@functools.lru_cache(maxsize=512)
def compile_pattern(source: str) -> Pattern:
    """Compile (and cache) a pattern; raises :class:`EreError` as stapregex would refuse it."""
    try:
        return Pattern(source)
    except re.error as exc:  # a translation Python cannot take; should not happen
        raise EreError(f"pattern not supported: {exc}") from None


def check(source: str) -> EreError | None:
    """The refusal for a bad pattern, or ``None`` (pass 2 uses this)."""
    try:
        compile_pattern(source)
    except EreError as exc:
        return exc
    return None
