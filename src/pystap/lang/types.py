"""Type inference: a fixpoint over every reachable probe, function and global.

Types flow both ways, as in SystemTap's ``typeresolution_info``: a node's
type comes from its operands (``1 + x`` is long) and from its context (the
``x`` in ``strlen(x)`` must be a string).  Declarations (locals, globals,
parameters, function returns, array keys) keep the type and the token that
first fixed it, so a conflict reports both places::

    semantic error: type mismatch (long): identifier 'x' at …
    semantic error: type was first inferred here (string): identifier 'x' at …

Passes repeat until nothing changes; a last pass reports what is still
unknown ("unresolved type ").  Mismatches are reported once per place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pystap.lang import ast
from pystap.lang.diagnostics import SemanticError, StapError
from pystap.lang.printf_format import FormatError, parse_format
from pystap.lang.tokens import Token

T = ast.Type
UNK = T.UNKNOWN

_LONG_ASSIGN = {"+=", "-=", "*=", "/=", "%=", "<<=", ">>=", "&=", "^=", "|="}
_PRINT_RESULT_STRING = {"sprint", "sprintln", "sprintd", "sprintdln", "sprintf"}


def _tname(t: T) -> str:
    return t.value


@dataclass
class TypeState:
    """Where each declaration's type was first fixed (for the chained error)."""

    first: dict[int, Token] = field(default_factory=dict)
    key_first: dict[tuple[int, int], Token] = field(default_factory=dict)
    reported: set[tuple[int, str]] = field(default_factory=set)


class Inference:
    def __init__(
        self,
        errors: list[StapError],
        target_errors: dict[int, StapError],
        write_errors: set[int] | None = None,
    ) -> None:
        self.errors = errors
        self.target_errors = target_errors
        self.write_errors = write_errors or set()
        self.state = TypeState()
        self.changed = False
        self.final = False
        self.fn: ast.FunctionDecl | None = None
        self.fn_return_tok: dict[int, Token] = {}

    # -- driver ---------------------------------------------------------------------------

    def run(
        self,
        probes: list[ast.DerivedProbe],
        functions: list[ast.FunctionDecl],
        globals_: list[ast.GlobalDecl],
    ) -> None:
        for g in globals_:
            if g.init is not None and g.type is UNK:
                g.type = T.LONG if isinstance(g.init, ast.NumberLit) else T.STRING
                self.state.first[id(g)] = g.init.tok
        for fn in functions:
            if fn.return_type is not UNK and fn.inferred_type is UNK:
                fn.inferred_type = fn.return_type
                self.state.first[id(fn)] = fn.tok
            for p in fn.params:
                if p.declared_type is not UNK and p.type is UNK:
                    p.type = p.declared_type
                    self.state.first[id(p)] = p.tok
        for _ in range(50):
            self.changed = False
            self._pass(probes, functions)
            if not self.changed:
                break
        self.final = True
        self._pass(probes, functions)
        for g in globals_:
            if g.type is UNK and (g.read or g.written):
                self.error("unresolved type ", g.tok)

    def _pass(self, probes: list[ast.DerivedProbe], functions: list[ast.FunctionDecl]) -> None:
        for fn in functions:
            self.fn = fn
            if isinstance(fn.body, ast.Block):
                self.stmt(fn.body)
        self.fn = None
        for p in probes:
            self.stmt(p.body)
            if p.condition is not None:
                self.expr(p.condition, T.LONG)

    # -- reporting ----------------------------------------------------------------------

    def error(self, message: str, tok: Token | None, chain: list[StapError] | None = None) -> None:
        key = (id(tok), message)
        if key in self.state.reported:
            return
        self.state.reported.add(key)
        self.errors.append(SemanticError(message, tok, chain))

    def mismatch(self, decl_key: int, have: T, want: T, tok: Token) -> None:
        first = self.state.first.get(decl_key)
        chain = [SemanticError(f"type was first inferred here ({_tname(have)})", first)] if first else []
        self.error(f"type mismatch ({_tname(want)})", tok, chain)

    # -- declarations -------------------------------------------------------------------

    def unify_decl(self, decl: ast.Decl, want: T, tok: Token) -> T:
        """Give ``decl`` type ``want`` (if unknown) or check it agrees."""
        if want is UNK:
            return decl.type
        if decl.type is UNK:
            decl.type = want
            self.state.first[id(decl)] = tok
            self.changed = True
            return want
        if decl.type is not want:
            self.mismatch(id(decl), decl.type, want, tok)
        return decl.type

    def unify_key(self, g: ast.GlobalDecl, i: int, want: T, tok: Token) -> T:
        while len(g.key_types) <= i:
            g.key_types.append(UNK)
        have = g.key_types[i]
        if want is UNK:
            return have
        if want is T.STATS:
            self.error("invalid type stats for array index", tok)
            return have
        if have is UNK:
            g.key_types[i] = want
            self.state.key_first[(id(g), i)] = tok
            self.changed = True
            return want
        if have is not want:
            first = self.state.key_first.get((id(g), i))
            chain = [SemanticError(f"type was first inferred here ({_tname(have)})", first)] if first else []
            self.error(f"type mismatch ({_tname(want)})", tok, chain)
        return have

    def set_type(self, e: ast.Expr, t: T, want: T) -> T:
        """Record the type of ``e`` and check it against the context's ``want``."""
        if t is not UNK and e.type is not t:
            e.type = t
            self.changed = True
        if want is not UNK and t is not UNK and t is not want:
            self.error(f"type mismatch: expected {_tname(want)} but found {_tname(t)}", e.tok)
        return t

    # -- statements -----------------------------------------------------------------------

    def stmt(self, s: ast.Stmt) -> None:
        stack: list[ast.Stmt] = [s]
        while stack:
            n = stack.pop()
            if isinstance(n, ast.Block):
                stack.extend(reversed(n.statements))
            elif isinstance(n, ast.ExprStatement):
                self.expr(n.expr, UNK, statement=True)
            elif isinstance(n, ast.If):
                self.expr(n.cond, T.LONG)
                if n.else_ is not None:
                    stack.append(n.else_)
                stack.append(n.then)
            elif isinstance(n, ast.While):
                self.expr(n.cond, T.LONG)
                stack.append(n.body)
            elif isinstance(n, ast.For):
                for e in (n.init, n.incr):
                    if e is not None:
                        self.expr(e, UNK, statement=True)
                if n.cond is not None:
                    self.expr(n.cond, T.LONG)
                stack.append(n.body)
            elif isinstance(n, ast.Foreach):
                self.foreach(n)
                stack.append(n.body)
            elif isinstance(n, ast.Return):
                self.ret(n)
            elif isinstance(n, ast.Delete):
                self.delete(n)
            elif isinstance(n, ast.TryCatch):
                if n.catch_var is not None and n.catch_var.referent is not None:
                    self.unify_decl(n.catch_var.referent, T.STRING, n.catch_var.tok)
                    n.catch_var.type = T.STRING
                stack.append(n.catch_block)
                stack.append(n.try_block)

    def ret(self, n: ast.Return) -> None:
        fn = self.fn
        if fn is None:
            return
        if n.value is None:
            if fn.inferred_type not in (UNK,) and self.final:
                first = self.state.first.get(id(fn))
                chain = (
                    [SemanticError(f"type was first inferred here ({_tname(fn.inferred_type)})", first)]
                    if first
                    else []
                )
                self.error("type mismatch (unknown)", n.tok, chain)
            return
        t = self.expr(n.value, UNK)
        if t is T.STATS:
            self.error("invalid type stats for function return", n.value.tok)
            return
        if t is UNK and fn.inferred_type is not UNK:
            t = self.expr(n.value, fn.inferred_type)
        if fn.inferred_type is UNK and t is not UNK:
            fn.inferred_type = t
            self.state.first[id(fn)] = n.value.tok
            self.changed = True
        elif t is not UNK and t is not fn.inferred_type:
            self.mismatch(id(fn), fn.inferred_type, t, n.value.tok)

    def delete(self, n: ast.Delete) -> None:
        t = n.target
        if isinstance(t, ast.Symbol):
            if t.referent is not None:
                t.type = t.referent.type
            return
        self.expr(t, UNK)

    def foreach(self, n: ast.Foreach) -> None:
        arr = n.array
        if isinstance(arr, ast.Symbol) and isinstance(arr.referent, ast.GlobalDecl):
            g = arr.referent
            for i, sym in enumerate(n.indexes):
                if sym.referent is None:
                    continue
                kt = g.key_types[i] if i < len(g.key_types) else UNK
                st = self.unify_decl(sym.referent, kt, sym.tok)
                if st is not UNK:
                    self.unify_key(g, i, st, sym.tok)
                sym.type = sym.referent.type
            for i, e in enumerate(n.slice or []):
                if e is None:
                    continue
                kt = g.key_types[i] if i < len(g.key_types) else UNK
                st = self.expr(e, kt)
                self.unify_key(g, i, st, e.tok)
            if n.value is not None and n.value.referent is not None:
                if g.type is T.STATS:
                    self.error("invalid type stats", n.value.tok)
                    self.error("stat locals not supported, missing global declaration? ", n.value.tok)
                else:
                    vt = self.unify_decl(n.value.referent, g.type, n.value.tok)
                    self.unify_decl(g, vt, n.value.tok)
                    n.value.type = n.value.referent.type
            if n.sort_aggr is not None and g.type is not UNK and g.type is not T.STATS:
                self.error("aggregate sorting is only valid for statistics arrays", arr.tok)
        elif isinstance(arr, ast.HistogramOp):
            self.hist(arr)
            for sym in n.indexes:
                if sym.referent is not None:
                    self.unify_decl(sym.referent, T.LONG, sym.tok)
                    sym.type = T.LONG
            if n.value is not None and n.value.referent is not None:
                self.unify_decl(n.value.referent, T.LONG, n.value.tok)
        if n.limit is not None:
            self.expr(n.limit, T.LONG)

    # -- expressions --------------------------------------------------------------------

    def expr(self, e: ast.Expr, want: T, statement: bool = False) -> T:
        if want is UNK and e.type in (T.LONG, T.STRING) and isinstance(e, ast.Symbol | ast.ArrayIndex):
            # the optimiser folded ``x + 0`` to ``x`` (``"" . s`` to ``s``) and left the
            # operator's constraint on it, as stap's const_folder types the operand it keeps
            want = e.type
        method = _EXPR.get(type(e))
        if method is None:
            if self.final:
                self.error("unsupported expression in this context", e.tok)
            return UNK
        return method(self, e, want)

    def x_number(self, e: ast.NumberLit, want: T) -> T:
        return self.set_type(e, T.LONG, want)

    def x_string(self, e: ast.StringLit, want: T) -> T:
        return self.set_type(e, T.STRING, want)

    def typed_decl(self, decl: ast.Decl, want: T, use: ast.Symbol) -> T:
        """A variable used as ``want``: statistics only as globals, else unify with its declaration."""
        if want is T.STATS and isinstance(decl, ast.LocalVar | ast.Param):
            self.error("stat locals not supported, missing global declaration? ", use.tok)
            return UNK
        return self.unify_decl(decl, want, use.tok)

    def x_symbol(self, e: ast.Symbol, want: T) -> T:
        decl = e.referent
        if decl is None:
            return UNK
        t = self.typed_decl(decl, want, e)
        if t is not UNK:
            e.type = t
        elif self.final and decl.type is UNK:
            self.error("unresolved type ", e.tok)
        return t

    def hist_indexes(self, hist: ast.HistogramOp, indexes: list[ast.Expr | None]) -> None:
        """``@hist_*(s)[i]`` and ``[i] in @hist_*(s)``: the histogram, then long bucket numbers."""
        self.hist(hist)
        for i in indexes:
            if i is not None:
                self.expr(i, T.LONG)

    def x_index(self, e: ast.ArrayIndex, want: T) -> T:
        base = e.base
        if isinstance(base, ast.HistogramOp):
            self.hist_indexes(base, e.indexes)
            return self.set_type(e, T.LONG, want)
        if not isinstance(base, ast.Symbol) or not isinstance(base.referent, ast.GlobalDecl):
            return UNK
        g = base.referent
        for i, idx in enumerate(e.indexes):
            if idx is None:
                continue
            kt = g.key_types[i] if i < len(g.key_types) else UNK
            t = self.expr(idx, kt if kt is not T.STATS else UNK)
            if t is T.STATS:
                self.error("invalid type stats for array index", idx.tok)
            elif t is not UNK:
                self.unify_key(g, i, t, idx.tok)
        t = self.unify_decl(g, want, e.tok)
        base.type = g.type
        if t is not UNK:
            e.type = t
        return t

    def x_call(self, e: ast.FunctionCall, want: T) -> T:
        if e.builtin is not None:
            b = e.builtin
            for a, (_, pt) in zip(e.args, b.params, strict=False):
                at = self.expr(a, UNK)
                if at is T.STATS:
                    self.error("invalid type stats for function argument", a.tok)
                elif at is not UNK and at is not pt:
                    # sic: SystemTap names the argument's type as "expected" here
                    self.error(f"type mismatch: expected {_tname(at)} but found {_tname(pt)}", a.tok)
                elif at is UNK:
                    self.expr(a, pt)
            return self.set_type(e, b.returns, want) if b.returns is not UNK else self._void(e, want)
        if not e.referents:
            for a in e.args:
                self.expr(a, UNK)
            return UNK
        for i, a in enumerate(e.args):
            ptype = UNK
            for fn in e.referents:
                if fn.params[i].type is not UNK:
                    ptype = fn.params[i].type
                    break
            at = self.expr(a, UNK)
            if at is T.STATS:
                self.error("invalid type stats for function argument", a.tok)
                continue
            if ptype is not UNK and at is not UNK and at is not ptype:
                self.error(f"type mismatch: expected {_tname(at)} but found {_tname(ptype)}", a.tok)
                continue
            if ptype is not UNK and at is UNK:
                at = self.expr(a, ptype)
            known = ptype if ptype is not UNK else at
            if known is not UNK:
                for fn in e.referents:  # every overload takes the same argument types
                    self.unify_decl(fn.params[i], known, a.tok)
        rt = UNK
        for fn in e.referents:
            if fn.inferred_type is not UNK:
                rt = fn.inferred_type
                break
        if rt is UNK and want is not UNK and want is not T.STATS:
            for fn in e.referents:
                if fn.inferred_type is UNK:
                    fn.inferred_type = want
                    self.state.first[id(fn)] = e.tok
                    self.changed = True
            rt = want
        if rt is UNK:
            return self._void(e, want)
        if want not in (UNK, T.STATS) and rt is not want:
            fn_key = next((id(fn) for fn in e.referents if id(fn) in self.state.first), id(e.referents[0]))
            self.mismatch(fn_key, rt, want, e.tok)
            return rt
        return self.set_type(e, rt, want)

    def _void(self, e: ast.Expr, want: T) -> T:
        if want is not UNK and self.final:
            self.error("unresolved type ", e.tok)
        return UNK

    def x_print(self, e: ast.PrintFormat, want: T) -> T:
        name = e.name
        if e.histogram is not None:
            self.hist(e.histogram)
        elif e.format is not None:
            self.printf_args(e)
        else:
            for a in e.args:
                if isinstance(a, ast.HistogramOp):
                    self.hist(a)
                    continue
                t = self.expr(a, UNK)
                if t is UNK and self.final:
                    self.error("unresolved type ", a.tok)
        return self.set_type(
            e, T.STRING if name in _PRINT_RESULT_STRING else T.LONG, want if want is not T.STATS else UNK
        )

    def printf_args(self, e: ast.PrintFormat) -> None:
        try:
            comps = e.components or parse_format(e.format or "")
        except FormatError as err:
            self.error(str(err), e.tok)
            return
        wanted: list[T] = []
        for c in comps:
            if c.kind == "literal":
                continue
            if c.width_dynamic:
                wanted.append(T.LONG)
            if c.precision_dynamic:
                wanted.append(T.LONG)
            wanted.append(T.STRING if c.kind == "string" else T.LONG)
        if len(wanted) != len(e.args):
            self.error("Wrong number of args to formatted print operator", e.tok)
        for a, wt in zip(e.args, wanted, strict=False):
            t = self.expr(a, UNK)
            if t is UNK and wt is not UNK:
                t = self.expr(a, wt)
            if t is T.STATS:
                self.error("invalid type stats for print argument", a.tok)
            elif t is not UNK and wt is not UNK and t is not wt:
                self.error(f"type mismatch: expected {_tname(wt)} but found {_tname(t)}", a.tok)
            elif t is UNK and self.final:
                self.error("unresolved type ", a.tok)
        for a in e.args[len(wanted) :]:
            self.expr(a, UNK)

    def x_unary(self, e: ast.Unary, want: T) -> T:
        self.operand(e.operand, T.LONG)
        return self.set_type(e, T.LONG, want)

    def operand(self, e: ast.Expr, t: T) -> T:
        got = self.expr(e, t)
        if got is T.STATS:
            self.error("invalid operator", e.tok)
        return got

    def x_binary(self, e: ast.Binary, want: T) -> T:
        t = T.STRING if e.op == "." else T.LONG
        self.operand(e.left, t)
        self.operand(e.right, t)
        return self.set_type(e, t, want)

    def x_logical(self, e: ast.Logical, want: T) -> T:
        self.operand(e.left, T.LONG)
        self.operand(e.right, T.LONG)
        return self.set_type(e, T.LONG, want)

    def x_compare(self, e: ast.Comparison, want: T) -> T:
        lt = self.expr(e.left, UNK)
        rt = self.expr(e.right, UNK)
        if rt is UNK and lt not in (UNK, T.STATS):
            rt = self.expr(e.right, lt)
        if lt is UNK and rt not in (UNK, T.STATS):
            lt = self.expr(e.left, rt)
        if T.STATS in (lt, rt):
            self.error("invalid operator", e.tok)
        elif lt is not UNK and rt is not UNK and lt is not rt:
            self.error("type mismatch: left and right sides don't agree", e.tok)
        return self.set_type(e, T.LONG, want)

    def x_regex(self, e: ast.RegexMatch, want: T) -> T:
        self.operand(e.left, T.STRING)
        return self.set_type(e, T.LONG, want)

    def x_crement(self, e: ast.Crement, want: T) -> T:
        t = self.expr(e.operand, T.LONG)
        if t is T.STATS:
            self.error("invalid operator", e.tok)
        return self.set_type(e, T.LONG, want)

    def x_ternary(self, e: ast.Ternary, want: T) -> T:
        self.operand(e.cond, T.LONG)
        a = self.expr(e.true_expr, want)
        b = self.expr(e.false_expr, a if a is not UNK else want)
        if a is UNK and b is not UNK:
            a = self.expr(e.true_expr, b)
        if a is not UNK and b is not UNK and a is not b:
            self.error("type mismatch: left and right sides don't agree", e.tok)
        return self.set_type(e, a if a is not UNK else b, UNK)

    def x_assign(self, e: ast.Assign, want: T) -> T:
        op = e.op
        if op == "<<<":
            self.lvalue(e.target, T.STATS)
            self.operand(e.value, T.LONG)
            return self.set_type(e, T.LONG, want)
        if op == ".=":
            self.lvalue(e.target, T.STRING)
            self.operand(e.value, T.STRING)
            return self.set_type(e, T.STRING, want)
        if op in _LONG_ASSIGN:
            self.lvalue(e.target, T.LONG)
            self.operand(e.value, T.LONG)
            return self.set_type(e, T.LONG, want)
        # plain =
        lt = self.expr(e.target, UNK)
        rt = self.expr(e.value, UNK)
        if lt is T.STATS:
            self.mismatch(self._decl_key(e.target), T.STATS, rt if rt is not UNK else T.LONG, e.target.tok)
            return UNK
        if rt is T.STATS:
            self.error("invalid operator", e.value.tok)
            return UNK
        if lt is not UNK and rt is not UNK and lt is not rt:
            self.mismatch(self._decl_key(e.target), lt, rt, e.target.tok)
            return lt
        if lt is UNK and rt is not UNK:
            lt = self.lvalue(e.target, rt)
        elif rt is UNK and lt is not UNK:
            rt = self.expr(e.value, lt)
        elif lt is UNK and rt is UNK and want is not UNK and want is not T.STATS:
            lt = self.lvalue(e.target, want)
            if lt is not UNK:
                self.expr(e.value, lt)
        return self.set_type(e, lt if lt is not UNK else rt, want if want is not T.STATS else UNK)

    def _decl_key(self, target: ast.Expr) -> int:
        if isinstance(target, ast.Symbol) and target.referent is not None:
            return id(target.referent)
        if (
            isinstance(target, ast.ArrayIndex)
            and isinstance(target.base, ast.Symbol)
            and target.base.referent
        ):
            return id(target.base.referent)
        return id(target)

    def lvalue(self, target: ast.Expr, t: T) -> T:
        if isinstance(target, ast.Symbol) and target.referent is not None:
            got = self.typed_decl(target.referent, t, target)
            if got is not UNK:
                target.type = got
            return got
        return self.expr(target, t)

    def x_in(self, e: ast.InArray, want: T) -> T:
        arr = e.array
        if isinstance(arr, ast.HistogramOp):
            self.hist_indexes(arr, e.indexes)
        elif isinstance(arr, ast.Symbol) and isinstance(arr.referent, ast.GlobalDecl):
            g = arr.referent
            for i, idx in enumerate(e.indexes):
                if idx is None:
                    continue
                kt = g.key_types[i] if i < len(g.key_types) else UNK
                t = self.expr(idx, kt)
                if t is not UNK:
                    self.unify_key(g, i, t, idx.tok)
        return self.set_type(e, T.LONG, want)

    def stat_operand(self, s: ast.Expr) -> None:
        if isinstance(s, ast.Symbol) and s.referent is not None:
            if isinstance(s.referent, ast.LocalVar | ast.Param):
                self.error("stat locals not supported, missing global declaration? ", s.tok)
                return
            self.unify_decl(s.referent, T.STATS, s.tok)
            s.type = T.STATS
        elif isinstance(s, ast.ArrayIndex):
            self.x_index(s, T.STATS)
        else:
            t = self.expr(s, UNK)
            self.error(f"type mismatch: expected stats but found {_tname(t)}", s.tok)

    def x_stat(self, e: ast.StatOp, want: T) -> T:
        self.stat_operand(e.stat)
        return self.set_type(e, T.LONG, want)

    def hist(self, e: ast.HistogramOp) -> None:
        self.stat_operand(e.stat)

    def x_hist(self, e: ast.HistogramOp, want: T) -> T:
        self.hist(e)
        self.error("base histogram operator where expression expected", e.tok)
        return UNK

    def x_target(self, e: ast.TargetSymbol, want: T) -> T:
        err = self.target_errors.get(id(e))
        if err is not None:
            if self.final:
                self.error(err.message, err.tok)
                if id(e) not in self.write_errors:
                    self.error("unresolved type ", e.tok)
            return UNK
        return self.set_type(e, e.type, want)

    def x_dwarf(self, e: ast.Expr, want: T) -> T:
        if isinstance(e, ast.EntryOp):
            # pass-2 probes here are never DWARF .return probes
            self.error("@entry is only valid in .return probes", e.tok)
            return UNK
        if self.final:
            what = {
                ast.CastOp: "@cast",
                ast.AtVar: "@var",
                ast.Autocast: "autocast",
                ast.EntryOp: "@entry",
                ast.PerfOp: "@perf",
                ast.ProbewriteOp: "@probewrite",
            }.get(type(e), "this operator")
            self.error(f"{what} is not supported by this probe (needs debuginfo)", e.tok)
        return UNK

    def x_embedded(self, e: ast.EmbeddedExpr, want: T) -> T:
        return self.set_type(e, want if want is not UNK else T.LONG, UNK)

    def x_defined(self, e: ast.DefinedOp, want: T) -> T:
        return self.set_type(e, T.LONG, want)


_EXPR: dict[type, Callable[[Inference, ast.Expr, T], T]] = {
    ast.NumberLit: Inference.x_number,
    ast.StringLit: Inference.x_string,
    ast.Symbol: Inference.x_symbol,
    ast.ArrayIndex: Inference.x_index,
    ast.FunctionCall: Inference.x_call,
    ast.PrintFormat: Inference.x_print,
    ast.Unary: Inference.x_unary,
    ast.Binary: Inference.x_binary,
    ast.Logical: Inference.x_logical,
    ast.Comparison: Inference.x_compare,
    ast.RegexMatch: Inference.x_regex,
    ast.Crement: Inference.x_crement,
    ast.Ternary: Inference.x_ternary,
    ast.Assign: Inference.x_assign,
    ast.InArray: Inference.x_in,
    ast.StatOp: Inference.x_stat,
    ast.HistogramOp: Inference.x_hist,
    ast.TargetSymbol: Inference.x_target,
    ast.CastOp: Inference.x_dwarf,
    ast.AtVar: Inference.x_dwarf,
    ast.Autocast: Inference.x_dwarf,
    ast.EntryOp: Inference.x_dwarf,
    ast.PerfOp: Inference.x_dwarf,
    ast.ProbewriteOp: Inference.x_dwarf,
    ast.AtOp: Inference.x_dwarf,
    ast.EmbeddedExpr: Inference.x_embedded,
    ast.DefinedOp: Inference.x_defined,
}  # type: ignore[dict-item]
