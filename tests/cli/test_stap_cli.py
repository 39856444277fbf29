"""The pystap command line for passes 1-2, run in-process (and once as a real process)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pystap.cli.stap import main


def run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    inp = io.TextIOWrapper(io.BytesIO(stdin.encode("latin-1")), encoding="latin-1")
    rc = main(list(argv), stdin=inp, stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


HELLO = 'probe begin { printf("hello %s\\n", "world"); exit() }'


def test_p2_hello() -> None:
    rc, out, err = run("-p2", "-e", HELLO)
    assert rc == 0, err
    assert out == "# functions\nexit:unknown ()\n# probes\nbegin /* <- begin */\n"


def test_p1_prints_parse_tree() -> None:
    rc, out, _ = run("-p1", "-e", "probe begin { print(1) }")
    assert rc == 0
    assert "probe begin" in out


def test_script_file_and_arguments(tmp_path: Path) -> None:
    script = tmp_path / "s.stp"
    script.write_text('probe timer.ms($1) { printf("%s\\n", @2) }\n')
    rc, out, err = run("-p2", str(script), "250", "hi")
    assert rc == 0, err
    assert "timer.ms(250) /* <- timer.ms(250) */" in out


def test_script_on_stdin() -> None:
    rc, out, _ = run("-p2", "-", stdin="probe end { print(1) }")
    assert rc == 0 and "end /* <- end */" in out


def test_parse_error_exit_status_and_pass_line() -> None:
    rc, _, err = run("-p2", "-e", "probe begin { print(1 }")
    assert rc == 1
    assert "parse error:" in err
    assert err.rstrip().endswith("Pass 1: parse failed.  [man error::pass1]")


def test_semantic_error_format() -> None:
    rc, _, err = run("-p2", "-e", "probe begin { print(x) }")
    assert rc == 1
    assert err.startswith("WARNING: never-assigned local variable 'x': identifier 'x' at <input>:1:21\n")
    # like stap, a file already named is not repeated in later locations
    assert "semantic error: unresolved type : identifier 'x' at :1:21\n" in err
    assert "        source: probe begin { print(x) }\n" in err
    assert "Pass 2: analysis failed.  [man error::pass2]" in err


def test_duplicate_errors_are_summarised() -> None:
    rc, _, err = run("-p2", "-e", "probe begin { a[1] = 1; print(a[1]) }")
    assert rc == 1
    assert err.count("unresolved arity-1 global array") == 1
    assert "Number of similar error messages suppressed: 1." in err


def test_semantic_keep_going_catalogue() -> None:
    rc, _, err = run("-p2", "--semantic-keep-going", "-e", 'probe begin { x = "a"; x = 1; print(x) }')
    assert rc == 1
    lines = err.splitlines()
    assert lines[0] == "SEMANTIC_ERRORS: 2"
    assert lines[1] == "SEMANTIC_ERROR\t<input>\t1\t24\tx\ttype mismatch (long)"
    assert lines[3] == "SEMANTIC_ERRORS_END"


def test_warnings_w_and_W() -> None:
    src = "probe begin { x = 1; print(2) }"
    rc, _, err = run("-p2", "-e", src)
    assert rc == 0 and "WARNING: Eliding assignment to 'x': operator '=' at <input>:1:17" in err
    assert " source: probe begin { x = 1; print(2) }" in err
    rc, _, err = run("-p2", "-w", "-e", src)
    assert rc == 0 and "WARNING" not in err
    rc, _, err = run("-p2", "-W", "-e", src)
    assert rc == 1


def test_unoptimised_keeps_empty_probe() -> None:
    assert run("-p2", "-e", "probe begin {}")[0] == 1
    rc, out, _ = run("-p2", "-u", "-e", "probe begin {}")
    assert rc == 0 and out == "# probes\nbegin /* <- begin */\n"


def test_verbose_pass_timings() -> None:
    rc, _, err = run("-v", "-p2", "-e", HELLO)
    assert rc == 0
    assert "Pass 1: parsed user script and " in err and " library scripts using " in err
    assert re.search(r"using \d+virt/\d+res/\d+shr/\d+data kb, in \d+usr/\d+sys/\d+real ms\.", err)
    assert "Pass 2: analyzed script: 1 probe, 1 function, 0 embeds, 0 globals using " in err


def test_include_directory(tmp_path: Path) -> None:
    (tmp_path / "mylib.stp").write_text("function twice(x) { return 2 * x }\nprobe myalias = begin {}\n")
    rc, out, err = run("-p2", "-I", str(tmp_path), "-e", "probe myalias { print(twice(2)) }")
    assert rc == 0, err
    assert "twice:long (x:long)" in out and "begin /* <- myalias = begin <- myalias */" in out


def test_list_probes() -> None:
    rc, out, _ = run("-l", "timer.ms(100)")
    assert rc == 0 and out == "timer.ms(100)\n"
    rc, out, _ = run("-L", "process.syscall")
    assert out == "process.syscall $syscall:long $arg1:long $arg2:long $arg3:long $arg4:long $arg5:long $arg6:long\n"
    rc, out, _ = run("-l", "nosuch.thing")
    assert rc == 0 and out == ""


def test_dump_probe_types_respects_privilege() -> None:
    rc, out, _ = run("--dump-probe-types")
    assert rc == 0 and "timer.ms(number)" in out and 'kernel.trace(string)' in out
    rc, out, _ = run("--privilege=stapusr", "--dump-probe-types")
    assert "timer.ms(number)" in out and "kernel.trace" not in out and "timer.profile.tick" not in out


def test_dump_functions_lists_builtins_with_tags() -> None:
    rc, out, _ = run("--dump-functions")
    assert rc == 0
    assert "strlen:long (s:string) /* unprivileged */" in out
    assert "user_string:string (addr:long) /* myproc-unprivileged */" in out


def test_help_and_version() -> None:
    rc, out, _ = run("--help")
    assert rc == 0 and "Usage: pystap" in out
    rc, out, _ = run("-V")
    assert rc == 0 and "pystap translator" in out


def test_usage_errors() -> None:
    assert run("-p9", "-e", HELLO)[0] == 1
    rc, _, err = run("-p2")
    assert rc == 1 and "A script must be specified." in err
    rc, _, err = run("-p2", "/nonexistent/x.stp")
    assert rc == 1 and "Input file '/nonexistent/x.stp' is missing." in err
    rc, _, err = run("--privilege=root", "-p2", "-e", HELLO)
    assert rc == 1 and "Invalid argument 'root' for --privilege." in err


def test_privilege_options() -> None:
    rc, _, err = run("--unprivileged", "-p2", "-e", 'probe kernel.trace("sched:sched_switch") { print(1) }')
    assert rc == 1 and "probe point is not allowed for --privilege=stapusr" in err
    rc, _, err = run("--privilege=stapusr", "-g", "-p2", "-e", HELLO)
    assert rc == 1 and "You can't specify -g and --privilege=stapusr together." in err


def test_pass3_is_reached_through_the_dispatch_point() -> None:
    rc, out, err = run("-p3", "-e", HELLO)
    assert "Traceback" not in err
    assert rc == 0 and out.strip(), err


def test_console_script_runs_as_a_process(tmp_path: Path) -> None:
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "pystap.cli.stap", "-p2", "-e", HELLO], capture_output=True,
                          text=True, env=env, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.endswith("begin /* <- begin */\n")


def test_hostile_input_never_tracebacks() -> None:
    for src in ["\x00\xff probe", "probe " + "{" * 5000, "probe begin { " + "(" * 3000 + "1" + ")" * 3000 + " }",
                "global " + ",".join(f"g{i}" for i in range(2000)) + "; probe begin { print(g1) }"]:
        _, _, err = run("-p2", "-e", src)
        assert "Traceback" not in err


def _p2_entries(root: Path) -> list[Path]:
    return sorted((root / "cache" / "pystap" / "p2").glob("*.json")) if (root / "cache").exists() else []


def test_result_cache_replays_identical_runs(tmp_path: Path) -> None:
    src = "probe begin { x = 1; print(2) }"
    first = run("-p2", "-e", src)
    entries = _p2_entries(tmp_path)
    assert len(entries) == 1
    second = run("-p2", "-e", src)
    assert first == second  # listing and warnings replayed
    # a tampered entry is only ever the user's own output; a corrupt one is a miss
    entries[0].write_text("{broken")
    assert run("-p2", "-e", src) == first


def test_result_cache_key_covers_script_file_and_options(tmp_path: Path) -> None:
    script = tmp_path / "s.stp"
    script.write_text("probe begin { print(1) }\n")
    run("-p2", str(script))
    script.write_text("probe end { print(1) }\n")
    rc, out, _ = run("-p2", str(script))
    assert "end /* <- end */" in out
    rc, out, _ = run("-p2", "-u", str(script))
    assert rc == 0 and len(_p2_entries(tmp_path)) == 3


def test_host_dependent_results_are_not_cached(tmp_path: Path) -> None:
    run("-p2", "-e", "probe process.begin { print(1) }")
    assert _p2_entries(tmp_path) == []
    run("-p2", "-e", "probe begin { print(x) }")  # failures are never stored
    assert _p2_entries(tmp_path) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the entry to another owner")
def test_foreign_cache_entries_are_ignored(tmp_path: Path) -> None:
    src = "probe begin { print(3) }"
    first = run("-p2", "-e", src)
    entry = _p2_entries(tmp_path)[0]
    entry.write_text('{"stdout": "forged\\n", "stderr": ""}')
    os.chown(entry, 65534, 65534)
    assert run("-p2", "-e", src) == first


def test_script_from_a_pipe_is_read_once_and_not_cached(tmp_path: Path) -> None:
    import threading

    fifo = tmp_path / "script.fifo"
    os.mkfifo(fifo)

    def writer() -> None:
        with open(fifo, "w") as f:
            f.write("probe begin { print(7) }\n")

    t = threading.Thread(target=writer)
    t.start()
    rc, out, err = run("-p2", str(fifo))
    t.join(timeout=10)
    assert rc == 0, err
    assert out == "# probes\nbegin /* <- begin */\n"
    assert _p2_entries(tmp_path) == []


def test_parse_failure_has_no_extra_blank_line() -> None:
    """Byte for byte as `stap -p1 -e 'probe begin {'` (Debian's stap 4.8)."""
    rc, out, err = run("-p1", "-e", "probe begin {")
    assert rc == 1 and out == ""
    assert err == ("parse error: expected statement\n"
                   "        saw: <input> EOF\n"
                   "\n"
                   "1 parse error.\n"
                   "Pass 1: parse failed.  [man error::pass1]\n")


def test_empty_script_failure_has_no_extra_blank_line(tmp_path: Path) -> None:
    script = tmp_path / "empty.stp"
    script.write_text("")
    rc, _, err = run("-p1", str(script))
    assert rc == 1
    assert err == f"Input file '{script}' is empty.\nPass 1: parse failed.  [man error::pass1]\n"


MACRO_WARNING = (
    "WARNING: macro redefines built-in operator '@cast': identifier 'cast' at <input>:1:9\n"
    " source: @define cast %( 1 %) probe begin { exit() }\n"
    "                 ^\n"
)


def test_pass1_warnings_are_printed_as_stap_does() -> None:
    script = "@define cast %( 1 %) probe begin { exit() }"
    rc, out, err = run("-p1", "-e", script)
    assert rc == 0 and "probe begin" in out
    assert err == MACRO_WARNING
    rc, _, err = run("-p2", "-e", script)
    assert rc == 0 and err == MACRO_WARNING  # printed once, before pass 2's own
    rc, _, err = run("-p1", "-w", "-e", script)
    assert rc == 0 and err == ""
    rc, _, err = run("-p1", "-W", "-e", script)
    assert rc == 1 and err == MACRO_WARNING + "Pass 1: parse failed.  [man error::pass1]\n"


def test_script_text_of_e_is_bytes_as_stap_reads_it() -> None:
    """``-e`` is taken byte for byte, as a script file is: a two-byte UTF-8 character is two."""
    rc, out, _ = run("--no-sign", "-e", 'probe begin { println(strlen("é"), " ", "é"); exit() }')
    assert rc == 0
    assert out.encode("latin-1") == "2 é\n".encode()  # in-process output carries the bytes as latin-1


def test_a_warning_text_is_printed_once_with_stap_closing_count() -> None:
    """As stap 4.8: the second 'Eliding side-effect-free expression' is held back and counted."""
    rc, _, err = run("-p2", "-e", "probe begin { 5; 6; println(1) }")
    assert rc == 0
    assert err == ("WARNING: Eliding side-effect-free expression : number '5' at <input>:1:15\n"
                   " source: probe begin { 5; 6; println(1) }\n"
                   "                       ^\n"
                   "Number of similar warning messages suppressed: 1.\n"
                   "Rerun with -v to see them.\n")
    rc, _, err = run("-p2", "-v", "-e", "probe begin { 5; 6; println(1) }")
    assert err.count("WARNING: Eliding side-effect-free expression") == 2 and "suppressed" not in err


def test_a_tmpdir_where_nothing_can_be_made_fails_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """As stap (parseko/cmdline06): its temporary directory is made at start-up, for every pass."""
    monkeypatch.setenv("TMPDIR", "/dev/null/BADTMPDIR")
    rc, out, err = run("-p1", "-e", "probe begin { exit() }")
    assert (rc, out) == (1, "")
    assert re.fullmatch(r'cannot create temporary directory \(" /dev/null/BADTMPDIR/stap[0-9a-f]{6} "\): '
                        r"Not a directory\n", err), err


def test_p2_result_cache_keys_on_translator_input_environment(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A cached -p2 answer is not replayed once an environment variable that is translator input
    is set: the run is checked again (here: refused below stapdev)."""
    from pystap.lang import elabcache
    from pystap.policy.environment import INPUT_VARIABLES, XDG_DATA_DIRS

    assert set(elabcache._INPUT_ENV) == {v.name for v in INPUT_VARIABLES} | {XDG_DATA_DIRS}
    script = tmp_path / "s.stp"
    script.write_text("probe begin { println(1) }\n")
    args = ("-p2", "--privilege=stapusr", str(script))
    assert run(*args)[0] == 0
    assert run(*args)[0] == 0  # now answered from the cache
    monkeypatch.setenv("PYSTAP_TAPSET", str(tmp_path))
    rc, _, err = run(*args)
    assert rc == 1 and "PYSTAP_TAPSET" in err


def test_environment_tapset_directory_is_read_at_stapdev(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """PYSTAP_TAPSET (SystemTap's SYSTEMTAP_TAPSET): its macros and functions are library input
    (systemtap.pass1-4 macros09 does this with a .stpm file)."""
    (tmp_path / "m.stpm").write_text("@define __seven %( 7 %)\n")
    (tmp_path / "f.stp").write_text("function env_fn() { return 35 }\n")
    monkeypatch.setenv("PYSTAP_TAPSET", str(tmp_path))
    rc, out, err = run("--no-sign", "-e", "probe begin { println(@__seven + env_fn()); exit() }")
    assert (rc, out, err) == (0, "42\n", "")
