"""Translator-side ELF resolution: probe points to file offsets, build-ids and SDT notes.

``process("PATH").function("NAME")`` and friends become manifest entries
the daemon can install without ever parsing the binary's symbols: the file
offset of the probed instruction (``st_value - p_vaddr + p_offset`` of the
``PT_LOAD`` that contains it), the GNU build-id (checked again by the
daemon on the fd it probes through, so a rebuilt binary is refused rather
than probed at a stale offset), and the uprobe fetch arguments the handler
may use (registers per the SysV ABI, ``$retval``, SDT argument operands).

The parameter schema emitted here is documented in :mod:`pystap.kernel`.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field
from typing import Any

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from pystap.lang.ast import Type
from pystap.lang.diagnostics import SemanticError

ARG_REGISTERS = ("di", "si", "dx", "cx", "r8", "r9")
LIBRARY_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib",
                "/usr/lib",
                "/usr/local/lib")
STT_FUNCS = ("STT_FUNC", "STT_GNU_IFUNC")
MAX_MATCHES = 10_000

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


@dataclass
class ElfInfo:
    """What the translator needs from one ELF file."""

    path: str
    build_id: str = ""
    loads: list[tuple[int, int, int]] = field(default_factory=list)  # (vaddr, memsz, offset)
    functions: dict[str, int] = field(default_factory=dict)  # name -> vaddr
    sdt: list[SdtNote] = field(default_factory=list)
    plt: dict[str, int] = field(default_factory=dict)  # imported name -> vaddr of its PLT stub
    has_debug_info: bool = False

    def function_at(self, vaddr: int) -> str:
        """The function symbol at or before ``vaddr`` (``probefunc()`` of a statement or mark)."""
        best, best_addr = "", -1
        for name, addr in self.functions.items():
            if best_addr < addr <= vaddr or (addr == best_addr and name < best):
                best, best_addr = name, addr
        return best

    def function_at_offset(self, offset: int) -> str:
        for start, size, off in self.loads:
            if off <= offset < off + size:
                return self.function_at(offset - off + start)
        return ""

    def file_offset(self, vaddr: int) -> int:
        """The PT_LOAD rule: ``vaddr - p_vaddr + p_offset`` of the segment containing ``vaddr``."""
        for start, size, offset in self.loads:
            if start <= vaddr < start + size:
                return vaddr - start + offset
        raise ElfResolveError(f"address 0x{vaddr:x} is not in a loadable segment of {self.path}")


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
    builds) or stub i+1 of ``.plt`` (slot 0 is the resolver trampoline); stubs are 16 bytes."""
    rela = elf.get_section_by_name(".rela.plt")
    if rela is None or not hasattr(rela, "iter_relocations"):
        return
    sec = elf.get_section_by_name(".plt.sec")
    plt = elf.get_section_by_name(".plt")
    if sec is None and plt is None:
        return
    symtab = elf.get_section(rela["sh_link"])
    for i, rel in enumerate(rela.iter_relocations()):
        sym = symtab.get_symbol(rel["r_info_sym"]) if isinstance(symtab, SymbolTableSection) else None
        if sym is None or not sym.name:
            continue
        addr = sec["sh_addr"] + 16 * i if sec is not None else plt["sh_addr"] + 16 * (i + 1)
        info.plt.setdefault(sym.name.split("@", 1)[0], addr)


_CACHE: dict[tuple[str, int, int], ElfInfo] = {}


def load(path: str) -> ElfInfo:
    """Parse ``path`` once (cached by inode and mtime)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ElfResolveError(f"cannot open {path}: {exc.strerror}") from None
    key = (path, st.st_ino, st.st_mtime_ns)
    if key in _CACHE:
        return _CACHE[key]
    info = ElfInfo(path)
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            if elf.elfclass != 64 or elf["e_machine"] != "EM_X86_64":
                raise ElfResolveError(f"{path} is not an x86-64 ELF binary")
            for seg in elf.iter_segments():
                if seg["p_type"] == "PT_LOAD":
                    info.loads.append((seg["p_vaddr"], seg["p_memsz"], seg["p_offset"]))
                elif seg["p_type"] == "PT_NOTE":
                    for note in seg.iter_notes():
                        if note["n_type"] == "NT_GNU_BUILD_ID" and not info.build_id:
                            info.build_id = str(note["n_desc"]).lower()
            for secname in (".dynsym", ".symtab"):
                section = elf.get_section_by_name(secname)
                if not isinstance(section, SymbolTableSection):
                    continue
                for sym in section.iter_symbols():
                    defined = sym["st_shndx"] != "SHN_UNDEF" and sym["st_value"]
                    if sym["st_info"]["type"] in STT_FUNCS and defined:
                        info.functions.setdefault(sym.name.split("@", 1)[0], sym["st_value"])
            _read_sdt(elf, info)
            _read_plt(elf, info)
            info.has_debug_info = elf.has_dwarf_info() and elf.get_section_by_name(".debug_info") is not None
    except ElfResolveError:
        raise
    except (ELFError, OSError, ValueError, KeyError) as exc:
        raise ElfResolveError(f"cannot read ELF file {path}: {exc}") from None
    _CACHE[key] = info
    return info


def function_params(path: str, function: str) -> list[tuple[str, bool]]:
    """``(name, is_pointer)`` of a function's formal parameters, from DWARF."""
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            if elf.get_section_by_name(".debug_info") is None:
                raise ElfResolveError(f"{path} has no debug information (rebuild it with -g for $parameters)")
            dwarf = elf.get_dwarf_info()
            for cu in dwarf.iter_CUs():
                for die in cu.iter_DIEs():
                    if die.tag != "DW_TAG_subprogram":
                        continue
                    name = die.attributes.get("DW_AT_name")
                    if name is None or name.value.decode("utf-8", "replace") != function:
                        continue
                    out = []
                    for child in die.iter_children():
                        if child.tag == "DW_TAG_formal_parameter" and "DW_AT_name" in child.attributes:
                            pname = child.attributes["DW_AT_name"].value.decode("utf-8", "replace")
                            tdie = child.get_DIE_from_attribute("DW_AT_type") if "DW_AT_type" in \
                                child.attributes else None
                            out.append((pname, tdie is not None and tdie.tag == "DW_TAG_pointer_type"))
                    return out
    except ElfResolveError:
        raise
    except (ELFError, OSError, ValueError, KeyError, AttributeError) as exc:
        raise ElfResolveError(f"cannot read debug information of {path}: {exc}") from None
    raise ElfResolveError(f"no debug information for function '{function}' in {path}")


@dataclass(frozen=True)
class Param:
    """One formal parameter as DWARF describes it (after typedefs and qualifiers)."""

    name: str
    kind: str  # "int" | "pointer" | "text" (a char pointer) | "float" | "aggregate" | "unknown"
    size: int
    signed: bool


_QUALIFIERS = ("DW_TAG_typedef", "DW_TAG_const_type", "DW_TAG_volatile_type", "DW_TAG_restrict_type",
               "DW_TAG_atomic_type")
_SIGNED_ENCODINGS = (0x05, 0x06, 0x0D)  # DW_ATE_signed, signed_char, signed_fixed
_FLOAT_ENCODINGS = (0x03, 0x04, 0x09)  # complex_float, float, decimal_float
_DWARF_CACHE: dict[tuple[str, int, int], tuple[dict[str, list[Param]], dict[str, str]]] = {}


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
            size = die.attributes["DW_AT_byte_size"].value if "DW_AT_byte_size" in die.attributes else 0
            return "int", size
        return "other", 0
    return "unknown", 0


def _param_type(die: Any) -> tuple[str, int, bool]:
    for _ in range(16):
        if die is None:
            return "unknown", 0, False
        tag = die.tag
        if tag in _QUALIFIERS:
            if "DW_AT_type" not in die.attributes:
                return "unknown", 0, False
            die = die.get_DIE_from_attribute("DW_AT_type")
            continue
        size = die.attributes["DW_AT_byte_size"].value if "DW_AT_byte_size" in die.attributes else 0
        if tag in ("DW_TAG_pointer_type", "DW_TAG_reference_type", "DW_TAG_rvalue_reference_type"):
            target = die.get_DIE_from_attribute("DW_AT_type") if "DW_AT_type" in die.attributes else None
            pointee = _param_type_shallow(target)
            return ("text" if pointee == ("int", 1) else "pointer"), 8, False
        if tag == "DW_TAG_base_type":
            enc = die.attributes["DW_AT_encoding"].value if "DW_AT_encoding" in die.attributes else 0
            if enc in _FLOAT_ENCODINGS:
                return "float", size, True
            return "int", size, enc in _SIGNED_ENCODINGS
        if tag == "DW_TAG_enumeration_type":
            return "int", size or 4, False
        if tag in ("DW_TAG_structure_type", "DW_TAG_union_type", "DW_TAG_class_type", "DW_TAG_array_type"):
            return "aggregate", size, False
        return "unknown", size, False
    return "unknown", 0, False


def dwarf_functions(path: str) -> dict[str, list[Param]]:
    """Every function's formal parameters with their types, from DWARF (parsed once per file).

    Raises :class:`ElfResolveError` when the file has no debug information.
    """
    return _dwarf(path)[0]


def dwarf_decl(path: str, function: str) -> str:
    """``FILE:LINE`` where DWARF declares ``function`` ("" when unknown): SystemTap shows a
    function probe point as ``function("NAME@FILE:LINE")``."""
    try:
        return _dwarf(path)[1].get(function, "")
    except ElfResolveError:
        return ""


def _file_names(dwarf: Any, cu: Any) -> list[str]:
    """The line program's file names as paths, indexed as DW_AT_decl_file counts them."""
    try:
        lp = dwarf.line_program_for_CU(cu)
    except (ELFError, ValueError, KeyError, AttributeError):
        return []
    if lp is None:
        return []
    top = cu.get_top_DIE()
    comp = top.attributes["DW_AT_comp_dir"].value.decode("utf-8", "replace") \
        if "DW_AT_comp_dir" in top.attributes else ""
    dirs = [d.decode("utf-8", "replace") for d in lp["include_directory"]]
    v5 = lp["version"] >= 5
    names = [] if v5 else [""]  # before DWARF 5, file numbers count from 1
    for entry in lp["file_entry"]:
        name = entry.name.decode("utf-8", "replace")
        index = entry.dir_index
        if v5:
            base = dirs[index] if index < len(dirs) else comp
        else:
            base = dirs[index - 1] if 0 < index <= len(dirs) else comp
        names.append(name if name.startswith("/") else os.path.join(base or comp, name))
    return names


def _dwarf(path: str) -> tuple[dict[str, list[Param]], dict[str, str]]:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ElfResolveError(f"cannot open {path}: {exc.strerror}") from None
    key = (path, st.st_ino, st.st_mtime_ns)
    cached = _DWARF_CACHE.get(key)
    if cached is not None:
        return cached
    out: dict[str, list[Param]] = {}
    decls: dict[str, str] = {}
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            if elf.get_section_by_name(".debug_info") is None:
                raise ElfResolveError(f"{path} has no debug information (rebuild it with -g for $parameters)")
            dwarf = elf.get_dwarf_info()
            for cu in dwarf.iter_CUs():
                files: list[str] | None = None
                for die in cu.iter_DIEs():
                    if die.tag != "DW_TAG_subprogram" or "DW_AT_name" not in die.attributes:
                        continue
                    if "DW_AT_declaration" in die.attributes:
                        continue
                    name = die.attributes["DW_AT_name"].value.decode("utf-8", "replace")
                    params = []
                    for child in die.iter_children():
                        if child.tag != "DW_TAG_formal_parameter" or "DW_AT_name" not in child.attributes:
                            continue
                        pname = child.attributes["DW_AT_name"].value.decode("utf-8", "replace")
                        typed = "DW_AT_type" in child.attributes
                        tdie = child.get_DIE_from_attribute("DW_AT_type") if typed else None
                        params.append(Param(pname, *_param_type(tdie)))
                    if name not in out or (params and not out[name]):
                        out[name] = params
                    attrs = die.attributes
                    if name not in decls and "DW_AT_decl_file" in attrs and "DW_AT_decl_line" in attrs:
                        if files is None:
                            files = _file_names(dwarf, cu)
                        index = attrs["DW_AT_decl_file"].value
                        if 0 <= index < len(files) and files[index]:
                            decls[name] = f"{files[index]}:{attrs['DW_AT_decl_line'].value}"
    except ElfResolveError:
        raise
    except (ELFError, OSError, ValueError, KeyError, AttributeError) as exc:
        raise ElfResolveError(f"cannot read debug information of {path}: {exc}") from None
    _DWARF_CACHE[key] = (out, decls)
    return out, decls


def param_fetches(params: list[Param]) -> tuple[dict[str, str], dict[str, str]]:
    """Where each parameter is at function entry (SysV x86-64), as fetch arguments.

    Integer and pointer parameters take the next of the six argument
    registers, then the next stack slot; floating-point ones travel in SSE
    registers (no integer register used).  After an aggregate passed by
    value the assignment is not tracked, so later parameters are refused.
    Returns (``$name`` -> ``v_name=VALUE:TYPE``, ``$name`` -> why it is
    unavailable).
    """
    fetch: dict[str, str] = {}
    refused: dict[str, str] = {}
    reg = 0
    slot = 1
    lost = ""
    for p in params:
        var = "$" + p.name
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,29}", p.name):
            continue
        if lost:
            refused[var] = f"its location follows {lost} passed by value, which pystap does not track"
            continue
        if p.kind == "float":
            refused[var] = "floating-point parameters are passed in SSE registers, which uprobes cannot fetch"
            continue
        if p.kind in ("aggregate", "unknown"):
            refused[var] = "only integer and pointer parameters can be captured"
            lost = f"parameter '{p.name}'"
            continue
        if p.kind in ("pointer", "text"):
            kind = "u64"
        else:
            size = p.size if p.size in (1, 2, 4, 8) else 8
            kind = f"{'s' if p.signed else 'u'}{size * 8}"
        if reg < len(ARG_REGISTERS):
            value = f"%{ARG_REGISTERS[reg]}"
            reg += 1
        else:
            value = f"$stack{slot}"
            slot += 1
        fetch[var] = f"v_{p.name}={value}:{kind}"
    return fetch, refused


def find_library(name: str, program: str | None = None) -> str:
    """Where ``process.library("NAME")`` points: absolute as given, else the usual directories."""
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


def _binary_for(params: dict[str, Any]) -> str:
    if params.get("target") == "pid":
        try:
            return os.path.realpath(f"/proc/{params['pid']}/exe")
        except OSError as exc:
            raise ElfResolveError(f"cannot read the executable of pid {params['pid']}: {exc}") from None
    path = params.get("path")
    if not isinstance(path, str):
        raise ElfResolveError("process probe without a binary")
    return path


def entry_fetch(is_return: bool) -> list[str]:
    """The fetch arguments every function probe captures (registers or the return value)."""
    fetch = ["comm=$comm:string"]
    if is_return:
        fetch.append("retval=$retval:s64")
    else:
        fetch.extend(f"arg{i + 1}=%{reg}:u64" for i, reg in enumerate(ARG_REGISTERS))
    return fetch


def _suffixes(args: dict[str, Any]) -> list[str]:
    names = args.get("_names")
    if isinstance(names, (list, tuple)):
        return [str(n) for n in names]
    return [k for k in args if not k.startswith("_")]


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def resolve_probe(family: str, prefix: str, params: dict[str, Any], args: dict[str, Any],
                  point: Any = None) -> list[dict[str, Any]]:
    """Expand a symbolic process probe point into manifest entries.

    Each is a mapping with ``point``, ``params`` and ``context_vars``, as
    :mod:`pystap.probes.process` expects.
    """
    try:
        return _resolve(family, prefix, params, args)
    except ElfResolveError as exc:
        raise SemanticError(str(exc)) from None


def _resolve(family: str, prefix: str, params: dict[str, Any], args: dict[str, Any]) -> list[dict[str, Any]]:
    program = _binary_for(params)
    names = _suffixes(args)
    binary = program
    lib = args.get("library")
    if isinstance(lib, str):
        binary = find_library(lib, program)
        prefix = f"{prefix}.library({_quote(binary)})"
    info = load(binary)
    is_return = "return" in names
    base = {**params, "binary": binary, "build_id": info.build_id, "return": is_return, "semaphore": 0}
    out: list[dict[str, Any]] = []

    if family == "process.function":
        want = args.get("function")
        suffix = ".return" if is_return else (".call" if "call" in names else "")
        if isinstance(want, int):
            targets = [(f"0x{want:x}", want)]
            label = str(want)
        else:
            pattern = str(want)
            targets = sorted((n, v) for n, v in info.functions.items() if fnmatch.fnmatchcase(n, pattern))
            label = None
            if not targets:
                raise ElfResolveError(f"no match for function '{pattern}' in {binary}")
        dwarf: dict[str, list[Param]] = {}
        if label is None and info.has_debug_info:
            try:
                dwarf = dwarf_functions(binary)
            except ElfResolveError:
                dwarf = {}
        for name, vaddr in targets[:MAX_MATCHES]:
            ctx: dict[str, Type] = {"$return": Type.LONG} if is_return else {}
            fetch = entry_fetch(is_return)
            catalogue: dict[str, str] = {}
            refused: dict[str, str] = {}
            parms: list[str] = []
            if is_return:
                ctx.update({f"$$return{s}": Type.STRING for s in ("", "$", "$$")})
            if name in dwarf:
                catalogue, refused = param_fetches(dwarf[name])
                if not is_return:  # a .return probe reads them as captured at the entry (pass 3)
                    fetch.extend(catalogue.values())
                ctx.update({var: Type.LONG for var in catalogue})
                if catalogue:
                    ctx.update({f"$$parms{s}": Type.STRING for s in ("", "$", "$$")})
                    ctx.update({f"$$vars{s}": Type.STRING for s in ("", "$", "$$")})
                parms = [f"{p.name}\t{int(p.kind == 'text')}" for p in dwarf[name]
                         if "$" + p.name in catalogue]
            elif not info.has_debug_info:
                refused["*"] = f"{binary} has no debug information (rebuild it with -g for $parameters)"
            decl = dwarf_decl(binary, name) if dwarf else ""
            shown = f"{name}@{decl}" if decl else name
            out.append({
                "point": f"{prefix}.function({label if label else _quote(shown)}){suffix}",
                "params": {**base, "offset": info.file_offset(vaddr), "symbol": name, "func": name,
                           "fetch": fetch, "_vars": [f"{k}\t{v}" for k, v in catalogue.items()],
                           "_parms": parms, "_entry": is_return},
                "context_vars": ctx,
                "refused": refused,
            })
        return out

    if family == "process.statement":
        want = args.get("statement")
        if not isinstance(want, int):
            raise ElfResolveError("process.statement(\"FILE:LINE\") needs line tables; give an address")
        return [{"point": f"{prefix}.statement(0x{want:x})",
                 "params": {**base, "return": False, "offset": info.file_offset(want), "symbol": "",
                            "func": info.function_at(want), "fetch": entry_fetch(False)},
                 "context_vars": {}}]

    if family == "process.mark":
        mark = str(args.get("mark"))
        provider = args.get("provider")
        matches = [n for n in info.sdt if fnmatch.fnmatchcase(n.name, mark)
                   and (provider is None or fnmatch.fnmatchcase(n.provider, str(provider)))]
        if not matches:
            raise ElfResolveError(f"no match for mark '{mark}' in {binary}")
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
                "point": f"{prefix}.provider({_quote(note.provider)}).mark({_quote(note.name)})",
                "params": {**base, "return": False, "offset": note.pc, "semaphore": note.semaphore,
                           "symbol": note.name, "provider": note.provider,
                           "func": info.function_at_offset(note.pc), "fetch": fetch,
                           "_vars": [f"{k}\t{v}" for k, v in catalogue.items()]},
                "context_vars": ctx,
            })
        return out

    if family == "process.plt":
        pattern = args.get("plt")
        pattern = "*" if not isinstance(pattern, str) else pattern
        matches = sorted((n, v) for n, v in info.plt.items() if fnmatch.fnmatchcase(n, pattern))
        if not matches:
            raise ElfResolveError(f"no match for plt '{pattern}' in {binary}")
        suffix = ".return" if is_return else ""
        for name, vaddr in matches[:MAX_MATCHES]:
            out.append({
                "point": f"{prefix}.plt({_quote(name)}){suffix}",
                "params": {**base, "offset": info.file_offset(vaddr), "symbol": name, "func": name,
                           "fetch": entry_fetch(is_return)},
                "context_vars": {"$$name": Type.STRING, **({"$return": Type.LONG} if is_return else {})},
            })
        return out

    raise ElfResolveError(f"{family} probes are not supported yet")
