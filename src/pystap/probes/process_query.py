"""SystemTap's ``dwarf_query`` for process probes: from a probe point to the uprobes it stands for.

``process("PATH").function("bar@loop.c:5").call`` names code through
symbols, debug information and line tables; this module answers with the
manifest entries of the uprobes that realise it (file offset, build-id,
fetch arguments) and the probe point text of each, as SystemTap's
``dwarf_builder`` does:

* ``.function("SPEC")`` -- SPEC is ``NAME[@FILE[:LINES]]``; the named
  functions' entries and (unless ``.call``/``.exported``/``.return``) the
  entries of their inlined instances; ``.call`` excludes inlined instances,
  ``.inline`` keeps only them, ``.exported`` keeps functions whose symbol is
  global, ``.return`` cannot probe an inlined instance;
* ``.function(ADDR)`` -- the innermost function or inlined instance containing
  ADDR (not an instance for ``.call``/``.return``/``.exported``), at its entry;
  SystemTap registers no ``.function(ADDR).inline`` (removed after 1.7);
* ``.function("F").label("L")`` -- DW_TAG_label inside F;
* ``.function("F").callee("C")`` / ``.callees[(N)]`` -- what F calls: inlined
  instances of C in F (probed where they start) and call sites of C (probed
  at C's entry, only when called from that site: the handler is prefixed
  with a caller check, as SystemTap's ``_caller_match``);
* ``.statement("F@FILE:LINES")`` (``N``, ``N-M``, ``N,M``, ``*``, ``+N``,
  ``.nearest``) -- line-table rows; ``.statement(ADDR)`` must start a line;
* ``.plt[("GLOB")]`` -- PLT stubs of imported functions;
* ``.mark("M")`` / ``.provider("P").mark("M")`` -- SDT notes;
* ``process(PID).statement(ADDR).absolute`` -- an address of a running
  process, mapped through ``/proc/PID/maps`` to the file that backs it.

Without debug information the symbol table answers ``.function`` (as
SystemTap does) and address forms; the forms that need DWARF find nothing.

Each entry's ``point`` is what ``stap -l`` prints for it (the well-formed
probe point); when SystemTap's run-time ``pp()`` differs (library, label,
callee, PLT and ``.nearest`` probes), ``params["pp"]`` holds that text.
"""

from __future__ import annotations

import bisect
import fnmatch
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pystap.lang.ast import Type
from pystap.lang.diagnostics import SemanticError
from pystap.probes import dwarfinfo
from pystap.probes.dwarfinfo import DwarfError, DwarfIndex, Scope, Unit
from pystap.probes.elfsyms import MAX_MATCHES, ElfInfo, ElfResolveError, find_library, load
from pystap.probes.fetchargs import entry_fetch, param_fetches

PARMS = ("", "$", "$$")
CALLER_RA = "$__caller_ra"  # the return address at the probe hit (for a callee's caller check)
CALLEE_PC = "$__callee_pc"  # the probed instruction's run-time address
NO_LOCATIONS = ("pystap reads parameters from the ABI argument registers at a function's entry, and this "
                "probe is not at one")
NO_DEBUG = "{binary} has no debug information (rebuild it with -g for $parameters)"


class QueryError(ElfResolveError):
    """A probe point that resolves to an error SystemTap reports at pass 2."""


# -- function specifications ------------------------------------------------------------------


@dataclass
class Spec:
    """A parsed ``NAME[@FILE[:LINES]]`` (dwarf_query::parse_function_spec)."""

    text: str
    function: str
    file: str = ""
    kind: str = "alone"  # "alone" | "file" | "line"
    lines: str = "absolute"  # "absolute" | "relative" | "wildcard" | "enumerated"
    linenos: list[int] = field(default_factory=list)

    def matches(self, name: str) -> bool:
        return name == self.function or fnmatch.fnmatchcase(name, self.function)

    @property
    def units(self) -> Any:
        """What :meth:`DwarfIndex.units_naming` needs: the name itself, or a pattern test."""
        return self.matches if self.wild else self.function

    @property
    def wild(self) -> bool:
        return has_wildcard(self.function)


def has_wildcard(text: str) -> bool:
    return any(c in text for c in "*?[")


def parse_spec(spec: str) -> Spec:
    """``bar``, ``bar@loop.c``, ``bar@loop.c:12``, ``:12-14``, ``:1,3-5``, ``:*``, ``+3``."""
    scope = spec.rfind("::")
    start = scope + 2 if scope >= 0 else 0
    at = spec.find("@", start)
    if at < 0:
        out = Spec(spec, spec[start:])
    else:
        out = Spec(spec, spec[start:at])
        rest = spec[at + 1:]
        colon = min((i for i in (rest.find(":"), rest.find("+")) if i >= 0), default=-1)
        if colon < 0:
            out.file, out.kind = rest, "file"
        else:
            out.file, out.kind = rest[:colon], "line"
            lines = rest[colon + 1:]
            try:
                if rest[colon] == "+":
                    out.lines, out.linenos = "relative", [int(lines, 10)]
                elif lines == "*":
                    out.lines = "wildcard"
                elif "," in lines or "-" in lines:
                    out.lines = "enumerated"
                    for piece in lines.split(","):
                        bounds = [b for b in piece.split("-") if b]
                        if not bounds:
                            continue
                        low, high = int(bounds[0], 10), int(bounds[-1], 10)
                        out.linenos.extend(range(low, high + 1))
                    out.linenos.sort()
                    if not out.linenos:
                        raise ValueError(lines)
                else:
                    out.linenos = [int(lines, 10)]
            except ValueError:
                raise QueryError(f"malformed specification '{spec}'") from None
    if not out.function or (out.kind != "alone" and not out.file):
        raise QueryError(f"malformed specification '{spec}'")
    return out


def srcfile_matches(pattern: str, path: str) -> bool:
    """PR 5049: an implicit ``*/`` in front of the pattern; ``/`` is an ordinary character."""
    return fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(path, "*/" + pattern)


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def canonical(name: str, file: str, line: int) -> str:
    """dwarf_query::final_function_name: ``NAME@FILE:LINE`` (parts omitted when unknown)."""
    if not file:
        return name
    return f"{name}@{file}:{line}" if line > 0 else f"{name}@{file}"


def levenshtein(a: str, b: str) -> int:
    """SystemTap's edit distance (util.cxx): an insertion, deletion or substitution costs 2, a
    substitution that only changes case 1."""
    prev = list(range(0, 2 * len(b) + 1, 2))
    for i, ca in enumerate(a, 1):
        cur = [2 * i]
        for j, cb in enumerate(b, 1):
            sub = 0 if ca == cb else (1 if ca.lower() == cb.lower() else 2)
            cur.append(min(prev[j - 1] + sub, prev[j] + 2, cur[j - 1] + 2))
        prev = cur
    return prev[-1]


def similar(word: str, candidates: set[str], limit: int = 5) -> list[str]:
    """SystemTap's levenshtein_suggest(word, names, 5): the closest names, by distance then name."""
    word = word.split("@", 1)[0]
    return [c for _, c in sorted((levenshtein(word, c), c) for c in candidates if c)[:limit]]


def no_match(kind: str, word: str, candidates: set[str]) -> QueryError | None:
    sim = similar(word, candidates)
    if not sim:
        return None
    noun = kind if len(sim) == 1 else kind + "s"
    return QueryError(f"no match (similar {noun}: {', '.join(sim)})")


# -- the query ---------------------------------------------------------------------------------


@dataclass
class Site:
    """One address to probe and how it was found."""

    vaddr: int
    point: str  # stap -l's text
    func: str  # probefunc()
    pp: str = ""  # SystemTap's run-time pp() when it differs from point
    scope: Scope | None = None  # the function whose entry this is ($parameters); None: not an entry
    symbol: str = ""  # $$name
    caller: dict[str, Any] | None = None  # the caller check of a .callee probe
    why: str = ""  # why there are no $parameters (scope is None)


class Query:
    """One symbolic probe point against one ELF file."""

    def __init__(self, family: str, prefix: str, params: dict[str, Any], args: dict[str, Any],
                 ctx: Any = None, tok: Any = None) -> None:
        self.family = family
        self.args = args
        self.names = names_of(args)
        self.ctx = ctx
        self.tok = tok
        self.guru = bool(getattr(ctx, "guru", False))
        program = binary_for(params)
        self.binary = program
        self.prefix = prefix
        self.pp_prefix = prefix
        lib = args.get("library")
        if isinstance(lib, str) and "library" in self.names:
            self.binary = find_library(lib, program)
            self.prefix = f"{prefix}.library({quote(self.binary)})"
            self.pp_prefix = f"process({quote(self.binary)})"
        self.info: ElfInfo = load(self.binary)
        self.is_return = "return" in self.names
        self.base = {**params, "binary": self.binary, "build_id": self.info.build_id,
                     "return": self.is_return, "semaphore": 0}
        self._index: DwarfIndex | None = None
        self.inlined_non_returnable: set[str] = set()

    # -- helpers ---------------------------------------------------------------------------------

    @property
    def index(self) -> DwarfIndex | None:
        if self._index is None and self.info.has_debug_info:
            self._index = dwarfinfo.open_index(self.binary, self.info.build_id)
        return self._index

    def warn(self, message: str) -> None:
        warnings = getattr(self.ctx, "warnings", None)
        if isinstance(warnings, list) and (message, self.tok) not in warnings:
            warnings.append((message, self.tok))

    def need_dwarf(self) -> DwarfIndex | None:
        ix = self.index
        if ix is None:
            self.warn(f"cannot find module {self.binary} debuginfo: No DWARF information found "
                      "[man warning::debuginfo]")
        return ix

    def suffix(self, *skip: str) -> str:
        order = ("call", "exported", "inline", "return")
        return "".join(f".{n}" for n in order if n in self.names and n not in skip)

    def offset(self, vaddr: int) -> int:
        return self.info.file_offset(vaddr)

    def partial(self, vaddr: int) -> bool:
        """PR12609: the tail of a partially inlined function (``foo.part.0``) is no entry point."""
        sym = self.info.symbol_at(vaddr)
        return sym is not None and sym.vaddr == vaddr and ".part." in sym.name

    # -- entries ---------------------------------------------------------------------------------

    def entries(self, sites: list[Site]) -> list[dict[str, Any]]:
        out = []
        for site in sites[:MAX_MATCHES]:
            out.append(self.entry(site))
        return out

    def entry(self, site: Site) -> dict[str, Any]:
        is_return = self.is_return
        ctx: dict[str, Type] = {}
        fetch = entry_fetch(is_return)
        refused: dict[str, str] = {}
        catalogue: dict[str, str] = {}
        parms: list[str] = []
        ctypes: dict[str, str] = {}  # for -L only (stripped from the manifest, as every "_" key)
        if is_return:
            ctx["$return"] = Type.LONG
            ctx.update({f"$$return{s}": Type.STRING for s in PARMS})
        if self.family == "process.plt":
            ctx["$$name"] = Type.STRING  # the imported function's name (plt_expanding_visitor)
        scope = site.scope
        if scope is not None:
            symbols = self.info.names_at(scope.entry)
            if symbols and not symbols & {scope.name, scope.linkage}:
                # foo.isra.0, foo.constprop.0: the compiler changed how arguments are passed
                refused["*"] = (f"this is a compiler-made copy of the function (its symbol is "
                                f"'{min(symbols)}'), whose parameters do not follow the ABI")
            else:
                catalogue, refused = param_fetches(scope.params)
                if not is_return:  # a .return probe reads them as captured at the entry (pass 3)
                    fetch.extend(catalogue.values())
                ctx.update({var: Type.LONG for var in catalogue})
                if catalogue:
                    ctx.update({f"$$parms{s}": Type.STRING for s in PARMS})
                    ctx.update({f"$$vars{s}": Type.STRING for s in PARMS})
                parms = [f"{p.name}\t{int(p.kind == 'text')}" for p in scope.params
                         if "$" + p.name in catalogue]
                ctypes = {"$" + p.name: p.ctype for p in scope.params
                          if "$" + p.name in catalogue and p.ctype}
        elif self.index is None:
            refused["*"] = NO_DEBUG.format(binary=self.binary)
        elif site.why:
            refused["*"] = site.why
        if site.caller is not None:
            catalogue = {**catalogue, CALLER_RA: site.caller["ra"], CALLEE_PC: "v___callee_pc=%ip:u64"}
        params = {**self.base, "offset": self.offset(site.vaddr), "symbol": site.symbol or site.func,
                  "func": site.func, "fetch": fetch, "_vars": [f"{k}\t{v}" for k, v in catalogue.items()],
                  "_parms": parms, "_entry": is_return, "_ctypes": ctypes}
        pp = site.pp or site.point
        if self.pp_prefix != self.prefix and pp.startswith(self.prefix):
            pp = self.pp_prefix + pp[len(self.prefix):]
        if pp != site.point:
            params["pp"] = pp
        entry: dict[str, Any] = {"point": site.point, "params": params, "context_vars": ctx,
                                 "refused": refused}
        if site.caller is not None:
            entry["caller"] = {"delta": site.caller["delta"], "vars": (CALLER_RA, CALLEE_PC)}
        return entry


def names_of(args: dict[str, Any]) -> list[str]:
    names = args.get("_names")
    if isinstance(names, (list, tuple)):
        return [str(n) for n in names]
    return [k for k in args if not k.startswith("_")]


def binary_for(params: dict[str, Any]) -> str:
    if params.get("target") == "pid":
        try:
            return os.path.realpath(f"/proc/{params['pid']}/exe", strict=True)
        except OSError as exc:
            pid = params["pid"]
            raise ElfResolveError(f"cannot read the executable of pid {pid}: {exc.strerror}") from None
    path = params.get("path")
    if not isinstance(path, str):
        raise ElfResolveError("process probe without a binary")
    return path


# -- .function -----------------------------------------------------------------------------------


def _functions(q: Query) -> list[Site]:
    want = q.args.get("function")
    if isinstance(want, int):
        return _function_at(q, want)
    spec = parse_spec(str(want))
    if "label" in q.names:
        sites = _labels(q, spec, str(q.args.get("label")))
    elif "callee" in q.names or "callees" in q.names:
        sites = _callees(q, spec)
    else:
        if spec.kind == "line" and not _fully_specified(q, spec):
            q.warn("For probing a particular line, use a .statement() probe, not .function()")
        sites = _function_entries(q, spec, statement=False)
    if not sites:
        if q.inlined_non_returnable:  # PR11553
            names = sorted(q.inlined_non_returnable)
            noun = "function" if len(names) == 1 else "functions"
            q.warn(f"cannot probe .return of {len(names)} inlined {noun} {' '.join(names)}"[:200])
        _no_function_match(q, spec.function)
    return sites


def _fully_specified(q: Query, spec: Spec) -> bool:
    """A function named exactly, with its file and declaration line: the function itself."""
    if spec.wild or spec.lines != "absolute" or q.index is None:
        return False
    decls = [s for u in q.index.units_naming(spec.units) for s in q.index.unit(u).scopes
             if spec.matches(s.name) and not s.inline and srcfile_matches(spec.file, s.decl_file)]
    return bool(decls) and len({s.decl_file for s in decls}) == 1 and decls[0].decl_line == spec.linenos[0]


def _function_entries(q: Query, spec: Spec, *, statement: bool) -> list[Site]:
    """Entries of the named functions and their inlined instances, then symbol-table-only functions."""
    names = q.names
    want_inline = "inline" in names
    no_inline = any(n in names for n in ("call", "return", "exported"))
    kind = "statement" if statement else "function"
    sites: list[Site] = []
    seen_entries: set[int] = set()
    seen_inlines: set[tuple[int, int, str, str]] = set()
    covered: set[int] = set()  # addresses that have a DWARF function (the symbol pass skips them)
    ix = q.index
    if ix is not None:
        for _unit, s, files in _named_scopes(ix, spec):
            if not s.inline:
                covered.add(s.entry)
            if files is not None and s.decl_file and s.decl_file not in files:
                continue
            if s.inline:
                if q.is_return and not statement:
                    q.inlined_non_returnable.add(s.name)
                if no_inline and not statement:
                    continue
                key = (s.entry, s.decl_line, s.name, s.decl_file)
                if key in seen_inlines:
                    continue
                seen_inlines.add(key)
                shown = canonical(s.name, s.decl_file, s.decl_line)
                sites.append(Site(s.entry, f"{q.prefix}.{kind}({quote(shown)}){q.suffix()}", s.name,
                                  why=NO_LOCATIONS))
                continue
            if want_inline and not statement:
                continue
            if s.entry in seen_entries or q.partial(s.entry):
                continue
            if "exported" in names and not q.info.exported(s.linkage or s.name):
                continue
            seen_entries.add(s.entry)
            shown = canonical(s.name, s.decl_file, s.decl_line)
            sites.append(Site(s.entry, f"{q.prefix}.{kind}({quote(shown)}){q.suffix()}", s.name,
                              scope=s, why=NO_LOCATIONS))
    if spec.kind == "alone" and not want_inline:
        for sym in q.info.symbols if spec.wild else q.info.named(spec.function):
            if sym.vaddr in covered or sym.vaddr in seen_entries or not spec.matches(sym.name):
                continue
            if "exported" in names and not q.info.exported(sym.name):
                continue
            if q.partial(sym.vaddr) and ix is not None:
                continue
            seen_entries.add(sym.vaddr)
            sites.append(Site(sym.vaddr, f"{q.prefix}.{kind}({quote(sym.name)}){q.suffix()}", sym.name,
                              why=f"no debug information describes '{sym.name}'"))
    for site in sites if not spec.wild else ():
        if q.info.ifunc_at(site.vaddr):
            q.warn(f"function '{site.func}' is an indirect function (STT_GNU_IFUNC): the probe is on its "
                   "resolver, which runs when the dynamic linker binds it, not on each call")
    # by name, then address: a deterministic manifest whatever the order of the debug information
    return sorted(sites, key=lambda site: (site.func, site.scope is None, site.vaddr))


def _no_function_match(q: Query, word: str) -> None:
    candidates = {s.name for s in q.info.symbols}
    if q.index is not None:
        candidates |= set(q.index.names())
    err = no_match("function", word, candidates)
    if err is not None:
        raise err


def _function_at(q: Query, addr: int) -> list[Site]:
    """``.function(ADDR)``: the innermost function (or inlined instance) containing ADDR, at its entry
    (dwarf_query's query_addr); without debug information, the symbol containing it."""
    inline = "inline" in q.names
    no_inline = any(n in q.names for n in ("call", "return", "exported"))
    ix = q.index
    if ix is not None:
        for s in ix.scopes_at(addr):
            if (not s.inline and not inline) or (s.inline and not no_inline):
                shown = f"0x{s.entry:x}"
                point = f"{q.prefix}.function({shown}){q.suffix()}"
                pp = f"{q.prefix}.function(0x{addr:x}){q.suffix()}"
                return [Site(s.entry, point, s.name, pp=pp, scope=None if s.inline else s, why=NO_LOCATIONS)]
        if ix.unit_at(addr) is not None:
            return []
    if inline:
        return []
    sym = q.info.symbol_at(addr)
    if sym is None or (sym.size and addr >= sym.vaddr + sym.size):
        return []
    point = f"{q.prefix}.function(0x{sym.vaddr:x}){q.suffix()}"
    return [Site(sym.vaddr, point, sym.name, pp=f"{q.prefix}.function(0x{addr:x}){q.suffix()}")]


# -- .label ------------------------------------------------------------------------------------


def _filtered_scopes(q: Query, spec: Spec) -> list[tuple[Unit, Scope, set[str] | None]]:
    """The functions and inlined instances a spec names, with the source files of their unit that
    match the spec's file part (None: no file part): dwarf_query's filtered_all()."""
    ix = q.need_dwarf()
    if ix is None:
        return []
    out = []
    for unit, s, files in _named_scopes(ix, spec):
        if files is not None and s.decl_file and s.decl_file not in files:
            continue
        if not s.inline and q.partial(s.entry):
            continue
        out.append((unit, s, files))
    return out


def _named_scopes(ix: Any, spec: Spec) -> Iterator[tuple[Unit, Scope, set[str] | None]]:
    """Functions and inlined instances whose name (or linkage name) the spec matches, in units
    that have a source file matching the spec's file part, with those files (None: no file part)."""
    for unit_offset in ix.units_naming(spec.units):
        unit = ix.unit(unit_offset)
        files = None
        if spec.kind != "alone":
            files = {f for f in unit.source_files() if srcfile_matches(spec.file, f)}
            if not files:
                continue
        for s in unit.scopes:
            if spec.matches(s.name) or (s.linkage and spec.matches(s.linkage)):
                yield unit, s, files


def _labels(q: Query, spec: Spec, label: str) -> list[Site]:
    sites: list[Site] = []
    lines = spec.lines if spec.kind == "line" else "wildcard"
    for unit, scope, files in _filtered_scopes(q, spec):
        for lab in unit.labels_in(scope.offset):
            if not (lab.name == label or fnmatch.fnmatchcase(lab.name, label)):
                continue
            if files is not None and lab.decl_file not in files:
                continue
            if lines == "absolute" and lab.decl_line != spec.linenos[0]:
                continue
            if lines == "relative" and lab.decl_line != spec.linenos[0] + scope.decl_line:
                continue
            if lines == "enumerated" and lab.decl_line not in spec.linenos:
                continue
            shown = canonical(scope.name, lab.decl_file, lab.decl_line)
            point = f"{q.prefix}.function({quote(shown)}).label({quote(lab.name)})"
            sites.append(Site(lab.addr, point, scope.name, pp=f"{q.prefix}.function({quote(shown)})",
                              why=NO_LOCATIONS))
    return sites


# -- .callee / .callees --------------------------------------------------------------------------


def _callees(q: Query, spec: Spec) -> list[Site]:
    if "callees" in q.names:
        depth = q.args.get("callees")
        depth = 1 if depth is None else depth
        if not isinstance(depth, int) or depth < 1:
            raise QueryError(".callees(N) only acceptable for N >= 1")
        pattern = "*"
    else:
        depth, pattern = 1, str(q.args.get("callee"))
    sites: list[Site] = []
    scopes = _filtered_scopes(q, spec)
    ix = q.index
    if ix is not None:
        for unit, scope, _files in scopes:
            _walk_callees(q, ix, unit, scope, pattern, depth, [], sites)
    return sites


def _walk_callees(q: Query, ix: DwarfIndex, unit: Unit, caller: Scope, pattern: str, depth: int,
                  callers: list[tuple[int, str]], sites: list[Site]) -> None:
    """dwflpp::iterate_over_callees: the inlined instances and call sites directly in ``caller``.

    ``callers`` holds (return address, caller name) of the non-inlined calls that lead here,
    outermost first.
    """
    def matches(name: str) -> bool:
        return name == pattern or (has_wildcard(pattern) and fnmatch.fnmatchcase(name, pattern))

    canon_caller = canonical(caller.name, caller.decl_file, caller.decl_line)
    found: list[tuple[int, Scope | None, Any]] = []  # (DIE offset, inline scope | None, call site)
    for s in unit.children(caller.offset):
        if s.inline and matches(s.name):
            found.append((s.offset, s, None))
    for c in unit.calls_in(caller.offset):
        if matches(c.name):
            found.append((c.offset, None, c))
    for _, inline, call in sorted(found, key=lambda f: f[0]):
        if inline is not None:
            callee, pc, chain = inline, inline.entry, callers
        else:
            callee = _call_target(ix, unit, call)
            if callee is None:
                continue
            pc, chain = callee.entry, [*callers, (call.return_pc, caller.name)]
            if call.tail:
                q.warn(f'Callee "{call.name}" in function "{caller.name}" is a tail call: .callee probe may '
                       "not fire. Try placing the probe directly on the callee function instead.")
        if q.is_return and inline is not None:
            q.inlined_non_returnable.add(inline.name)
        else:
            canon = canonical(callee.name, callee.decl_file, callee.decl_line)
            keep = "".join(f".{n}" for n in ("call", "return") if n in q.names)
            point = f"{q.prefix}.function({quote(canon_caller)}).callee({quote(canon)}){keep}"
            pp = f"{q.prefix}.function({quote(canon)}){keep}"
            site = Site(pc, point, callee.name, pp=pp, scope=None if inline is not None else callee,
                        why=NO_LOCATIONS)
            if chain:
                _caller_check(q, ix, site, chain, at_entry=inline is None)
            sites.append(site)
        if depth > 1:
            target_unit = unit if callee.unit == unit.offset else ix.unit(callee.unit)
            _walk_callees(q, ix, target_unit, callee, pattern, depth - 1, chain, sites)


def _call_target(ix: DwarfIndex, unit: Unit, call: Any) -> Scope | None:
    """The code a call site calls: its origin when that has code, else (an external declaration)
    the external definition of that name in this file (external_function_query)."""
    for s in unit.with_origin(call.origin):
        if not s.inline:
            return s
    if call.external:
        return ix.definition(call.linkage or call.name) or ix.definition(call.name)
    return None


def _caller_check(q: Query, ix: DwarfIndex, site: Site, chain: list[tuple[int, str]], *,
                  at_entry: bool) -> None:
    """SystemTap adds ``if (!_caller_match(...)) next;`` to a callee probe reached through a call:
    it fires only when that call site called it.  The check compares the return address of the
    frame at the hit with the call's return address, both relative to the probed instruction (the
    load address cancels out).  Only the innermost call can be checked: uprobes cannot unwind."""
    return_pc, caller = chain[-1]
    if at_entry:
        slot: tuple[str, int] | None = ("sp", 0)  # at a function's first instruction: CFA = %rsp + 8
    else:
        slot = ix.return_address_slot(site.vaddr)
    if slot is None:
        q.warn(f"callee probe '{site.func}' in '{caller}' cannot check its caller (no call frame information "
               "at the probe address): it also fires for other callers")
        return
    reg, off = slot
    site.caller = {"ra": f"v___caller_ra={'-' if off < 0 else '+'}{abs(off)}(%{reg}):u64",
                   "delta": return_pc - site.vaddr}
    if len(chain) > 1:
        outer = ", ".join(name for _, name in chain[:-1])
        q.warn(f"callee probe '{site.func}' checks only its immediate caller '{caller}': uprobes cannot "
               f"unwind the user stack to check {outer}")


# -- .statement ----------------------------------------------------------------------------------


def _statements(q: Query) -> list[Site]:
    want = q.args.get("statement")
    nearest = ".nearest" if "nearest" in q.names else ""
    if isinstance(want, int):
        return _statement_at(q, want, nearest)
    spec = parse_spec(str(want))
    if spec.kind != "line":
        ix = q.need_dwarf() if spec.kind != "alone" else q.index
        if ix is None and spec.kind != "alone":
            return []
        return _function_entries(q, spec, statement=True)
    return _statement_lines(q, spec, nearest)


def _statement_at(q: Query, addr: int, nearest: str) -> list[Site]:
    point = f"{q.prefix}.statement(0x{addr:x}){nearest}{q.suffix()}"
    ix = q.index
    unit = ix.unit_at(addr) if ix is not None else None
    if ix is not None and unit is not None:
        row = ix.line_at(addr)
        if row is None or row.addr != addr:
            msg = f"address 0x{addr:x} does not match the beginning of a statement"
            msg += f" (try 0x{row.addr:x})" if row is not None else (
                f" (no line info found for '{unit.name}', in module '{q.binary}')")
            if not q.guru:
                raise QueryError(msg)
            q.warn(msg)
        scopes = ix.scopes_at(addr)
        func = scopes[0].name if scopes else q.info.function_at(addr)
        entry = scopes[0] if scopes and not scopes[0].inline and scopes[0].entry == addr else None
        return [Site(addr, point, func, pp=f"{q.prefix}.statement(0x{addr:x}){q.suffix()}", scope=entry,
                     why=NO_LOCATIONS)]
    if ix is not None and not q.guru:
        return []  # no debug information covers it: no match, as SystemTap
    q.offset(addr)  # must be in the file
    return [Site(addr, point, q.info.function_at(addr), pp=f"{q.prefix}.statement(0x{addr:x}){q.suffix()}")]


def _statement_lines(q: Query, spec: Spec, nearest: str) -> list[Site]:
    """dwflpp::iterate_over_srcfile_lines, per unit and source file."""
    sites: list[Site] = []
    ix = q.need_dwarf()
    if ix is None:
        return sites
    for unit_offset in ix.units_naming(spec.units):
        unit = ix.unit(unit_offset)
        files = sorted(f for f in unit.source_files() if srcfile_matches(spec.file, f))
        if not files:
            continue
        funcs = [s for s in unit.scopes if (spec.matches(s.name) or (s.linkage and spec.matches(s.linkage)))
                 and (not s.decl_file or s.decl_file in files) and not (not s.inline and q.partial(s.entry))]
        if not funcs:
            continue
        rows = ix.lines(unit)
        for srcfile in files:
            current = [s for s in funcs if s.decl_file == srcfile]
            if not current:
                continue
            by_line: dict[int, list[int]] = {}
            for r in rows:
                if r.file == srcfile:
                    by_line.setdefault(r.line, []).append(r.addr)
            for addrs in by_line.values():
                addrs.sort()
            linenos = sorted(by_line)
            firsts = {s.offset: ix.first_line(unit, s) for s in current} if spec.lines == "wildcard" else {}
            matched = _collect_lines(spec, current, by_line, linenos, nearest != "", firsts)
            if not matched and spec.lines in ("absolute", "relative"):
                target = spec.linenos[0] + (current[0].decl_line if spec.lines == "relative" else 0)
                low, high = _nearest_pair(target, current, by_line)
                advice = f"no line records for {srcfile}:{target} [man error::dwarf]"
                if low > 0 or high > 0:
                    advice += " (try " + " or ".join(f":{n}" for n in (low, high) if n > 0) + ")"
                raise QueryError(advice)
            probed: set[int] = set()
            order = {f.offset: i for i, f in enumerate(funcs)}
            for addr, lineno, producer in matched:
                if addr in probed:
                    continue
                probed.add(addr)
                # query_srcfile_line: every function of the query containing it
                for s in _containing(unit, unit.by_offset[producer], order, addr):
                    shown = canonical(s.name, s.decl_file, lineno)
                    point = f"{q.prefix}.statement({quote(shown)}){nearest}{q.suffix()}"
                    pp = f"{q.prefix}.statement({quote(shown)}){q.suffix()}"
                    if nearest and spec.lines in ("absolute", "relative"):
                        asked = spec.linenos[0] + (s.decl_line if spec.lines == "relative" else 0)
                        point = f"{q.prefix}.statement({quote(canonical(s.name, s.decl_file, asked))})" \
                                f"{nearest}{q.suffix()}"
                    sites.append(Site(addr, point, s.name, pp=pp))
    return sites


def _containing(unit: Unit, producer: Scope, order: dict[int, int], addr: int) -> list[Scope]:
    """The query's functions containing ``addr``, among the scopes nested with ``producer`` (its
    enclosing scopes and the instances inlined in it): only they can contain its addresses."""
    related: list[Scope] = []
    s: Scope | None = producer
    while s is not None:
        related.append(s)
        s = unit.by_offset.get(s.parent)
    stack = list(unit.children(producer.offset))
    while stack:
        child = stack.pop()
        related.append(child)
        stack.extend(unit.children(child.offset))
    found = {r.offset: r for r in related if r.offset in order and r.contains(addr)}
    return sorted(found.values(), key=lambda r: order[r.offset])


def _first_in(addrs: list[int], scope: Scope) -> int | None:
    for a in addrs:
        if scope.contains(a):
            return a
    return None


def _collect_lines(spec: Spec, funcs: list[Scope], by_line: dict[int, list[int]], linenos: list[int],
                   nearest: bool, firsts: dict[int, int | None]) -> list[tuple[int, int, int]]:
    """(address, line, function) triples: per function, the lowest address of each wanted line
    inside it (the function as its DIE offset)."""
    out: list[tuple[int, int, int]] = []

    def single(lineno: int, relative: bool) -> None:
        for s in funcs:
            line = lineno + (s.decl_line if relative else 0)
            a = _first_in(by_line.get(line, []), s)
            if a is not None:
                out.append((a, line, s.offset))

    if spec.lines == "absolute":
        single(spec.linenos[0], False)
    elif spec.lines == "relative":
        single(spec.linenos[0], True)
    elif spec.lines == "wildcard":
        for s in funcs:
            start = firsts.get(s.offset)
            if start is None:
                continue
            i = bisect.bisect_left(linenos, start) if start in by_line else len(linenos)
            while i < len(linenos):
                a = _first_in(by_line[linenos[i]], s)
                if a is None:
                    break
                out.append((a, linenos[i], s.offset))
                i += 1
    else:
        done: set[int] = set()
        for lineno in spec.linenos:
            if lineno in done:
                continue
            before = len(out)
            single(lineno, False)
            if len(out) > before:
                done.add(lineno)
            elif nearest:
                near = _nearest(lineno, funcs, by_line)
                if near > 0 and near not in done:
                    done.add(near)
                    single(near, False)
    if not out and nearest and spec.lines in ("absolute", "relative"):
        target = spec.linenos[0] + (funcs[0].decl_line if spec.lines == "relative" else 0)
        near = _nearest(target, funcs, by_line)
        if near > 0:
            single(near, False)
    return out


def _has_line(line: int, funcs: list[Scope], by_line: dict[int, list[int]]) -> bool:
    return any(_first_in(by_line.get(line, []), s) is not None for s in funcs)


def _nearest_pair(line: int, funcs: list[Scope], by_line: dict[int, list[int]]) -> tuple[int, int]:
    low = high = -1
    for i in range(1, 6):
        if low == -1 and _has_line(line - i, funcs, by_line):
            low = line - i
        if high == -1 and _has_line(line + i, funcs, by_line):
            high = line + i
    return low, high


def _nearest(line: int, funcs: list[Scope], by_line: dict[int, list[int]]) -> int:
    low, high = _nearest_pair(line, funcs, by_line)
    if low > 0 and high > 0:
        return low if line - low < high - line else high
    return low if low > 0 else high


# -- .plt, .mark, .absolute ------------------------------------------------------------------------


def _plts(q: Query) -> list[Site]:
    pattern = q.args.get("plt")
    pattern = "*" if not isinstance(pattern, str) else pattern
    suffix = ".return" if q.is_return else ""
    sites = []
    for name, vaddr in sorted(q.info.plt.items()):
        if name == pattern or fnmatch.fnmatchcase(name, pattern):
            sites.append(Site(vaddr, f"{q.prefix}.plt({quote(name)}){suffix}", name,
                              pp=f"{q.pp_prefix}.statement(0x{vaddr:x}){suffix}", symbol=name,
                              why="a PLT stub has no debug information"))
    if not sites:
        err = no_match("function", pattern, set(q.info.plt))
        if err is not None:
            raise err
    return sites


def _marks(q: Query) -> list[dict[str, Any]]:
    mark = str(q.args.get("mark"))
    provider = q.args.get("provider")
    matches = [n for n in q.info.sdt if fnmatch.fnmatchcase(n.name, mark)
               and (provider is None or fnmatch.fnmatchcase(n.provider, str(provider)))]
    if not matches:
        err = no_match("mark", mark, {n.name for n in q.info.sdt})
        if err is not None:
            raise err
        return []
    out = []
    for note in matches[:MAX_MATCHES]:
        fetch = ["comm=$comm:string"]
        ctx = {"$$name": Type.STRING, "$$provider": Type.STRING}
        catalogue = {}
        for i, value in enumerate(note.fetch):
            if value is not None:
                fetch.append(f"arg{i + 1}={value}")
                catalogue[f"$arg{i + 1}"] = f"arg{i + 1}={value}"
                ctx[f"$arg{i + 1}"] = Type.LONG
                if value.endswith(":u64"):
                    # Pointer-sized: also capture the string it may point to, in the kernel at
                    # the hit, so user_string($argN) never races with the process.  (Pass 3
                    # replaces this default list with exactly what the handler reads.)
                    fetch.append(f"arg{i + 1}_str=+0({value[:-4]}):ustring")
        out.append({
            "point": f"{q.prefix}.provider({quote(note.provider)}).mark({quote(note.name)})",
            "params": {**q.base, "return": False, "offset": note.pc, "semaphore": note.semaphore,
                       "symbol": note.name, "provider": note.provider,
                       "func": q.info.function_at_offset(note.pc), "fetch": fetch,
                       "_vars": [f"{k}\t{v}" for k, v in catalogue.items()]},
            "context_vars": ctx,
        })
    return out


_MAPS_LINE = re.compile(r"([0-9a-f]+)-([0-9a-f]+) (\S{4}) ([0-9a-f]+) \S+ (\d+)\s*(.*)")


def absolute(pid: int, addr: int, is_return: bool, params: dict[str, Any]) -> list[dict[str, Any]]:
    """``process(PID).statement(ADDR).absolute``: the file offset behind a run-time address.

    SystemTap placed these on the address space of one process (utrace).  Inode-based uprobes
    probe a file, so the address is mapped through ``/proc/PID/maps`` to the file and offset
    that back it (anonymous memory, e.g. JIT code, cannot be probed); the probe stays restricted
    to that process."""
    try:
        with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as f:
            maps = f.read(1 << 22)
    except OSError as exc:
        raise QueryError(f"cannot read the memory map of pid {pid}: {exc.strerror}") from None
    for line in maps.splitlines():
        m = _MAPS_LINE.fullmatch(line.strip())
        if m is None:
            continue
        start, end, perms, pgoff, inode, path = (int(m.group(1), 16), int(m.group(2), 16), m.group(3),
                                                  int(m.group(4), 16), int(m.group(5)), m.group(6))
        if not start <= addr < end:
            continue
        if inode == 0 or not path.startswith("/") or path.endswith(" (deleted)"):
            raise QueryError(f"absolute process probes not available [man error::inode-uprobes] (address "
                             f"0x{addr:x} of pid {pid} is not backed by a file)")
        if "x" not in perms:
            raise QueryError(f"address 0x{addr:x} of pid {pid} is not in executable memory")
        binary = os.path.realpath(path)
        info = load(binary)
        offset = addr - start + pgoff
        vaddr = info.vaddr_of_offset(offset)
        suffix = ".return" if is_return else ""
        fetch = entry_fetch(is_return)
        return [{
            "point": f"process({pid}).statement(0x{addr:x}).absolute{suffix}",
            "params": {**params, "binary": binary, "build_id": info.build_id, "return": is_return,
                       "semaphore": 0, "offset": offset, "symbol": "",
                       "func": info.function_at(vaddr) if vaddr is not None else "", "fetch": fetch},
            "context_vars": {"$return": Type.LONG} if is_return else {},
        }]
    raise QueryError(f"address 0x{addr:x} is not mapped in pid {pid}")


# -- entry point -------------------------------------------------------------------------------


def resolve_probe(family: str, prefix: str, params: dict[str, Any], args: dict[str, Any],
                  point: Any = None, ctx: Any = None) -> list[dict[str, Any]]:
    """Expand a symbolic process probe point into manifest entries.

    Each is a mapping with ``point``, ``params`` and ``context_vars`` (and ``refused``: why a
    ``$name`` is unavailable; ``caller``: the caller check of a ``.callee`` probe), as
    :mod:`pystap.probes.process` expects.  An empty list is "no match".
    """
    tok = getattr(point, "tok", None)
    try:
        if "absolute" in names_of(args):
            pid = params.get("pid")
            return absolute(int(pid), int(args.get("statement", 0)), "return" in names_of(args), params)
        q = Query(family, prefix, params, args, ctx, tok)
        if family == "process.function":
            return q.entries(_functions(q))
        if family == "process.statement":
            return q.entries(_statements(q))
        if family == "process.plt":
            return q.entries(_plts(q))
        if family == "process.mark":
            return _marks(q)
    except (ElfResolveError, DwarfError) as exc:
        raise SemanticError(str(exc)) from None
    raise SemanticError(f"{family} probes are not supported")
