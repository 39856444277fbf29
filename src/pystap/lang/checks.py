"""Pass-2 checks that are not types: foreach mutation, statistics, regexes, lvalues.

* An array iterated by ``foreach`` must not be modified in the loop body,
  directly or through any function the body calls (transitively).
* A statistics variable has one histogram kind (and one ``@hist_linear``
  shape, one ``@variance`` shift).
* ``=~`` patterns are compiled at translate time with the parser the
  runtime matches with (:mod:`pystap.ere`, SystemTap's stapregex dialect),
  so a bad one is a pass-2 error with stapregex's message and position.
* Assignments need an lvalue; ``%`` wrap-around only applies to arrays.
* Embedded C (``-g``) names the globals it touches with ``/* pragma:read:x */``
  and ``/* pragma:write:x */``; a statistics global cannot be handed to C.
"""

from __future__ import annotations

import re

from pystap import ere
from pystap.lang import ast
from pystap.lang.diagnostics import SemanticError, StapError
from pystap.lang.tokens import Token

_PRAGMA = re.compile(r"/\*\s*pragma:(?:read|write):(\w+)\s*\*/")


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
        self.embedded_globals(bodies, globals_)

    def embedded_globals(self, bodies: list[ast.Node], globals_: list[ast.GlobalDecl]) -> None:
        """A statistics global named by an embedded-C pragma: SystemTap cannot hand an
        aggregate to C and says so at the declaration (semko/global_access)."""
        by_name = {g.name: g for g in globals_}
        reported: set[int] = set()
        for b in bodies:
            for n in ast.walk(b):
                if not isinstance(n, ast.EmbeddedExpr | ast.EmbeddedCode):
                    continue
                for name in _PRAGMA.findall(n.code):
                    g = by_name.get(name)
                    if g is not None and g.type is ast.Type.STATS and id(g) not in reported:
                        reported.add(id(g))
                        self.error("Aggregates not available in embedded-C", g.tok)

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
            target = ast.write_target(n)
            if isinstance(n, ast.FunctionCall):
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
        err = ere.check(n.pattern)
        if err is not None:
            self.error(err.diagnostic(), n.pattern_tok or n.tok)
