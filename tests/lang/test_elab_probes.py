"""Probe-point resolution: families, wildcards, aliases (suffixes, recursion), ?/!, privilege hook."""

from __future__ import annotations

import os

import pytest
from test_elab_helpers import elab, elab_errors, probe_points

from pystap.privilege import PR_STAPSYS, PR_STAPUSR


def test_begin_end_error_never_with_sequence() -> None:
    s = elab("probe begin(-1), begin(5), end(3), error, never { print(2) }")
    assert probe_points(s) == ["begin(-1)", "begin(5)", "end(3)", "error", "never"]
    assert [p.sequence for p in s.probes] == [-1, 5, 3, 0, 0]
    assert [p.family for p in s.probes] == ["begin", "begin", "end", "error", "never"]


def test_derivation_shows_the_probe_point_list() -> None:
    s = elab("probe timer.ms(100), end { print(1) }")
    assert [p.derivation for p in s.probes] == [["timer.ms(100),end"], ["timer.ms(100),end"]]
    assert s.probes[0].params == {"interval_ns": 100_000_000, "randomize_ns": 0}


@pytest.mark.parametrize(
    ("point", "message"),
    [
        ("timer.ms(10000000000)", "interval value out of range (1, 86400000)"),
        ("timer.us(10)", "interval value out of range (100, 86400000000)"),
        ("timer.s(1).randomize(2)", "randomization value out of range"),
        ("timer.hz(0)", "frequency must be greater than 0"),
        ("timer.hz(100000)", "interval value out of range (100000, 86400000000000)"),
        ("timer.jiffies(0)", "invalid interval for jiffies timer"),
        ("timer.jiffies(5).randomize(6)", "invalid randomize for jiffies timer"),
    ],
)
def test_timer_validation(point: str, message: str) -> None:
    errs = elab_errors(f"probe {point} {{ print(1) }}")
    assert errs == ["while resolving probe point'timer'@1:7", message]


def test_timer_forms() -> None:
    s = elab("probe timer.s(1).randomize(1), timer.jiffies(10), timer.hz(10), timer.nsec(100000) { print(5) }")
    assert probe_points(s) == ["timer.s(1).randomize(1)", "timer.jiffies(10)", "timer.hz(10)", "timer.nsec(100000)"]


def test_timer_hz_has_no_randomize() -> None:
    assert elab_errors("probe timer.hz(10).randomize(1) { print(1) }")[1] == "invalid suffix for probe'randomize'@1:20"


@pytest.mark.parametrize(
    ("src", "errors"),
    [
        ("probe begin.foo {print(1)}", ["while resolving probe point'begin'@1:7", "invalid suffix for probe'foo'@1:13"]),
        ("probe process.end.return {print(1)}",
         ["while resolving probe point'process'@1:7", "invalid suffix for probe'return'@1:19"]),
        ("probe begin.maxactive(3) {print(1)}",
         ["while resolving probe point'begin'@1:7", "invalid suffix for probe'maxactive'@1:13"]),
    ],
)
def test_invalid_suffix(src: str, errors: list[str]) -> None:
    assert elab_errors(src) == errors


def test_mismatch_with_similar_names() -> None:
    errs = elab_errors("probe timer.ms {print(1)}")
    assert errs[0] == "while resolving probe point'timer'@1:7"
    assert errs[1].startswith("probe point mismatch (similar: ms") and errs[1].endswith("'ms'@1:13")
    errs = elab_errors('probe begin("x") {print(1)}')
    assert errs[1].startswith("probe point mismatch (similar: begin")


def test_wildcards() -> None:
    assert probe_points(elab("probe ti*.ms(100) { print(1) }")) == ["timer.ms(100)"]
    errs = elab_errors("probe time*.foo {print(1)}")
    assert errs[1].startswith("probe point mismatch: didn't find any wildcard matches")


def test_optional_and_sufficient() -> None:
    s = elab("probe nosuch.thing ?, begin { print(1) }")
    assert probe_points(s) == ["begin"]
    s = elab("probe begin !, end { print(1) }")
    assert probe_points(s) == ["begin"]
    s = elab("probe nosuch !, end { print(1) }")
    assert probe_points(s) == ["end"]
    assert elab_errors("probe foo? {print(1)}") == ["no probes found"]


def test_alias_prologue_epilogue_and_shared_locals() -> None:
    s = elab("probe foo = begin { x = 2 } probe foo { print(x) }")
    p = s.probes[0]
    assert p.point == "begin" and p.derivation == ["foo = begin", "foo"]
    assert [v.name for v in p.locals] == ["x"]
    s = elab("probe oneshot { print(1) }")
    assert s.probes[0].derivation == ["oneshot += begin", "oneshot"]
    # the epilogue runs after the user's body
    last = s.probes[0].body.statements[-1]
    assert "exit" in repr(last)


def test_alias_with_both_blocks() -> None:
    s = elab("probe foo = begin { a = 1 }, { print(a + b) } probe foo { b = 2 }")
    assert [v.name for v in s.probes[0].locals] == ["a", "b"]


def test_alias_suffixes() -> None:
    s = elab("probe mytimer = timer.s(1) {} probe mytimer.randomize(1) { print(1) }")
    assert probe_points(s) == ["timer.s(1).randomize(1)"]


def test_alias_wildcard_expansion() -> None:
    s = elab("probe foo.bar = timer.s(1) {} probe foo.* { print(1) }")
    assert s.probes[0].derivation == ["foo.bar = timer.s(1)", "foo.*"]


def test_chained_alias_names() -> None:
    s = elab("probe a = b = begin { x = 1 } probe a, b { print(x) }")
    assert probe_points(s) == ["begin", "begin"]


def test_alias_recursion_is_detected() -> None:
    errs = elab_errors("probe a = b {} probe b = a {} probe a {print(1)}")
    assert errs[:2] == ["while resolving probe point'b'@1:11", "recursive loop in alias expansion of b at <input>:1:11"]
    errs = elab_errors("probe a = a.x {} probe a {print(1)}")
    assert errs[1] == "recursive loop in alias expansion of a.x.x at <input>:1:11'x'@1:13"


def test_init_alias_orders_first() -> None:
    s = elab("probe init { print(1) }")
    assert s.probes[0].point == "begin(-9223372036854775808)"
    assert s.probes[0].sequence == -(2**63)


def test_privilege_hook_refuses_before_building() -> None:
    errs = elab_errors('probe kernel.trace("sched:sched_switch") { print(1) }', privilege=PR_STAPUSR)
    assert errs == [
        "while resolving probe point'kernel'@1:7",
        "probe point is not allowed for --privilege=stapusr'trace'@1:14",
    ]
    errs = elab_errors("probe timer.profile { print(1) }", privilege=PR_STAPUSR)
    # the alias's refusal, then (as stap 4.8) the user's point and "no match"
    assert errs[-3].startswith("probe point is not allowed for --privilege=stapusr'tick'")
    assert errs[-2:] == ["while resolving probe point'timer'@1:7", "no match"]


def test_unavailable_families_say_so() -> None:
    errs = elab_errors('probe kernel.function("vfs_read") { print(1) }', privilege=PR_STAPSYS)
    assert errs[1].startswith("probe point not available on this kernel (")
    errs = elab_errors('probe kernel.function("vfs_read") { print(1) }', privilege=PR_STAPUSR)
    assert errs[1] == "probe point is not allowed for --privilege=stapusr'function'@1:14"


def test_process_forms() -> None:
    s = elab('probe process.begin, process("ls").syscall, process(1).end { print(1) }')
    assert s.probes[0].point == "process.begin"
    assert s.probes[1].point.startswith('process("/') and s.probes[1].point.endswith('ls").syscall')
    assert s.probes[2].point == "process(1).end"
    assert all(p.myproc for p in s.probes)
    assert s.probes[1].family == "process.syscall"


def test_process_pid_must_run() -> None:
    assert elab_errors("probe process(999999999).begin {print(1)}")[1] == "cannot probe pid 999999999: No such process"


def test_process_path_resolution(tmp_path) -> None:
    exe = tmp_path / "prog"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    link = tmp_path / "link"
    os.symlink(exe, link)
    s = elab(f'probe process("{link}").begin {{ print(1) }}')
    assert s.probes[0].point == f'process("{exe}").begin'


def test_symbol_forms_need_a_target() -> None:
    errs = elab_errors('probe process.function("main") { print(1) }')
    assert errs[1] == "unspecified process probe is invalid without a -c COMMAND or -x PID [man stapprobes]"


def test_syscall_family_is_privileged() -> None:
    errs = elab_errors("probe syscall.openat { print(name) }", privilege=PR_STAPUSR)
    assert errs[-1].startswith("probe point is not allowed for --privilege=stapusr")
    s = elab("probe syscall.openat, syscall_any.return { print(name) }", privilege=PR_STAPSYS)
    assert [p.family for p in s.probes] == ["syscall", "syscall"]
    assert s.probes[0].provided["argstr"].value == "string"


def test_keep_going_reports_errors_of_several_passes() -> None:
    errs = elab_errors("probe begin { a[1] = 1; x = 1; x = \"s\"; print(x) }", keep_going=True)
    assert any(e.startswith("unresolved arity-1 global array a") for e in errs)
    assert any(e.startswith("type mismatch") for e in errs)


def test_process_function_probe_on_a_built_binary(tmp_path) -> None:
    import shutil
    import subprocess

    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    src = tmp_path / "t.c"
    src.write_text("int work(int x) { return x * 2; }\nint main(void) { return work(3); }\n")
    exe = tmp_path / "t"
    subprocess.run(["gcc", "-g", "-O0", "-o", str(exe), str(src)], check=True)
    s = elab(f'probe process("{exe}").function("work") {{ print($x) }}')
    assert s.probes[0].point == f'process("{exe}").function("work@{src}:1")'  # stap's NAME@FILE:LINE
    assert s.probes[0].family == "process.function" and s.probes[0].myproc
    assert elab_errors(f'probe process("{exe}").function("work") {{ print($nosuch) }}')[0].startswith(
        "unable to find local 'nosuch'"
    )


def test_listing_details_for_optional_points_and_aliases() -> None:
    s = elab("probe a = begin?, nosuch? {} probe a { print(1) }")
    assert (s.probes[0].point, s.probes[0].point_mark) == ("begin", "?")
    assert s.probes[0].derivation == ["a = begin?, nosuch?", "a"]
    assert elab_errors("probe a.b = begin {} probe a { print(1) }")[1] == "probe point truncated (follow:  b)'a'@1:28"
    # with an alias suffix the error names the point the user wrote
    assert elab_errors("probe b = begin(1) { } probe b.c { print(1) }") == [
        "while resolving probe point'b'@1:30",
        "invalid suffix for probe'c'@1:32",
    ]
