"""Pass 3: what each kernel probe must capture at the hit for its handler to read.

A pystap handler runs after the event, in another process, so registers,
arguments and user memory must be *captured in the kernel at the hit*:
for uprobe families as fetch arguments of the uprobe definition
(``r__di=%di:u64``, ``u__1=+0(%si):string``), for ``syscall.NAME`` path
arguments by the daemon's BPF template (``$argN_str``).  Nothing can race
with the traced process, and nothing is read that the script does not use.

This pass walks every kernel probe's handler and the script functions it
reaches and plans:

* the uprobe fetch list of each probe: the base (``comm``; ``retval`` in a
  .return probe) plus the ``$name`` target variables it uses (from the
  catalogue the family builder left in ``params["_vars"]``) plus the
  registers and stack slots that ``register()``, ``*_arg(N)``,
  ``returnval()`` and ``uaddr()`` read;
* for every ``user_*`` reader call, the field key of its captured value.
  The reader's address must be a probe-time value -- a ``$name``,
  ``$return``, ``register("rsi")``, ``pointer_arg(N)`` and friends,
  ``returnval()``, optionally plus or minus a constant, through a local
  assigned once, or read through a 64-bit ``user_long()``-style reader
  (``user_string(user_long($argv + 8))`` is ``argv[1]``).  Anything else is
  refused here with a message that says what is supported, because the
  memory cannot be read later.

The field-key names are a contract with :mod:`pystap.runtime.tapset_uprobe`
(which cannot be imported from here): ``$r__<reg>``, ``$s__<slot>``,
``$u__<n>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pystap.lang import ast as A
from pystap.lang.tokens import Token
from pystap.syscalls import STRING_ARGS
from pystap.tapset import builtins

UPROBE_FAMILIES = frozenset(("process.function", "process.statement", "process.mark", "process.plt"))
SYSCALL_FAMILIES = frozenset(("syscall",))
MAX_FETCH = 32  # pystapd's limit per uprobe
MAX_DEREF = 3  # pystapd's limit of nested dereferences in one fetch argument
MAX_STACK_SLOT = 64
NULL_PAGE = 4096
USER_TOP = 1 << 47
ARG_REGISTERS = ("di", "si", "dx", "cx", "r8", "r9")

# register names as x86_64/registers.stp knows them -> (64-bit register, width)
REGISTERS: dict[str, tuple[str, int]] = {}
for _name, _reg in (("rax", "ax"), ("rbx", "bx"), ("rcx", "cx"), ("rdx", "dx"), ("rsi", "si"), ("rdi", "di"),
                    ("rbp", "bp"), ("rsp", "sp"), ("rip", "ip"), *((f"r{n}", f"r{n}") for n in range(8, 16))):
    REGISTERS[_name] = (_reg, 64)
for _reg in ("ax", "bx", "cx", "dx", "si", "di", "bp", "sp", "ip"):
    REGISTERS["e" + _reg] = (_reg, 32)
    REGISTERS[_reg] = (_reg, 16)
for _reg in ("a", "b", "c", "d"):
    REGISTERS[_reg + "l"] = (_reg + "x", 8)
    REGISTERS[_reg + "h"] = (_reg + "x", 8)
UNCAPTURABLE_REGISTERS = frozenset(("orig_rax", "xcs", "eflags", "xss", "orig_eax", "orig_ax", "cs", "flags",
                                    "ss"))

# functions whose value is a 64-bit argument slot (usable as an address)
POINTER_ARGS = frozenset(("pointer_arg", "ulong_arg", "long_arg", "u64_arg", "s64_arg", "longlong_arg",
                          "ulonglong_arg"))
ARG_FUNCTIONS = POINTER_ARGS | {"int_arg", "uint_arg", "s32_arg", "u32_arg"}
STRING_READERS = frozenset((
    "user_string", "user_string2", "user_string_n", "user_string_n2", "user_string_warn", "user_string2_warn",
    "user_string_n_warn", "user_string2_n_warn", "user_string_nofault", "user_string_n_nofault",
    "user_string_quoted", "user_string_n_quoted", "user_string_n2_quoted",
))
_INT_TYPES = {"char": "s8", "short": "s16", "ushort": "u16", "int": "s32", "uint": "u32", "long": "s64",
              "ulong": "u64", "int8": "s8", "uint8": "u8", "int16": "s16", "uint16": "u16", "int32": "s32",
              "uint32": "u32", "int64": "s64", "uint64": "u64"}
# reader name -> fetch type of the value it reads
READERS: dict[str, str] = {name: "string" for name in STRING_READERS}
for _kind, _type in _INT_TYPES.items():
    for _suffix in ("", "_warn", "_error"):
        if f"user_{_kind}{_suffix}" in builtins.NAMES:  # only the variants SystemTap has
            READERS[f"user_{_kind}{_suffix}"] = _type



class CaptureError(Exception):
    """A value the handler needs cannot be captured; ``tok`` is where it is used."""

    def __init__(self, message: str, tok: Token | None) -> None:
        super().__init__(message)
        self.message = message
        self.tok = tok


def register_fetch(reg: str) -> str:
    return f"r__{reg}=%{reg}:u64"


def stack_fetch(slot: int) -> str:
    return f"s__{slot}=$stack{slot}:u64"


def arg_fetch(n: int) -> str | None:
    """The fetch argument holding function argument ``n`` at entry (SysV: six registers, then the stack)."""
    if 1 <= n <= len(ARG_REGISTERS):
        return register_fetch(ARG_REGISTERS[n - 1])
    if len(ARG_REGISTERS) < n <= len(ARG_REGISTERS) + MAX_STACK_SLOT:
        return stack_fetch(n - len(ARG_REGISTERS))
    return None


def _arg_value(n: int) -> str | None:
    if 1 <= n <= len(ARG_REGISTERS):
        return f"%{ARG_REGISTERS[n - 1]}"
    if len(ARG_REGISTERS) < n <= len(ARG_REGISTERS) + MAX_STACK_SLOT:
        return f"$stack{n - len(ARG_REGISTERS)}"
    return None


@dataclass
class _Loc:
    """A probe-time address: ``offset`` plus a fetch value, or a syscall string argument."""

    sig: tuple[Any, ...]  # probe-independent description (for the field key)
    value: str = ""  # uprobe fetch value of the base (``%di``, ``+8(%si)``, ``$retval``)
    offset: int = 0
    syscall_arg: int = 0  # syscall.NAME: the argument number (the daemon captures its string)
    constant: int | None = None  # a literal address
    entry: bool = False  # captured at the function's entry (a .return probe's $parameter)


@dataclass
class Plan:
    """The result: per-probe fetch lists and per-call field keys."""

    fetch: dict[int, list[str]] = field(default_factory=dict)  # id(DerivedProbe) -> fetch list
    keys: dict[int, str | None] = field(default_factory=dict)  # id(FunctionCall) -> field key
    # id(TargetSymbol $$parms...) -> (name, field key, key of its captured string or None) per parameter
    parms: dict[int, list[tuple[str, str, str | None]]] = field(default_factory=dict)
    # id(DerivedProbe) of a .return probe -> what must be captured at the function's entry (its
    # parameters are gone at the return): fetch list of a companion entry probe
    entry: dict[int, list[str]] = field(default_factory=dict)


def field_key(spec: str) -> str:
    """The event field a fetch argument arrives as (``v_x=...`` -> ``$x``; the daemon's mapping)."""
    name = spec.split("=", 1)[0]
    return "$" + (name[2:] if name.startswith("v_") else name)


def _depth(value: str) -> int:
    return value.count("(")


MAX_OFFSET = 1 << 31  # the kernel keeps a fetch offset in an int (struct fetch_insn): larger ones wrap


def _deref(offset: int, value: str, tok: Token | None) -> str:
    """``[+-]OFF(VALUE)``, the offset in hex when it is large."""
    if abs(offset) >= MAX_OFFSET:
        raise CaptureError(f"offset {offset} is too large for a uprobe capture (the kernel takes offsets of "
                           f"at most {MAX_OFFSET - 1} bytes)", tok)
    text = str(abs(offset)) if abs(offset) < 10**9 else hex(abs(offset))
    return f"{'-' if offset < 0 else '+'}{text}({value})"


def _single_assignments(root: A.Node) -> dict[int, A.Expr]:
    """Locals assigned exactly once with ``=`` (and never otherwise written) -> their value."""
    values: dict[int, A.Expr] = {}
    spoiled: set[int] = set()
    for n in A.walk(root):
        target: A.Expr | None = None
        if isinstance(n, A.Assign):
            target = n.target
            if isinstance(target, A.Symbol) and isinstance(target.referent, A.LocalVar):
                key = id(target.referent)
                if n.op != "=" or key in values:
                    spoiled.add(key)
                else:
                    values[key] = n.value
            continue
        if isinstance(n, A.Crement):
            target = n.operand
        elif isinstance(n, A.Delete):
            target = n.target
        elif isinstance(n, A.Foreach):
            for s in [*n.indexes, *([n.value] if n.value else [])]:
                if s.referent is not None:
                    spoiled.add(id(s.referent))
        elif isinstance(n, A.TryCatch) and n.catch_var is not None and n.catch_var.referent is not None:
            spoiled.add(id(n.catch_var.referent))
        if isinstance(target, A.Symbol) and target.referent is not None:
            spoiled.add(id(target.referent))
    return {k: v for k, v in values.items() if k not in spoiled}


class _ProbePlanner:
    """Plans one derived probe (its body, condition and the functions it reaches)."""

    def __init__(self, probe: A.DerivedProbe, plan: Plan, sig_keys: dict[tuple[Any, ...], str],
                 functions: dict[int, A.FunctionDecl]) -> None:
        self.probe = probe
        self.plan = plan
        self.sig_keys = sig_keys
        self.functions = functions
        self.family = probe.family
        self.uprobe = probe.family in UPROBE_FAMILIES
        self.is_return = bool(probe.params.get("return"))
        self.vars: dict[str, str] = {}
        for spec in probe.params.get("_vars", []) or []:
            if isinstance(spec, str) and "\t" in spec:
                name, fetch = spec.split("\t", 1)
                self.vars[name] = fetch
        self.fetch: list[str] = ["comm=$comm:string"]
        if self.is_return:
            self.fetch.append("retval=$retval:s64")
        # a .return probe's $parameters (and what is read through them) are captured at the entry
        self.at_entry = bool(probe.params.get("_entry"))
        self.entry_fetch: list[str] = []
        self.assigned: dict[int, A.Expr] = {}
        self.where = ""

    # -- driver -------------------------------------------------------------------------------

    def run(self) -> None:
        roots: list[tuple[A.Node, str]] = [(self.probe.body, "")]
        if self.probe.condition is not None:
            roots.append((self.probe.condition, ""))
        seen: set[int] = set()
        i = 0
        while i < len(roots):
            root, where = roots[i]
            i += 1
            self.where = where
            self.assigned = _single_assignments(root)
            for n in A.walk(root):
                if isinstance(n, A.FunctionCall):
                    for fn in n.referents:
                        if id(fn) not in seen:
                            seen.add(id(fn))
                            roots.append((fn.body, f" (in function '{fn.name}')"))
                    if n.builtin is not None:
                        self.call(n)
                elif isinstance(n, A.TargetSymbol) and self.uprobe:
                    self.need_var(n)
        if self.uprobe:
            for fetch in (self.fetch, self.entry_fetch):
                if len(fetch) > MAX_FETCH:
                    raise CaptureError(f"probe '{self.probe.point}' would capture {len(fetch)} values at "
                                       f"each hit (pystapd allows {MAX_FETCH}); split the probe",
                                       self.probe.tok)
            self.plan.fetch[id(self.probe)] = self.fetch
            if self.entry_fetch:
                self.plan.entry[id(self.probe)] = self.entry_fetch

    def add_at(self, spec: str, entry: bool) -> None:
        if entry:
            if spec not in self.entry_fetch:
                self.entry_fetch.append(spec)
        else:
            self.add(spec)

    def add(self, spec: str) -> None:
        if self.uprobe and spec not in self.fetch:
            self.fetch.append(spec)

    def need_var(self, t: A.TargetSymbol) -> None:
        if t.name in ("$$parms", "$$vars"):
            self.need_parms(t)
            return
        spec = self.vars.get(t.name)
        if spec is not None:
            self.add_at(spec, self.at_entry)

    def need_parms(self, t: A.TargetSymbol) -> None:
        """``$$parms``: every captured parameter; pretty (``$$parms$``) also the strings of char pointers."""
        out: list[tuple[str, str, str | None]] = []
        for entry in self.probe.params.get("_parms", []) or []:
            name, _, text = str(entry).partition("\t")
            spec = self.vars.get("$" + name)
            if spec is None:
                continue
            self.add_at(spec, self.at_entry)
            string_key = None
            if t.pretty and text == "1":
                value = spec.split("=", 1)[1].rpartition(":")[0]
                sig = ("string", ("var", "$" + name), 0)
                key = self.sig_keys.get(sig)
                if key is None:
                    key = self.sig_keys[sig] = f"u__{len(self.sig_keys) + 1}"
                self.add_at(f"{key}=+0({value}):string", self.at_entry)
                string_key = "$" + key
            out.append((name, "$" + name, string_key))
        self.plan.parms[id(t)] = out

    # -- calls ----------------------------------------------------------------------------------

    def call(self, n: A.FunctionCall) -> None:
        name = n.name
        if name in ("register", "u_register"):
            reg = self.register_arg(n)
            if reg is not None:
                self.add(register_fetch(reg))
        elif name in ARG_FUNCTIONS:
            self.arg_call(n)
        elif name in ("returnval", "returnstr"):
            if not self.is_return:
                self.add(register_fetch("ax"))
        elif name == "uaddr":
            self.add(register_fetch("ip"))
        elif name in READERS:
            self.reader(n)

    def register_arg(self, n: A.FunctionCall) -> str | None:
        arg = n.args[0] if n.args else None
        if not isinstance(arg, A.StringLit):
            raise CaptureError(f"{n.name}() needs a literal register name (registers are captured at the "
                               f"probe hit){self.where}", n.tok)
        if arg.value in UNCAPTURABLE_REGISTERS:
            raise CaptureError(f"register '{arg.value}' cannot be captured by a uprobe (use the general "
                               f"registers: rax..r15, rip, rsp and their 32/16/8-bit names){self.where}",
                               arg.tok)
        spec = REGISTERS.get(arg.value)
        if spec is None:
            raise CaptureError(f"Unknown register: {arg.value}{self.where}", arg.tok)
        return spec[0]

    def arg_call(self, n: A.FunctionCall) -> None:
        if self.family in SYSCALL_FAMILIES or self.family.startswith("process.syscall"):
            return  # the syscall's own arguments arrive as $argN
        arg = n.args[0] if n.args else None
        if isinstance(arg, A.NumberLit):
            spec = arg_fetch(arg.value)
            if spec is not None:
                self.add(spec)
            return
        for i in range(1, len(ARG_REGISTERS) + 1):  # a run-time argument number: the register arguments
            self.add(arg_fetch(i) or "")

    # -- user memory readers ---------------------------------------------------------------------

    def reader(self, n: A.FunctionCall) -> None:
        kind = READERS[n.name]
        addr = n.args[0] if n.args else None
        loc = self.address(addr) if addr is not None else None
        if loc is not None and loc.constant is not None:
            value = loc.constant & ((1 << 64) - 1)
            if value < NULL_PAGE or value >= USER_TOP:
                self.set_key(n, None)  # always faults: no capture needed
                return
            loc = None
        if loc is None:
            raise CaptureError(self.unsupported(n), n.tok)
        if loc.syscall_arg:
            if kind != "string" or loc.offset:
                raise CaptureError(f"{n.name}() in a syscall probe can read only the path arguments the "
                                   f"kernel captures (user_string($argN)){self.where}", n.tok)
            self.set_key(n, f"$arg{loc.syscall_arg}_str")
            return
        value = _deref(loc.offset, loc.value, n.tok)
        if _depth(value) > MAX_DEREF:
            raise CaptureError(f"{n.name}() reads through more than {MAX_DEREF} pointers (a uprobe capture "
                               f"follows at most {MAX_DEREF}){self.where}", n.tok)
        sig = (kind, loc.sig, loc.offset)
        key = self.sig_keys.get(sig)
        if key is None:
            key = self.sig_keys[sig] = f"u__{len(self.sig_keys) + 1}"
        self.add_at(f"{key}={value}:{kind}", loc.entry)
        self.set_key(n, "$" + key)

    def set_key(self, n: A.FunctionCall, key: str | None) -> None:
        known = self.plan.keys.get(id(n), key)
        if id(n) in self.plan.keys and known != key:
            raise CaptureError(f"{n.name}() is reached from probes that capture its value differently (a "
                               f"uprobe and a syscall probe); use separate functions{self.where}", n.tok)
        self.plan.keys[id(n)] = key

    def unsupported(self, n: A.FunctionCall) -> str:
        if self.uprobe:
            return (f"{n.name}() can read only user memory captured at the probe hit: its address must be a "
                    f"probe-time value -- $name, $return, register(\"rsi\"), pointer_arg(N) (or another "
                    f"*_arg), returnval(), plus or minus a constant, a local assigned once from one of "
                    f"these, or read through user_long() -- not a value computed at run time{self.where}")
        if self.family in SYSCALL_FAMILIES:
            return (f"{n.name}() in a syscall probe can read only the path arguments the kernel captures "
                    f"(user_string($argN)){self.where}")
        return (f"{n.name}() cannot read user memory in a '{self.family}' probe: only process(...).function, "
                f".statement, .mark and .plt probes capture user memory at the hit{self.where}")

    def address(self, e: A.Expr) -> _Loc | None:
        if isinstance(e, A.NumberLit):
            return _Loc(("const", e.value), constant=e.value)
        if isinstance(e, A.Symbol) and isinstance(e.referent, A.LocalVar):
            value = self.assigned.get(id(e.referent))
            if value is None or value.tok.loc.line > e.tok.loc.line or (
                    value.tok.loc.line == e.tok.loc.line and value.tok.loc.col > e.tok.loc.col):
                return None
            return self.address(value)
        if isinstance(e, A.Binary) and e.op in ("+", "-"):
            if isinstance(e.right, A.NumberLit):
                base = self.address(e.left)
                delta = e.right.value if e.op == "+" else -e.right.value
            elif isinstance(e.left, A.NumberLit) and e.op == "+":
                base = self.address(e.right)
                delta = e.left.value
            else:
                return None
            if base is None:
                return None
            if base.constant is not None:
                return _Loc(("const", base.constant + delta), constant=base.constant + delta)
            if base.syscall_arg:
                return _Loc(base.sig, syscall_arg=base.syscall_arg, offset=base.offset + delta)
            return _Loc(base.sig, base.value, base.offset + delta, entry=base.entry)
        if isinstance(e, A.TargetSymbol):
            return self.target_address(e)
        if isinstance(e, A.FunctionCall) and e.builtin is not None:
            return self.call_address(e)
        return None

    def target_address(self, t: A.TargetSymbol) -> _Loc | None:
        if t.components or t.addressof:
            return None
        if self.family in SYSCALL_FAMILIES:
            return self.syscall_address(t.name[4:] if t.name.startswith("$arg") else "")
        if not self.uprobe:
            return None
        if t.name == "$return" and self.is_return:
            return _Loc(("return",), "$retval")
        spec = self.vars.get(t.name)
        if spec is None:
            return None
        value, _, kind = spec.split("=", 1)[1].rpartition(":")
        if kind not in ("u64", "s64", "x64"):
            return None
        self.add_at(spec, self.at_entry)
        return _Loc(("var", t.name), value, entry=self.at_entry)

    def syscall_address(self, num: str) -> _Loc | None:
        if not num.isdigit():
            return None
        n = int(num)
        strings = STRING_ARGS.get(str(self.probe.params.get("syscall", "")), ())
        if n not in strings:
            return None
        return _Loc(("sysarg", n), syscall_arg=n)

    def call_address(self, e: A.FunctionCall) -> _Loc | None:
        name = e.name
        if name in POINTER_ARGS and e.args and isinstance(e.args[0], A.NumberLit):
            n = e.args[0].value
            if self.family in SYSCALL_FAMILIES:
                return self.syscall_address(str(n))
            value = _arg_value(n)
            if not self.uprobe or value is None:
                return None
            return _Loc(("arg", n), value)
        literal = e.args[0] if e.args else None
        if name in ("register", "u_register") and self.uprobe and isinstance(literal, A.StringLit):
            spec = REGISTERS.get(literal.value)
            if spec is None or spec[1] != 64:
                return None
            return _Loc(("reg", spec[0]), f"%{spec[0]}")
        if name == "returnval" and self.uprobe:
            return _Loc(("return",), "$retval") if self.is_return else _Loc(("reg", "ax"), "%ax")
        if name in READERS and READERS[name] in ("u64", "s64") and e.args and self.uprobe:
            inner = self.address(e.args[0])
            if inner is None or inner.constant is not None or inner.syscall_arg:
                return None
            return _Loc(("deref", inner.sig, inner.offset), _deref(inner.offset, inner.value, e.tok),
                        entry=inner.entry)
        return None


def plan(script: A.ElaboratedScript) -> Plan:
    """Plan every probe's captures (raises :class:`CaptureError`)."""
    result = Plan()
    sig_keys: dict[tuple[Any, ...], str] = {}
    functions = {id(f): f for f in script.functions}
    for probe in script.probes:
        _ProbePlanner(probe, result, sig_keys, functions).run()
    return result
