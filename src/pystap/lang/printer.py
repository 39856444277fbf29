"""``-p1`` rendering: the parsed script as canonical, re-parseable text.

The layout follows ``stap -p1`` (``# file NAME``, then embedded code,
globals, aliases, probes, functions; every sub-expression parenthesised;
one statement per line), with the changes needed for the output to parse
back into the *same* tree: strings are fully escaped, declared types and
priorities are kept, the alias epilogue block is printed, only statements
that swallow a following ``;`` get one, and literals that wrapped to a
negative value are printed unsigned where a ``-`` would become an operator.
"""

from __future__ import annotations

import sys

from pystap.lang import ast

_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\a": "\\a", "\b": "\\b", "\v": "\\v", "\f": "\\f",
            "\\": "\\\\", '"': '\\"'}  # fmt: skip


def quote(value: str) -> str:
    """A string literal that lexes back to ``value`` (octal for other controls)."""
    out = ['"']
    for c in value:
        e = _ESCAPES.get(c)
        if e is not None:
            out.append(e)
        elif c < " " or c >= "\x7f":
            # three digits always, so a following digit is not taken into the escape
            out.append(f"\\{ord(c):03o}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def literal(lit: ast.Expr, signed: bool = True) -> str:
    """A literal; ``signed=False`` where a leading ``-`` would be an operator."""
    if isinstance(lit, ast.StringLit):
        return quote(lit.value)
    assert isinstance(lit, ast.NumberLit)
    if lit.value < 0 and not signed:
        return str(lit.value & 0xFFFFFFFFFFFFFFFF)
    return str(lit.value)


class Printer:
    """Renders nodes; one method per node family.

    A literal that wrapped (``18446744073709551615`` is -1) prints unsigned by
    default, so that the ``-p1`` text re-parses to the same tree.  The ``-p2``
    listing (``listing=True``) prints resolved trees as ``stap -p2`` does:
    literals signed (folded constants, ``println(-3)``) and globals by the
    names stap gives them in generated code (``__global_x``)."""

    def __init__(self, listing: bool = False) -> None:
        self.listing = listing

    def expr(self, e: ast.Expr) -> str:
        m = getattr(self, "e_" + type(e).__name__, None)
        if m is None:
            raise TypeError(f"cannot print {type(e).__name__}")
        return m(e)

    def e_NumberLit(self, e: ast.NumberLit) -> str:
        return literal(e, signed=self.listing)

    def e_StringLit(self, e: ast.StringLit) -> str:
        return quote(e.value)

    def e_Symbol(self, e: ast.Symbol) -> str:
        if self.listing and isinstance(e.referent, ast.GlobalDecl) and not e.name.startswith("__"):
            return "__global_" + e.name
        return e.name

    def _indexes(self, idx: list[ast.Expr | None]) -> str:
        return ", ".join("*" if i is None else self.expr(i) for i in idx)

    def e_ArrayIndex(self, e: ast.ArrayIndex) -> str:
        return f"{self.expr(e.base)}[{self._indexes(e.indexes)}]"

    def e_FunctionCall(self, e: ast.FunctionCall) -> str:
        return f"{e.name}({', '.join(self.expr(a) for a in e.args)})"

    def e_PrintFormat(self, e: ast.PrintFormat) -> str:
        parts: list[str] = []
        if e.format is not None:
            parts.append(quote(e.format))
        if e.delimiter is not None:
            parts.append(quote(e.delimiter))
        if e.histogram is not None:
            parts.append(self.expr(e.histogram))
        parts.extend(self.expr(a) for a in e.args)
        return f"{e.name}({', '.join(parts)})"

    def e_Unary(self, e: ast.Unary) -> str:
        return f"{e.op}({self.expr(e.operand)})"

    def _binary(self, e: ast.Binary | ast.Logical | ast.Comparison) -> str:
        return f"({self.expr(e.left)}) {e.op} ({self.expr(e.right)})"

    e_Binary = e_Logical = e_Comparison = _binary

    def e_RegexMatch(self, e: ast.RegexMatch) -> str:
        return f"({self.expr(e.left)}) {e.op} {quote(e.pattern)}"

    def e_Crement(self, e: ast.Crement) -> str:
        if e.prefix:
            return f"{e.op}({self.expr(e.operand)})"
        return f"({self.expr(e.operand)}){e.op}"

    def e_Ternary(self, e: ast.Ternary) -> str:
        return f"({self.expr(e.cond)})?({self.expr(e.true_expr)}):({self.expr(e.false_expr)})"

    def e_Assign(self, e: ast.Assign) -> str:
        return f"({self.expr(e.target)}) {e.op} ({self.expr(e.value)})"

    # parsed at comparison level inside ``[...] in``: anything looser needs parentheses
    _TIGHT = (ast.Symbol, ast.NumberLit, ast.StringLit, ast.ArrayIndex, ast.FunctionCall, ast.PrintFormat,
              ast.StatOp, ast.TargetSymbol)

    def e_InArray(self, e: ast.InArray) -> str:
        idx = ", ".join(
            "*" if i is None else self.expr(i) if isinstance(i, self._TIGHT) else f"({self.expr(i)})"
            for i in e.indexes
        )
        return f"[{idx}] in {self.expr(e.array)}"

    def e_StatOp(self, e: ast.StatOp) -> str:
        extra = "".join(f", {p}" for p in e.params)
        return f"{e.op}({self.expr(e.stat)}{extra})"

    def e_HistogramOp(self, e: ast.HistogramOp) -> str:
        extra = "".join(f", {p}" for p in e.params)
        return f"@hist_{e.kind}({self.expr(e.stat)}{extra})"

    def _components(self, comps: list[ast.Component], pretty: str) -> str:
        out = []
        for c in comps:
            if c.kind == "member":
                out.append(f"->{c.name}")
            else:
                assert c.index is not None
                out.append(f"[{self.expr(c.index)}]")
        if pretty:
            out.append("->" + pretty)  # as stap prints it; reads back as the same pretty-print
        return "".join(out)

    def e_TargetSymbol(self, e: ast.TargetSymbol) -> str:
        amp = "&" if e.addressof else ""
        return f"{amp}{e.name}{self._components(e.components, e.pretty)}"

    def e_CastOp(self, e: ast.CastOp) -> str:
        amp = "&" if e.addressof else ""
        mod = f", {quote(e.module)}" if e.module is not None else ""
        tail = self._components(e.components, e.pretty)
        return f"{amp}@cast({self.expr(e.operand)}, {quote(e.type_name)}{mod}){tail}"

    def e_AtVar(self, e: ast.AtVar) -> str:
        amp = "&" if e.addressof else ""
        mod = f", {quote(e.module)}" if e.module is not None else ""
        return f"{amp}@var({quote(e.name)}{mod}){self._components(e.components, e.pretty)}"

    def e_Autocast(self, e: ast.Autocast) -> str:
        amp = "&" if e.addressof else ""
        return f"{amp}({self.expr(e.operand)}){self._components(e.components, e.pretty)}"

    def e_DefinedOp(self, e: ast.DefinedOp) -> str:
        return f"@defined({self.expr(e.operand)})"

    def e_EntryOp(self, e: ast.EntryOp) -> str:
        return f"@entry({self.expr(e.operand)})"

    def e_ProbewriteOp(self, e: ast.ProbewriteOp) -> str:
        return f"@probewrite({e.name})"

    def e_PerfOp(self, e: ast.PerfOp) -> str:
        return f"@perf({quote(e.name)})"

    def e_EmbeddedExpr(self, e: ast.EmbeddedExpr) -> str:
        return f"%{{{e.code}%}}"

    def e_AtOp(self, e: ast.AtOp) -> str:
        args = ", ".join(literal(a) if isinstance(a, ast.NumberLit) else self.expr(a) for a in e.args)
        return f"{e.name}({args})"

    # -- statements ------------------------------------------------------------------------------

    def stmt(self, s: ast.Stmt) -> str:
        """A statement, terminated so that it reads back alone: simple
        statements end in ``;`` (which the parser swallows), block-like ones
        do not (a ``;`` after them would become an extra empty statement)."""
        if isinstance(s, ast.Block):
            return self.block(s)
        if isinstance(s, ast.NullStatement):
            return ";"
        if isinstance(s, ast.ExprStatement):
            return self.expr(s.expr) + ";"
        if isinstance(s, ast.If):
            text = f"if ({self.expr(s.cond)}) {self.stmt(s.then)}"
            if s.else_ is not None:
                text += f"\nelse {self.stmt(s.else_)}"
            return text
        if isinstance(s, ast.While):
            return f"while ({self.expr(s.cond)}) {self.stmt(s.body)}"
        if isinstance(s, ast.For):
            init = self.expr(s.init) if s.init is not None else ""
            cond = self.expr(s.cond) if s.cond is not None else "1"
            incr = self.expr(s.incr) if s.incr is not None else ""
            return f"for ({init}; {cond}; {incr}) {self.stmt(s.body)}"
        if isinstance(s, ast.Foreach):
            return self.foreach(s)
        if isinstance(s, ast.Return):
            return "return;" if s.value is None else f"return {self.expr(s.value)};"
        if isinstance(s, ast.Delete):
            return f"delete {self.expr(s.target)};"
        if isinstance(s, ast.Next):
            return "next;"
        if isinstance(s, ast.Break):
            return "break;"
        if isinstance(s, ast.Continue):
            return "continue;"
        if isinstance(s, ast.TryCatch):
            var = f"({s.catch_var.name}) " if s.catch_var is not None else ""
            return f"try {self.block(s.try_block)} catch {var}{self.block(s.catch_block)}"
        if isinstance(s, ast.EmbeddedCode):
            return f"%{{{s.code}%}}"
        raise TypeError(f"cannot print {type(s).__name__}")

    def block(self, b: ast.Block) -> str:
        if not b.statements:
            return "{\n}"
        return "{\n" + "\n".join(self.stmt(s) for s in b.statements) + "\n}"

    def foreach(self, s: ast.Foreach) -> str:
        out = ["foreach ("]
        if s.value is not None:
            out.append(s.value.name)
            if s.sort_direction and s.sort_column == 0 and s.sort_aggr is None:
                out.append("+" if s.sort_direction > 0 else "-")
            out.append(" = ")
        names = []
        for i, sym in enumerate(s.indexes, 1):
            mark = ""
            if s.sort_direction and s.sort_column == i:
                mark = "+" if s.sort_direction > 0 else "-"
            names.append(sym.name + mark)
        out.append("[" + ", ".join(names) + "] in ")
        out.append(self.expr(s.array))
        if s.slice is not None:
            out.append("[" + self._indexes(s.slice) + "]")
        if s.sort_aggr is not None:
            out.append(" " + s.sort_aggr + ("+" if s.sort_direction >= 0 else "-"))
        elif s.sort_direction and s.sort_column == 0 and s.value is None:
            out.append("+" if s.sort_direction > 0 else "-")
        if s.limit is not None:
            out.append(f" limit {self.expr(s.limit)}")
        out.append(") ")
        out.append(self.stmt(s.body))
        return "".join(out)

    # -- declarations ----------------------------------------------------------------------------

    def probe_point(self, pp: ast.ProbePoint) -> str:
        parts = []
        for c in pp.components:
            parts.append(c.name if c.arg is None else f"{c.name}({literal(c.arg)})")
        text = ".".join(parts)
        if pp.sufficient:
            text += "!"
        elif pp.optional:
            text += "?"
        if pp.condition is not None:
            text += f" if ({self.expr(pp.condition)})"
        return text

    def global_decl(self, g: ast.GlobalDecl) -> str:
        text = ("private global " if g.private else "global ") + g.name
        if g.wrap:
            text += "%"
        if g.size is not None:
            text += f"[{g.size}]"
        if g.init is not None:
            text += f" = {literal(g.init)}"
        return text

    def function(self, fn: ast.FunctionDecl, default_priority: int) -> str:
        head = ("private function " if fn.private else "function ") + fn.name
        if fn.return_type is not ast.Type.UNKNOWN:
            head += ":" + fn.return_type.value
        params = []
        for p in fn.params:
            typed = p.declared_type is not ast.Type.UNKNOWN
            params.append(f"{p.name}:{p.declared_type.value}" if typed else p.name)
        head += " (" + ", ".join(params) + ")"
        if fn.priority != default_priority:
            head += f" : {fn.priority}"
        body = fn.body if isinstance(fn.body, ast.Block) else None
        if body is None:
            assert isinstance(fn.body, ast.EmbeddedCode)
            return head + "\n" + f"%{{{fn.body.code}%}}"
        return head + "\n" + self.block(body)

    def probe(self, p: ast.Probe) -> str:
        return "probe " + ",".join(self.probe_point(pp) for pp in p.points) + self.block(p.body)

    def alias(self, a: ast.ProbeAlias) -> str:
        names = " = ".join(self.probe_point(pp) for pp in a.names)
        points = ", ".join(self.probe_point(pp) for pp in a.points)
        head = f"probe {names} {'+=' if a.epilogue_style else '='} {points}"
        if a.epilogue_style:
            assert a.epilogue is not None
            return head + self.block(a.epilogue)
        assert a.prologue is not None
        text = head + self.block(a.prologue)
        if a.epilogue is not None:
            text += ", " + self.block(a.epilogue)
        return text

    def file(self, f: ast.StapFile) -> str:
        out = [f"# file {f.name}"]
        for e in f.embeds:
            out.append(f"%{{{e.code}%}}")
        out.extend(self.global_decl(g) for g in f.globals)
        out.extend(self.alias(a) for a in f.aliases)
        out.extend(self.probe(p) for p in f.probes)
        default_priority = 1 if f.tapset else 0
        out.extend(self.function(fn, default_priority) for fn in f.functions)
        return "\n".join(out) + "\n"


def _deep_enough() -> None:
    from pystap.lang.parser import _RECURSION_NEEDED

    if sys.getrecursionlimit() < _RECURSION_NEEDED:
        sys.setrecursionlimit(_RECURSION_NEEDED)


def print_file(f: ast.StapFile) -> str:
    """One file as ``stap -p1`` shows it (``# file NAME`` and its contents)."""
    _deep_enough()
    return Printer().file(f)


def print_parse_tree(files: list[ast.StapFile]) -> str:
    """The whole ``-p1`` output: ``# parse tree dump``, every user file, and
    the blank line ``stap`` ends with."""
    return "# parse tree dump\n" + "".join(print_file(f) for f in files) + "\n"


def print_expr(e: ast.Expr, listing: bool = False) -> str:
    _deep_enough()
    return Printer(listing).expr(e)


def print_stmt(s: ast.Stmt, listing: bool = False) -> str:
    _deep_enough()
    return Printer(listing).stmt(s)
