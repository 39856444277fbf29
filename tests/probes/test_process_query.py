"""Pass 2 of the symbol forms of process probes (pystap.probes.process_query) on gcc-built programs.

sym_target.c is built -O2 -g (inlined ``twice``, call sites of ``leaf`` from ``work`` and
``other``) and -O0 -g (the label ``out``, one line-table row per statement).  Expected addresses
come from binutils (nm, readelf), never from pystap itself; probe points are SystemTap's ``-l``
text.  Refusals are checked with SystemTap's exact messages.
"""

from __future__ import annotations

import random
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from tests.probes.conftest import HERE, build, stap

from pystap import modfile
from pystap.lang.elaborate import ElabOptions, ElaborationError, elaborate
from pystap.probes import elfsyms, process_query

SRC = HERE / "sym_target.c"
WORK_LINE, TWICE_LINE, LEAF_LINE, HIDDEN_LINE, OTHER_LINE = 31, 11, 16, 26, 21


@pytest.fixture(scope="session")
def progs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if shutil.which("gcc") is None or shutil.which("readelf") is None:
        pytest.skip("gcc and binutils are needed")
    d = tmp_path_factory.mktemp("sym")
    out = {}
    for name, flags in (("o2", ["-O2", "-g"]), ("o0", ["-O0", "-g"]), ("stripped", ["-O2"])):
        out[name] = d / f"sym_{name}"
        subprocess.run(["gcc", *flags, "-o", str(out[name]), str(SRC)], check=True)
    lib_src = d / "libsym.c"
    lib_src.write_text("static inline int lib_twice(int x) { __asm__ volatile(\"nop\"); return 2 * x; }\n"
                       "int lib_fn(int x) {\n  int y = lib_twice(x);\n  return y + 1;\n}\n")
    out["lib"] = d / "libsym.so"
    subprocess.run(["gcc", "-O2", "-g", "-shared", "-fPIC", "-o", str(out["lib"]), str(lib_src)], check=True)
    return out


def src() -> str:
    return str(SRC)


def nm(path: Path, name: str) -> int:
    for line in subprocess.run(["nm", str(path)], capture_output=True, text=True, check=True).stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == name:
            return int(parts[0], 16)
    raise AssertionError(name)


def dies(path: Path) -> list[dict[str, Any]]:
    """readelf's DIEs: offset, tag and the attributes these tests read."""
    out: list[dict[str, Any]] = []
    text = subprocess.run(["readelf", "--debug-dump=info", str(path)], capture_output=True, text=True).stdout
    for line in text.splitlines():
        m = re.match(r"\s*<\d+><([0-9a-f]+)>: Abbrev Number: \d+ \((\w+)\)", line)
        if m:
            out.append({"offset": int(m.group(1), 16), "tag": m.group(2)})
            continue
        m = re.match(r"\s*<[0-9a-f]+>\s+(DW_AT_\w+)\s*: (.*)", line)
        if m and out:
            value = m.group(2).strip()
            ref = re.fullmatch(r"<0x([0-9a-f]+)>", value)
            if ref:
                out[-1][m.group(1)] = int(ref.group(1), 16)
            elif m.group(1) in ("DW_AT_low_pc", "DW_AT_entry_pc"):
                out[-1][m.group(1)] = int(value, 16)
            else:
                out[-1][m.group(1)] = value.rsplit(": ", 1)[-1]
    return out


def inline_entries(path: Path, name: str) -> set[int]:
    all_dies = dies(path)
    origin = {d["offset"] for d in all_dies if d["tag"] == "DW_TAG_subprogram" and d.get("DW_AT_name") == name}
    return {d["DW_AT_entry_pc"] for d in all_dies
            if d["tag"] == "DW_TAG_inlined_subroutine" and d.get("DW_AT_abstract_origin") in origin}


def line_addresses(path: Path, line: int) -> list[int]:
    text = subprocess.run(["readelf", "--debug-dump=decodedline", str(path)], capture_output=True,
                          text=True).stdout
    return sorted(int(p[2], 16) for p in (row.split() for row in text.splitlines())
                  if len(p) >= 3 and p[0] == "sym_target.c" and p[1] == str(line))


def offset(path: Path, vaddr: int) -> int:
    return elfsyms.load(str(path)).file_offset(vaddr)


def probes(script: str, *options: str) -> list[modfile.ProbeEntry]:
    """The kernel probes of a module (pass 1-3)."""
    return [p for p in build(script, *options).probes if p.family.startswith("process.")]


def listing(pattern: str, *options: str) -> list[str]:
    rc, out, err = stap("-l", pattern, *options)
    assert rc == 0, err
    return out.splitlines()


def p2_error(script: str, *options: str) -> str:
    rc, out, err = stap("-p2", *options, "-e", script)
    assert rc == 1, out
    return err


# -- .function --------------------------------------------------------------------------------------


def test_function_entry_call_return_and_declaration(progs: dict[str, Path]) -> None:
    t = progs["o2"]
    work = f'process("{t}").function("work@{src()}:{WORK_LINE}")'
    assert listing(f'process("{t}").function("work")') == [work]
    assert listing(f'process("{t}").function("work").call') == [work + ".call"]
    assert listing(f'process("{t}").function("work").return') == [work + ".return"]
    (entry, ret) = probes(f'probe process("{t}").function("work") {{ println($n) }}'
                          f' probe process("{t}").function("work").return {{ println($return) }}')
    assert entry.params["offset"] == ret.params["offset"] == offset(t, nm(t, "work"))
    assert entry.params["func"] == "work" and "v_n=%di:s32" in entry.params["fetch"]
    assert ret.params["return"] is True and "pp" not in entry.params


def test_inline_instances(progs: dict[str, Path]) -> None:
    t = progs["o2"]
    expected = {offset(t, a) for a in inline_entries(t, "twice")}
    found = probes(f'probe process("{t}").function("twice").inline {{ println(probefunc()) }}')
    assert expected and {p.params["offset"] for p in found} == expected
    assert {p.point for p in found} == {f'process("{t}").function("twice@{src()}:{TWICE_LINE}").inline'}
    # no suffix: the function's entries and its inlined instances (only instances here)
    assert {p.params["offset"] for p in probes(f'probe process("{t}").function("twice") {{ next }}')} == expected
    err = p2_error(f'probe process("{t}").function("twice").inline {{ println($x) }}')
    assert "target variable '$x' is not available: pystap reads parameters from the ABI argument " \
           "registers at a function's entry, and this probe is not at one" in err


def test_inline_cannot_return_or_call(progs: dict[str, Path]) -> None:
    t = progs["o2"]
    err = p2_error(f'probe process("{t}").function("twice").return {{ next }}')
    assert err.startswith("WARNING: cannot probe .return of 1 inlined function twice: ")
    # stap's suggestions: the five names closest by its edit distance, the inlined one included
    assert "semantic error: no match (similar functions: twice, " in err
    assert "semantic error: no match (similar functions: twice, " in p2_error(
        f'probe process("{t}").function("twice").call {{ next }}')


def test_exported(progs: dict[str, Path]) -> None:
    t = progs["o2"]
    names = {re.search(r'function\("(\w+)', p).group(1)  # type: ignore[union-attr]
             for p in listing(f'process("{t}").function("*").exported')}
    assert {"work", "leaf", "other", "main"} <= names and not names & {"hidden", "twice"}
    assert listing(f'process("{t}").function("hidden").exported') == []
    assert listing(f'process("{t}").function("hidden")') == [
        f'process("{t}").function("hidden@{src()}:{HIDDEN_LINE}")']


def test_function_with_a_line_and_compiler_copies(progs: dict[str, Path], tmp_path: Path) -> None:
    t = progs["o2"]
    rc, _, err = stap("-p2", "-e", f'probe process("{t}").function("work@sym_target.c:{WORK_LINE}") {{ next }}')
    assert rc == 0 and err == ""  # the declaration line: the function itself, silently
    rc, _, err = stap("-p2", "-e", f'probe process("{t}").function("work@sym_target.c:36") {{ next }}')
    assert rc == 0 and err.startswith("WARNING: For probing a particular line, use a .statement() probe, "
                                      "not .function(): ")
    clone = tmp_path / "clone.c"
    clone.write_text('static __attribute__((noinline)) int f(int a, int b) { __asm__ volatile("nop"); '
                     "return a * 3 + b; }\nint main(int argc, char **argv) { return f(argc, 5) + f(argc + 1, 5); }\n")
    subprocess.run(["gcc", "-O2", "-g", "-o", str(tmp_path / "clone"), str(clone)], check=True)
    err = p2_error(f'probe process("{tmp_path / "clone"}").function("f") {{ println($a) }}')
    assert "target variable '$a' is not available: this is a compiler-made copy of the function (its symbol " \
           "is 'f.constprop.0'), whose parameters do not follow the ABI" in err


def test_function_address_resolves_to_the_entry(progs: dict[str, Path]) -> None:
    t = progs["o2"]
    work = nm(t, "work")
    (p,) = probes(f'probe process("{t}").function({work + 4:#x}) {{ println(probefunc()) }}')
    assert p.params["offset"] == offset(t, work) and p.params["func"] == "work"
    assert p.point == f'process("{t}").function({work:#x})'  # -l shows the entry; pp() the address given
    assert p.params["pp"] == f'process("{t}").function({work + 4:#x})'
    (r,) = probes(f'probe process("{t}").function({work:#x}).return {{ println($return) }}')
    assert r.params["return"] is True and r.point.endswith(".return")


def test_pid_and_unspecified_process(progs: dict[str, Path]) -> None:
    t = progs["o2"]
    proc = subprocess.Popen([str(t), "1", "wait"])
    try:
        _load_base(proc.pid, t)  # exec'd
        (p,) = probes(f'probe process({proc.pid}).function("leaf") {{ println($x) }}')
        assert p.point == f'process("{t}").function("leaf@{src()}:{LEAF_LINE}")'
        assert (p.params["target"], p.params["pid"]) == ("pid", proc.pid)
        (x,) = probes('probe process.function("leaf") { println($x) }', "-x", str(proc.pid))
        assert x.point == p.point and x.params["target"] == "path" and x.params["path"] == str(t)
    finally:
        proc.kill()
        proc.wait()
    script = 'probe process.statement("leaf") { next }'
    assert ("unspecified process probe is invalid without a -c COMMAND or -x PID [man stapprobes]"
            in p2_error(script))
    from pystap.lang.context import ParseContext
    from pystap.lang.parser import parse_file

    files = [parse_file(script, "<input>", ParseContext())]
    (d,) = elaborate(files, ElabOptions(target_cmd=f"{t} 2", unoptimized=True)).probes
    assert d.point == f'process("{t}").statement("leaf@{src()}:{LEAF_LINE}")'
    with pytest.raises(ElaborationError) as e:
        elaborate(files, ElabOptions(target_pid=999999999))
    assert e.value.errors[0].chain[0].message == "invalid -x pid for unspecified process probe [man stapprobes]"
    with pytest.raises(ElaborationError) as e:
        elaborate(files, ElabOptions(target_cmd="'unbalanced"))
    assert e.value.errors[0].chain[0].message == "invalid -c command for unspecified process probe [man stapprobes]"


# -- .label, .statement ---------------------------------------------------------------------------


def test_label(progs: dict[str, Path]) -> None:
    t = progs["o0"]
    (label,) = [d for d in dies(t) if d["tag"] == "DW_TAG_label" and d.get("DW_AT_name") == "out"]
    (p,) = probes(f'probe process("{t}").function("work").label("out") {{ println(pp()) }}')
    assert p.params["offset"] == offset(t, label["DW_AT_low_pc"])
    assert p.point == f'process("{t}").function("work@{src()}:40").label("out")'
    assert p.params["pp"] == f'process("{t}").function("work@{src()}:40")'
    assert listing(f'process("{t}").function("work").label("nosuch")') == []
    assert listing(f'process("{t}").function("work@sym_target.c:39").label("out")') == []  # line filter


def test_statement_lines(progs: dict[str, Path]) -> None:
    t = progs["o0"]
    (p,) = probes(f'probe process("{t}").statement("work@sym_target.c:36") {{ println(pp()) }}')
    assert p.params["offset"] == offset(t, line_addresses(t, 36)[0])
    assert p.point == f'process("{t}").statement("work@{src()}:36")' and p.params["func"] == "work"
    lines = [int(x.rsplit(":", 1)[1][:-2]) for x in listing(f'process("{t}").statement("work@sym_target.c:*")')]
    assert sorted(lines) == [31, 32, 33, 34, 36, 38, 40, 41, 42]
    assert sorted(int(x.rsplit(":", 1)[1][:-2]) for x in
                  listing(f'process("{t}").statement("work@sym_target.c:32-34,41")')) == [32, 33, 34, 41]
    assert [x.rsplit(":", 1)[1] for x in listing(f'process("{t}").statement("work@sym_target.c+2")')] == ['33")']
    # no code on line 35: .nearest picks the nearest line with code (a tie goes up), -l shows the line asked
    (n,) = probes(f'probe process("{t}").statement("work@sym_target.c:35").nearest {{ next }}')
    assert n.params["offset"] == offset(t, line_addresses(t, 36)[0])
    assert n.point == f'process("{t}").statement("work@{src()}:35").nearest'
    assert n.params["pp"] == f'process("{t}").statement("work@{src()}:36")'
    err = p2_error(f'probe process("{t}").statement("work@sym_target.c:35") {{ next }}')
    assert f"semantic error: no line records for {src()}:35 [man error::dwarf] (try :34 or :36)\n" in err
    assert f"no line records for {src()}:500 [man error::dwarf]\n" in p2_error(
        f'probe process("{t}").statement("work@sym_target.c:500") {{ next }}')


def test_statement_address(progs: dict[str, Path]) -> None:
    t = progs["o0"]
    line36 = line_addresses(t, 36)[0]
    (p,) = probes(f'probe process("{t}").statement({line36:#x}) {{ println(probefunc()) }}')
    assert p.params["offset"] == offset(t, line36) and p.params["func"] == "work"
    assert p.point == f'process("{t}").statement({line36:#x})'
    err = p2_error(f'probe process("{t}").statement({line36 + 1:#x}) {{ next }}')
    assert f"semantic error: address {line36 + 1:#x} does not match the beginning of a statement (try " \
           f"{line36:#x})\n" in err
    rc, _, err = stap("-p2", "-g", "-e", f'probe process("{t}").statement({line36 + 1:#x}) {{ next }}')
    assert rc == 0 and "WARNING: address" in err  # guru mode: a warning


def test_malformed_specifications(progs: dict[str, Path]) -> None:
    t = progs["o0"]
    for spec in ("work@", "work@sym_target.c:x", "@sym_target.c"):
        assert f"semantic error: malformed specification '{spec}'\n" in p2_error(
            f'probe process("{t}").statement("{spec}") {{ next }}')


# -- .callee, .callees ----------------------------------------------------------------------------


def test_callee_through_a_call_site_checks_its_caller(progs: dict[str, Path]) -> None:
    t = progs["o2"]
    leaf = nm(t, "leaf")
    m = build(f'probe process("{t}").function("work").callee("leaf") {{ println($x) }}'
              f' probe process("{t}").function("work").callee("leaf").return {{ println($return) }}')
    entry, companion, ret = sorted((p for p in m.probes if p.family == "process.function"),
                                   key=lambda p: (p.params["return"], p.handler))
    want = f'process("{t}").function("work@{src()}:{WORK_LINE}").callee("leaf@{src()}:{LEAF_LINE}")'
    assert entry.point == want and ret.point == want + ".return"
    assert entry.params["pp"] == f'process("{t}").function("leaf@{src()}:{LEAF_LINE}")'
    assert entry.params["offset"] == ret.params["offset"] == companion.params["offset"] == offset(t, leaf)
    # the caller check reads the return address at the entry (+0(%sp)) and the probed address
    for p in (entry, companion):
        assert {"v___caller_ra=+0(%sp):u64", "v___callee_pc=%ip:u64"} <= set(p.params["fetch"])
    assert "$__caller_ra" in m.code and "_Err" not in m.code.split("$__caller_ra")[0][-200:]
    # only work's call sites: other's call of leaf is a different return address
    text = subprocess.run(["readelf", "--debug-dump=info", str(t)], capture_output=True, text=True).stdout
    assert "DW_TAG_call_site" in text
    rc, out, _ = stap("-L", f'process("{t}").function("work").callee("leaf")')
    assert rc == 0 and "$x:int" in out and "__caller" not in out  # stap -L names the C type


def test_callee_inline_and_callees(progs: dict[str, Path]) -> None:
    t = progs["o2"]
    found = probes(f'probe process("{t}").function("work").callee("twice") {{ next }}')
    assert {p.params["offset"] for p in found} == {offset(t, a) for a in inline_entries(t, "twice")}
    assert all("v___caller_ra=+0(%sp):u64" not in p.params["fetch"] for p in found)  # inline: no check
    callees = {re.search(r'callee\("(\w+)@', x).group(1)  # type: ignore[union-attr]
               for x in listing(f'process("{t}").function("work").callees')}
    assert callees == {"twice", "leaf", "hidden"}
    assert listing(f'process("{t}").function("work").callees(1)') == \
        listing(f'process("{t}").function("work").callees')
    deeper = listing(f'process("{t}").function("main").callees(2)')
    assert any(x.startswith(f'process("{t}").function("other@') and 'callee("leaf@' in x for x in deeper)
    assert "semantic error: .callees(N) only acceptable for N >= 1\n" in p2_error(
        f'probe process("{t}").function("work").callees(0) {{ next }}')
    err = p2_error(f'probe process("{t}").function("work").callee("twice").return {{ next }}')
    assert err.startswith("WARNING: cannot probe .return of 1 inlined function twice: ")


# -- .plt, library, missing debug information ---------------------------------------------------------


def test_plt(progs: dict[str, Path]) -> None:
    t = progs["o2"]
    out = subprocess.run(["objdump", "-d", "--section=.plt", "--section=.plt.sec", str(t)],
                         capture_output=True, text=True, check=True).stdout
    stubs = {m.group(2): int(m.group(1), 16) for m in re.finditer(r"^([0-9a-f]+) <(\w+)@plt>:", out, re.M)}
    assert "printf" in stubs
    found = probes(f'probe process("{t}").plt {{ println($$name) }}')
    assert {p.params["symbol"]: p.params["offset"] for p in found} == {k: offset(t, v) for k, v in stubs.items()}
    (p,) = probes(f'probe process("{t}").plt("print*").return {{ println($$name, $return) }}')
    assert p.point == f'process("{t}").plt("printf").return' and p.params["return"] is True
    assert p.params["pp"] == f'process("{t}").statement({stubs["printf"]:#x}).return'
    assert "semantic error: no match (similar functions: printf, pause, strtol)\n" in p2_error(
        f'probe process("{t}").plt("printg") {{ next }}')


def test_library_forms(progs: dict[str, Path]) -> None:
    t, lib = progs["o2"], progs["lib"]
    prefix = f'process("{t}").library("{lib}")'
    (fn,) = probes(f'probe {prefix}.function("lib_fn") {{ println($x) }}')
    lib_c = str(lib.parent / "libsym.c")
    assert fn.point == f'{prefix}.function("lib_fn@{lib_c}:2")'
    assert fn.params["pp"] == f'process("{lib}").function("lib_fn@{lib_c}:2")'
    assert fn.params["binary"] == str(lib) and fn.params["offset"] == offset(lib, nm(lib, "lib_fn"))
    assert fn.params["path"] == str(t)  # the target stays the program
    assert {p.params["offset"] for p in probes(f'probe {prefix}.function("lib_fn").callee("lib_twice") {{ next }}')} \
        == {offset(lib, a) for a in inline_entries(lib, "lib_twice")}
    assert listing(f'{prefix}.statement("lib_fn@libsym.c:*")')


def test_without_debug_information(progs: dict[str, Path]) -> None:
    t = progs["stripped"]
    (p,) = probes(f'probe process("{t}").function("work") {{ println(1) }}')
    assert p.point == f'process("{t}").function("work")' and p.params["offset"] == offset(t, nm(t, "work"))
    err = p2_error(f'probe process("{t}").function("work") {{ println($n) }}')
    assert f"target variable '$n' is not available: {t} has no debug information (rebuild it with -g for " \
           "$parameters)" in err
    err = p2_error(f'probe process("{t}").function("work").label("out") {{ next }}')
    assert err.startswith(f"WARNING: cannot find module {t} debuginfo: No DWARF information found "
                          "[man warning::debuginfo]")
    assert listing(f'process("{t}").function("twice").inline') == []


def test_absolute(progs: dict[str, Path]) -> None:
    t = progs["o2"]
    proc = subprocess.Popen([str(t), "1", "wait"])
    try:
        base = _load_base(proc.pid, t)
        work = nm(t, "work")
        (p,) = probes(f'probe process({proc.pid}).statement({base + work:#x}).absolute {{ println(probefunc()) }}')
        assert p.params["offset"] == offset(t, work) and p.params["binary"] == str(t)
        assert p.params["pid"] == proc.pid and p.params["func"] == "work"
        assert p.point == f"process({proc.pid}).statement({base + work:#x}).absolute"
        (r,) = probes(f'probe process({proc.pid}).statement({base + work:#x}).absolute.return {{ next }}')
        assert r.params["return"] is True
        assert f"semantic error: address 0x10 is not mapped in pid {proc.pid}\n" in p2_error(
            f'probe process({proc.pid}).statement(0x10).absolute {{ next }}')
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def _load_base(pid: int, path: Path) -> int:
    """Where the running program is mapped (waits for its exec)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 6 and fields[5] == str(path) and int(fields[2], 16) == 0:
                    return int(fields[0].split("-")[0], 16)
        time.sleep(0.01)
    raise AssertionError("not mapped")


def test_hostile_debug_information(progs: dict[str, Path], tmp_path: Path) -> None:
    """Garbage in .debug_info: a clean semantic error (or a symbol-table answer), never a traceback."""
    good = progs["o2"].read_bytes()
    out = subprocess.run(["readelf", "-S", "-W", str(progs["o2"])], capture_output=True, text=True).stdout
    (m,) = re.finditer(r"\.debug_info\s+PROGBITS\s+[0-9a-f]+\s+([0-9a-f]+)\s+([0-9a-f]+)", out)
    start, size = int(m.group(1), 16), int(m.group(2), 16)
    rng = random.Random(4473)
    for variant in range(8):
        data = bytearray(good)
        first = start + (11 if variant % 4 == 0 else 40)  # the unit header too, or only its DIEs
        for _ in range((3, 10, size // 7)[variant % 3]):
            i = rng.randrange(first, start + size)
            data[i] = rng.randrange(256)
        bad = tmp_path / f"bad{variant}"
        bad.write_bytes(bytes(data))
        for form in ('function("work")', 'function("*").inline', 'statement("work@sym_target.c:*")',
                     'function("work").callees(3)', 'function("work").label("out")'):
            rc, _, err = stap("-p2", "-e", f'probe process("{bad}").{form} {{ next }}')
            assert rc == 0 or "semantic error:" in err, err


def test_a_libc_function_is_resolved_from_its_symbols(tmp_path: Path) -> None:
    libc = Path("/lib/x86_64-linux-gnu/libc.so.6")
    if not libc.exists():
        pytest.skip("no libc at the Debian path")
    copy = tmp_path / "libc.so.6"
    shutil.copy(libc, copy)
    (p,) = process_query.resolve_probe(family="process.function", prefix=f'process("{copy}")',
                                       params={"target": "path", "path": str(copy)},
                                       args={"function": "malloc", "_names": ["process", "function"]})
    info = elfsyms.load(str(copy))
    assert p["params"]["offset"] == info.file_offset(info.functions["malloc"])
