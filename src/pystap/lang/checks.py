"""Pass-2 checks that are not types: foreach mutation, statistics, regexes, lvalues.

* An array iterated by ``foreach`` must not be modified in the loop body,
  directly or through any function the body calls (transitively).
* A statistics variable has one histogram kind (and one ``@hist_linear``
  shape, one ``@variance`` shift).
* ``=~`` patterns are compiled at translate time (POSIX ERE, no
  back-references), so a bad one is a pass-2 error.
* Assignments need an lvalue; ``%`` wrap-around only applies to arrays.
"""

from __future__ import annotations

import re

from pystap.lang import ast
from pystap.lang.diagnostics import SemanticError, StapError
from pystap.lang.tokens import Token


class Checks:
    def __init__(self, errors: list[StapError]) -> None:
        self.errors = errors
        self._fn_writes: dict[int, set[int]] = {}
        self._hist: dict[int, tuple[str, tuple[int, ...], Token]] = {}
        self._variance: dict[int, tuple[int, Token]] = {}

    def error(self, message: str, tok: Token | None) -> None:
        self.errors.append(SemanticError(message, tok))

    # -- whole script ---------------------------------------------------------------------

    def run(
        self,
        probes: list[ast.DerivedProbe],
        functions: list[ast.FunctionDecl],
        globals_: list[ast.GlobalDecl],
    ) -> None:
        for g in globals_:
            if g.wrap and g.arity == 0:
                self.error("wrapping not supported for scalars", g.tok)
        bodies: list[ast.Node] = [p.body for p in probes] + [fn.body for fn in functions]
        for b in bodies:
            self.body(b)

    def body(self, root: ast.Node) -> None:
        for n in ast.walk(root):
            if isinstance(n, ast.Foreach):
                self.foreach(n)
            elif isinstance(n, ast.HistogramOp):
                self.histogram(n)
            elif isinstance(n, ast.StatOp) and n.op == "@variance":
                self.variance(n)
            elif isinstance(n, ast.RegexMatch):
                self.regex(n)

    # -- foreach ------------------------------------------------------------------------

    def _writes(self, root: ast.Node, seen: set[int] | None = None) -> dict[int, Token]:
        """Globals written in ``root`` (id → a token naming the write), calls included."""
        seen = seen if seen is not None else set()
        out: dict[int, Token] = {}
        for n in ast.walk(root):
            target: ast.Expr | None = None
            if isinstance(n, ast.Assign):
                target = n.target
            elif isinstance(n, ast.Crement):
                target = n.operand
            elif isinstance(n, ast.Delete):
                target = n.target
            elif isinstance(n, ast.FunctionCall):
                for fn in n.referents:
                    if id(fn) in seen:
                        continue
                    seen.add(id(fn))
                    for k in self._writes(fn.body, seen):
                        out.setdefault(k, n.tok)
                continue
            if target is None:
                continue
            base = target.base if isinstance(target, ast.ArrayIndex) else target
            if isinstance(base, ast.Symbol) and isinstance(base.referent, ast.GlobalDecl):
                out.setdefault(id(base.referent), base.tok)
        return out

    def foreach(self, n: ast.Foreach) -> None:
        if not isinstance(n.array, ast.Symbol) or not isinstance(n.array.referent, ast.GlobalDecl):
            return
        g = n.array.referent
        writes = self._writes(n.body)
        tok = writes.get(id(g))
        if tok is None:
            return
        if tok.text == g.name:
            self.error(f"variable '{g.name}' modified during 'foreach' iteration", tok)
        else:
            self.error(f"function call modifies var '{g.name}' during 'foreach' iteration", tok)

    # -- statistics ---------------------------------------------------------------------

    @staticmethod
    def _stat_decl(e: ast.Expr) -> ast.Decl | None:
        if isinstance(e, ast.Symbol):
            return e.referent
        if isinstance(e, ast.ArrayIndex) and isinstance(e.base, ast.Symbol):
            return e.base.referent
        return None

    def histogram(self, n: ast.HistogramOp) -> None:
        decl = self._stat_decl(n.stat)
        if decl is None:
            return
        key = (n.kind, tuple(n.params))
        prev = self._hist.get(id(decl))
        if prev is None:
            self._hist[id(decl)] = (n.kind, tuple(n.params), n.tok)
        elif prev[:2] != key:
            self.error(f"multiple histogram types declared on '{decl.name}'", n.tok)

    def variance(self, n: ast.StatOp) -> None:
        decl = self._stat_decl(n.stat)
        if decl is None:
            return
        shift = n.params[0] if n.params else 0
        prev = self._variance.get(id(decl))
        if prev is None:
            self._variance[id(decl)] = (shift, n.tok)
        elif prev[0] != shift:
            self.error(f"conflicting bit shifts declared (previously {prev[0]})", n.tok)

    # -- regular expressions -----------------------------------------------------------------

    def regex(self, n: ast.RegexMatch) -> None:
        msg = regex_error(n.pattern)
        if msg is not None:
            tok = n.tok
            self.error(f"regex compilation error: {msg}", tok)


def ere_to_python(pattern: str) -> str:
    """Translate a POSIX ERE into an equivalent Python pattern (bracket classes,
    no back-references); raises ``ValueError`` for what ERE does not allow."""
    out: list[str] = []
    i = 0
    n = len(pattern)
    classes = {
        "alpha": "a-zA-Z",
        "digit": "0-9",
        "alnum": "a-zA-Z0-9",
        "upper": "A-Z",
        "lower": "a-z",
        "space": r" \t\n\r\f\v",
        "blank": r" \t",
        "punct": r"!-/:-@\[-`{-~",
        "xdigit": "0-9A-Fa-f",
        "cntrl": r"\x00-\x1f\x7f",
        "print": r" -~",
        "graph": r"!-~",
        "word": r"a-zA-Z0-9_",
    }
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                raise ValueError("trailing backslash")
            nxt = pattern[i + 1]
            if nxt.isdigit():
                raise ValueError("back-references are not supported")
            out.append(re.escape(nxt) if not nxt.isalnum() else "\\" + nxt)
            i += 2
            continue
        if c == "[":
            j = i + 1
            body: list[str] = []
            if j < n and pattern[j] == "^":
                body.append("^")
                j += 1
            if j < n and pattern[j] == "]":
                body.append(r"\]")
                j += 1
            while j < n and pattern[j] != "]":
                if pattern.startswith("[:", j):
                    end = pattern.find(":]", j + 2)
                    if end < 0:
                        raise ValueError("unterminated character class")
                    name = pattern[j + 2 : end]
                    if name not in classes:
                        raise ValueError(f"unknown character class '{name}'")
                    body.append(classes[name])
                    j = end + 2
                    continue
                ch = pattern[j]
                body.append("\\" + ch if ch in "\\[" else ch)
                j += 1
            if j >= n:
                raise ValueError("expected ], found end of regex")
            out.append("[" + "".join(body) + "]")
            i = j + 1
            continue
        if c == "{" and (i == 0 or pattern[i - 1] in "(|"):
            out.append(r"\{")
            i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def regex_error(pattern: str) -> str | None:
    try:
        re.compile(ere_to_python(pattern))
    except (ValueError, re.error, RecursionError, OverflowError) as err:
        return str(err)
    return None
