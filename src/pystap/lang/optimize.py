"""The optimiser behaviour scripts depend on (``-u`` turns it off).

SystemTap's pass 2 optimises before it type-checks, and the test corpus
relies on the consequences: a statement without side effects is dropped
(with a warning) even when it names a ``$var`` that cannot resolve;
assignments to locals that are never read are dropped (why ``a <<< 2`` in a
probe is accepted); constant conditions fold; and a probe whose body ends
up empty is elided -- if none survives, "no probes found".

``@defined(…)`` is folded to 1/0 always (it is a translate-time question,
not an optimisation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields

from pystap.lang import ast
from pystap.lang.diagnostics import Warning_
from pystap.lang.tokens import Token

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
MASK = 2**64


def wrap(v: int) -> int:
    v %= MASK
    return v - MASK if v >= 2**63 else v


def map_children(n: ast.Node, fn: Callable[[ast.Node], ast.Node | None]) -> None:
    """Replace each structural child ``c`` of ``n`` by ``fn(c)`` (``None`` drops list items)."""
    for f in fields(n):
        if f.metadata.get("ref") or f.name == "tok":
            continue
        value = getattr(n, f.name)
        if isinstance(value, ast.Node):
            new = fn(value)
            if new is not value:
                setattr(n, f.name, new)
        elif isinstance(value, list) and value and any(isinstance(v, ast.Node) for v in value):
            out = []
            for item in value:
                if isinstance(item, ast.Node):
                    new = fn(item)
                    if new is not None:
                        out.append(new)
                else:
                    out.append(item)
            setattr(n, f.name, out)


# -- @defined ------------------------------------------------------------------------------


def fold_defined(root: ast.Node, target_errors: dict[int, object]) -> ast.Node:
    """Replace each ``@defined(e)`` by 1 when ``e`` resolved, else 0."""

    def visit(n: ast.Node) -> ast.Node:
        if isinstance(n, ast.DefinedOp):
            bad = [
                x
                for x in ast.walk(n.operand)
                if id(x) in target_errors
                or isinstance(x, ast.CastOp | ast.AtVar | ast.Autocast | ast.PerfOp | ast.EntryOp)
            ]
            for x in ast.walk(n.operand):
                target_errors.pop(id(x), None)
            lit = ast.NumberLit(tok=n.tok, value=0 if bad else 1)
            lit.type = ast.Type.LONG
            return lit
        map_children(n, visit)
        return n

    return visit(root)


# -- side effects ---------------------------------------------------------------------------

_PURE_PRINT = {"sprint", "sprintln", "sprintd", "sprintdln", "sprintf"}

#: Built-in functions without side effects (SystemTap tags their embedded C ``/* pure */``):
#: a call to one in a void context may go.  Anything not listed is assumed to act.
_PURE_NATIVE = frozenset({
    "strlen", "substr", "stringat", "isinstr", "strpos", "str_replace", "strtol", "isdigit", "text_str",
    "text_strn", "string_quoted", "pid", "tid", "ppid", "pgrp", "sid", "uid", "euid", "gid", "egid",
    "execname", "pexecname", "cpu", "pp", "ppfunc", "pn", "pnlabel", "probe_type", "target", "is_return",
    "gettimeofday_s", "gettimeofday_ms", "gettimeofday_us", "gettimeofday_ns", "get_cycles", "jiffies", "HZ",
    "local_clock_s", "local_clock_ms", "local_clock_us", "local_clock_ns", "ktime_get_ns",
    "big_endian2", "big_endian4", "big_endian8", "little_endian2", "little_endian4", "little_endian8",
})


def has_side_effects(e: ast.Node) -> bool:
    for n in ast.walk(e):
        if isinstance(n, ast.Assign | ast.Crement | ast.FunctionCall | ast.EmbeddedExpr | ast.EmbeddedCode):
            return True
        if isinstance(n, ast.PrintFormat) and n.name not in _PURE_PRINT:
            return True
    return False


# -- constant folding ---------------------------------------------------------------------


def _num(e: ast.Node) -> int | None:
    return e.value if isinstance(e, ast.NumberLit) else None


def _lit(tok: Token, v: int) -> ast.NumberLit:
    n = ast.NumberLit(tok=tok, value=wrap(v))
    n.type = ast.Type.LONG
    return n


def _fold_binary(op: str, a: int, b: int) -> int | None:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op in ("/", "%"):
        if b == 0:
            return None  # a run-time error, keep it
        q = abs(a) // abs(b) * (1 if (a >= 0) == (b >= 0) else -1)
        return q if op == "/" else a - q * b
    if op in ("<<", ">>", ">>>"):
        # Only counts 0..63 fold: SystemTap's translator clamps the count to [0, 64]
        # (``max(min(r, 64), 0)``, so ``120 << -2`` is 120: systemtap.base/arith)
        # and what a count of 64 gives is the C compiler's business; the run time
        # owns those cases, so folding can never disagree with ``-u``.
        if not 0 <= b < 64:
            return None
        if op == "<<":
            return a << b
        return a >> b if op == ">>" else (a % MASK) >> b
    if op == "&":
        return a & b
    if op == "|":
        return a | b
    if op == "^":
        return a ^ b
    return None


_CMP = {
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def fold_expr(e: ast.Expr) -> ast.Expr:
    if isinstance(e, ast.Binary):
        a, b = _num(e.left), _num(e.right)
        if a is not None and b is not None:
            v = _fold_binary(e.op, a, b)
            if v is not None:
                return _lit(e.tok, v)
        if e.op == "." and isinstance(e.left, ast.StringLit) and isinstance(e.right, ast.StringLit):
            s = ast.StringLit(tok=e.left.tok, value=e.left.value + e.right.value)
            s.type = ast.Type.STRING
            return s
    elif isinstance(e, ast.Unary):
        a = _num(e.operand)
        if a is not None:
            return _lit(e.tok, {"-": -a, "+": a, "!": int(not a), "~": ~a}[e.op])
    elif isinstance(e, ast.Logical):
        a, b = _num(e.left), _num(e.right)
        if a is not None:
            if e.op == "&&" and not a:
                return _lit(e.tok, 0)
            if e.op == "||" and a:
                return _lit(e.tok, 1)
            if b is not None:
                return _lit(e.tok, int(bool(b)))
    elif isinstance(e, ast.Comparison):
        a, b = _num(e.left), _num(e.right)
        if a is not None and b is not None:
            return _lit(e.tok, int(_CMP[e.op](a, b)))
        if isinstance(e.left, ast.StringLit) and isinstance(e.right, ast.StringLit):
            return _lit(
                e.tok, int(_CMP[e.op](e.left.value.encode("latin-1"), e.right.value.encode("latin-1")))
            )
    elif isinstance(e, ast.Ternary):
        c = _num(e.cond)
        if c is not None:
            return e.true_expr if c else e.false_expr
    return e


class Optimizer:
    """One optimisation round over a body; ``changed`` says whether to go again."""

    def __init__(self, warnings: list[Warning_]) -> None:
        self.warnings = warnings
        self.changed = False
        # stap warns only in the first round of its relaxation loop (suppress_warnings after)
        self.quiet = False
        # script function -> "calling it changes nothing" (rounds only remove effects,
        # so an answer never goes stale in the unsafe direction)
        self._pure: dict[int, bool] = {}

    # -- side effects, with script functions looked into ------------------------------------

    def effects(self, e: ast.Node) -> bool:
        """Whether evaluating ``e`` can change anything: like :func:`has_side_effects`,
        but a call to a script function whose body changes nothing (no global
        written, nothing printed, no impure call, no embedded code) is as free of
        effects as its arguments -- SystemTap's void-statement reducer relies on
        that (systemtap.base/optim_arridx, optim_voidstmt)."""
        for n in ast.walk(e):
            if isinstance(n, ast.FunctionCall) and not self._call_pure(n):
                return True
            if isinstance(n, ast.Assign | ast.Crement | ast.EmbeddedExpr | ast.EmbeddedCode):
                return True
            if isinstance(n, ast.PrintFormat) and n.name not in _PURE_PRINT:
                return True
        return False

    def _call_pure(self, call: ast.FunctionCall) -> bool:
        if call.referents:
            return all(self._fn_pure(fn) for fn in call.referents)
        return call.builtin is not None and call.name in _PURE_NATIVE

    def _fn_pure(self, fn: ast.FunctionDecl) -> bool:
        known = self._pure.get(id(fn))
        if known is not None:
            return known
        self._pure[id(fn)] = False  # recursion: assume it acts
        if isinstance(fn.body, ast.EmbeddedCode):
            pure = "/* pure */" in fn.body.code
        else:
            pure = not any(self._acts(n) for n in ast.walk(fn.body))
        self._pure[id(fn)] = pure
        return pure

    def _acts(self, n: ast.Node) -> bool:
        """One node of a function body that makes calling the function observable."""
        if isinstance(n, ast.Assign | ast.Crement | ast.Delete):
            target = ast.write_target(n)
            base = target.base if isinstance(target, ast.ArrayIndex) else target
            return not (isinstance(base, ast.Symbol) and not isinstance(base.referent, ast.GlobalDecl))
        if isinstance(n, ast.FunctionCall):
            return not self._call_pure(n)
        if isinstance(n, ast.PrintFormat):
            return n.name not in _PURE_PRINT
        if isinstance(n, ast.EmbeddedExpr):
            return "/* pure */" not in n.code
        return isinstance(n, ast.EmbeddedCode | ast.Next)

    def void_parts(self, e: ast.Expr) -> list[ast.Expr]:
        """What of ``e`` must still run when its value is thrown away: the operands of
        operators, the arguments of pure calls and of ``sprint*``, recursively;
        conditional evaluation (``&&``, ``||``, ``?:``) is kept whole."""
        if not self.effects(e):
            return []
        if isinstance(e, ast.Unary):
            return self.void_parts(e.operand)
        if isinstance(e, ast.Binary | ast.Comparison):
            return self.void_parts(e.left) + self.void_parts(e.right)
        if isinstance(e, ast.FunctionCall) and self._call_pure(e):
            return [p for a in e.args for p in self.void_parts(a)]
        if isinstance(e, ast.PrintFormat) and e.name in _PURE_PRINT:
            return [p for a in e.args for p in self.void_parts(a)]
        return [e]

    def warn(self, message: str, tok: Token | None) -> None:
        if not self.quiet:
            self.warnings.append(Warning_(message, tok))

    def body(
        self, block: ast.Block, locals_: list[ast.LocalVar], params: list[ast.Param] | None = None
    ) -> None:
        self.elide_unread(block, locals_)
        self.reduce(block)

    def elide_unread(self, block: ast.Block, locals_: list[ast.LocalVar]) -> None:
        """Assignments to locals nobody reads go (stap's semantic_pass_opt2)."""
        reads = _local_reads(block)
        self._elide_writes(block, {id(v) for v in locals_ if reads.get(id(v), 0) == 0}, locals_)

    def reduce(self, block: ast.Block) -> None:
        """Constant folding, void statements and dead code (stap's later passes)."""
        self._fold(block)

    def _fold_identity(self, e: ast.Expr) -> ast.Expr:
        """SystemTap's const_folder beyond two literals: an absorbing constant makes the
        result that constant when the other side has no effects (``x*0``, ``0&x``,
        ``x%1``, ``-1|x``, ``0<<x``), an identity one leaves the other side (``x+0``,
        ``x-0``, ``1*x``, ``x/1``, ``x^0``, ``-1&x``, ``x<<0``), a boundary comparison
        is decided (``x <= LLONG_MAX``), ``"" . s`` is ``s``, and ``x && 0`` /
        ``x || 1`` drop a pure ``x``.  The same rules in the same order, so ``-p2``
        and the unread display see the same tree as stap's."""
        if isinstance(e, ast.Binary) and e.op != ".":
            a, b = _num(e.left), _num(e.right)
            if (a is None) == (b is None):
                return e
            op = e.op
            if b == 0 and op in ("/", "%"):
                return e
            absorbing = (a is not None and ((a == 0 and op in ("*", "&", ">>", "<<"))
                                            or (a == -1 and op in ("|", ">>")))) or \
                        (b is not None and ((b == 0 and op in ("*", "&")) or (b == 1 and op == "%")
                                            or (b == -1 and op in ("%", "|"))))
            if absorbing:
                other = e.right if a is not None else e.left
                if self.effects(other):
                    return e
                value = a if a is not None else (0 if op == "%" else b)
                assert value is not None
                return _lit(e.tok, value)
            identity = (a is not None and ((a == 0 and op in ("+", "|", "^")) or (a == 1 and op == "*")
                                           or (a == -1 and op == "&"))) or \
                       (b is not None and ((b == 0 and op in ("+", "-", "|", "^"))
                                           or (b == 1 and op in ("*", "/")) or (b == -1 and op == "&")
                                           or (b <= 0 and op in (">>", "<<"))))
            if identity:
                other = e.right if a is not None else e.left
                if other.type is ast.Type.UNKNOWN:
                    other.type = ast.Type.LONG  # the operator's constraint survives the fold
                return other
            return e
        if isinstance(e, ast.Binary):  # concatenation with an empty literal
            for lit, other in ((e.left, e.right), (e.right, e.left)):
                if isinstance(lit, ast.StringLit) and lit.value == "":
                    if other.type is ast.Type.UNKNOWN:
                        other.type = ast.Type.STRING
                    return other
            return e
        if isinstance(e, ast.Logical):
            a, b = _num(e.left), _num(e.right)
            if a is None and b is not None and (b if e.op == "||" else not b) and not self.effects(e.left):
                return _lit(e.tok, 1 if e.op == "||" else 0)
            return e
        if isinstance(e, ast.Comparison):
            a, b = _num(e.left), _num(e.right)
            if (a is None) == (b is None):
                return e
            op = e.op
            low, high = (("<=", ">"), (">=", "<")) if a is not None else ((">=", "<"), ("<=", ">"))
            k = a if a is not None else b
            decided = (k == INT64_MIN and op in low) or (k == INT64_MAX and op in high)
            if decided and not self.effects(e.right if a is not None else e.left):
                return _lit(e.tok, int(len(op) == 2))  # <= and >= hold, < and > do not
        return e

    # constant folding and dead statements
    def _fold(self, root: ast.Node) -> None:
        def visit(n: ast.Node) -> ast.Node | None:
            map_children(n, visit)
            if isinstance(n, ast.FunctionCall) and len(n.referents) > 1:
                self._dead_overloads(n)
            if isinstance(n, ast.Expr):
                new = fold_expr(n)
                if new is n:
                    new = self._fold_identity(n)
                if new is not n:
                    self.changed = True
                return new
            if isinstance(n, ast.If):
                c = _num(n.cond)
                if c is not None:
                    self.changed = True
                    if c:
                        return n.then
                    return n.else_ if n.else_ is not None else ast.NullStatement(tok=n.tok)
            if isinstance(n, ast.If) and _empty(n.then) and (n.else_ is None or _empty(n.else_)):
                # nothing to choose between: only the condition's effects remain (``if (x++);``)
                self.changed = True
                if self.effects(n.cond):
                    return ast.ExprStatement(tok=n.cond.tok, expr=n.cond)
                return ast.NullStatement(tok=n.tok)
            if isinstance(n, ast.For | ast.While | ast.Foreach) and self._idle_loop(n):
                # an empty loop that changes nothing goes, as stap's void-statement reducer
                # drops it -- even ``while (24);``, which would never end
                self.changed = True
                return ast.NullStatement(tok=n.tok)
            # a for loop's init and incr clauses stay, even side-effect free: stap's
            # void_statement_reducer never visits them ("s->init/cond/incr are never void")
            if isinstance(n, ast.TryCatch):
                # PR30570: nothing can throw from an empty try block, so the whole
                # statement goes (catch variable included); an empty catch block
                # needs no error variable.  Either way the variable's type no
                # longer constrains a global of the same name.
                if _empty(n.try_block):
                    self.changed = True
                    return ast.NullStatement(tok=n.tok)
                if n.catch_var is not None and _empty(n.catch_block):
                    n.catch_var = None
                    self.changed = True
            if isinstance(n, ast.While) and _num(n.cond) == 0:
                self.changed = True
                return ast.NullStatement(tok=n.tok)
            if isinstance(n, ast.ExprStatement):
                parts = self.void_parts(n.expr)
                if not parts:
                    self.warn("Eliding side-effect-free expression ", n.tok)
                    self.changed = True
                    return ast.NullStatement(tok=n.tok)
                if parts != [n.expr]:
                    self.changed = True
                    stmts: list[ast.Stmt] = [ast.ExprStatement(tok=p.tok, expr=p) for p in parts]
                    return stmts[0] if len(stmts) == 1 else ast.Block(tok=n.tok, statements=stmts)
            if isinstance(n, ast.Block):
                kept = [s for s in n.statements if not _empty(s)]
                if len(kept) != len(n.statements):
                    n.statements = kept
                    self.changed = True
            return n

        visit(root)

    def _idle_loop(self, n: ast.For | ast.While | ast.Foreach) -> bool:
        """A loop with an empty body whose other parts change nothing."""
        if not _empty(n.body):
            return False
        if isinstance(n, ast.Foreach):
            parts: list[ast.Expr | None] = [n.limit, *(n.slice or [])]
        elif isinstance(n, ast.For):
            parts = [n.init, n.cond, n.incr]
        else:
            parts = [n.cond]
        return not any(p is not None and self.effects(p) for p in parts)

    def _dead_overloads(self, call: ast.FunctionCall) -> None:
        """Drop overloads a call can never reach (SystemTap's dead_overload_remover).

        Overloads are tried in order and the next one only runs when the previous
        one executed ``next``; so everything after the first overload without a
        ``next`` statement is dead.  Like SystemTap this is a syntactic guess (a
        ``next`` that never executes still counts), and each dropped overload gets
        the warning that makes ``-W`` refuse the script (semko/overload).
        """
        reachable = 1
        for fn in call.referents[:-1]:
            if not _has_next(fn):
                break
            reachable += 1
        if reachable < len(call.referents):
            for fn in call.referents[reachable:]:
                self.warn("instance of overloaded function will never be reached", fn.tok)
            call.referents = call.referents[:reachable]
            self.changed = True

    def _elide_writes(self, root: ast.Node, unread: set[int], locals_: list[ast.LocalVar]) -> None:
        if not unread:
            return

        def target_decl(t: ast.Expr) -> ast.Decl | None:
            return t.referent if isinstance(t, ast.Symbol) else None

        def visit(n: ast.Node) -> ast.Node:
            map_children(n, visit)
            if isinstance(n, ast.Assign):
                decl = target_decl(n.target)
                if decl is not None and id(decl) in unread:
                    self.warn(f"Eliding assignment to '{decl.name}'", n.tok)
                    self.changed = True
                    return n.value
            if isinstance(n, ast.Crement):
                decl = target_decl(n.operand)
                if decl is not None and id(decl) in unread and not n.prefix:
                    pass
            return n

        visit(root)
        still = _all_symbol_decls(root)
        for v in list(locals_):
            if id(v) in unread and id(v) not in still:
                locals_.remove(v)


def _has_next(fn: ast.FunctionDecl) -> bool:
    return isinstance(fn.body, ast.Block) and any(isinstance(n, ast.Next) for n in ast.walk(fn.body))


def _empty(s: ast.Stmt) -> bool:
    if isinstance(s, ast.NullStatement):
        return True
    if isinstance(s, ast.Block):
        return all(_empty(x) for x in s.statements)
    return False


def body_is_empty(b: ast.Block) -> bool:
    return _empty(b)


def _local_reads(root: ast.Node) -> dict[int, int]:
    """How often each declaration is read (an ``=``/``<<<`` target is not a read)."""
    counts: dict[int, int] = {}
    written_only: set[int] = set()
    for n in ast.walk(root):
        if isinstance(n, ast.Assign) and n.op in ("=", "<<<") and isinstance(n.target, ast.Symbol):
            written_only.add(id(n.target))
    for n in ast.walk(root):
        if isinstance(n, ast.Symbol) and n.referent is not None and id(n) not in written_only:
            counts[id(n.referent)] = counts.get(id(n.referent), 0) + 1
    return counts


def _all_symbol_decls(root: ast.Node) -> set[int]:
    return {id(n.referent) for n in ast.walk(root) if isinstance(n, ast.Symbol) and n.referent is not None}
