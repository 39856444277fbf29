"""Symbol resolution: what every name in a probe or function body refers to.

SystemTap's rules: a name is a local of its body unless a global of that name
is declared anywhere (the user's files or a tapset file, which is then pulled
in); a name used with ``[…]`` must be a global array; a call resolves to the
script functions of that name and arity (overloads, tried in priority then
declaration order), else to a native built-in; ``private`` globals and
functions are visible only from their own file.  Arity (scalar or N keys) is
fixed by the first use and checked on every other one.

Target variables (``$x``) are resolved by the probe's family; a failure is
remembered on the node and reported only if the node survives optimisation
(so ``@defined($x)`` and side-effect-free statements can make it harmless,
as in SystemTap).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pystap.lang import ast
from pystap.lang.diagnostics import SemanticError, StapError
from pystap.lang.tokens import Token
from pystap.probes.registry import Built
from pystap.tapset import builtins as native

TargetResolver = Callable[[str, bool], ast.Type]


@dataclass
class FileTables:
    """The declarations of one file, indexed."""

    file: ast.StapFile
    globals: dict[str, ast.GlobalDecl] = field(default_factory=dict)
    functions: dict[tuple[str, int], list[ast.FunctionDecl]] = field(default_factory=dict)

    @classmethod
    def of(cls, f: ast.StapFile) -> FileTables:
        t = cls(f)
        for g in f.globals:
            t.globals.setdefault(g.name, g)
        for fn in f.functions:
            t.functions.setdefault((fn.name, len(fn.params)), []).append(fn)
        return t


class Symbols:
    """Every declaration of the session, with on-demand inclusion of tapset files."""

    def __init__(self, files: list[ast.StapFile], include: Callable[[ast.StapFile], None]) -> None:
        self.tables = [FileTables.of(f) for f in files]
        self.include = include
        self.by_name = {t.file.name: t for t in self.tables}

    def _visible(self, decl_private: bool, decl_file: str, use_file: str) -> bool:
        return not decl_private or decl_file == use_file

    def find_global(self, name: str, use_file: str) -> ast.GlobalDecl | None:
        found: ast.GlobalDecl | None = None
        for t in self.tables:
            g = t.globals.get(name)
            if g is None or not self._visible(g.private, g.file or t.file.name, use_file):
                continue
            if g.private:  # a private global of this very file wins
                found = g
                self.include(t.file)
                break
            if found is None:
                found = g
                self.include(t.file)
        return found

    def find_functions(self, name: str, arity: int, use_file: str) -> list[ast.FunctionDecl]:
        out: list[tuple[int, int, ast.FunctionDecl, ast.StapFile]] = []
        seq = 0
        for t in self.tables:
            for fn in t.functions.get((name, arity), []):
                seq += 1
                if not self._visible(fn.private, fn.file or t.file.name, use_file):
                    continue
                out.append((fn.priority, seq, fn, t.file))
        out.sort(key=lambda x: (x[0], x[1]))
        for _, _, _, f in out:
            self.include(f)
        return [fn for _, _, fn, _ in out]

    def function_names(self) -> list[str]:
        names = {name for t in self.tables for name, _ in t.functions}
        names |= native.NAMES
        return sorted(names)


@dataclass
class Scope:
    """One body's locals (a derived probe or a function)."""

    names: dict[str, ast.Decl] = field(default_factory=dict)
    locals: list[ast.LocalVar] = field(default_factory=list)
    first_use: dict[int, Token] = field(default_factory=dict)


@dataclass
class Arity:
    """Arity of a global or local, with the token that fixed it."""

    value: int
    tok: Token


class Resolution:
    """Resolves bodies against :class:`Symbols`; errors go to ``errors``."""

    def __init__(
        self, symbols: Symbols, errors: list[StapError], on_function: Callable[[ast.FunctionDecl], None]
    ):
        self.symbols = symbols
        self.errors = errors
        self.on_function = on_function
        self.arity: dict[int, Arity] = {}
        self.builtins_used: dict[tuple[str, int], native.Builtin] = {}
        # unresolved target symbols: node id -> error (reported if the node survives)
        self.target_errors: dict[int, StapError] = {}
        self.write_errors: set[int] = set()  # target errors about writes (no "unresolved type" then)

    # -- entry points ---------------------------------------------------------------

    def probe(
        self, body: ast.Block, cond: ast.Expr | None, built: Built, provided: dict[str, ast.Type]
    ) -> Scope:
        scope = Scope()
        for name, typ in provided.items():
            local = ast.LocalVar(tok=body.tok, name=name)
            local.type = typ
            scope.names[name] = local
            scope.locals.append(local)
        ctx = _Ctx(scope, built.target if built is not None else None, in_function=False, family=built.family)
        self._visit(body, ctx)
        if cond is not None:
            self._visit(cond, _Ctx(Scope(), None, in_function=False, family=built.family, condition=True))
        return scope

    def function(self, fn: ast.FunctionDecl) -> Scope:
        scope = Scope()
        for p in fn.params:
            scope.names[p.name] = p
            if p.declared_type is not ast.Type.UNKNOWN and p.type is ast.Type.UNKNOWN:
                p.type = p.declared_type
        if isinstance(fn.body, ast.Block):
            self._visit(fn.body, _Ctx(scope, None, in_function=True, family=""))
        return scope

    # -- helpers ----------------------------------------------------------------------

    def error(self, message: str, tok: Token | None, chain: list[StapError] | None = None) -> None:
        self.errors.append(SemanticError(message, tok, chain))

    def _check_arity(self, decl: ast.Decl, arity: int, tok: Token) -> None:
        if arity == 0 and isinstance(decl, ast.GlobalDecl) and decl.size is not None:
            # ``global a[10]`` declares an array: SystemTap's vardecl::set_arity refuses a
            # scalar use at the declaration itself (semko/array01), whatever came first.
            self.error("inconsistent arity", decl.tok)
            return
        known = self.arity.get(id(decl))
        if known is None:
            self.arity[id(decl)] = Arity(arity, tok)
            if isinstance(decl, ast.GlobalDecl):
                decl.arity = arity
            return
        if known.value != arity and arity >= 0:
            self.error(
                f"inconsistent arity ({known.value} vs {arity})",
                tok,
                [SemanticError(f"arity {known.value} first inferred here", known.tok)],
            )

    def _var(self, sym: ast.Symbol, ctx: _Ctx, arity: int) -> None:
        """Resolve a symbol used with ``arity`` keys (0 scalar, -1 unknown: delete/foreach)."""
        name = sym.name
        file = sym.tok.loc.file
        decl = ctx.scope.names.get(name)
        if decl is None:
            decl = self.symbols.find_global(name, file)
            if decl is None:
                if ctx.condition:
                    self.error("probe condition must not reference undeclared global", sym.tok)
                    return
                if arity > 0:
                    self.error(
                        f"unresolved arity-{arity} global array {name}, missing global declaration?", sym.tok
                    )
                    return
                local = ast.LocalVar(tok=sym.tok, name=name)
                ctx.scope.names[name] = local
                ctx.scope.locals.append(local)
                decl = local
            else:
                ctx.scope.names[name] = decl
        elif ctx.condition and not isinstance(decl, ast.GlobalDecl):
            self.error("probe condition must not reference undeclared global", sym.tok)
            return
        sym.referent = decl
        if isinstance(decl, ast.GlobalDecl):
            if arity >= 0:
                self._check_arity(decl, arity, sym.tok)
        else:
            if arity > 0 or arity == -2:
                known = self.arity.get(id(decl))
                first = known.tok if known is not None else sym.tok
                if known is None and arity > 0 and isinstance(decl, ast.LocalVar):
                    self.error("array locals not supported, missing global declaration?", sym.tok)
                    return
                self.error(
                    f"inconsistent arity (0 vs {arity})",
                    sym.tok,
                    [SemanticError("arity 0 first inferred here", first)],
                )
                return
            if id(decl) not in self.arity:
                self.arity[id(decl)] = Arity(0, sym.tok)

    def _call(self, call: ast.FunctionCall, ctx: _Ctx) -> None:
        if ctx.condition:
            self.error("probe condition must not reference function", call.tok)
            return
        arity = len(call.args)
        fns = self.symbols.find_functions(call.name, arity, call.tok.loc.file)
        if fns:
            call.referents = fns
            for fn in fns:
                self.on_function(fn)
            return
        b = native.lookup(call.name, arity)
        if b is not None:
            call.builtin = b
            self.builtins_used[(b.name, arity)] = b
            return
        others = sorted(
            {
                len(fn.params)
                for t in self.symbols.tables
                for (n, _), fns in t.functions.items()
                if n == call.name
                for fn in fns
            }
            | set(native.arities(call.name))
        )
        if others:
            self.error(f"arity mismatch found (function '{call.name}' takes {others[0]} args)", call.tok)
            return
        from pystap.lang.probepoints import _similar

        sim = _similar(call.name, self.symbols.function_names())
        hint = f" (similar: {', '.join(sim)})" if sim else ""
        self.error(f"unresolved function {call.name}{hint}", call.tok)

    def _target(self, t: ast.TargetSymbol, ctx: _Ctx, write: bool) -> None:
        name = t.name + t.pretty if t.pretty and t.name.startswith("$$") else t.name
        if ctx.in_function or ctx.target is None:
            self.target_errors[id(t)] = SemanticError("unresolved target-symbol expression", t.tok)
            return
        try:
            t.type = ctx.target(name, write)
        except StapError as err:
            self.target_errors[id(t)] = SemanticError(err.message, t.tok)
            if write:
                self.write_errors.add(id(t))
            return
        if t.components or t.addressof:
            self.target_errors[id(t)] = SemanticError(
                "target variable is not a pointer or array"
                if t.components
                else "cannot take the address of this target variable",
                t.tok,
            )

    # -- the walk -----------------------------------------------------------------------

    def _visit(self, root: ast.Node, ctx: _Ctx) -> None:
        stack: list[tuple[ast.Node, bool]] = [(root, False)]
        while stack:
            n, write = stack.pop()
            handler = _HANDLERS.get(type(n))
            if handler is not None:
                extra = handler(self, n, ctx, write)
                if extra is not None:
                    stack.extend(reversed(extra))
                continue
            stack.extend((c, False) for c in reversed(list(ast.iter_children(n))))


@dataclass
class _Ctx:
    scope: Scope
    target: TargetResolver | None
    in_function: bool
    family: str
    condition: bool = False


Work = list[tuple[ast.Node, bool]]


def _h_symbol(r: Resolution, n: ast.Symbol, ctx: _Ctx, write: bool) -> Work | None:
    r._var(n, ctx, 0)
    return None


def _array_base(r: Resolution, base: ast.Expr, ctx: _Ctx, arity: int) -> Work:
    if isinstance(base, ast.Symbol):
        r._var(base, ctx, arity)
        return []
    return [(base, False)]


def _h_index(r: Resolution, n: ast.ArrayIndex, ctx: _Ctx, write: bool) -> Work | None:
    work = _array_base(r, n.base, ctx, len(n.indexes))
    work.extend((i, False) for i in n.indexes if i is not None)
    return work


def _h_call(r: Resolution, n: ast.FunctionCall, ctx: _Ctx, write: bool) -> Work | None:
    r._call(n, ctx)
    return [(a, False) for a in n.args]


def _h_foreach(r: Resolution, n: ast.Foreach, ctx: _Ctx, write: bool) -> Work | None:
    arity = len(n.indexes)
    if n.slice and len(n.slice) != len(n.indexes):
        name = getattr(n.array, "name", "?")
        r.error(
            f"unresolved arity-{len(n.slice)} global array {name}, missing global declaration?", n.array.tok
        )
    work = _array_base(r, n.array, ctx, arity) if isinstance(n.array, ast.Symbol) else [(n.array, False)]
    for sym in n.indexes:
        r._var(sym, ctx, 0)
    if n.value is not None:
        r._var(n.value, ctx, 0)
    work.extend((i, False) for i in (n.slice or []) if i is not None)
    if n.limit is not None:
        work.append((n.limit, False))
    work.append((n.body, False))
    return work


def _h_in(r: Resolution, n: ast.InArray, ctx: _Ctx, write: bool) -> Work | None:
    work = (
        _array_base(r, n.array, ctx, len(n.indexes))
        if isinstance(n.array, ast.Symbol)
        else [(n.array, False)]
    )
    work.extend((i, False) for i in n.indexes if i is not None)
    return work


def _h_delete(r: Resolution, n: ast.Delete, ctx: _Ctx, write: bool) -> Work | None:
    if isinstance(n.target, ast.Symbol):
        decl = ctx.scope.names.get(n.target.name) or r.symbols.find_global(
            n.target.name, n.target.tok.loc.file
        )
        r._var(n.target, ctx, -1 if isinstance(decl, ast.GlobalDecl) else 0)
        return []
    return [(n.target, True)]


def _h_try(r: Resolution, n: ast.TryCatch, ctx: _Ctx, write: bool) -> Work | None:
    work: Work = [(n.try_block, False)]
    if n.catch_var is not None:
        r._var(n.catch_var, ctx, 0)
    work.append((n.catch_block, False))
    return work


def _is_lvalue(e: ast.Expr) -> bool:
    if isinstance(e, ast.Symbol | ast.TargetSymbol):
        return True
    return isinstance(e, ast.ArrayIndex) and isinstance(e.base, ast.Symbol)


def _h_assign(r: Resolution, n: ast.Assign, ctx: _Ctx, write: bool) -> Work | None:
    if not _is_lvalue(n.target):
        r.error("Expecting lvalue for assignment", n.tok)
    if ctx.condition:
        r.error("probe condition must not modify any variables", n.tok)
    return [(n.target, True), (n.value, False)]


def _h_crement(r: Resolution, n: ast.Crement, ctx: _Ctx, write: bool) -> Work | None:
    if ctx.condition:
        r.error("probe condition must not modify any variables", n.tok)
    return [(n.operand, True)]


def _h_target(r: Resolution, n: ast.TargetSymbol, ctx: _Ctx, write: bool) -> Work | None:
    r._target(n, ctx, write)
    return [(c.index, False) for c in n.components if c.index is not None]


def _h_stat(r: Resolution, n: Any, ctx: _Ctx, write: bool) -> Work | None:
    return [(n.stat, False)]


_HANDLERS: dict[type, Callable[..., Work | None]] = {
    ast.Symbol: _h_symbol,
    ast.ArrayIndex: _h_index,
    ast.FunctionCall: _h_call,
    ast.Foreach: _h_foreach,
    ast.InArray: _h_in,
    ast.Delete: _h_delete,
    ast.TryCatch: _h_try,
    ast.Assign: _h_assign,
    ast.Crement: _h_crement,
    ast.TargetSymbol: _h_target,
    ast.StatOp: _h_stat,
    ast.HistogramOp: _h_stat,
}
