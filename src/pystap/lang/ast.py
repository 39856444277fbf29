"""The syntax tree: the contract between pass 1 (parser), pass 2 (elaborate)
and pass 3 (code generation).

Conventions
-----------
* Every node has ``tok``: the token SystemTap names in errors about the node
  (the operator for binary expressions, the name for symbols and calls, the
  keyword for statements).
* Strings are Python ``str`` whose code points are the script's *bytes*
  (0..255, i.e. latin-1 decoded), with escapes already applied; the printer
  re-escapes them.  Output is encoded back with latin-1, so bytes round-trip.
* Fields marked ``ref`` (via :func:`ref`) are links filled in by pass 2
  (declarations, types); they are not children and are skipped by
  :func:`iter_children`.
* Nodes compare by identity (``eq=False``), so they can key dictionaries;
  structural comparison is :func:`same_tree`.
* All constructors are keyword-only, so adding a field never silently shifts
  another.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any

from pystap.lang.tokens import Token


def ref(default: Any = None) -> Any:
    """A pass-2 link: not a child, not compared structurally."""
    return field(default=default, metadata={"ref": True}, repr=False)


def ref_list() -> Any:
    return field(default_factory=list, metadata={"ref": True}, repr=False)


class Type(enum.Enum):
    UNKNOWN = "unknown"
    LONG = "long"
    STRING = "string"
    STATS = "stats"


node = dataclass(eq=False, kw_only=True)


@node
class Node:
    tok: Token


# --------------------------------------------------------------------------------------------
# Expressions


@node
class Expr(Node):
    type: Type = ref(Type.UNKNOWN)


@node
class NumberLit(Expr):
    value: int  # already wrapped to int64


@node
class StringLit(Expr):
    value: str


Literal = NumberLit | StringLit


@node
class Symbol(Expr):
    """A plain name: local, global, or (in ``foreach``/``catch``) a binding."""

    name: str
    referent: Decl | None = ref()


@node
class ArrayIndex(Expr):
    """``a[i, j]``; ``base`` is a :class:`Symbol` or a :class:`HistogramOp`.
    An index of ``None`` is the ``*`` wildcard (only in ``delete``/``in``/slices)."""

    base: Expr
    indexes: list[Expr | None]


@node
class FunctionCall(Expr):
    name: str
    args: list[Expr]
    referents: list[FunctionDecl] = ref_list()  # overloads, in try order
    # pass 2: the built-in tapset entry (pystap.tapset.builtins.Builtin) when the
    # call resolves to a native function; ``referents`` is then empty
    builtin: Any = ref()


@node
class PrintFormat(Expr):
    """The print family, recognised by name: ``print println printd printdln
    printf sprint sprintln sprintd sprintdln sprintf print_char``.

    ``format`` is the literal format of printf/sprintf; ``delimiter`` the
    literal of printd*/sprintd*; ``components`` the parsed format (pass 1/2).
    """

    name: str
    args: list[Expr]
    format: str | None = None
    delimiter: str | None = None
    components: list[Any] = ref_list()
    histogram: HistogramOp | None = None  # print(@hist_*(s)) is a special form


@node
class Unary(Expr):
    op: str  # + - ! ~
    operand: Expr


@node
class Binary(Expr):
    op: str  # + - * / % << >> >>> & | ^ .
    left: Expr
    right: Expr


@node
class Logical(Expr):
    op: str  # && ||
    left: Expr
    right: Expr


@node
class Comparison(Expr):
    op: str  # < > <= >= == !=
    left: Expr
    right: Expr


@node
class RegexMatch(Expr):
    op: str  # =~ !~
    left: Expr
    pattern: str
    pattern_tok: Token | None = None  # the string literal: pass-2 regex errors point at it, as stap's do


@node
class Crement(Expr):
    op: str  # ++ --
    operand: Expr
    prefix: bool


@node
class Ternary(Expr):
    cond: Expr
    true_expr: Expr
    false_expr: Expr


@node
class Assign(Expr):
    op: str  # = += -= *= /= %= <<= >>= &= ^= |= .= <<<
    target: Expr
    value: Expr


@node
class InArray(Expr):
    """``k in a`` / ``[k1, *, k3] in a``; ``None`` index is ``*``."""

    indexes: list[Expr | None]
    array: Expr  # Symbol or HistogramOp


@node
class StatOp(Expr):
    op: str  # @count @sum @min @max @avg @variance
    stat: Expr
    params: list[int] = field(default_factory=list)  # @variance shift


@node
class HistogramOp(Expr):
    kind: str  # "linear" | "log"
    stat: Expr
    params: list[int] = field(default_factory=list)  # linear: low, high, width


@node
class Component(Node):
    """A ``->member`` or ``[index]`` step after a target expression."""

    kind: str  # "member" | "index"
    name: str | None = None
    index: Expr | None = None


@node
class TargetSymbol(Expr):
    """``$var`` (with ``->``/``[]`` steps), ``$$vars``, ``$$parms$`` …"""

    name: str
    components: list[Component] = field(default_factory=list)
    addressof: bool = False
    pretty: str = ""  # "" | "$" | "$$" trailing pretty-print suffix


@node
class CastOp(Expr):
    operand: Expr
    type_name: str
    module: str | None = None
    components: list[Component] = field(default_factory=list)
    addressof: bool = False
    pretty: str = ""


@node
class AtVar(Expr):
    name: str
    module: str | None = None
    components: list[Component] = field(default_factory=list)
    addressof: bool = False
    pretty: str = ""


@node
class Autocast(Expr):
    """``(expr)->member`` or ``(expr)[i]``: an autocast (typed later)."""

    operand: Expr
    components: list[Component] = field(default_factory=list)
    addressof: bool = False
    pretty: str = ""


@node
class DefinedOp(Expr):
    operand: Expr


@node
class EntryOp(Expr):
    operand: Expr


@node
class ProbewriteOp(Expr):
    name: str


@node
class PerfOp(Expr):
    name: str


@node
class EmbeddedExpr(Expr):
    code: str


@node
class AtOp(Expr):
    """The remaining @-operators with literal operands: ``@const("…")``,
    ``@kregister(N)``, ``@uregister(N)``, ``@kderef(size, addr)``,
    ``@uderef(size, addr)``, ``@enum("…")``, ``@enumname(e[, "t"[, "m"]])``."""

    name: str
    args: list[Expr]


# --------------------------------------------------------------------------------------------
# Statements


@node
class Stmt(Node):
    pass


@node
class Block(Stmt):
    statements: list[Stmt] = field(default_factory=list)


@node
class ExprStatement(Stmt):
    expr: Expr


@node
class NullStatement(Stmt):
    pass


@node
class If(Stmt):
    cond: Expr
    then: Stmt
    else_: Stmt | None = None


@node
class While(Stmt):
    cond: Expr
    body: Stmt


@node
class For(Stmt):
    init: Expr | None
    cond: Expr | None
    incr: Expr | None
    body: Stmt


@node
class Foreach(Stmt):
    """``foreach ([v =] [k1, k2] in a[slice] @agg sort limit N)``.

    ``sort_column``: ``None`` (unsorted), 0 (by value) or i >= 1 (by index i);
    ``sort_direction``: +1 ascending, -1 descending, 0 unsorted;
    ``sort_aggr``: for stats arrays sorted by value, the aggregate (``@count``
    when not given).
    """

    value: Symbol | None
    indexes: list[Symbol]
    array: Expr  # Symbol or HistogramOp
    slice: list[Expr | None] | None = None
    sort_column: int | None = None
    sort_direction: int = 0
    sort_aggr: str | None = None
    limit: Expr | None = None
    body: Stmt


@node
class Return(Stmt):
    value: Expr | None = None


@node
class Delete(Stmt):
    target: Expr


@node
class Next(Stmt):
    pass


@node
class Break(Stmt):
    pass


@node
class Continue(Stmt):
    pass


@node
class TryCatch(Stmt):
    try_block: Block
    catch_var: Symbol | None
    catch_block: Block


@node
class EmbeddedCode(Stmt):
    """``%{ … %}`` as a statement or function body."""

    code: str


# --------------------------------------------------------------------------------------------
# Declarations and files


@node
class PPComponent(Node):
    """One dotted component of a probe point; ``name`` may hold ``*`` globs."""

    name: str
    arg: Literal | None = None


@node
class ProbePoint(Node):
    components: list[PPComponent]
    optional: bool = False  # ?
    sufficient: bool = False  # !
    condition: Expr | None = None  # if (…)


@node
class Decl(Node):
    """Something a :class:`Symbol` can refer to."""

    name: str
    type: Type = ref(Type.UNKNOWN)


@node
class LocalVar(Decl):
    pass


@node
class GlobalDecl(Decl):
    wrap: bool = False  # %
    size: int | None = None  # [N]
    init: Literal | None = None
    private: bool = False
    file: str = ""
    arity: int | None = ref()  # 0 = scalar; None = not yet known
    key_types: list[Type] = ref_list()
    read: bool = ref(False)
    written: bool = ref(False)


@node
class Param(Decl):
    declared_type: Type = Type.UNKNOWN


@node
class FunctionDecl(Node):
    name: str
    params: list[Param]
    return_type: Type = Type.UNKNOWN  # declared (:long / :string), else inferred later
    body: Block | EmbeddedCode
    priority: int = 0
    private: bool = False
    file: str = ""
    privileged: bool = False  # defined in a tapset or a -g script
    inferred_type: Type = ref(Type.UNKNOWN)
    locals: list[LocalVar] = ref_list()


@node
class Probe(Node):
    points: list[ProbePoint]
    body: Block
    file: str = ""
    privileged: bool = False


@node
class ProbeAlias(Node):
    """``probe A = B {…}`` (prologue), ``probe A += B {…}`` (epilogue),
    ``probe A = B {pro}, {epi}``; several names may be chained."""

    names: list[ProbePoint]
    epilogue_style: bool
    points: list[ProbePoint]
    prologue: Block | None = None
    epilogue: Block | None = None
    file: str = ""
    privileged: bool = False


@node
class EmbeddedTopLevel(Node):
    code: str


@node
class StapFile(Node):
    name: str
    probes: list[Probe] = field(default_factory=list)
    aliases: list[ProbeAlias] = field(default_factory=list)
    functions: list[FunctionDecl] = field(default_factory=list)
    globals: list[GlobalDecl] = field(default_factory=list)
    embeds: list[EmbeddedTopLevel] = field(default_factory=list)
    privileged: bool = False  # tapset file, or user script with -g
    tapset: bool = False
    source: str = field(default="", repr=False)
    # pass-1 warnings (diagnostics.Warning_): "macro redefines built-in operator", "}%"
    warnings: list[Any] = ref_list()


# --------------------------------------------------------------------------------------------
# Pass-2 output: what code generation consumes


@node
class DerivedProbe(Node):
    """A resolved probe: one concrete probe point with its alias bodies merged.

    ``point`` is the canonical resolved probe point (``timer.ms(100)``);
    ``family`` a row of :mod:`pystap.policy.probes`; ``params`` the family's
    manifest parameters (JSON scalars only); ``body`` the merged handler
    (alias prologues, user body, alias epilogues); ``locals`` every local of
    that merged scope; ``condition`` the stacked ``if (…)`` conditions;
    ``sequence`` the begin/end/error ordering number; ``origin`` the probe
    point as written by the user.
    """

    point: str
    family: str
    params: dict[str, Any]
    body: Block
    origin: ProbePoint
    locals: list[LocalVar] = field(default_factory=list)
    condition: Expr | None = None
    sequence: int = 0
    myproc: bool = False
    context_vars: dict[str, Type] = field(default_factory=dict)  # $var → type for this family
    # how the point was derived, outermost last, as ``stap -p2`` shows it after
    # ``<-`` (``oneshot += begin``, then the user's probe-point list)
    derivation: list[str] = field(default_factory=list)
    # locals the runtime fills before the body runs (syscall ``name``, ``argstr`` …)
    provided: dict[str, Type] = field(default_factory=dict)
    # ``?`` / ``!`` of the point that resolved (only shown by ``-p2``; not part of ``point``)
    point_mark: str = ""


@node
class ElaboratedScript(Node):
    """Everything reachable from a probe, resolved and typed."""

    files: list[StapFile]
    globals: list[GlobalDecl]
    functions: list[FunctionDecl]
    probes: list[DerivedProbe]
    embeds: list[EmbeddedTopLevel] = field(default_factory=list)
    privilege: int = 0x8
    guru: bool = False
    script_digest: str = ""
    user_memory_functions: list[str] = field(default_factory=list)  # for confinement markers
    # native functions reached (pystap.tapset.builtins.Builtin), for codegen and -p2
    builtins: list[Any] = field(default_factory=list)
    warnings: list[Any] = field(default_factory=list)  # diagnostics.Warning_ of pass 2


# --------------------------------------------------------------------------------------------
# Traversal


def iter_children(n: Node) -> Iterator[Node]:
    """The structural children of ``n``, in field order (skips ``ref`` links)."""
    for f in fields(n):
        if f.metadata.get("ref") or f.name == "tok":
            continue
        value = getattr(n, f.name)
        if isinstance(value, Node):
            yield value
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, Node):
                    yield item


def walk(n: Node) -> Iterator[Node]:
    """Pre-order traversal of ``n`` and everything below it (iterative, so
    deeply nested trees do not hit Python's recursion limit)."""
    stack = [n]
    while stack:
        cur = stack.pop()
        yield cur
        stack.extend(reversed(list(iter_children(cur))))


def write_target(n: Node) -> Expr | None:
    """The lvalue ``n`` writes, if it writes one: the target of ``=``, ``op=`` and ``<<<``,
    the operand of ``++``/``--``, the target of ``delete``.  One definition, because
    the unread-global display, the foreach-mutation check and the never-assigned
    warning must agree on what counts as a write."""
    if isinstance(n, Assign):
        return n.target
    if isinstance(n, Crement):
        return n.operand
    if isinstance(n, Delete):
        return n.target
    return None


class Visitor:
    """Dispatch on the node class name: ``visit_Binary(node)``; falls back to
    :meth:`generic_visit`, which visits the children."""

    def visit(self, n: Node) -> Any:
        method = getattr(self, "visit_" + type(n).__name__, None)
        if method is None:
            return self.generic_visit(n)
        return method(n)

    def generic_visit(self, n: Node) -> Any:
        for child in iter_children(n):
            self.visit(child)
        return None


def same_tree(a: Any, b: Any) -> bool:
    """Structural equality, ignoring tokens (locations) and pass-2 links."""
    if isinstance(a, Node) or isinstance(b, Node):
        if type(a) is not type(b):
            return False
        for f in fields(a):
            if f.metadata.get("ref") or f.name in ("tok", "source", "pattern_tok"):
                continue
            if not same_tree(getattr(a, f.name), getattr(b, f.name)):
                return False
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_tree(x, y) for x, y in zip(a, b, strict=True))
    return a == b
