"""Translator-side resolution (elfsyms) and the daemon's build-id check (elfcheck), incl. hostile files."""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

import pytest

from pystap.kernel import elfcheck
from pystap.lang.diagnostics import SemanticError
from pystap.probes import elfsyms


def nm_address(path: Path, name: str) -> int:
    out = subprocess.run(["nm", str(path)], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == name:
            return int(parts[0], 16)
    raise AssertionError(name)


def resolve(path: Path, family: str, **args):
    params = {"target": "path", "path": str(path)}
    names = ["process", *args.pop("_names", [k for k in args])]
    return elfsyms.resolve_probe(family=family, prefix=f'process("{path}")', params=params,
                                 args={"process": str(path), **args, "_names": names})


def test_function_offset_build_id_and_fetch(target: Path) -> None:
    (entry,) = resolve(target, "process.function", function="add")
    p = entry["params"]
    assert p["offset"] == nm_address(target, "add")  # PIE: vaddr == file offset for .text
    assert p["binary"] == str(target) and p["return"] is False and p["symbol"] == "add"
    # with debug information the point names the declaration, as stap's: NAME@FILE:LINE (elfsyms)
    assert entry["point"].startswith(f'process("{target}").function("add@') and "target.c:" in entry["point"]
    fd = os.open(target, os.O_RDONLY)
    try:
        assert elfcheck.read_build_id(fd) == p["build_id"] != ""
        elfcheck.check_build_id(fd, p["build_id"], str(target))
    finally:
        os.close(fd)
    assert p["fetch"][:3] == ["comm=$comm:string", "arg1=%di:u64", "arg2=%si:u64"]
    assert "v_a=%di:s64" in p["fetch"] and "$b" in entry["context_vars"]


def test_return_wildcard_and_address(target: Path) -> None:
    (ret,) = resolve(target, "process.function", function="add", _names=["function", "return"], **{"return": None})
    assert ret["params"]["return"] is True and "retval=$retval:s64" in ret["params"]["fetch"]
    assert "$return" in ret["context_vars"] and ret["point"].endswith(".return")
    several = resolve(target, "process.function", function="[ag][dr]*")
    assert [e["params"]["symbol"] for e in several] == ["add", "greet"]
    addr = nm_address(target, "greet")
    (byaddr,) = resolve(target, "process.function", function=addr)
    assert byaddr["params"]["offset"] == addr
    (stmt,) = resolve(target, "process.statement", statement=addr + 1)
    assert stmt["params"]["offset"] == addr + 1


def test_sdt_note_and_semaphore(target: Path) -> None:
    (mark,) = resolve(target, "process.mark", mark="tick")
    p = mark["params"]
    assert p["provider"] == "demo" and p["symbol"] == "tick"
    assert p["semaphore"] == elfsyms.load(str(target)).file_offset(nm_address(target, "demo_tick_semaphore"))
    assert [f.split("=")[0] for f in p["fetch"]] == ["comm", "arg1", "arg2", "arg2_str"]
    assert mark["point"] == f'process("{target}").provider("demo").mark("tick")'
    assert resolve(target, "process.mark", provider="demo", mark="t*", _names=["provider", "mark"])
    with pytest.raises(SemanticError, match=r"no match \(similar mark: tick\)$"):
        resolve(target, "process.mark", mark="tack")


@pytest.mark.parametrize(("spec", "fetch"), [
    ("8@%rbp", "%bp:u64"), ("-4@%eax", "%ax:s32"), ("-4@112(%rsp)", "+112(%sp):s32"), ("2@-8(%rbp)", "-8(%bp):u16"),
    ("1@%r12b", "%r12:u8"), ("-8@$5", "\\5:s64"), ("8@%xmm0", None), ("8@foo(%rip)", None), ("3@%rax", None),
    ("8@8(%rax,%rbx,2)", None),
])
def test_sdt_arg_conversion(spec: str, fetch: str | None) -> None:
    assert elfsyms.sdt_fetch(spec) == fetch


def test_errors_are_semantic_errors(target: Path, target_nodebug: Path, tmp_path: Path) -> None:
    with pytest.raises(SemanticError, match=r"no match \(similar functions: add, "):
        resolve(target, "process.function", function="addd")
    with pytest.raises(elfsyms.ElfResolveError, match="has no debug information"):
        elfsyms.function_params(str(target_nodebug), "add")
    assert elfsyms.function_params(str(target), "greet") == [("who", True), ("n", False)]
    (nodebug,) = resolve(target_nodebug, "process.function", function="add")
    assert "$a" not in nodebug["context_vars"]
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x7fELF" + os.urandom(200))
    with pytest.raises(SemanticError, match="cannot read ELF file|not an x86-64"):
        resolve(junk, "process.function", function="add")
    with pytest.raises(SemanticError, match="cannot open"):
        resolve(tmp_path / "missing", "process.function", function="add")
    with pytest.raises(SemanticError, match="cannot find library"):
        resolve(target, "process.function", library="libnosuch-pystap", function="x",
                _names=["library", "function"])


def test_library_resolution(target: Path, tmp_path: Path) -> None:
    lib = tmp_path / "libdemo.so.1"
    src = tmp_path / "l.c"
    src.write_text("int libfn(int x) { __asm__ volatile(\"nop\"); return x + 1; }\n")
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    (entry,) = resolve(target, "process.function", library=str(lib), function="libfn",
                       _names=["library", "function"])
    assert entry["params"]["binary"] == str(lib) and entry["params"]["path"] == str(target)
    assert entry["params"]["offset"] == nm_address(lib, "libfn")


def _fd(path: Path) -> int:
    return os.open(path, os.O_RDONLY)


@pytest.mark.parametrize("content", [
    b"", b"not an elf at all", b"\x7fELF\x01\x01" + b"\0" * 60,
    b"\x7fELF\x02\x01" + b"\0" * 26 + struct.pack("<Q", 64) + b"\0" * 14 + struct.pack("<HH", 56, 60000),
    b"\x7fELF\x02\x01" + b"\0" * 26 + struct.pack("<Q", 1 << 40) + b"\0" * 14 + struct.pack("<HH", 56, 1),
])
def test_elfcheck_hostile_files(tmp_path: Path, content: bytes) -> None:
    f = tmp_path / "bad"
    f.write_bytes(content)
    fd = _fd(f)
    try:
        with pytest.raises((elfcheck.ElfCheckError, OSError)):
            elfcheck.read_build_id(fd)
    finally:
        os.close(fd)


def test_elfcheck_oversized_note_and_mismatch(tmp_path: Path, target: Path) -> None:
    data = bytearray(target.read_bytes())
    phoff = struct.unpack_from("<Q", data, 32)[0]
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    for i in range(phnum):
        if struct.unpack_from("<I", data, phoff + i * phentsize)[0] == elfcheck.PT_NOTE:
            struct.pack_into("<Q", data, phoff + i * phentsize + 32, 1 << 30)  # p_filesz
    f = tmp_path / "big-note"
    f.write_bytes(bytes(data))
    fd = _fd(f)
    try:
        with pytest.raises(elfcheck.ElfCheckError, match="implausible ELF note"):
            elfcheck.read_build_id(fd)
    finally:
        os.close(fd)
    fd = _fd(target)
    try:
        with pytest.raises(elfcheck.ElfCheckError, match="recompile the script"):
            elfcheck.check_build_id(fd, "00" * 20, str(target))
    finally:
        os.close(fd)
    dirfd = os.open(tmp_path, os.O_RDONLY)
    try:
        with pytest.raises(elfcheck.ElfCheckError, match="not a regular file"):
            elfcheck.read_build_id(dirfd)
    finally:
        os.close(dirfd)


def test_plt_stubs(target: Path) -> None:
    out = subprocess.run(["objdump", "-d", "--section=.plt", "--section=.plt.sec", str(target)],
                         capture_output=True, text=True, check=True).stdout
    stubs = {}
    for line in out.splitlines():
        if line.endswith("@plt>:"):
            addr, name = line.split()
            stubs[name[1:-6]] = int(addr, 16)
    resolved = {e["params"]["symbol"]: e["params"]["offset"] for e in resolve(target, "process.plt", plt="*")}
    assert stubs and {k: resolved[k] for k in stubs} == stubs
    (ret,) = resolve(target, "process.plt", plt="strlen", _names=["plt", "return"], **{"return": None})
    assert ret["params"]["return"] is True and ret["point"].endswith('.plt("strlen").return')
    with pytest.raises(SemanticError, match=r"no match \(similar functions: strlen, "):
        resolve(target, "process.plt", plt="strlem")
