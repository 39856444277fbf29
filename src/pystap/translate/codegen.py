"""Pass 3: the elaborated script → Python source for the module's ``code``.

The generated code is straight-line Python, one function per probe handler
(``probe_<n>(c)``) and per script function (``fn_<name>_<n>(c, ...)``), with
script locals as Python locals and globals as module-level names or runtime
map objects.  It calls only the names of the runtime's module ABI
(:mod:`pystap.runtime.prelude`, which this pass deliberately does not import:
the contract is the names).  No tree is walked at run time.

Error locations cost nothing on the hot path: every emitted line that can
fail is recorded in ``_LOC`` (line → ``identifier 'a' at FILE:L:C``); the
runtime looks the failing line up in the traceback.  Division carries its
``operator '/'`` location explicitly, as SystemTap names the operator.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pystap.lang import ast as A
from pystap.lang.printf_format import memory_dump_refusal
from pystap.lang.tokens import Token
from pystap.probes import captures
from pystap.tapset import builtins as native

_INLINE_CONTEXT = {"pid": "c.pid", "tid": "c.tid", "cpu": "c.cpu"}
_ARITH = {"+": "_add", "-": "_sub", "*": "_mul", "<<": "_shl", ">>": "_shr", ">>>": "_lshr"}
_BITWISE = {"&", "|", "^"}
_PRINT_NAMES = {"print", "println", "printd", "printdln", "printf", "sprint", "sprintln", "sprintd",
                "sprintdln", "sprintf", "print_char"}


class CodegenError(Exception):
    """A construct this code generator cannot translate (with its token)."""

    def __init__(self, message: str, tok: Token | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.tok = tok

    def __str__(self) -> str:
        if self.tok is None:
            return f"semantic error: {self.message}"
        return f"semantic error: {self.message}: {self.tok.describe()}"


def mangle(name: str) -> str:
    """A Python identifier for a script name (bijective: ``_`` doubles, others hex)."""
    out = []
    for ch in name:
        if ch == "_":
            out.append("__")
        elif ch.isascii() and ch.isalnum():
            out.append(ch)
        else:
            out.append(f"_x{ord(ch):02x}")
    return "".join(out)


def where(tok: Token | None) -> str | None:
    return None if tok is None or tok.loc.line == 0 else tok.describe()


@dataclass
class GlobalInfo:
    decl: A.GlobalDecl
    py: str
    kind: str  # long | string | stats
    arity: int
    key_types: str  # "l"/"s" per key
    hist: tuple | None = None  # ("log",) | ("linear", lo, hi, w)
    shift: int = -1


@dataclass
class Generated:
    """Result of code generation."""

    code: str
    # (probe, handler, family, point, params)
    probes: list[tuple[A.DerivedProbe | None, str, str, str, dict[str, Any]]]
    globals: list[str] = field(default_factory=list)


class _Emitter:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.loc: dict[int, str] = {}
        self.indent = 0

    def line(self, text: str, tok: Token | None = None) -> None:
        self.lines.append("    " * self.indent + text)
        w = where(tok)
        if w is not None:
            self.loc[len(self.lines)] = w


class CodeGenerator:
    """Translate one :class:`~pystap.lang.ast.ElaboratedScript`."""

    def __init__(self, script: A.ElaboratedScript, *, maxstringlen: int = 512) -> None:
        self.script = script
        self.maxstr = maxstringlen - 1
        self.em = _Emitter()
        self.globals: dict[int, GlobalInfo] = {}
        self.functions: dict[int, str] = {}
        self.overloads: dict[tuple[int, ...], str] = {}
        self.formats: dict[str, str] = {}
        self.regexes: dict[str, str] = {}
        self.tmp = 0
        self.in_function: A.FunctionDecl | None = None
        self.overloaded: set[int] = set()
        self.loop_depth = 0
        self.current_probe: A.DerivedProbe | None = None
        self.capture_plan = captures.Plan()

    # ------------------------------------------------------------ helpers

    def cstr(self, text: str) -> str:
        """A string literal's run-time value: SystemTap's strings are C strings, so a ``\\0``
        escape ends the literal (``"a\\0b"`` is ``"a"``), and at most MAXSTRINGLEN - 1 bytes."""
        return text.split("\0", 1)[0][: self.maxstr]

    def fresh(self, prefix: str = "_t") -> str:
        self.tmp += 1
        return f"{prefix}{self.tmp}"

    def fmt_const(self, text: str) -> str:
        name = self.formats.get(text)
        if name is None:
            name = self.formats[text] = f"_F{len(self.formats)}"
        return name

    def regex_const(self, text: str) -> str:
        name = self.regexes.get(text)
        if name is None:
            name = self.regexes[text] = f"_R{len(self.regexes)}"
        return name

    def ginfo(self, e: A.Expr | None) -> GlobalInfo | None:
        if isinstance(e, A.Symbol) and isinstance(e.referent, A.GlobalDecl):
            return self.globals.get(id(e.referent))
        return None

    def local_name(self, sym: A.Symbol | A.Decl) -> str:
        return "l_" + mangle(sym.name)

    # ------------------------------------------------------------ globals

    def _kind(self, t: A.Type) -> str:
        if t is A.Type.STRING:
            return "string"
        if t is A.Type.STATS:
            return "stats"
        return "long"

    def collect_globals(self) -> None:
        hist: dict[int, tuple] = {}
        shift: dict[int, int] = {}
        roots: list[A.Node] = [p.body for p in self.script.probes]
        roots += [p.condition for p in self.script.probes if p.condition is not None]
        roots += [f.body for f in self.script.functions]
        for root in roots:
            for n in A.walk(root):
                if isinstance(n, A.HistogramOp):
                    d = _stat_decl(n.stat)
                    if d is not None:
                        hist[id(d)] = (n.kind, *n.params)
                elif isinstance(n, A.StatOp) and n.op == "@variance":
                    d = _stat_decl(n.stat)
                    if d is not None:
                        shift[id(d)] = n.params[0] if n.params else 0
        for g in self.script.globals:
            kind = self._kind(g.type)
            arity = g.arity or 0
            keys = "".join("s" if t is A.Type.STRING else "l" for t in g.key_types)
            if len(keys) < arity:
                keys += "l" * (arity - len(keys))
            self.globals[id(g)] = GlobalInfo(g, "G_" + mangle(g.name), kind, arity, keys,
                                             hist.get(id(g)), shift.get(id(g), -1))

    def emit_globals(self) -> None:
        em = self.em
        table = []
        for info in self.globals.values():
            g = info.decl
            hist = "None"
            if info.hist is not None:
                # the owner lets the runtime fail initialisation for an unusable linear layout
                hist = "_Hist(" + ", ".join([*(repr(x) for x in info.hist), f"owner={g.name!r}"]) + ")"
            if info.arity:
                size = "None" if g.size is None else str(g.size)
                em.line(f"{info.py} = _Map({g.name!r}, {info.arity}, {info.kind!r}, {size}, {bool(g.wrap)},"
                        f" {hist}, {info.shift})", g.tok)
            elif info.kind == "stats":
                em.line(f"{info.py}_H = {hist}")
                em.line(f"{info.py} = _Stat({info.py}_H, {info.shift})")
            else:
                init: Any = g.init.value if g.init is not None else ("" if info.kind == "string" else 0)
                if isinstance(init, str):
                    init = self.cstr(init)
                em.line(f"{info.py} = {init!a}")
            table.append(f"{g.name!r}: ({info.py!r}, {info.kind!r}, {info.arity})")
        em.line("_GLOBALS = {" + ", ".join(table) + "}")

    def scalar_globals(self) -> list[str]:
        return [i.py for i in self.globals.values() if not i.arity and i.kind != "stats"]

    # ------------------------------------------------------------ top level

    def generate(self) -> Generated:
        self.collect_globals()
        for f in self.script.functions:
            self.functions[id(f)] = f"fn_{mangle(f.name)}_{len(self.functions)}"
        for root in [p.body for p in self.script.probes] + [f.body for f in self.script.functions]:
            for n in A.walk(root):
                if isinstance(n, A.FunctionCall) and len(n.referents) > 1:
                    self.overloaded.update(id(r) for r in n.referents)
        try:
            self.capture_plan = captures.plan(self.script)
        except captures.CaptureError as exc:
            raise CodegenError(exc.message, exc.tok) from None
        em = self.em
        em.line("# pystap module code: generated by pystap.translate.codegen; do not edit")
        # the level the code was generated for; the runtime refuses a header that says otherwise
        em.line(f"_PRIVILEGE = {int(self.script.privilege)}")
        self.emit_globals()
        body_em = self.em
        self.em = _Emitter()
        probes: list[tuple[A.DerivedProbe | None, str, str, str, dict[str, Any]]] = []
        for f in self.script.functions:
            self.emit_function(f)
        for i, p in enumerate(self.script.probes):
            name = f"probe_{i}"
            self.emit_probe(p, name, i)
            probes.append((p, name, p.family, p.point, self.manifest_params(p)))
            entry = self.capture_plan.entry.get(id(p))
            if entry:
                probes.append(self.emit_entry_companion(p, i, entry))
        for key, name in self.overloads.items():
            self.emit_overload(key, name)
        code_em = self.em
        self.em = body_em
        for text, name in self.formats.items():
            em.line(f"{name} = _fmt({text!a})")
        for text, name in self.regexes.items():
            em.line(f"{name} = _re({text!a})")
        offset = len(em.lines)
        lines = em.lines + code_em.lines
        loc = dict(em.loc)
        loc.update({k + offset: v for k, v in code_em.loc.items()})
        loc_text = "_LOC = {" + ", ".join(f"{k}: {v!r}" for k, v in sorted(loc.items())) + "}"
        code = "\n".join([*lines, loc_text]) + "\n"
        return Generated(code=code, probes=probes, globals=[g.name for g in self.script.globals])

    def manifest_params(self, p: A.DerivedProbe) -> dict[str, Any]:
        """The probe's manifest parameters: the family's, minus its private catalogue keys
        (``_vars``), with the uprobe fetch list trimmed to what the handler uses."""
        params = {k: v for k, v in p.params.items() if not k.startswith("_")}
        fetch = self.capture_plan.fetch.get(id(p))
        if fetch is not None:
            params["fetch"] = list(fetch)
        return params

    def emit_overload(self, key: tuple[int, ...], name: str) -> None:
        em = self.em
        funcs = ", ".join(self.functions[k] for k in key)
        em.line(f"def {name}(c, *a):")
        em.indent += 1
        em.line(f"for f in ({funcs},):")
        em.line("    try:")
        em.line("        return f(c, *a)")
        em.line("    except _Next:")
        em.line("        pass")
        em.line("raise _Next()")
        em.indent -= 1
        em.line("")

    def _locals_of(self, body: A.Node, declared: Iterable[A.Decl], skip: set[str]) -> list[tuple[str, str]]:
        seen: dict[str, str] = {}
        for d in declared:
            if d.name not in skip:
                seen.setdefault(d.name, "" if d.type is A.Type.STRING else "0")
        for n in A.walk(body):
            if isinstance(n, A.Symbol) and isinstance(n.referent, A.LocalVar) and n.name not in skip:
                seen.setdefault(n.name, '""' if n.referent.type is A.Type.STRING else "0")
        return [("l_" + mangle(k), '""' if v in ('""', "") else "0") for k, v in seen.items()]

    def _prologue(self, body: A.Node, declared: Iterable[A.Decl], skip: set[str]) -> None:
        em = self.em
        scalars = self.scalar_globals()
        if scalars:
            em.line("global " + ", ".join(scalars))
        for py, init in self._locals_of(body, declared, skip):
            em.line(f"{py} = {init}")

    def emit_entry_companion(self, p: A.DerivedProbe, slot: int,
                             entry: list[str]) -> tuple[A.DerivedProbe, str, str, str, dict[str, Any]]:
        """The hidden entry probe of a .return probe that reads its function's parameters.

        At the return the argument registers are gone, so (as SystemTap's ``@entry``) the values
        are captured by a uprobe at the entry and handed to the matching return, per thread.
        """
        name = f"probe_{slot}_entry"
        keys = tuple(captures.field_key(spec) for spec in entry)
        self.em.line(f"def {name}(c):")
        self.em.line(f"    _entry_push(c, {slot}, {keys!r})")
        self.em.line("")
        params = self.manifest_params(p)
        params.update({"return": False, "fetch": ["comm=$comm:string", *entry]})
        point = p.point[: -len(".return")] if p.point.endswith(".return") else p.point
        return p, name, p.family, point, params

    def emit_probe(self, p: A.DerivedProbe, name: str, slot: int = -1) -> None:
        em = self.em
        self.in_function = None
        self.current_probe = p
        em.line(f"def {name}(c):")
        em.indent += 1
        entry = self.capture_plan.entry.get(id(p))
        if entry:
            keys = tuple(captures.field_key(spec) for spec in entry)
            em.line(f"_entry_pop(c, {slot}, {keys!r})")
        self._prologue(p.body, p.locals, set())
        self._provided(p)
        if p.condition is not None:
            em.line(f"if not ({self.cond(p.condition)}):", p.condition.tok)
            em.line("    return")
        self.block(p.body)
        em.line("return")
        em.indent -= 1
        em.line("")
        self.current_probe = None

    def _provided(self, p: A.DerivedProbe) -> None:
        """Fill the locals a family provides (``name``, ``argstr`` ...) that the handler reads."""
        if not p.provided:
            return
        used = {n.name for n in A.walk(p.body)
                if isinstance(n, A.Symbol) and isinstance(n.referent, A.LocalVar)}
        for name in sorted(set(p.provided) & used):
            self.em.line(f"{self.local_name_str(name)} = _ctxvar(c, {name!r})")

    def local_name_str(self, name: str) -> str:
        return "l_" + mangle(name)

    def emit_function(self, f: A.FunctionDecl) -> None:
        em = self.em
        self.in_function = f
        params = [self.local_name(p) for p in f.params]
        em.line(f"def {self.functions[id(f)]}({', '.join(['c', *params])}):")
        em.indent += 1
        if isinstance(f.body, A.EmbeddedCode):
            raise CodegenError("embedded C code cannot be translated by pystap", f.tok)
        em.line("if c.nest >= _MAXNEST:", f.tok)
        em.line("    _nest_error()", f.tok)
        em.line("c.nest += 1")
        em.line("try:")
        em.indent += 1
        self._prologue(f.body, f.locals, {p.name for p in f.params})
        self.block(f.body)
        rt = f.inferred_type if f.inferred_type is not A.Type.UNKNOWN else f.return_type
        em.line('return ""' if rt is A.Type.STRING else "return 0")
        em.indent -= 1
        em.line("finally:")
        em.line("    c.nest -= 1")
        em.indent -= 1
        em.line("")
        self.in_function = None

    # ------------------------------------------------------------ statements

    def account(self, n: int, tok: Token | None) -> None:
        if n > 0:
            self.em.line(f"c.act -= {n}")
            self.em.line("if c.act < 0:", tok)
            self.em.line("    _maxact()", tok)

    def block(self, b: A.Stmt) -> None:
        stmts = b.statements if isinstance(b, A.Block) else [b]
        real = [s for s in stmts if not isinstance(s, (A.NullStatement, A.Block))]
        self.account(len(real), stmts[0].tok if stmts else None)
        before = len(self.em.lines)
        for s in stmts:
            self.stmt(s)
        if len(self.em.lines) == before:
            self.em.line("pass")

    def body(self, s: A.Stmt) -> None:
        self.em.indent += 1
        self.block(s)
        self.em.indent -= 1

    def stmt(self, s: A.Stmt) -> None:
        em = self.em
        if isinstance(s, A.Block):
            self.block(s)
        elif isinstance(s, A.NullStatement):
            pass
        elif isinstance(s, A.ExprStatement):
            self.expr_stmt(s.expr)
        elif isinstance(s, A.If):
            em.line(f"if {self.cond(s.cond)}:", s.cond.tok)
            self.body(s.then)
            if s.else_ is not None:
                em.line("else:")
                self.body(s.else_)
        elif isinstance(s, A.While):
            em.line("while True:")
            em.indent += 1
            em.line(f"if not ({self.cond(s.cond)}):", s.cond.tok)
            em.line("    break")
            self.account(1, s.tok)
            self.loop_body(s.body)
            em.indent -= 1
        elif isinstance(s, A.For):
            if s.init is not None:
                self.expr_stmt(s.init)
            first = self.fresh("_first")
            em.line(f"{first} = True")
            em.line("while True:")
            em.indent += 1
            if s.incr is not None:
                em.line(f"if not {first}:")
                em.indent += 1
                self.expr_stmt(s.incr)
                em.indent -= 1
            em.line(f"{first} = False")
            if s.cond is not None:
                em.line(f"if not ({self.cond(s.cond)}):", s.cond.tok)
                em.line("    break")
            self.account(1, s.tok)
            self.loop_body(s.body)
            em.indent -= 1
        elif isinstance(s, A.Foreach):
            self.foreach(s)
        elif isinstance(s, A.Return):
            if self.in_function is None:
                em.line("return")
            elif s.value is None:
                em.line("return 0")
            else:
                em.line(f"return {self.expr(s.value)}", s.value.tok)
        elif isinstance(s, A.Delete):
            self.delete(s.target)
        elif isinstance(s, A.Next):
            if self.in_function is None:
                em.line("return")
            else:  # the next overload, or "all functions exhausted" at the call (see call())
                em.line("raise _Next()")
        elif isinstance(s, A.Break):
            em.line("break")
        elif isinstance(s, A.Continue):
            em.line("continue")
        elif isinstance(s, A.TryCatch):
            em.line("try:")
            self.body(s.try_block)
            var = self.fresh("_e")
            em.line(f"except _Err as {var}:")
            em.indent += 1
            if s.catch_var is not None:
                em.line(f"{self.local_name(s.catch_var)} = {var}.message")
            self.account(1, s.tok)
            self.block(s.catch_block)
            em.indent -= 1
        elif isinstance(s, A.EmbeddedCode):
            raise CodegenError("embedded C code cannot be translated by pystap", s.tok)
        else:
            raise CodegenError(f"unsupported statement {type(s).__name__}", s.tok)

    def loop_body(self, body: A.Stmt) -> None:
        self.loop_depth += 1
        self.block(body)
        self.loop_depth -= 1

    def foreach(self, s: A.Foreach) -> None:
        em = self.em
        if isinstance(s.array, A.HistogramOp):
            stat = self.stat_ref(s.array.stat)
            var = self.local_name(s.indexes[0])
            lim = ""
            if s.limit is not None:
                lim = f"[:max(0, {self.expr(s.limit)})]"
            em.line(f"for {var} in _hist_keys({stat}){lim}:", s.tok)
            em.indent += 1
            if s.value is not None:
                # ``foreach (count = bucket in @hist_*(s))``: the bucket's count, as stap assigns it
                em.line(f"{self.local_name(s.value)} = {stat}.bucket({var})", s.tok)
            self.account(1, s.tok)
            self.loop_body(s.body)
            em.indent -= 1
            return
        info = self.ginfo(s.array)
        if info is None or not info.arity:
            raise CodegenError("foreach needs a global array", s.array.tok)
        k = self.fresh("_k")
        pattern = "None"
        if s.slice is not None:
            pattern = self.key_tuple(s.slice)
        limit = "None" if s.limit is None else self.expr(s.limit)
        if s.sort_column is None and s.limit is None and s.slice is None:
            src = f"list({info.py}.d)"
        else:
            col = "None" if s.sort_column is None else str(s.sort_column)
            aggr = repr(s.sort_aggr) if s.sort_aggr else "None"
            src = f"_keys({info.py}, {col}, {s.sort_direction}, {aggr}, {limit}, {pattern})"
        em.line(f"for {k} in {src}:", s.tok)
        em.indent += 1
        names = [self.local_name(i) for i in s.indexes]
        if len(names) == 1:
            em.line(f"{names[0]} = {k}")
        else:
            em.line(f"{', '.join(names)} = {k}")
        if s.value is not None:
            em.line(f"{self.local_name(s.value)} = {info.py}.d.get({k}, {info.py}.default)")
        self.account(1, s.tok)
        self.loop_body(s.body)
        em.indent -= 1

    def delete(self, t: A.Expr) -> None:
        em = self.em
        if isinstance(t, A.ArrayIndex):
            info = self.ginfo(t.base)
            if info is None:
                raise CodegenError("delete of an element needs a global array", t.tok)
            if any(i is None for i in t.indexes):
                em.line(f"{info.py}.delete_slice({self.key_tuple(t.indexes)})", t.tok)
            else:
                em.line(f"{info.py}.delete({self.key(t.indexes)})", t.tok)
            return
        info = self.ginfo(t)
        if info is not None:
            if info.arity or info.kind == "stats":
                em.line(f"{info.py}.clear()", t.tok)
            else:
                em.line(f"{info.py} = " + ('""' if info.kind == "string" else "0"))
            return
        if isinstance(t, A.Symbol):
            em.line(f"{self.local_name(t)} = " + ('""' if t.type is A.Type.STRING else "0"))
            return
        raise CodegenError("delete needs a variable or an array element", t.tok)

    def expr_stmt(self, e: A.Expr) -> None:
        em = self.em
        if isinstance(e, A.Assign):
            target = e.target
            info = self.ginfo(target)
            if e.op == "<<<":
                if isinstance(target, A.ArrayIndex):
                    ai = self.ginfo(target.base)
                    em.line(f"{ai.py}.add({self.key(target.indexes)}, {self.expr(e.value)})",  # type: ignore[union-attr]
                            target.base.tok)
                else:
                    em.line(f"{info.py}.add({self.expr(e.value)})", target.tok)  # type: ignore[union-attr]
                return
            if isinstance(target, A.Symbol):
                name = info.py if info is not None else self.local_name(target)
                em.line(f"{name} = {self.combine(e, name)}", e.tok)
                return
            if isinstance(target, A.ArrayIndex) and self.ginfo(target.base) is not None:
                ai = self.ginfo(target.base)
                key = self.key(target.indexes)
                if e.op == "=":
                    em.line(f"{ai.py}.set({key}, {self.expr(e.value)})", target.base.tok)  # type: ignore[union-attr]
                else:
                    k = self.fresh("_k")
                    em.line(f"{k} = {key}", e.tok)
                    # an overflow is reported near the array, as for a plain assignment
                    em.line(f"{ai.py}.set({k}, {self.combine(e, f'{ai.py}.get({k})')})",  # type: ignore[union-attr]
                            target.base.tok)
                return
        if isinstance(e, A.Crement) and isinstance(e.operand, A.ArrayIndex) and self.ginfo(e.operand.base):
            ai = self.ginfo(e.operand.base)
            k = self.fresh("_k")
            fn = "_add" if e.op == "++" else "_sub"
            em.line(f"{k} = {self.key(e.operand.indexes)}", e.tok)
            em.line(f"{ai.py}.set({k}, {fn}({ai.py}.get({k}), 1))", e.operand.base.tok)  # type: ignore[union-attr]
            return
        if isinstance(e, A.Crement) and isinstance(e.operand, A.Symbol):
            info = self.ginfo(e.operand)
            name = info.py if info is not None else self.local_name(e.operand)
            fn = "_add" if e.op == "++" else "_sub"
            em.line(f"{name} = {fn}({name}, 1)", e.tok)
            return
        em.line(self.expr(e), e.tok)

    # ------------------------------------------------------------ expressions

    def cond(self, e: A.Expr) -> str:
        if isinstance(e, A.Comparison):
            return f"({self.expr(e.left)} {e.op} {self.expr(e.right)})"
        if isinstance(e, A.Logical):
            op = "and" if e.op == "&&" else "or"
            return f"({self.cond(e.left)} {op} {self.cond(e.right)})"
        if isinstance(e, A.Unary) and e.op == "!":
            return f"(not {self.cond(e.operand)})"
        return self.expr(e)

    def key(self, indexes: list[A.Expr | None]) -> str:
        if len(indexes) == 1:
            return self.expr(indexes[0])  # type: ignore[arg-type]
        return "(" + ", ".join(self.expr(i) for i in indexes) + ")"  # type: ignore[arg-type]

    def key_tuple(self, indexes: list[A.Expr | None]) -> str:
        return "(" + "".join(("None" if i is None else self.expr(i)) + ", " for i in indexes) + ")"

    def combine(self, e: A.Assign, current: str) -> str:
        """The new value of ``target op= value`` given the current value's expression."""
        value = self.expr(e.value)
        op = e.op
        if op == "=":
            return value
        if op == ".=":
            return f"({current} + {value})[:_SL]"
        base = op[:-1]
        if base in _ARITH:
            return f"{_ARITH[base]}({current}, {value})"
        if base in ("/", "%"):
            # stap names the right-hand side for a zero divisor of ``/=`` and ``%=``
            fn = "_div" if base == "/" else "_mod"
            return f"{fn}({current}, {value}, {where(e.value.tok)!r})"
        if base in _BITWISE:
            return f"({current} {base} {value})"
        raise CodegenError(f"unsupported assignment operator {op}", e.tok)

    def stat_ref(self, e: A.Expr) -> str:
        """A :class:`Stat` (or ``None`` for a missing array element)."""
        if isinstance(e, A.ArrayIndex):
            info = self.ginfo(e.base)
            if info is None:
                raise CodegenError("statistic of a non-global", e.tok)
            return f"{info.py}.stat({self.key(e.indexes)})"
        info = self.ginfo(e)
        if info is None:
            raise CodegenError("statistic of a non-global", e.tok)
        return info.py

    def hist_spec(self, e: A.Expr) -> str:
        target = e.base if isinstance(e, A.ArrayIndex) else e
        info = self.ginfo(target)
        if info is None:
            raise CodegenError("histogram of a non-global", e.tok)
        return f"{info.py}.hist" if info.arity else f"{info.py}_H"

    def expr(self, e: A.Expr) -> str:
        if isinstance(e, A.NumberLit):
            return repr(e.value)
        if isinstance(e, A.StringLit):
            return ascii(self.cstr(e.value))
        if isinstance(e, A.Symbol):
            info = self.ginfo(e)
            if info is not None:
                return info.py
            return self.local_name(e)
        if isinstance(e, A.ArrayIndex):
            if isinstance(e.base, A.HistogramOp):
                h = e.base
                idx = self.expr(e.indexes[0])  # type: ignore[arg-type]
                # stap names the histogram operator for "empty aggregate" / "index out of range"
                loc = where(h.tok)
                return f"_hist_bucket({self.stat_ref(h.stat)}, {self.hist_spec(h.stat)}, {idx}, {loc!r})"
            info = self.ginfo(e.base)
            if info is None:
                raise CodegenError("index of a non-global array", e.tok)
            return f"{info.py}.get({self.key(e.indexes)})"
        if isinstance(e, A.FunctionCall):
            return self.call(e)
        if isinstance(e, A.PrintFormat):
            return self.print_format(e)
        if isinstance(e, A.Unary):
            v = self.expr(e.operand)
            if e.op == "-":
                return f"_neg({v})"
            if e.op == "+":
                return v
            if e.op == "!":
                return f"(0 if {v} else 1)"
            return f"(~{v})"
        if isinstance(e, A.Binary):
            a, b = self.expr(e.left), self.expr(e.right)
            if e.op == ".":
                return f"({a} + {b})[:_SL]"
            if e.op in _ARITH:
                return f"{_ARITH[e.op]}({a}, {b})"
            if e.op in ("/", "%"):
                fn = "_div" if e.op == "/" else "_mod"
                return f"{fn}({a}, {b}, {where(e.tok)!r})"
            if e.op in _BITWISE:
                return f"({a} {e.op} {b})"
            raise CodegenError(f"unsupported operator {e.op}", e.tok)
        if isinstance(e, (A.Logical, A.Comparison)):
            return f"(1 if {self.cond(e)} else 0)"
        if isinstance(e, A.RegexMatch):
            call = f"_rmatch(c, {self.regex_const(e.pattern)}, {self.expr(e.left)})"
            return call if e.op == "=~" else f"(1 - {call})"
        if isinstance(e, A.Ternary):
            return f"({self.expr(e.true_expr)} if {self.cond(e.cond)} else {self.expr(e.false_expr)})"
        if isinstance(e, A.Assign):
            return self.assign_expr(e)
        if isinstance(e, A.Crement):
            return self.crement_expr(e)
        if isinstance(e, A.InArray):
            if isinstance(e.array, A.HistogramOp):
                idx = self.expr(e.indexes[0])  # type: ignore[arg-type]
                return f"(1 if 0 <= {idx} < {self.hist_spec(e.array.stat)}.buckets else 0)"
            info = self.ginfo(e.array)
            if info is None:
                raise CodegenError("'in' needs a global array", e.tok)
            if any(i is None for i in e.indexes):
                return f"{info.py}.exists_slice({self.key_tuple(e.indexes)})"
            return f"{info.py}.exists({self.key(e.indexes)})"
        if isinstance(e, A.StatOp):
            if e.op in ("@count", "@sum"):  # never an error: 0 for an empty aggregate
                return f"_agg({self.stat_ref(e.stat)}, {e.op!r})"
            # "empty aggregate" is reported near the operator (``operator '@max' at ...``), as stap does
            return f"_agg({self.stat_ref(e.stat)}, {e.op!r}, {where(e.tok)!r})"
        if isinstance(e, A.TargetSymbol):
            return self.target_symbol(e)
        raise CodegenError(f"unsupported expression {type(e).__name__}", e.tok)

    def target_symbol(self, e: A.TargetSymbol) -> str:
        """``$name``: a value of the event (wrapped to int64: fetches may be unsigned 64-bit)."""
        if e.components or e.addressof or (e.pretty and not e.name.startswith("$$")):
            raise CodegenError("target variable expressions are not supported here", e.tok)
        p = self.current_probe
        if e.name in ("$$parms", "$$vars"):
            parms = self.capture_plan.parms.get(id(e), [])
            return f"_parms(c, {tuple(parms)!r}, {len(e.pretty)})"
        if e.name == "$$return":
            return f"_parms(c, (('return', '$return', None),), {len(e.pretty)})"
        if e.name == "$$locals":
            return "''"
        if p is not None and e.name in ("$$name", "$$provider"):
            value = p.params.get("symbol" if e.name == "$$name" else "provider", "")
            return ascii(str(value)[: self.maxstr])
        if e.name == "$comm" and e.type is A.Type.STRING:
            # the daemon delivers a record's own ``comm`` field as the task's comm (execname())
            return "(c.fields.get('$comm') or c.fields.get('comm', ''))"
        if e.type is A.Type.STRING:
            return f"(c.fields.get({e.name!r}) or '')"
        return f"_wrap(c.fields.get({e.name!r}, 0))"

    def assign_expr(self, e: A.Assign) -> str:
        target = e.target
        if isinstance(target, A.TargetSymbol):
            raise CodegenError("writing a target variable is not supported by pystap (handlers run after the "
                               "hit, outside the traced process)", target.tok)
        if e.op == "<<<":
            if isinstance(target, A.ArrayIndex):
                info = self.ginfo(target.base)
                return f"{info.py}.add({self.key(target.indexes)}, {self.expr(e.value)})"  # type: ignore[union-attr]
            return f"{self.ginfo(target).py}.add({self.expr(e.value)})"  # type: ignore[union-attr]
        if isinstance(target, A.Symbol):
            info = self.ginfo(target)
            name = info.py if info is not None else self.local_name(target)
            return f"({name} := {self.combine(e, name)})"
        if isinstance(target, A.ArrayIndex):
            info = self.ginfo(target.base)
            if info is None:
                raise CodegenError("Expecting lvalue for assignment", e.tok)
            key, value = self.key(target.indexes), self.expr(e.value)
            if e.op == "=":
                return f"{info.py}.set({key}, {value})"
            if e.op == ".=":
                return f"{info.py}.concat({key}, {value}, _SL)"
            base = e.op[:-1]
            if base in _ARITH:
                return f"{info.py}.opset({key}, {_ARITH[base]}, {value})"
            if base in ("/", "%"):
                fn = "_div" if base == "/" else "_mod"
                return f"{info.py}.opset({key}, {fn}, {value}, {where(e.value.tok)!r})"
            if base in _BITWISE:
                return f"{info.py}.bitop({key}, {base!r}, {value})"
            raise CodegenError(f"unsupported assignment operator {e.op}", e.tok)
        raise CodegenError("Expecting lvalue for assignment", e.tok)

    def crement_expr(self, e: A.Crement) -> str:
        fn = "_add" if e.op == "++" else "_sub"
        undo = "_sub" if e.op == "++" else "_add"
        target = e.operand
        if isinstance(target, A.TargetSymbol):
            raise CodegenError("writing a target variable is not supported by pystap (handlers run after the "
                               "hit, outside the traced process)", target.tok)
        if isinstance(target, A.Symbol):
            info = self.ginfo(target)
            name = info.py if info is not None else self.local_name(target)
            new = f"({name} := {fn}({name}, 1))"
            return new if e.prefix else f"{undo}({new}, 1)"
        if isinstance(target, A.ArrayIndex):
            info = self.ginfo(target.base)
            if info is None:
                raise CodegenError("Expecting lvalue for assignment", e.tok)
            delta = 1 if e.op == "++" else -1
            return f"{info.py}.incr({self.key(target.indexes)}, {delta}, {not e.prefix})"
        raise CodegenError("Expecting lvalue for assignment", e.tok)

    def call(self, e: A.FunctionCall) -> str:
        args = [self.expr(a) for a in e.args]
        if e.referents:
            if len(e.referents) == 1:
                fn = self.functions[id(e.referents[0])]
            else:
                key = tuple(id(r) for r in e.referents)
                fn = self.overloads.get(key) or self.overloads.setdefault(key, f"ovl_{len(self.overloads)}")
            if len(e.referents) > 1 or any(_has_next(r) for r in e.referents):
                # a ``next`` past the last overload is "all functions exhausted", reported at
                # the call as stap does (c->next checked after the call)
                return f"_callx({fn}, {where(e.tok)!r}, {', '.join(['c', *args])})"
            return f"{fn}({', '.join(['c', *args])})"
        if e.name in _INLINE_CONTEXT and not args:
            return _INLINE_CONTEXT[e.name]
        if e.name in native.UNAVAILABLE:
            why = native.UNAVAILABLE[e.name]
            raise CodegenError(f"function {e.name}() is not available with pystap ({why})", e.tok)
        if e.name in captures.READERS:
            if id(e) not in self.capture_plan.keys:
                raise CodegenError(f"{e.name}() is not reachable from a probe that captures user memory",
                                   e.tok)
            args.insert(0, repr(self.capture_plan.keys[id(e)]))
        return f"_b_{e.name}({', '.join(['c', *args])})"

    def to_text(self, a: A.Expr) -> str:
        v = self.expr(a)
        if a.type is A.Type.STRING:
            return v
        return f"str({v})"

    def print_format(self, e: A.PrintFormat) -> str:
        name = e.name
        if e.histogram is not None:
            h = e.histogram
            text = f"_hist_render({self.stat_ref(h.stat)}, {self.hist_spec(h.stat)})"
            if name.endswith("ln"):
                text += " + " + ascii("\n")
            return f"c.w({text})" if not name.startswith("s") else f"({text})[:_SL]"
        if name in ("printf", "sprintf"):
            if why := memory_dump_refusal(e.format or ""):  # %m/%M: see pystap.printf_format
                raise CodegenError(why, e.tok)
            fmt = self.fmt_const(e.format or "")
            text = f"{fmt}({', '.join(self.expr(a) for a in e.args)})"
        elif name == "print_char":
            text = f"chr({self.expr(e.args[0])} & 255)"
        else:
            parts = [self.to_text(a) for a in e.args]
            if name in ("printd", "printdln", "sprintd", "sprintdln"):
                sep = ascii(self.cstr(e.delimiter or ""))
                text = f"{sep}.join(({', '.join(parts)},))" if parts else '""'
            else:
                text = " + ".join(parts) if parts else '""'
            if name.endswith("ln"):
                text = f"{text} + " + ascii("\n") if parts else ascii("\n")
        if name.startswith("s"):
            return f"({text})[:_SL]"
        return f"c.w({text})"


def _has_next(fn: A.FunctionDecl) -> bool:
    return isinstance(fn.body, A.Block) and any(isinstance(n, A.Next) for n in A.walk(fn.body))


def _stat_decl(e: A.Expr) -> A.GlobalDecl | None:
    if isinstance(e, A.ArrayIndex):
        e = e.base
    if isinstance(e, A.Symbol) and isinstance(e.referent, A.GlobalDecl):
        return e.referent
    return None


def generate(script: A.ElaboratedScript, *, maxstringlen: int = 512) -> Generated:
    """Translate an elaborated script (see :class:`CodeGenerator`)."""
    return CodeGenerator(script, maxstringlen=maxstringlen).generate()
