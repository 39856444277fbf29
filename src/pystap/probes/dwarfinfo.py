"""Translator-side DWARF: the functions, inline instances, labels, call sites and line rows of one ELF file.

``process("PATH").function("NAME")`` and its relatives (``.inline``,
``.label``, ``.callee``, ``.statement("F@FILE:LINE")``) are questions about
the program's debug information, asked the way SystemTap's dwflpp asks
them.  This module answers them and nothing else: which code a name, a
source line or an address stands for.  Mapping the answers to uprobes is
:mod:`pystap.probes.process_query`'s job.

pyelftools is slow on big files (a full walk of libc's debug information
takes minutes), so the index is built in two lazy levels:

* a *name table*: the subprogram DIEs directly under each compile unit
  (and its namespaces), enough to know which units define or inline a
  name;
* a *unit*: one compile unit walked completely -- its machine-code scopes
  (subprograms and inlined instances, nested as in the code), labels,
  call sites and, on demand, its line table.

A question about a name walks only the units that name it; a question about
an address walks only the unit that covers it (``.debug_aranges``).  Indexes
are cached per GNU build-id, so two paths to one binary share one index.

The file is untrusted input: every parse error becomes a
:class:`DwarfError` with a message for the user, DIE walks are iterative
with a bound on the DIEs a unit can yield (a hostile ``DW_AT_sibling``
cannot make the walk loop), and attribute-reference chains are bounded.
"""

from __future__ import annotations

import bisect
import os
import stat
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from elftools.common.exceptions import DWARFError, ELFError
from elftools.construct.core import ConstructError
from elftools.dwarf.ranges import BaseAddressEntry
from elftools.elf.elffile import ELFFile

SUBPROGRAM = "DW_TAG_subprogram"
INLINED = "DW_TAG_inlined_subroutine"
LABEL = "DW_TAG_label"
CALL_SITES = ("DW_TAG_call_site", "DW_TAG_GNU_call_site")
# Scopes the walk descends into without leaving the function it is in (dwflpp's
# inner_die_containing_pc); anything else (types, variables) has no code of its own.
_TRANSPARENT = frozenset(("DW_TAG_lexical_block", "DW_TAG_try_block", "DW_TAG_catch_block",
                          "DW_TAG_with_stmt", "DW_TAG_entry_point", "DW_TAG_namespace", "DW_TAG_module"))
_UNITS = ("DW_TAG_compile_unit", "DW_TAG_partial_unit")
_ADDR_FORMS = frozenset(("DW_FORM_addr", "DW_FORM_addrx", "DW_FORM_addrx1", "DW_FORM_addrx2",
                         "DW_FORM_addrx3", "DW_FORM_addrx4", "DW_FORM_GNU_addr_index"))
_QUALIFIERS = ("DW_TAG_typedef", "DW_TAG_const_type", "DW_TAG_volatile_type", "DW_TAG_restrict_type",
               "DW_TAG_atomic_type")
_SIGNED_ENCODINGS = (0x05, 0x06, 0x0D)  # DW_ATE_signed, signed_char, signed_fixed
_FLOAT_ENCODINGS = (0x03, 0x04, 0x09)  # complex_float, float, decimal_float
MAX_REF_HOPS = 8  # DW_AT_abstract_origin / DW_AT_specification chains
# Errors pyelftools raises on malformed input besides ELFError (it parses with construct and asserts).
PARSE_ERRORS = (ELFError, DWARFError, ConstructError, OSError, ValueError, KeyError, IndexError,
                AttributeError, TypeError, AssertionError, NotImplementedError, RecursionError,
                UnicodeDecodeError, OverflowError, EOFError)


class DwarfError(ValueError):
    """The debug information cannot be read; the message is for the user."""


@dataclass(frozen=True)
class Param:
    """One formal parameter as DWARF describes it (after typedefs and qualifiers)."""

    name: str
    kind: str  # "int" | "pointer" | "text" (a char pointer) | "float" | "aggregate" | "unknown"
    size: int
    signed: bool
    ctype: str = ""  # the C type as ``stap -L`` names it (``char const*``), "" when unnamed


@dataclass(frozen=True)
class Scope:
    """A piece of machine code with a function's name: a subprogram or one inlined instance of one."""

    name: str
    linkage: str
    decl_file: str
    decl_line: int
    entry: int  # entry pc (the address a probe on this function uses)
    ranges: tuple[tuple[int, int], ...]  # [low, high) pieces
    inline: bool  # a DW_TAG_inlined_subroutine instance
    external: bool
    offset: int  # DIE offset
    unit: int  # offset of its compile unit
    parent: int  # DIE offset of the enclosing scope (-1: none)
    origin: int  # DIE offset of the DIE naming it (itself, or its abstract origin)
    params: tuple[Param, ...] = ()

    def contains(self, addr: int) -> bool:
        return any(lo <= addr < hi for lo, hi in self.ranges)


@dataclass(frozen=True)
class Label:
    name: str
    addr: int
    decl_file: str
    decl_line: int
    scope: int  # DIE offset of the scope it is directly in


@dataclass(frozen=True)
class CallSite:
    """``DW_TAG_call_site`` / ``DW_TAG_GNU_call_site``: a direct call the compiler described."""

    name: str  # the callee's name
    linkage: str
    origin: int  # DIE offset of the callee's declaration or definition
    return_pc: int  # the caller's address after the call (what a backtrace shows)
    tail: bool  # a tail call: the callee returns to the caller's caller
    scope: int  # DIE offset of the calling scope
    external: bool  # the callee is external (its definition can be looked up by name)
    offset: int = 0  # DIE offset of the call site


@dataclass(frozen=True)
class LineRow:
    addr: int
    file: str
    line: int


@dataclass(frozen=True)
class Decl:
    """A subprogram DIE of the name table."""

    name: str
    unit: int
    offset: int


@dataclass
class Unit:
    """One compile unit, walked completely."""

    offset: int
    name: str
    files: list[str]  # file names as DW_AT_decl_file and the line table index them
    scopes: list[Scope] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    calls: list[CallSite] = field(default_factory=list)
    by_offset: dict[int, Scope] = field(default_factory=dict)
    _lines: list[LineRow] | None = None
    _line_addrs: list[int] = field(default_factory=list)
    _children: dict[int, list[Scope]] = field(default_factory=dict)
    _by_origin: dict[int, list[Scope]] = field(default_factory=dict)
    _labels_in: dict[int, list[Label]] = field(default_factory=dict)
    _calls_in: dict[int, list[CallSite]] = field(default_factory=dict)

    def finish(self) -> None:
        """Index the walked unit by enclosing scope and by origin (no scans per question)."""
        for s in self.scopes:
            self._children.setdefault(s.parent, []).append(s)
            self._by_origin.setdefault(s.origin, []).append(s)
        for lab in self.labels:
            self._labels_in.setdefault(lab.scope, []).append(lab)
        for call in self.calls:
            self._calls_in.setdefault(call.scope, []).append(call)

    def source_files(self) -> list[str]:
        return sorted({f for f in self.files if f})

    def children(self, scope: int) -> list[Scope]:
        """The scopes directly inside ``scope`` (inlined instances, nested functions)."""
        return self._children.get(scope, [])

    def with_origin(self, origin: int) -> list[Scope]:
        """The scopes named by the DIE at ``origin`` (a function and its inlined instances)."""
        return self._by_origin.get(origin, [])

    def labels_in(self, scope: int) -> list[Label]:
        return self._labels_in.get(scope, [])

    def calls_in(self, scope: int) -> list[CallSite]:
        return self._calls_in.get(scope, [])


class DwarfIndex:
    """The lazy DWARF index of one ELF file (see the module docstring)."""

    def __init__(self, path: str, stream: BinaryIO) -> None:
        self.path = path
        self._stream = stream
        try:
            self._elf = ELFFile(stream)
            self._dwarf = self._elf.get_dwarf_info(relocate_dwarf_sections=False)
        except PARSE_ERRORS as exc:
            raise DwarfError(f"cannot read debug information of {path}: {exc or type(exc).__name__}") \
                from None
        self._units: dict[int, Unit] = {}
        self._names: dict[str, list[Decl]] | None = None
        self._unit_ranges: list[tuple[int, int, int]] | None = None  # (low, high, unit offset), sorted
        self._aranges: Any = None
        self._cfi: list[tuple[int, int, list[tuple[int, Any]]]] | None = None
        self._cfi_starts: list[int] = []

    def close(self) -> None:
        self._stream.close()

    # -- guarded access ------------------------------------------------------------------------

    def _fail(self, exc: BaseException) -> DwarfError:
        if isinstance(exc, (ELFError, DWARFError, DwarfError)) and str(exc):
            return DwarfError(f"cannot read debug information of {self.path}: {exc}")
        return DwarfError(f"cannot read debug information of {self.path}: malformed data "
                          f"({type(exc).__name__}: {exc})")

    def _iter_units(self) -> Iterator[Any]:
        try:
            yield from self._dwarf.iter_CUs()
        except PARSE_ERRORS as exc:
            raise self._fail(exc) from None

    # -- the name table ------------------------------------------------------------------------

    def names(self) -> dict[str, list[Decl]]:
        """Function name (and linkage name) -> the subprogram DIEs naming it, over every unit."""
        if self._names is None:
            names: dict[str, list[Decl]] = {}
            ranges: list[tuple[int, int, int]] = []
            try:
                for cu in self._iter_units():
                    top = cu.get_top_DIE()
                    if top.tag not in _UNITS:
                        continue
                    for lo, hi in _ranges(self._dwarf, cu, top):
                        ranges.append((lo, hi, cu.cu_offset))
                    for die in _children_bounded(cu, top, descend=("DW_TAG_namespace",)):
                        if die.tag != SUBPROGRAM:
                            continue
                        name, linkage = _names_of(die)
                        for n in {name, linkage} - {""}:
                            names.setdefault(n, []).append(Decl(name, cu.cu_offset, die.offset))
            except PARSE_ERRORS as exc:
                raise self._fail(exc) from None
            ranges.sort()
            self._names = names
            self._unit_ranges = ranges
        return self._names

    def units_naming(self, match: Callable[[str], bool] | str) -> list[int]:
        """Offsets of the units with a subprogram named ``match`` (or whose name satisfies
        ``match(name)``), in file order."""
        names = self.names()
        if isinstance(match, str):
            return sorted({d.unit for d in names.get(match, [])})
        return sorted({d.unit for name, decls in names.items() if match(name) for d in decls})

    # -- units ---------------------------------------------------------------------------------

    def unit(self, offset: int) -> Unit:
        found = self._units.get(offset)
        if found is None:
            try:
                cu = self._dwarf.get_CU_at(offset)
                found = self._walk(cu)
            except DwarfError:
                raise
            except PARSE_ERRORS as exc:
                raise self._fail(exc) from None
            self._units[offset] = found
        return found

    def unit_at(self, addr: int) -> Unit | None:
        """The unit whose code covers ``addr`` (``.debug_aranges``, else the units' own ranges)."""
        try:
            if self._aranges is None:
                self._aranges = self._dwarf.get_aranges() or False
            if self._aranges:
                offset = self._aranges.cu_offset_at_addr(addr)
                if offset is not None:
                    return self.unit(offset)
        except PARSE_ERRORS:
            self._aranges = False
        self.names()
        for lo, hi, offset in self._unit_ranges or []:
            if lo <= addr < hi:
                return self.unit(offset)
        return None

    def scopes_at(self, addr: int) -> list[Scope]:
        """The scopes containing ``addr``, innermost first (``dwarf_getscopes``)."""
        unit = self.unit_at(addr)
        if unit is None:
            return []
        inner = [s for s in unit.scopes if s.contains(addr)]
        depth: dict[int, int] = {}

        def level(s: Scope) -> int:
            if s.offset not in depth:
                parent = unit.by_offset.get(s.parent)
                depth[s.offset] = 0 if parent is None else level(parent) + 1
            return depth[s.offset]

        return sorted(inner, key=lambda s: -level(s))

    def lines(self, unit: Unit) -> list[LineRow]:
        """The unit's line rows (end-of-sequence rows excluded), by address."""
        if unit._lines is None:
            rows: list[LineRow] = []
            try:
                cu = self._dwarf.get_CU_at(unit.offset)
                program = self._dwarf.line_program_for_CU(cu)
                if program is not None:
                    for entry in program.get_entries():
                        st = entry.state
                        if st is None or st.end_sequence:
                            continue
                        index = st.file
                        name = unit.files[index] if 0 <= index < len(unit.files) else ""
                        rows.append(LineRow(st.address, name, st.line))
            except PARSE_ERRORS as exc:
                raise self._fail(exc) from None
            rows.sort(key=lambda r: r.addr)
            unit._lines = rows
            unit._line_addrs = [r.addr for r in rows]
        return unit._lines

    def first_line(self, unit: Unit, scope: Scope) -> int | None:
        """The line of the row at the scope's entry, else of its lowest-addressed row inside it
        (dwflpp's get_func_first_line)."""
        rows = self.lines(unit)
        i = bisect.bisect_left(unit._line_addrs, scope.entry)
        if i < len(rows) and rows[i].addr == scope.entry:
            return rows[i].line
        for lo, _hi in sorted(scope.ranges):
            j = bisect.bisect_left(unit._line_addrs, lo)
            if j < len(rows) and scope.contains(rows[j].addr):
                return rows[j].line
        return None

    def line_at(self, addr: int) -> LineRow | None:
        """The line row covering ``addr`` (the last row at or before it), as ``dwarf_getsrc_die``."""
        unit = self.unit_at(addr)
        if unit is None:
            return None
        rows = self.lines(unit)
        i = bisect.bisect_right(unit._line_addrs, addr)
        return rows[i - 1] if i else None

    def definition(self, name: str) -> Scope | None:
        """An external function defined with code in this file (SystemTap's external_function_query)."""
        for decl in self.names().get(name, []):
            unit = self.unit(decl.unit)
            scope = unit.by_offset.get(decl.offset)
            if scope is not None and scope.external and not scope.inline:
                return scope
        return None

    # -- call frame information ----------------------------------------------------------------

    def return_address_slot(self, pc: int) -> tuple[str, int] | None:
        """Where the return address of the frame executing ``pc`` is: ``(register, offset)`` with the
        address at ``offset(%register)`` (``.eh_frame``'s CFA rule: the return address is at CFA-8).
        None when the rule is not a register plus a constant."""
        if self._cfi is None:
            self._cfi = _cfi_table(self._dwarf)
            self._cfi_starts = [e[0] for e in self._cfi]
        i = bisect.bisect_right(self._cfi_starts, pc) - 1
        if i < 0 or not self._cfi[i][0] <= pc < self._cfi[i][1]:
            return None
        rule = None
        for row_pc, cfa in self._cfi[i][2]:
            if row_pc > pc:
                break
            rule = cfa
        if rule is None or rule.expr is not None or rule.reg not in _CFA_REGISTERS:
            return None
        return _CFA_REGISTERS[rule.reg], rule.offset - 8

    # -- walking one unit ----------------------------------------------------------------------

    def _walk(self, cu: Any) -> Unit:
        top = cu.get_top_DIE()
        files = _file_names(self._dwarf, cu)
        unit = Unit(cu.cu_offset, _text(top, "DW_AT_name"), files)
        pending_calls: list[tuple[Any, int]] = []
        for die, scope in _walk_scopes(cu, top):
            tag = die.tag
            if tag in (SUBPROGRAM, INLINED):
                made = self._scope(cu, die, scope, files)
                if made is not None:
                    unit.scopes.append(made)
                    unit.by_offset[made.offset] = made
            elif tag == LABEL and scope >= 0:
                addr = _attr(die, "DW_AT_low_pc")
                if addr is not None:
                    name = _integrated_text(die, "DW_AT_name")
                    if name:
                        unit.labels.append(Label(name, addr, _decl_file(die, files), _decl_line(die), scope))
            elif tag in CALL_SITES and scope >= 0:
                pending_calls.append((die, scope))
        for die, scope in pending_calls:
            call = self._call_site(die, scope)
            if call is not None:
                unit.calls.append(call)
        unit.finish()
        return unit

    def _scope(self, cu: Any, die: Any, parent: int, files: list[str]) -> Scope | None:
        ranges = _ranges(self._dwarf, cu, die)
        entry = _entry_pc(die, ranges)
        if entry is None or entry == 0:  # no code: a declaration or an abstract instance (PR10574: 0 too)
            return None
        name, linkage = _names_of(die)
        if not name:
            return None
        holder = _integrate(die, "DW_AT_decl_file")
        decl_files = files if holder is None or holder.cu is cu else _file_names(self._dwarf, holder.cu)
        named = _integrate(die, "DW_AT_name")
        return Scope(name, linkage, _decl_file(die, decl_files), _decl_line(die), entry, ranges,
                     die.tag == INLINED, bool(_integrated_attr(die, "DW_AT_external")), die.offset,
                     cu.cu_offset, parent, named.offset if named is not None else die.offset,
                     _params(die) if die.tag == SUBPROGRAM else ())

    def _call_site(self, die: Any, scope: int) -> CallSite | None:
        attrs = die.attributes
        ref = "DW_AT_call_origin" if "DW_AT_call_origin" in attrs else "DW_AT_abstract_origin"
        if ref not in attrs:
            return None  # an indirect call
        return_pc = _attr(die, "DW_AT_call_return_pc")
        if return_pc is None:
            return_pc = _attr(die, "DW_AT_low_pc")
        if return_pc is None:
            return None
        origin = die.get_DIE_from_attribute(ref)
        name, linkage = _names_of(origin)
        if not name:
            return None
        tail = "DW_AT_call_tail_call" in attrs or "DW_AT_GNU_tail_call" in attrs
        holder = _integrate(origin, "DW_AT_name")
        named = holder.offset if holder is not None else origin.offset
        return CallSite(name, linkage, named, return_pc, tail, scope,
                        bool(_integrated_attr(origin, "DW_AT_external")), die.offset)


# -- DIE helpers ---------------------------------------------------------------------------------


def _attr(die: Any, name: str) -> Any:
    a = die.attributes.get(name)
    return None if a is None else a.value


def _text(die: Any, name: str) -> str:
    value = _attr(die, name)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else ""


def _integrate(die: Any, name: str) -> Any:
    """The DIE holding attribute ``name``: ``die`` or what its abstract origin / specification
    chain leads to (elfutils' ``dwarf_attr_integrate``); None when nobody has it."""
    for _ in range(MAX_REF_HOPS):
        attrs = die.attributes
        if name in attrs:
            return die
        ref = "DW_AT_abstract_origin" if "DW_AT_abstract_origin" in attrs else (
            "DW_AT_specification" if "DW_AT_specification" in attrs else None)
        if ref is None:
            return None
        die = die.get_DIE_from_attribute(ref)
    return None


def _integrated_attr(die: Any, name: str) -> Any:
    holder = _integrate(die, name)
    return None if holder is None else _attr(holder, name)


def _integrated_text(die: Any, name: str) -> str:
    holder = _integrate(die, name)
    return "" if holder is None else _text(holder, name)


def _names_of(die: Any) -> tuple[str, str]:
    name = _integrated_text(die, "DW_AT_name")
    linkage = _integrated_text(die, "DW_AT_linkage_name") or _integrated_text(die, "DW_AT_MIPS_linkage_name")
    return name, linkage


def _decl_line(die: Any) -> int:
    value = _integrated_attr(die, "DW_AT_decl_line")
    return value if isinstance(value, int) else 0


def _decl_file(die: Any, files: list[str]) -> str:
    index = _integrated_attr(die, "DW_AT_decl_file")
    if isinstance(index, int) and 0 <= index < len(files):
        return files[index]
    return ""


def _ranges(dwarf: Any, cu: Any, die: Any) -> tuple[tuple[int, int], ...]:
    """The [low, high) pieces of ``die``'s code (DW_AT_low_pc/high_pc or DW_AT_ranges)."""
    attrs = die.attributes
    low = attrs.get("DW_AT_low_pc")
    if low is not None and "DW_AT_ranges" not in attrs:
        high = attrs.get("DW_AT_high_pc")
        if high is None:
            return ((low.value, low.value + 1),)
        end = high.value if high.form in _ADDR_FORMS else low.value + high.value
        return ((low.value, end),) if end > low.value else ()
    ref = attrs.get("DW_AT_ranges")
    if ref is None:
        return ()
    lists = dwarf.range_lists()
    if lists is None:
        return ()
    top = cu.get_top_DIE()
    base = _attr(top, "DW_AT_low_pc") or 0
    out: list[tuple[int, int]] = []
    for entry in lists.get_range_list_at_offset(ref.value, cu=cu):
        if isinstance(entry, BaseAddressEntry):
            base = entry.base_address
            continue
        lo, hi = (entry.begin_offset, entry.end_offset) if entry.is_absolute else (
            base + entry.begin_offset, base + entry.end_offset)
        if hi > lo:
            out.append((lo, hi))
    return tuple(out)


def _entry_pc(die: Any, ranges: tuple[tuple[int, int], ...]) -> int | None:
    """``DW_AT_entry_pc`` (an address, or in DWARF 5 an offset from the base), else the low pc,
    else the start of the first range (dwflpp::die_entrypc)."""
    attr = die.attributes.get("DW_AT_entry_pc")
    if attr is not None:
        if attr.form in _ADDR_FORMS:
            return attr.value
        if ranges:
            return ranges[0][0] + attr.value
    low = _attr(die, "DW_AT_low_pc")
    if low is not None:
        return low
    return ranges[0][0] if ranges else None


def _file_names(dwarf: Any, cu: Any) -> list[str]:
    """The line program's file names as paths, indexed as DW_AT_decl_file and line rows count them."""
    program = dwarf.line_program_for_CU(cu)
    if program is None:
        return []
    top = cu.get_top_DIE()
    comp = _text(top, "DW_AT_comp_dir")
    dirs = [d.decode("utf-8", "replace") if isinstance(d, bytes) else str(d)
            for d in program["include_directory"]]
    v5 = program["version"] >= 5
    names = [] if v5 else [""]  # before DWARF 5, file numbers count from 1
    for entry in program["file_entry"]:
        name = entry.name.decode("utf-8", "replace") if isinstance(entry.name, bytes) else str(entry.name)
        index = entry.dir_index
        if v5:
            base = dirs[index] if index < len(dirs) else comp
        else:
            base = dirs[index - 1] if 0 < index <= len(dirs) else comp
        if not base.startswith("/") and comp:
            base = os.path.join(comp, base)
        names.append(name if name.startswith("/") else os.path.join(base or comp, name))
    return names


def _children_bounded(cu: Any, die: Any, descend: tuple[str, ...] = ()) -> Iterator[Any]:
    """``die``'s children (and, for the tags in ``descend``, theirs), with a bound on how many
    DIEs one unit can yield (a loop in hostile sibling links ends in an error, not a hang)."""
    budget = max(1024, cu["unit_length"])
    stack = [die.iter_children()]
    while stack:
        child = next(stack[-1], None)
        if child is None:
            stack.pop()
            continue
        budget -= 1
        if budget < 0:
            raise DwarfError(f"malformed debug information (unit at 0x{cu.cu_offset:x} does not end)")
        yield child
        if child.tag in descend and child.has_children:
            stack.append(child.iter_children())


def _walk_scopes(cu: Any, top: Any) -> Iterator[tuple[Any, int]]:
    """Every DIE with code meaning, with the DIE offset of the scope it is directly in (-1 at
    the top): descends into functions, inline instances and lexical blocks, not into types."""
    budget = max(1024, cu["unit_length"])
    stack: list[tuple[Iterator[Any], int]] = [(top.iter_children(), -1)]
    while stack:
        it, scope = stack[-1]
        die = next(it, None)
        if die is None:
            stack.pop()
            continue
        budget -= 1
        if budget < 0:
            raise DwarfError(f"malformed debug information (unit at 0x{cu.cu_offset:x} does not end)")
        yield die, scope
        if not die.has_children:
            continue
        tag = die.tag
        if tag in (SUBPROGRAM, INLINED):
            if tag == INLINED or "DW_AT_low_pc" in die.attributes or "DW_AT_ranges" in die.attributes:
                stack.append((die.iter_children(), die.offset))
        elif tag in _TRANSPARENT:
            stack.append((die.iter_children(), scope))


# -- parameters ----------------------------------------------------------------------------------


def _param_type_shallow(die: Any) -> tuple[str, int]:
    """(kind, size) of a pointee, without following further pointers (``char`` is ("int", 1))."""
    for _ in range(16):
        if die is None:
            return "unknown", 0
        if die.tag in _QUALIFIERS:
            if "DW_AT_type" not in die.attributes:
                return "unknown", 0
            die = die.get_DIE_from_attribute("DW_AT_type")
            continue
        if die.tag == "DW_TAG_base_type":
            return "int", _attr(die, "DW_AT_byte_size") or 0
        return "other", 0
    return "unknown", 0


def param_type(die: Any) -> tuple[str, int, bool]:
    """(kind, size, signed) of a type DIE, through typedefs and qualifiers."""
    for _ in range(16):
        if die is None:
            return "unknown", 0, False
        tag = die.tag
        if tag in _QUALIFIERS:
            if "DW_AT_type" not in die.attributes:
                return "unknown", 0, False
            die = die.get_DIE_from_attribute("DW_AT_type")
            continue
        size = _attr(die, "DW_AT_byte_size") or 0
        if tag in ("DW_TAG_pointer_type", "DW_TAG_reference_type", "DW_TAG_rvalue_reference_type"):
            target = die.get_DIE_from_attribute("DW_AT_type") if "DW_AT_type" in die.attributes else None
            return ("text" if _param_type_shallow(target) == ("int", 1) else "pointer"), 8, False
        if tag == "DW_TAG_base_type":
            enc = _attr(die, "DW_AT_encoding") or 0
            if enc in _FLOAT_ENCODINGS:
                return "float", size, True
            return "int", size, enc in _SIGNED_ENCODINGS
        if tag == "DW_TAG_enumeration_type":
            return "int", size or 4, False
        if tag in ("DW_TAG_structure_type", "DW_TAG_union_type", "DW_TAG_class_type", "DW_TAG_array_type"):
            return "aggregate", size, False
        return "unknown", size, False
    return "unknown", 0, False


_NAMED_KINDS = {"DW_TAG_enumeration_type": "enum ", "DW_TAG_structure_type": "struct ",
                "DW_TAG_union_type": "union ", "DW_TAG_class_type": "class ",
                "DW_TAG_typedef": "", "DW_TAG_base_type": ""}
_MODIFIER_SUFFIX = {"DW_TAG_reference_type": "&", "DW_TAG_rvalue_reference_type": "&&",
                    "DW_TAG_pointer_type": "*", "DW_TAG_array_type": "[]",
                    "DW_TAG_const_type": " const", "DW_TAG_volatile_type": " volatile"}


def c_type_name(die: Any, depth: int = 0) -> str | None:
    """A type's name the way SystemTap's listing writes it: modifiers after their type
    (``char const*``, ``int[]``), anonymous aggregates as ``struct {...}``, an unnamed
    pointee as ``void``, GCC's va_list pointer as ``va_list``; None for a type that has no
    such name (a function type)."""
    if die is None or depth > 32:
        return None
    tag = die.tag
    if tag in _NAMED_KINDS:
        return _NAMED_KINDS[tag] + (_text(die, "DW_AT_name") or "{...}")
    suffix = _MODIFIER_SUFFIX.get(tag)
    if suffix is None:
        return None
    sub = die.get_DIE_from_attribute("DW_AT_type") if "DW_AT_type" in die.attributes else None
    if sub is not None and tag == "DW_TAG_pointer_type" and sub.tag == "DW_TAG_structure_type" \
            and _text(sub, "DW_AT_name") == "__va_list_tag":
        return "va_list"
    if sub is not None and tag == "DW_TAG_pointer_type" and sub.tag == "DW_TAG_subroutine_type":
        return _function_pointer_name(sub, depth)
    base = c_type_name(sub, depth + 1) or "void"
    if tag == "DW_TAG_const_type" and sub is not None and sub.tag in (
            "DW_TAG_reference_type", "DW_TAG_rvalue_reference_type"):
        suffix = ""  # a redundant const on a reference
    return base + suffix


def _function_pointer_name(subroutine: Any, depth: int) -> str:
    """``int (*) (int, char const*)``: a pointer to a function type, as stap 4.x lists it."""
    ret = subroutine.get_DIE_from_attribute("DW_AT_type") if "DW_AT_type" in subroutine.attributes else None
    params = []
    for child in subroutine.iter_children() if subroutine.has_children else ():
        if child.tag == "DW_TAG_formal_parameter":
            ptype = child.get_DIE_from_attribute("DW_AT_type") if "DW_AT_type" in child.attributes else None
            params.append(c_type_name(ptype, depth + 1) or "void")
        elif child.tag == "DW_TAG_unspecified_parameters":
            params.append("...")
    return f"{c_type_name(ret, depth + 1) or 'void'} (*) ({', '.join(params) or 'void'})"


def _params(die: Any) -> tuple[Param, ...]:
    """The formal parameters of a subprogram, in declaration order (names and types through the
    abstract origin of an out-of-line copy)."""
    holder = die
    kids = [c for c in die.iter_children() if c.tag == "DW_TAG_formal_parameter"] if die.has_children else []
    if not kids:
        origin = _integrate(die, "DW_AT_name")
        if origin is not None and origin is not die and origin.has_children:
            holder = origin
            kids = [c for c in holder.iter_children() if c.tag == "DW_TAG_formal_parameter"]
    out = []
    for child in kids[:64]:
        name = _integrated_text(child, "DW_AT_name")
        if not name:
            continue
        typed = _integrate(child, "DW_AT_type")
        tdie = typed.get_DIE_from_attribute("DW_AT_type") if typed is not None else None
        ctype = (c_type_name(tdie) or "") if tdie is not None else "void"
        out.append(Param(name, *param_type(tdie), ctype=ctype))
    return tuple(out)


# -- call frame information ----------------------------------------------------------------------

_CFA_REGISTERS = {7: "sp", 6: "bp"}  # DWARF x86-64 register numbers


def _cfi_table(dwarf: Any) -> list[tuple[int, int, list[tuple[int, Any]]]]:
    """(start, end, [(pc, CFA rule)]) per FDE of ``.eh_frame`` (else ``.debug_frame``), by start."""
    out: list[tuple[int, int, list[tuple[int, Any]]]] = []
    try:
        if dwarf.has_EH_CFI():
            entries = dwarf.EH_CFI_entries()
        elif dwarf.has_CFI():
            entries = dwarf.CFI_entries()
        else:
            return []
        for entry in entries:
            if "initial_location" not in getattr(entry, "header", {}):
                continue
            start = entry["initial_location"]
            rows = [(row["pc"], row["cfa"]) for row in entry.get_decoded().table if "cfa" in row]
            out.append((start, start + entry["address_range"], rows))
    except PARSE_ERRORS:
        return []
    out.sort(key=lambda e: e[0])
    return out


# -- the cache -----------------------------------------------------------------------------------

MAX_CACHED = 16  # indexes kept (each holds its file open): a translation names few binaries
_CACHE: OrderedDict[str, DwarfIndex] = OrderedDict()


def open_index(path: str, build_id: str) -> DwarfIndex:
    """The index of the ELF file at ``path`` (cached by build-id, else by file identity: another
    path to the same binary shares it).

    The file is opened without following symlinks (callers pass canonical paths) and kept
    open: pyelftools reads lazily.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise DwarfError(f"cannot open {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise DwarfError(f"{path} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    # the build-id names the content; size and mtime keep a doctored copy from sharing an index
    key = f"{build_id}:{st.st_size}:{st.st_mtime_ns}" if build_id else \
        f"{st.st_dev}:{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"
    found = _CACHE.get(key)
    if found is not None:
        os.close(fd)
        _CACHE.move_to_end(key)
        return found
    stream = os.fdopen(fd, "rb")
    try:
        index = DwarfIndex(path, stream)
    except BaseException:
        stream.close()
        raise
    _CACHE[key] = index
    while len(_CACHE) > MAX_CACHED:
        _CACHE.popitem(last=False)[1].close()
    return index
