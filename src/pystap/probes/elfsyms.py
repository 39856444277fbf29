"""Translator-side ELF reading: symbols, loadable segments, build-id, SDT notes and PLT stubs.

A uprobe is placed at a *file offset*, and the daemon must be able to
install it without parsing the binary's symbols.  This module reads what the
translator needs from one ELF file: function symbols (with binding, so that
``.exported`` can ask what SystemTap asks), the ``PT_LOAD`` segments that
turn an address into a file offset (``st_value - p_vaddr + p_offset`` of the
segment containing it), the GNU build-id (checked again by the daemon on the
fd it probes through, so a rebuilt binary is refused rather than probed at a
stale offset), ``.note.stapsdt`` markers and the PLT stubs of imported
functions.  Debug information is :mod:`pystap.probes.dwarfinfo`'s concern and
turning a probe point into uprobes :mod:`pystap.probes.process_query`'s.

Lookups by address are binary searches over a sorted table, never scans:
``function("*")`` on a libc or a JVM calls them thousands of times.  Files are
parsed once per process (cached by file identity) and opened without
following a final symlink (callers pass canonical paths).
"""

from __future__ import annotations

import bisect
import fnmatch
import os
import re
import stat
import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from pystap.probes.dwarfinfo import PARSE_ERRORS, Param
from pystap.probes.fetchargs import ARG_REGISTERS, entry_fetch, param_fetches

LIBRARY_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib",
                "/usr/lib", "/usr/local/lib")
STT_FUNCS = ("STT_FUNC", "STT_GNU_IFUNC")
# SystemTap's func_is_exported: a function symbol bound GLOBAL, WEAK or GNU_UNIQUE (STB_LOOS).
EXPORTED_BINDINGS = ("STB_GLOBAL", "STB_WEAK", "STB_LOOS")
MAX_MATCHES = 10_000
PLT_ENTRY = 16  # x86-64 PLT stub size (.plt slot 0 is the resolver trampoline)

_REG64 = {
    "rax": "ax", "eax": "ax", "ax": "ax", "al": "ax", "rbx": "bx", "ebx": "bx", "bx": "bx", "bl": "bx",
    "rcx": "cx", "ecx": "cx", "cx": "cx", "cl": "cx", "rdx": "dx", "edx": "dx", "dx": "dx", "dl": "dx",
    "rsi": "si", "esi": "si", "si": "si", "sil": "si", "rdi": "di", "edi": "di", "di": "di", "dil": "di",
    "rbp": "bp", "ebp": "bp", "bp": "bp", "bpl": "bp", "rsp": "sp", "esp": "sp", "sp": "sp", "spl": "sp",
}
for _n in range(8, 16):
    for _suffix in ("", "d", "w", "b"):
        _REG64[f"r{_n}{_suffix}"] = f"r{_n}"
_SDT_ARG = re.compile(r"(-?)(1|2|4|8)@(.+)")
_MEM = re.compile(r"(-?(?:0x[0-9a-fA-F]+|[0-9]+))?\(%([a-z0-9]+)\)")


class ElfResolveError(ValueError):
    """The binary or the probe point cannot be resolved; the message is for the user."""


@dataclass(frozen=True)
class SdtNote:
    provider: str
    name: str
    pc: int  # file offset of the probe site
    semaphore: int  # file offset of the semaphore (0 = none)
    args: tuple[str, ...]  # arg specs as written in the note
    fetch: tuple[str | None, ...]  # uprobe fetch value per arg, None when not expressible


@dataclass(frozen=True)
class Symbol:
    """A defined function symbol."""

    name: str  # without a ``@VERSION`` suffix
    vaddr: int
    size: int
    binding: str  # STB_GLOBAL, STB_LOCAL, STB_WEAK, STB_LOOS (GNU_UNIQUE)
    ifunc: bool = False  # STT_GNU_IFUNC: the address is the implementation's resolver


@dataclass
class ElfInfo:
    """What the translator needs from one ELF file."""

    path: str
    build_id: str = ""
    shared: bool = False  # ET_DYN
    loads: list[tuple[int, int, int]] = field(default_factory=list)  # (vaddr, filesz, offset)
    functions: dict[str, int] = field(default_factory=dict)  # name -> vaddr (first definition)
    symbols: list[Symbol] = field(default_factory=list)  # by address
    primary: dict[str, Symbol] = field(default_factory=dict)  # first of each name in .symtab (else .dynsym)
    sdt: list[SdtNote] = field(default_factory=list)
    plt: dict[str, int] = field(default_factory=dict)  # imported name -> vaddr of its PLT stub
    has_debug_info: bool = False
    _starts: list[int] = field(default_factory=list)
    _by_name: dict[str, list[Symbol]] | None = None

    def symbol_at(self, vaddr: int) -> Symbol | None:
        """The function symbol at the greatest address at or before ``vaddr`` (a global name before
        a local alias, then the first name): ``probefunc()`` of a statement, mark or label."""
        i = bisect.bisect_right(self._starts, vaddr)
        if i == 0:
            return None
        j = bisect.bisect_left(self._starts, self._starts[i - 1])
        return min(self.symbols[j:i], key=lambda s: (s.binding == "STB_LOCAL", s.name))

    def named(self, name: str) -> list[Symbol]:
        """Every function symbol called ``name`` (a versioned name can have several addresses)."""
        if self._by_name is None:
            by_name: dict[str, list[Symbol]] = {}
            for sym in self.symbols:
                by_name.setdefault(sym.name, []).append(sym)
            self._by_name = by_name
        return self._by_name.get(name, [])

    def ifunc_at(self, vaddr: int) -> bool:
        lo = bisect.bisect_left(self._starts, vaddr)
        hi = bisect.bisect_right(self._starts, vaddr)
        return any(s.ifunc for s in self.symbols[lo:hi])

    def names_at(self, vaddr: int) -> set[str]:
        """The names of the function symbols that start exactly at ``vaddr``."""
        lo = bisect.bisect_left(self._starts, vaddr)
        hi = bisect.bisect_right(self._starts, vaddr)
        return {s.name for s in self.symbols[lo:hi]}

    def function_at(self, vaddr: int) -> str:
        sym = self.symbol_at(vaddr)
        return sym.name if sym is not None else ""

    def function_at_offset(self, offset: int) -> str:
        vaddr = self.vaddr_of_offset(offset)
        return self.function_at(vaddr) if vaddr is not None else ""

    def exported(self, name: str) -> bool:
        """SystemTap's ``.exported``: the first symbol of that name is a GLOBAL/WEAK/UNIQUE function."""
        sym = self.primary.get(name)
        return sym is not None and sym.binding in EXPORTED_BINDINGS

    def file_offset(self, vaddr: int) -> int:
        """The PT_LOAD rule: ``vaddr - p_vaddr + p_offset`` of the segment containing ``vaddr``."""
        for start, size, offset in self.loads:
            if start <= vaddr < start + size:
                return vaddr - start + offset
        raise ElfResolveError(f"address 0x{vaddr:x} is not in a loadable segment of {self.path}")

    def vaddr_of_offset(self, offset: int) -> int | None:
        for start, size, off in self.loads:
            if off <= offset < off + size:
                return offset - off + start
        return None


def sdt_fetch(spec: str) -> str | None:
    """Convert one SDT arg spec (``-4@112(%rsp)``) to a uprobe fetch value with type."""
    m = _SDT_ARG.fullmatch(spec.strip())
    if not m:
        return None
    kind = f"{'s' if m.group(1) else 'u'}{int(m.group(2)) * 8}"
    operand = m.group(3)
    if operand.startswith("%"):
        reg = _REG64.get(operand[1:])
        return f"%{reg}:{kind}" if reg else None
    if operand.startswith("$"):
        try:
            return f"\\{int(operand[1:], 0)}:{kind}"
        except ValueError:
            return None
    mm = _MEM.fullmatch(operand)
    if mm:
        reg = _REG64.get(mm.group(2))
        if reg is None:
            return None
        off = int(mm.group(1) or "0", 0)
        return f"{'-' if off < 0 else '+'}{abs(off)}(%{reg}):{kind}"
    return None


def _read_sdt(elf: ELFFile, info: ElfInfo) -> None:
    section = elf.get_section_by_name(".note.stapsdt")
    if section is None:
        return
    base_section = elf.get_section_by_name(".stapsdt.base")
    data = section.data()
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, ntype = (int.from_bytes(data[pos + i:pos + i + 4], "little") for i in (0, 4, 8))
        name_start = pos + 12
        desc_start = name_start + ((namesz + 3) & ~3)
        desc_end = desc_start + descsz
        if desc_end > len(data):
            raise ElfResolveError(f"malformed .note.stapsdt in {info.path}")
        owner = data[name_start:name_start + namesz].rstrip(b"\0")
        if ntype == 3 and owner == b"stapsdt" and descsz >= 24:
            desc = data[desc_start:desc_end]
            pc, base, sem = (int.from_bytes(desc[i:i + 8], "little") for i in (0, 8, 16))
            strings = desc[24:].split(b"\0")
            if len(strings) >= 3:
                provider, name, args = (s.decode("ascii", "replace") for s in strings[:3])
                if base_section is not None:
                    adjust = base_section["sh_addr"] - base
                    pc += adjust
                    if sem:
                        sem += adjust
                specs = tuple(args.split()) if args else ()
                info.sdt.append(SdtNote(provider, name, info.file_offset(pc),
                                        info.file_offset(sem) if sem else 0, specs,
                                        tuple(sdt_fetch(s) for s in specs)))
        pos = desc_end + ((-descsz) & 3)


def _read_plt(elf: ELFFile, info: ElfInfo) -> None:
    """PLT stubs by imported name: entry i of ``.rela.plt`` is stub i of ``.plt.sec`` (IBT
    builds, where the calls go) or stub i+1 of ``.plt`` (slot 0 is the resolver trampoline)."""
    rela = elf.get_section_by_name(".rela.plt")
    if rela is None or not hasattr(rela, "iter_relocations"):
        return
    sec = elf.get_section_by_name(".plt.sec")
    plt = elf.get_section_by_name(".plt")
    if sec is None and plt is None:
        return
    symtab = elf.get_section(rela["sh_link"])
    for i, rel in enumerate(rela.iter_relocations()):
        # every relocation owns a slot, IRELATIVE ones (no symbol) included
        sym = symtab.get_symbol(rel["r_info_sym"]) if isinstance(symtab, SymbolTableSection) else None
        if sym is None or not sym.name:
            continue
        addr = sec["sh_addr"] + PLT_ENTRY * i if sec is not None else plt["sh_addr"] + PLT_ENTRY * (i + 1)
        info.plt.setdefault(sym.name.split("@", 1)[0], addr)


_SYM = struct.Struct("<IBBHQQ")  # Elf64_Sym: st_name, st_info, st_other, st_shndx, st_value, st_size
_BINDINGS = {0: "STB_LOCAL", 1: "STB_GLOBAL", 2: "STB_WEAK", 10: "STB_LOOS"}
_STT_FUNC, _STT_GNU_IFUNC = 2, 10
MAX_SYMBOLS = 4_000_000


def _raw_symbols(elf: ELFFile, section: SymbolTableSection) -> list[tuple[str, int, int, int, int, int]]:
    """(name, type, binding, shndx, value, size) of every entry, read with ``struct`` from the raw
    section (pyelftools' per-symbol parsing costs ~0.2 ms a symbol: seconds on big binaries)."""
    if section["sh_entsize"] != _SYM.size:
        raise ElfResolveError(f"malformed symbol table in {section.name}")
    data = section.data()
    strtab = elf.get_section(section["sh_link"]).data()
    if len(data) // _SYM.size > MAX_SYMBOLS:
        raise ElfResolveError(f"implausibly large symbol table ({len(data) // _SYM.size} entries)")
    out = []
    usable = len(data) - len(data) % _SYM.size
    for st_name, st_info, _other, shndx, value, size in _SYM.iter_unpack(data[:usable]):
        end = strtab.find(b"\0", st_name)
        name = strtab[st_name:end if end >= 0 else len(strtab)].decode("utf-8", "replace")
        out.append((name, st_info & 0xF, st_info >> 4, shndx, value, size))
    return out


def _read_symbols(elf: ELFFile, info: ElfInfo) -> None:
    seen: set[tuple[str, int]] = set()
    symbols: list[Symbol] = []
    tables = [elf.get_section_by_name(name) for name in (".symtab", ".dynsym")]
    primary_done = False
    for section in tables:
        if not isinstance(section, SymbolTableSection):
            continue
        first_seen: dict[str, Symbol] = {}
        for raw_name, kind, bind, shndx, value, size in _raw_symbols(elf, section):
            name = raw_name.split("@", 1)[0]
            if not name:
                continue
            function = kind in (_STT_FUNC, _STT_GNU_IFUNC)
            binding = _BINDINGS.get(bind, f"STB_{bind}")
            # the first symbol of a name decides .exported, whatever it is (dwflpp::func_is_exported)
            first_seen.setdefault(name, Symbol(name, value, size, binding if function else ""))
            if not function or shndx == 0 or not value:  # SHN_UNDEF: an import
                continue
            if (name, value) not in seen:
                seen.add((name, value))
                symbols.append(Symbol(name, value, size, binding, kind == _STT_GNU_IFUNC))
        if not primary_done:
            info.primary = first_seen
            primary_done = True
    # global names first, then local ones (a static function shadowed by an export keeps the export)
    for record in sorted(symbols, key=lambda s: (s.binding == "STB_LOCAL", s.vaddr)):
        info.functions.setdefault(record.name, record.vaddr)
    info.symbols = sorted(symbols, key=lambda s: (s.vaddr, s.name))
    info._starts = [s.vaddr for s in info.symbols]


MAX_CACHED = 64
_CACHE: OrderedDict[tuple[int, int, int, int], ElfInfo] = OrderedDict()


def load(path: str) -> ElfInfo:
    """Parse ``path`` once (cached by file identity: device, inode, size and mtime)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise ElfResolveError(f"cannot open {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        try:
            st = os.fstat(fd)
        except OSError as exc:
            raise ElfResolveError(f"cannot open {path}: {exc.strerror}") from None
        if not stat.S_ISREG(st.st_mode):
            raise ElfResolveError(f"{path} is not a regular file")
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        cached = _CACHE.get(key)
        if cached is not None and cached.path == path:
            _CACHE.move_to_end(key)
            return cached
        info = ElfInfo(path)
        try:
            elf = ELFFile(f)
            if elf.elfclass != 64 or elf["e_machine"] != "EM_X86_64":
                raise ElfResolveError(f"{path} is not an x86-64 ELF binary")
            info.shared = elf["e_type"] == "ET_DYN"
            for seg in elf.iter_segments():
                if seg["p_type"] == "PT_LOAD":
                    info.loads.append((seg["p_vaddr"], seg["p_filesz"], seg["p_offset"]))
                elif seg["p_type"] == "PT_NOTE":
                    for note in seg.iter_notes():
                        if note["n_type"] == "NT_GNU_BUILD_ID" and not info.build_id:
                            info.build_id = str(note["n_desc"]).lower()
            _read_symbols(elf, info)
            _read_sdt(elf, info)
            _read_plt(elf, info)
            info.has_debug_info = elf.get_section_by_name(".debug_info") is not None
        except ElfResolveError:
            raise
        except PARSE_ERRORS as exc:
            raise ElfResolveError(f"cannot read ELF file {path}: {exc}") from None
    _CACHE[key] = info
    while len(_CACHE) > MAX_CACHED:
        _CACHE.popitem(last=False)
    return info


def function_params(path: str, function: str) -> list[tuple[str, bool]]:
    """``(name, is_pointer)`` of a function's formal parameters, from DWARF."""
    from pystap.probes import dwarfinfo

    info = load(path)
    if not info.has_debug_info:
        raise ElfResolveError(f"{path} has no debug information (rebuild it with -g for $parameters)")
    try:
        index = dwarfinfo.open_index(path, info.build_id)
        for unit in index.units_naming(lambda n: n == function):
            for scope in index.unit(unit).scopes:
                if scope.name == function and not scope.inline:
                    return [(p.name, p.kind in ("pointer", "text")) for p in scope.params]
    except dwarfinfo.DwarfError as exc:
        raise ElfResolveError(str(exc)) from None
    raise ElfResolveError(f"no debug information for function '{function}' in {path}")


def find_library(name: str, program: str | None = None) -> str:
    """Where ``process.library("NAME")`` points: absolute as given, else the program's directory,
    ``$LD_LIBRARY_PATH`` and the usual directories (a name, a glob, or a prefix of a versioned name)."""
    if name.startswith("/"):
        return os.path.realpath(name)
    dirs: list[str] = []
    if program:
        dirs.append(os.path.dirname(program))
    env = os.environ.get("LD_LIBRARY_PATH", "")
    dirs.extend(d for d in env.split(":") if d)
    dirs.extend(LIBRARY_DIRS)
    for d in dirs:
        try:
            entries = sorted(os.listdir(d))
        except OSError:
            continue
        for entry in entries:
            if entry == name or fnmatch.fnmatchcase(entry, name) or entry.startswith(name + "."):
                full = os.path.join(d, entry)
                if os.path.isfile(full):
                    return os.path.realpath(full)
    raise ElfResolveError(f"cannot find library '{name}'")


def resolve_probe(family: str, prefix: str, params: dict[str, Any], args: dict[str, Any],
                  point: Any = None, ctx: Any = None) -> list[dict[str, Any]]:
    """Expand a symbolic process probe point into manifest entries (see
    :func:`pystap.probes.process_query.resolve_probe`)."""
    from pystap.probes import process_query

    return process_query.resolve_probe(family=family, prefix=prefix, params=params, args=args, point=point,
                                       ctx=ctx)


__all__ = ["ARG_REGISTERS", "ElfInfo", "ElfResolveError", "Param", "SdtNote", "Symbol", "entry_fetch",
           "find_library", "function_params", "load", "param_fetches", "resolve_probe", "sdt_fetch"]
