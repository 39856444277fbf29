"""The unread-global display: globals written but never read are printed at the end.

SystemTap adds a synthetic ``end`` probe that prints each such global, so a
one-liner like ``probe timer.s(1) { count++ }`` shows its result.  We build
that probe as ordinary syntax, so code generation and the runtime need no
special case.  The formats are the ones ``add_global_var_display`` in
SystemTap's ``elaborate.cxx`` writes (as SystemTap 4.x translates them: its
generated C prints longs with ``%lld``, and its testsuite's ``global_end``
expects ``alpha["two",2]=4``), kept verbatim so the output is byte-identical:

* long scalars ``name=%d`` (so ``x=5``, ``x=-5``);
* string scalars ``name="%#s"`` (``#`` changes nothing for ``%s``: no escaping);
* arrays, one line per element in descending value order (descending
  ``@count`` for statistics): ``name[%#d,"%#s"]=%d`` -- keys and values in
  decimal;
* statistics ``name @count=%#d @min=%#d @max=%#d @sum=%#d @avg=%#d``
  (decimal); an empty scalar one prints ``name @count=0x0``.  Histograms
  are not printed (SystemTap prints only these five aggregates).

Globals declared only in tapset files are never displayed (RHBZ 468139).
The displays come in the order of ``globals_`` (resolution order, as
SystemTap's ``s.globals``).
"""

from __future__ import annotations

from pystap.lang import ast
from pystap.lang.tokens import SourceLoc, Token, TokenKind

T = ast.Type
FILE = "<unread-globals>"


def _tok(text: str) -> Token:
    return Token(TokenKind.IDENTIFIER, text, SourceLoc(FILE, 0, 0))


def mark_usage(
    probes: list[ast.DerivedProbe], functions: list[ast.FunctionDecl], globals_: list[ast.GlobalDecl]
) -> None:
    """Fill ``GlobalDecl.read`` / ``written`` from every reachable body."""
    for g in globals_:
        g.read = False
        g.written = False
    roots: list[ast.Node] = [p.body for p in probes] + [fn.body for fn in functions]
    roots += [p.condition for p in probes if p.condition is not None]
    for root in roots:
        written_syms: set[int] = set()
        discarded = _discarded_values(root)
        for n in ast.walk(root):
            # like stap, ``c++`` and ``c += 1`` only count as writes for the display when
            # their value is thrown away (a statement, a for loop's init or step); used as a
            # value (``println(c++)``, ``while (c -= 2)``) they read it too (stap 4.8 -p2
            # shows no display then).  ``delete`` counts as a read (varuse_collecting_visitor
            # treats it so, so that the optimiser keeps the variable)
            target = None if isinstance(n, ast.Delete) else ast.write_target(n)
            if target is not None:
                sym = target.base if isinstance(target, ast.ArrayIndex) else target
                if isinstance(sym, ast.Symbol):
                    written_syms.add(id(sym))
                    _mark(sym, write=True)
                    modifies = isinstance(n, ast.Crement) or (
                        isinstance(n, ast.Assign) and n.op not in ("=", "<<<"))
                    if modifies and id(n) not in discarded:
                        _mark(sym, read=True)
        for n in ast.walk(root):
            if isinstance(n, ast.Symbol) and id(n) not in written_syms:
                _mark(n, read=True)


def _discarded_values(root: ast.Node) -> set[int]:
    """The expressions whose value nobody uses: an expression statement's, and a for
    loop's init and step."""
    out: set[int] = set()
    for n in ast.walk(root):
        if isinstance(n, ast.ExprStatement):
            out.add(id(n.expr))
        elif isinstance(n, ast.For):
            out.update(id(e) for e in (n.init, n.incr) if e is not None)
    return out


def _mark(e: ast.Expr, read: bool = False, write: bool = False) -> None:
    sym = e.base if isinstance(e, ast.ArrayIndex) else e
    if isinstance(sym, ast.Symbol) and isinstance(sym.referent, ast.GlobalDecl):
        if read:
            sym.referent.read = True
        if write:
            sym.referent.written = True


def _sym(g: ast.GlobalDecl) -> ast.Symbol:
    s = ast.Symbol(tok=_tok(g.name), name=g.name)
    s.referent = g
    s.type = g.type
    return s


def _str(v: str) -> ast.StringLit:
    s = ast.StringLit(tok=_tok(v), value=v)
    s.type = T.STRING
    return s


def _printf(fmt: str, args: list[ast.Expr]) -> ast.Stmt:
    p = ast.PrintFormat(tok=_tok("printf"), name="printf", args=args, format=fmt)
    p.type = T.LONG
    return ast.ExprStatement(tok=p.tok, expr=p)


def _stat(op: str, e: ast.Expr) -> ast.StatOp:
    s = ast.StatOp(tok=_tok(op), op=op, stat=e)
    s.type = T.LONG
    return s


def _stats_line(prefix_fmt: str, prefix_args: list[ast.Expr], value: ast.Expr, name: str) -> ast.Stmt:
    """``prefix @count=… @min=…`` when non-empty, else ``prefix @count=0x0``."""
    full = _printf(
        prefix_fmt + " @count=%#d @min=%#d @max=%#d @sum=%#d @avg=%#d\n",
        [*prefix_args, *(_stat(op, value) for op in ("@count", "@min", "@max", "@sum", "@avg"))],
    )
    empty = _printf(prefix_fmt + " @count=0x0\n", list(prefix_args))
    cond = _stat("@count", value)
    return ast.If(tok=_tok("if"), cond=cond, then=full, else_=empty)


def _value_fmt(t: T) -> str:
    """A value: strings quoted, longs in decimal, as SystemTap prints them."""
    return '"%#s"' if t is T.STRING else "%d"


def _key_fmt(t: T) -> str:
    """An array key: strings quoted, longs in decimal (``%#d``)."""
    return '"%#s"' if t is T.STRING else "%#d"


def _local(name: str, t: T) -> tuple[ast.Symbol, ast.LocalVar]:
    sym = ast.Symbol(tok=_tok(name), name=name)
    local = ast.LocalVar(tok=sym.tok, name=name)
    local.type = t
    sym.referent = local
    sym.type = t
    return sym, local


def _ref(local: ast.LocalVar) -> ast.Symbol:
    s = ast.Symbol(tok=local.tok, name=local.name)
    s.referent = local
    s.type = local.type
    return s


def display_statement(g: ast.GlobalDecl) -> tuple[ast.Stmt, list[ast.LocalVar]] | None:
    """The statement printing ``g`` and the locals it needs (``__idxN``, ``__val``, as stap names them)."""
    arity = g.arity or 0
    if g.type is T.UNKNOWN:
        return None
    if arity == 0:
        if g.type is T.STATS:
            return _stats_line(g.name, [], _sym(g), g.name), []
        return _printf(f"{g.name}={_value_fmt(g.type)}\n", [_sym(g)]), []
    key_types = [g.key_types[i] if i < len(g.key_types) else T.LONG for i in range(arity)]
    keys = [_local(f"__idx{i}", kt) for i, kt in enumerate(key_types)]
    locals_ = [local for _, local in keys]
    key_fmt = ",".join(_key_fmt(kt) for kt in key_types)
    prefix = f"{g.name}[{key_fmt}]"
    value_sym: ast.Symbol | None = None
    if g.type is T.STATS:
        element = ast.ArrayIndex(tok=_tok(g.name), base=_sym(g), indexes=[_ref(lv) for lv in locals_])
        element.type = g.type
        body = _stats_line(prefix, [_ref(lv) for lv in locals_], element, g.name)
    else:
        value_sym, value_local = _local("__val", g.type)
        locals_.append(value_local)
        body = _printf(
            f"{prefix}={_value_fmt(g.type)}\n", [*(_ref(lv) for lv in locals_[:-1]), _ref(value_local)]
        )
    stmt = ast.Foreach(
        tok=_tok("foreach"),
        value=value_sym,
        indexes=[sym for sym, _ in keys],
        array=_sym(g),
        sort_column=0,
        sort_direction=-1,
        sort_aggr="@count" if g.type is T.STATS else None,
        body=body,
    )
    return stmt, locals_


def unread_probes(
    globals_: list[ast.GlobalDecl], tapset_files: frozenset[str] | set[str] = frozenset()
) -> list[ast.DerivedProbe]:
    """One synthetic ``end`` probe per global that is written but never read.

    ``tapset_files`` names the library files: their globals are internal
    state (``qs_wtime`` of ``queue_stats.stp``, ...), not the user's results.
    """
    out = []
    for g in globals_:
        if not g.written or g.read or g.file in tapset_files:
            continue
        made = display_statement(g)
        if made is None:
            continue
        stmt, locals_ = made
        tok = _tok("end")
        pp = ast.ProbePoint(tok=tok, components=[ast.PPComponent(tok=tok, name="end")])
        out.append(
            ast.DerivedProbe(
                tok=tok,
                point="end",
                family="end",
                params={"sequence": 0, "unread_display": g.name},
                body=ast.Block(tok=tok, statements=[stmt]),
                origin=pp,
                locals=locals_,
                derivation=["end"],
            )
        )
    return out
