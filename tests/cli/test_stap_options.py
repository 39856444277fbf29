"""Every option of ``stap --help``: accepted with SystemTap's behaviour, or refused by name.

Pass 5 runs here in-process, which needs root (the module then runs in the
test process itself, like ``stap`` as root); those tests are skipped otherwise.
A live ``stap`` (Debian's) is asked where it can answer: passes 1-3 run on a
stand-in kernel tree built per test session.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# the setpriv + pystapd harness (tests/cli is on sys.path, as for every rootdir-less test directory)
import test_stap_unprivileged as unprivileged
from tests.stap_peer import stand_in_kernel_tree

from pystap.cli import stap as cli
from pystap.cli.stap import main
from pystap.policy import options as policy

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="pass 5 in-process needs root")
STAP = shutil.which("stap")
world = unprivileged.world  # fixture: a user (uid 40100) in privilege groups, and pystapd's configuration
needs_stap = pytest.mark.skipif(STAP is None, reason="Debian's systemtap is not installed")


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main(list(argv), stdin=io.StringIO(""), stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(autouse=True)
def _private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)


HELLO = 'probe begin { printf("hello\\n"); exit() }'

# The options of Debian's `stap --help` (SystemTap 4.8), each with a value where it takes one.
STAP_HELP_OPTIONS = [
    ["-h"], ["--help"], ["-V"], ["--version"], ["-p", "2"], ["-v"], ["--vp", "01"], ["-k"], ["-u"], ["-w"],
    ["-W"], ["-g"], ["-P"], ["-b"], ["-s", "4"], ["-I", "."], ["-D", "MAXACTION=100"], ["-B", "V=1"],
    ["--modinfo", "a=b"], ["-G", "x=1"], ["-R", "/tmp"], ["-r", "6.1.0"], ["-a", "x86_64"], ["-m", "mod"],
    ["-o", "out.txt"], ["-E", "probe end {}"], ["-c", "true"], ["-x", "1"], ["-F"], ["-S", "1,2"],
    ["-d", "/bin/sh"], ["--ldd"], ["--all-modules"], ["-t"], ["-T", "5"], ["-q"], ["--runtime=kernel"],
    ["--bpf"], ["--prologue-searching"], ["--prologue-searching=auto"], ["--privilege=stapdev"],
    ["--unprivileged"], ["--compatible=4.8"], ["--check-version"], ["--skip-badvars"],
    ["--suppress-handler-errors"], ["--use-server"], ["--list-servers"], ["--trust-servers"],
    ["--use-server-on-error"], ["--remote=host"], ["--remote-prefix"], ["--tmpdir=/tmp"],
    ["--download-debuginfo"], ["--dump-probe-types"], ["--sysroot=/"], ["--sysenv=A=B"],
    ["--suppress-time-limits"], ["--save-uprobes"], ["--target-namespace=1"],
    # hidden in the help, used by scripts and the testsuite
    ["--dump-probe-aliases"], ["--dump-functions"], ["--disable-cache"], ["--poison-cache"], ["--clean-cache"],
    ["--monitor"], ["--interactive"], ["-i"], ["--dyninst"], ["--rlimit-cpu=100"], ["--semantic-keep-going"],
]


@pytest.mark.parametrize("option", STAP_HELP_OPTIONS, ids=lambda o: " ".join(o))
def test_every_stap_option_is_recognised(option: list[str]) -> None:
    try:
        cli.parse_args([*option, "-e", HELLO] if not option[0].startswith("--dump") else option)
    except cli.UsageError as exc:
        pytest.fail(f"{option}: {exc}")
    except cli.OptionError as exc:  # a refusal: it must name the option
        assert option[0].split("=")[0] in str(exc) or "dyninst" in str(exc)


def _getopt_names() -> set[str]:
    short = {"-" + c for c in cli._SHORT.replace(":", "")}
    return short | {"--" + n.rstrip("=") for n in cli._LONG}


def test_the_cli_and_the_option_table_agree() -> None:
    """Every option the CLI reads has its row (an unclassified one would be refused below stapdev),
    and every row is an option of the CLI -- but --debug, which Debian's stap does not have either."""
    rows = {name for row in policy.OPTIONS for name in row.names}
    cli_names = _getopt_names() - {"--client-options"}  # the server's own marker, checked on its own
    assert sorted(cli_names - rows) == []
    assert sorted(rows - cli_names) == ["--debug"]
    for name in cli_names:
        row = policy.lookup(name)
        takes = cli._takes_value(name)
        assert row.takes_value == takes, name
        assert row.value_hint.startswith("[") == (name[2:] in cli._OPTIONAL_VALUE), name


def test_help_names_every_option() -> None:
    rc, out, _ = run("--help")
    assert rc == 0
    for option in STAP_HELP_OPTIONS:
        name = option[0].split("=")[0]
        assert re.search(rf"(^|[\s,]){re.escape(name)}([\s=\[,]|$)", out, re.M), name


# -- -t: the probe hit report ----------------------------------------------------------------------

TIMED = """global n
probe begin { n = 1 }
probe timer.ms(5) { n++; if (n == 5) exit() }
probe end { printf("n=%d\\n", n) }
"""
LINE = r"{pp}, \({loc}\), hits: {hits}, cycles: (\d+)min/(\d+)avg/(\d+)max, variance: (\d+), from: {pp}, index: {i}"


@needs_root
def test_timing_report_after_a_real_run() -> None:
    rc, out, err = run("--no-sign", "-t", "-e", TIMED)
    assert rc == 0, err
    lines = out.split("\n")
    assert lines[0] == "n=5"
    assert lines[1] == "----- probe hit report: "  # SystemTap's header, trailing space included
    expected = [("begin", "<input>:2:1", 1, 0), (r"timer\.ms\(5\)", "<input>:3:1", 4, 1), ("end", "<input>:4:1", 1, 2)]
    for line, (pp, loc, hits, index) in zip(lines[2:5], expected, strict=True):
        m = re.fullmatch(LINE.format(pp=pp, loc=re.escape(loc), hits=hits, i=index), line)
        assert m, line
        low, avg, high, variance = (int(x) for x in m.groups())
        assert 0 < low <= avg <= high
        if hits == 1:
            assert low == avg == high and variance == 0
    assert lines[5:] == ["----- refresh report:", ""]
    assert err == ""


@needs_root
def test_timing_report_goes_to_the_output_file(tmp_path: Path) -> None:
    rc, out, err = run("--no-sign", "-t", "-o", str(tmp_path / "o.txt"), "-e", HELLO)
    assert rc == 0 and out == "", err
    text = (tmp_path / "o.txt").read_text()
    assert text.startswith("hello\n----- probe hit report: \nbegin, (<input>:1:1), hits: 1, cycles: ")
    assert text.endswith(", variance: 0, from: begin, index: 0\n----- refresh report:\n")


def _labels(*argv: str) -> list[tuple[str, str, str]]:
    rc, out, err = run("-p3", "-t", *argv)
    assert rc == 0, err
    module = json.loads(out)
    return [(p["point"], *label) for p, label in zip(module["probes"], module["options"]["timing"], strict=True)]


ALIASES = """global n
probe b = timer.ms(10) { n++ }
probe a = b { n++ }
probe begin, a { if (n > 3) exit() }
probe a.x = timer.ms(20) { n++ }
probe a.* { n++ }
probe ti*.ms(30) { n++ }
"""

# what `stap -p3 -t` writes into stap_probes[] for ALIASES (SystemTap 4.8): pp, location, derivation
ALIASES_STAP = [
    ("begin", "<input>:4:1", " from: begin"),
    ("timer.ms(10)", "<input>:3:11", " from: b from: a from: begin"),
    ("timer.ms(20)", "<input>:6:7", " from: a.x from: a.*"),
    ("timer.ms(30)", "<input>:7:1", " from: ti*.ms(30)"),
]


def test_timing_labels_follow_the_derivation() -> None:
    assert _labels("-e", ALIASES) == ALIASES_STAP
    shared = "probe begin, end { print(1) }"
    assert _labels("-e", shared) == [("begin", "<input>:1:1", " from: begin"), ("end", "<input>:1:1", " from: begin")]


def test_modules_without_t_carry_no_timing() -> None:
    rc, out, _ = run("-p3", "-e", HELLO)
    assert rc == 0 and "timing" not in json.loads(out)["options"]


# -- --suppress-handler-errors ----------------------------------------------------------------------

FAULTY = """global n, z, r
probe timer.ms(2) { n++; if (n <= 3) r = 10 / z; else exit() }
probe end { printf("end n=%d r=%d\\n", n, r) }
"""


def _without_late_ticks(err: str) -> str:
    """stderr without the skipped-timer-ticks line a loaded machine may add (timers ran late)."""
    return "".join(line for line in err.splitlines(True) if "skipped timer ticks" not in line)


@needs_root
def test_handler_errors_are_skipped_quietly() -> None:
    rc, out, err = run("--no-sign", "--suppress-handler-errors", "-e", FAULTY)
    assert (rc, out) == (0, "end n=4 r=0\n")
    assert _without_late_ticks(err) == "WARNING: Number of errors: 3, skipped probes: 0\n"
    # without the option the first error ends the session: no end probe, exit status 1
    rc, out, err = run("--no-sign", "-e", FAULTY)
    assert rc == 1 and out == ""
    assert err.startswith("ERROR: division by 0 near operator '/' at <input>:2:45\n")


def test_suppression_is_compiled_into_the_module() -> None:
    rc, out, _ = run("-p3", "--suppress-handler-errors", "-e", HELLO)
    assert rc == 0 and json.loads(out)["options"]["suppress_handler_errors"] is True


# -- -E ------------------------------------------------------------------------------------------------


def test_extra_scripts_are_more_user_files() -> None:
    rc, out, _ = run("-p1", "-e", "probe end{print(1)}", "-E", "probe begin{ print(2) }")
    assert rc == 0
    assert out == ("# parse tree dump\n# file <input>\nprobe end{\nprint(1);\n}\n"
                   "# file <input1>\nprobe begin{\nprint(2);\n}\n\n")
    rc, out, err = run("-p2", "-e", "probe end { print(f()) }", "-E", "function f() { return 1 }",
                       "-E", "probe begin { print(@1) }", "arg")
    assert rc == 0, err
    assert out == ("# functions\nf:long ()\n# probes\nend /* <- end */\nbegin /* <- begin */\n")
    rc, _, err = run("-p1", "-e", "probe end {}", "-E", "probe begin {}", "-E", "probe timer.s(1) { y = }")
    assert rc == 1 and "saw: operator '}' at <input2>:1:24" in err


def test_extra_script_needs_a_main_script_and_no_listing() -> None:
    rc, _, err = run("-p2", "-E", "probe begin { print(1) }")
    assert rc == 1 and err.startswith("A script must be specified.\n")
    rc, _, err = run("--dump-functions", "-E", "probe begin { print(1) }")
    assert rc == 1 and err.startswith("Cannot specify a script with -l/-L/--dump-* switches.\n")


@needs_root
def test_extra_script_runs() -> None:
    rc, out, err = run("--no-sign", "-e", 'probe begin { printf("main\\n") }', "-E", "probe begin { exit() }",
                       "-E", 'probe end { printf("extra\\n") }')
    assert (rc, out) == (0, "main\nextra\n"), err


def test_extra_scripts_change_the_cached_module() -> None:
    first = run("-p4", "--no-sign", "-e", "probe begin { print(1) }")
    second = run("-p4", "--no-sign", "-e", "probe begin { print(1) }", "-E", "probe end { print(2) }")
    assert first[0] == second[0] == 0 and first[1] != second[1]


# -- --vp ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("vp", "pass1", "pass2"), [("1", True, False), ("01", False, True), ("11", True, True),
                                                   ("00001", False, False), ("2", True, False)])
def test_per_pass_verbosity(vp: str, pass1: bool, pass2: bool) -> None:
    rc, out, err = run("-p2", "--vp", vp, "-e", "global n probe begin { n = 1; print(n) }")
    assert rc == 0
    assert ("Pass 1: parsed user script" in err) is pass1
    assert ("Pass 2: analyzed script" in err) is pass2
    assert ("(__global_n) = (1)" in out) is pass2  # pass 2's listing with bodies


@pytest.mark.parametrize("value", ["", "1x", "000001", "-1"])
def test_per_pass_verbosity_is_checked(value: str) -> None:
    assert run("-p2", "--vp", value, "-e", HELLO) == (1, "", "Invalid --vp argument: it takes 1 to 5 digits.\n")


def test_per_pass_verbosity_reaches_passes_3_and_4() -> None:
    rc, _, err = run("-p4", "--no-sign", "--vp", "0001", "-e", HELLO)
    assert rc == 0 and "Pass 3:" not in err and err.startswith("Pass 4: module written to ")


# -- --check-version ----------------------------------------------------------------------------------

VERSIONED = ('%( systemtap_v >= "2.0" %? global g %) function f(%( systemtap_v >= "2.0" %? a %: b %)) '
             '{ return 1 } probe begin, end { %( systemtap_v >= "2.0" %? print(f(1)) %: print(2) %) g = 1 }')
MSG = "WARNING: This {} uses tapset constructs that are dependent on systemtap version: "


def test_check_version_warnings_as_stap_prints_them() -> None:
    rc, _, err = run("-p2", "--check-version", "-e", VERSIONED)
    assert rc == 0
    warnings = [line for line in err.splitlines() if line.startswith("WARNING")]
    assert warnings == [MSG.format("global") + "identifier 'g' at <input>:1:35",
                        MSG.format("function") + "identifier 'f' at :1:49",
                        MSG.format("probe") + "keyword at :1:102"]
    assert err.endswith("Number of similar warning messages suppressed: 1.\nRerun with -v to see them.\n")
    for verbose in (["-v"], ["--vp", "01"]):  # stap's duplicate check follows pass 2's verbosity
        rc, _, err = run("-p2", *verbose, "--check-version", "-e", VERSIONED)
        assert err.count(MSG.format("probe")) == 2
    assert run("-p2", "--vp", "10", "--check-version", "-e", VERSIONED)[2].count(MSG.format("probe")) == 1


def test_check_version_aliases_and_quiet_cases() -> None:
    src = ('probe b = begin { %( systemtap_v >= "2.0" %? x = 1 %: x = 2 %) }\n'
           'probe a = b { y = 1 }\nprobe a { print(x, y) }')
    rc, _, err = run("-p2", "--check-version", "-e", src)
    assert rc == 0 and err.startswith(MSG.format("alias") + "keyword at <input>:1:1\n")
    # a condition inside a function body never warns (SystemTap reads the flag before the body)
    body_only = 'function f() { %( systemtap_v >= "2.0" %? return 1 %: return 2 %) } probe begin { print(f()) }'
    assert run("-p2", "--check-version", "-e", body_only)[2] == ""
    assert run("-p2", "-e", VERSIONED)[2] == ""  # only with --check-version
    assert "WARNING" not in run("-p2", "-w", "--check-version", "-e", VERSIONED)[2]
    rc, _, err = run("-p2", "-W", "--check-version", "-e", VERSIONED)
    assert rc == 1 and "(warning treated as error)" in err and "Pass 2: analysis failed." in err


# -- --runtime / --bpf -------------------------------------------------------------------------------

RUNTIME = 'probe begin { %( runtime == "bpf" %? print("bpf") %: print("kernel") %) }'


def test_runtime_kernel_is_the_default() -> None:
    assert run("-p2", "--runtime=kernel", "-e", HELLO) == run("-p2", "-e", HELLO)
    assert 'print("kernel")' in run("-p1", "--runtime=kernel", "-e", RUNTIME)[1]


@pytest.mark.parametrize("option", ["--runtime=bpf", "--bpf"])
def test_bpf_is_honoured_by_pass_1_only(option: str) -> None:
    rc, out, _ = run("-p1", option, "-e", RUNTIME)
    assert rc == 0 and 'print("bpf")' in out
    rc, out, err = run("-p2", option, "-e", RUNTIME)
    assert (rc, out) == (1, "")
    assert err == ("ERROR: --runtime=bpf is not supported by pystap beyond pass 1: it has one runtime (kernel); "
                   "-p1 parses with runtime \"bpf\" for %( runtime == ... %) conditionals\n")


@pytest.mark.parametrize(("option", "message"), [
    ("--runtime=dyninst", "ERROR: --runtime=dyninst unavailable; this build lacks DYNINST feature"),
    ("--dyninst", "ERROR: --runtime=dyninst unavailable; this build lacks DYNINST feature"),
    ("--runtime=foo", "ERROR: foo is an invalid argument for --runtime"),
    ("--runtime=", "ERROR:  is an invalid argument for --runtime"),
])
def test_other_runtimes(option: str, message: str) -> None:
    assert run("-p1", option, "-e", HELLO) == (1, "", message + "\n")


def test_runtime_is_classified_for_every_level() -> None:
    assert run("-p2", "--privilege=stapusr", "--runtime=kernel", "-e", HELLO)[0] == 0


# -- accepted without effect -------------------------------------------------------------------------


@pytest.mark.parametrize("option", [["-P"], ["--prologue-searching"], ["--prologue-searching=always"],
                                    ["--prologue-searching=never"], ["--prologue-searching=auto"], ["-q"],
                                    ["--ldd"], ["--all-modules"], ["--save-uprobes"], ["-b"], ["-s", "4095"],
                                    ["-d", "/bin/sh"], ["-d", "/nonexistent"], ["-d", "kernel"],
                                    ["--download-debuginfo=no"], ["--use-server-on-error=no"], ["-F"],
                                    ["-S", "1,2"]])
def test_accepted_options_change_nothing_before_pass_5(option: list[str]) -> None:
    assert run("-p2", *option, "-e", HELLO) == run("-p2", "-e", HELLO)


@pytest.mark.parametrize(("option", "message"), [
    (["--prologue-searching="], "Invalid argument '' for --prologue-searching."),
    (["--prologue-searching=x"], "Invalid argument 'x' for --prologue-searching."),
    (["-s", "0"], "Invalid buffer size (should be 1-4095)."),
    (["-s", "4096"], "Invalid buffer size (should be 1-4095)."),
    (["-s", "x"], "Invalid buffer size (should be 1-4095)."),
    (["-S", "1,"], "ERROR: Safety pattern mismatch for -S parameter ('1,' vs. '^[0-9]+(,[0-9]+)?$') rc=1"),
    (["--use-server-on-error=maybe"], "Invalid argument 'maybe' for --use-server-on-error."),
    (["--download-debuginfo=x"], "ERROR: x is not a valid value. Use 'yes', 'no', 'ask' or a timeout value."),
    (["--monitor=0"], "Invalid monitor interval."),
    (["--target-namespace=x"], "Invalid process ID number for target namespaces."),
    (["--sysroot=/nonexistent"], "ERROR: /nonexistent is an invalid directory for --sysroot"),
    (["--sysenv=A=B"], "ERROR: --sysenv must follow --sysroot"),
    (["--rlimit-cpu=x"], "Unable to convert resource limit 'x' for rlimit-cpu"),
    (["--rlimit-as=1k"], "Unable to convert rlimit-as resource limit '1k'."),
    (["--tmpdir=/nonexistent"], "ERROR: /nonexistent is an invalid directory for --tmpdir"),
])
def test_option_values_are_checked_with_stap_messages(option: list[str], message: str) -> None:
    assert run("-p2", *option, "-e", HELLO) == (1, "", message + "\n")


def test_missing_unwind_object_is_reported_at_pass_3_with_v() -> None:
    rc, _, err = run("-p3", "-v", "-d", "/nonexistent/lib.so", "-d", "kernel", "-e", HELLO)
    assert rc == 0 and "WARNING: missing unwind/symbol data for module '/nonexistent/lib.so'\n" in err
    assert "kernel" not in err
    assert "missing unwind" not in run("-p3", "-d", "/nonexistent/lib.so", "-e", HELLO)[2]


def test_download_debuginfo_warns_and_goes_on() -> None:
    for option in ("--download-debuginfo", "--download-debuginfo=ask", "--download-debuginfo=30"):
        rc, out, err = run("-p2", option, "-e", HELLO)
        assert rc == 0 and out.endswith("begin /* <- begin */\n")
        assert err == cli.MSG_DEBUGINFO + "\n"


def test_modinfo_is_recorded_in_the_module() -> None:
    rc, out, _ = run("-p3", "--modinfo", "license=GPL v2", "--modinfo", "author=me", "-e", HELLO)
    assert rc == 0 and json.loads(out)["options"]["modinfo"] == {"author": "me", "license": "GPL v2"}
    rc, _, err = run("-p2", "--privilege=stapusr", "--modinfo", "a=b", "-e", HELLO)
    assert rc == 1 and err == "You can't specify --modinfo when --privilege=stapusr is specified.\n"
    rc, _, err = run("-p2", "--modinfo", "1=b", "-e", HELLO)
    assert (rc, err) == (1, "ERROR: Safety pattern mismatch for --modinfo parameter ('1=b' vs. "
                            "'^[a-z_][a-z0-9_]*=.+$') rc=1\n")


# -- temporary directories and caches ---------------------------------------------------------------


def test_tmpdir_receives_the_pass_3_module(tmp_path: Path) -> None:
    target = tmp_path / "work"
    target.mkdir()
    rc, out, err = run("-p3", f"--tmpdir={target}", "-e", HELLO)
    assert rc == 0 and err == ""
    (kept,) = target.iterdir()
    assert kept.name.endswith(".stapmod") and json.loads(kept.read_text()) == json.loads(out)


def test_k_keeps_a_temporary_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    rc, _, err = run("-p3", "-k", "-e", HELLO)
    m = re.fullmatch(r'Keeping temporary directory "(.+)"\n', err)
    assert rc == 0 and m, err
    kept = Path(m.group(1))
    assert kept.parent == tmp_path and kept.name.startswith("stap")
    assert [p.suffix for p in kept.iterdir()] == [".stapmod"]
    rc, _, err = run("-p1", "-k", "-e", HELLO)  # kept (empty) whatever the last pass, as stap does
    assert rc == 0 and err.startswith("Keeping temporary directory ")


def test_poison_cache_recomputes_and_rewrites(tmp_path: Path) -> None:
    src = "probe begin { print(5) }"
    first = run("-p2", "-e", src)
    (entry,) = (tmp_path / "cache" / "pystap" / "p2").glob("*.json")
    entry.write_text('{"stdout": "forged\\n", "stderr": ""}')
    assert run("-p2", "-e", src)[1] == "forged\n"  # an ordinary run trusts its own cache
    assert run("-p2", "--poison-cache", "-e", src) == first
    assert run("-p2", "--poison-cache", "-e", src) == first


# -- refused -------------------------------------------------------------------------------------------

REFUSED = {
    ("-B", "V=1"): "there is no kbuild step (modules hold generated Python, not C to compile)",
    ("-R", "/tmp"): "the runtime is part of pystap itself, not a directory of sources",
    ("--sysroot=/",): "probe targets and symbols are read from this host's own file system",
    ("--remote=host",): "pass 5 runs on this host; build with -p4 and run the module with pystaprun there",
    ("--remote-prefix",): "pass 5 runs on this host; build with -p4 and run the module with pystaprun there",
    ("--target-namespace=1",): "probes see this host's processes; run pystap inside the target's namespaces",
    ("--monitor",): "there is no monitor mode; print what you need from the script",
    ("--monitor=5",): "there is no monitor mode; print what you need from the script",
    ("-i",): "give the script with -e, as a file or on standard input",
    ("--interactive",): "give the script with -e, as a file or on standard input",
    ("--use-server-on-error",): "a failed build is not retried; give --use-server to compile on a server",
    ("--use-server-on-error=yes",): "a failed build is not retried; give --use-server to compile on a server",
}


@pytest.mark.parametrize(("option", "why"), REFUSED.items(), ids=lambda x: " ".join(x) if isinstance(x, tuple) else "")
def test_refused_options_say_why(option: tuple[str, ...], why: str) -> None:
    name = option[0].split("=")[0]
    assert run("-p1", *option, "-e", HELLO) == (1, "", f"ERROR: {name} is not supported by pystap: {why}\n")


def test_sysenv_after_sysroot_is_refused_as_sysroot() -> None:
    rc, _, err = run("-p1", "--sysroot=/", "--sysenv=A=B", "-e", HELLO)
    assert rc == 1 and err.startswith("ERROR: --sysroot is not supported by pystap: ")


@pytest.mark.parametrize(("option", "why"), [
    (["-F"], "pass 5 does not detach; run it in the background with -o FILE"),
    (["-S", "10,2"], "output files are not rotated by size; switch_file() starts the next one"),
])
def test_run_only_options_are_refused_when_pass_5_would_run(option: list[str], why: str) -> None:
    rc, _, err = run(*option, "-e", HELLO)
    assert (rc, err) == (1, f"ERROR: {option[0]} is not supported by pystap: {why}\n")
    assert run("-p4", "--no-sign", *option, "-e", HELLO)[0] == 0


def test_refusals_come_before_any_server_is_contacted() -> None:
    rc, _, err = run("--use-server=127.0.0.1:1", "--remote=h", "-p4", "-e", HELLO)
    assert rc == 1 and err.startswith("ERROR: --remote is not supported by pystap: ")


def test_a_server_s_translator_answers_with_the_client_table() -> None:
    assert run("--client-options", "-R", "/tmp", "-p2", "-e", HELLO) == (
        1, "", "ERROR: -R invalid with --client-options\n")
    assert run("--client-options", "-t", "-E", "probe end {}", "-p2", "-e", HELLO)[0] == 0


# -- --rlimit-* (in a child process: limits cannot be raised again) -------------------------------------


@needs_root
def test_rlimits_apply_to_the_translator_and_its_command(tmp_path: Path) -> None:
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "c"), XDG_CONFIG_HOME=str(tmp_path / "cfg"))
    proc = subprocess.run([sys.executable, "-m", "pystap.cli.stap", "--no-sign", "--rlimit-cpu=77",
                           "--rlimit-fsize=0x100000", "-c", "sh -c 'ulimit -t; ulimit -f'", "-u", "-e",
                           "probe begin {}"], capture_output=True, text=True, env=env, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "77\n2048\n"  # ulimit -f counts 512-byte blocks


def test_an_rlimit_the_kernel_refuses_is_reported_and_the_run_goes_on(tmp_path: Path) -> None:
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "c"))
    proc = subprocess.run([sys.executable, "-m", "pystap.cli.stap", "--rlimit-nproc=-1", "-p1", "-e", HELLO],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    if proc.stderr:  # raising a hard limit needs CAP_SYS_RESOURCE, or a hard limit already unlimited
        assert proc.stderr == "Unable to set resource limits for rlimit-nproc : Operation not permitted\n"
    assert proc.returncode == 0 and "probe begin" in proc.stdout


# -- against a live stap --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kernel_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in kernel build tree: enough for Debian's stap to run passes 1-3."""
    return stand_in_kernel_tree(tmp_path_factory.mktemp("kernel") / "tree")


def _stap(tree: Path, *argv: str) -> tuple[int, str, str]:
    assert STAP is not None
    proc = subprocess.run([STAP, "-r", str(tree), *argv], capture_output=True, text=True, timeout=120,
                          check=False, env=dict(os.environ, SYSTEMTAP_DIR=str(tree / ".systemtap")))
    err = "".join(line + "\n" for line in proc.stderr.splitlines()
                  if "symbol table missing" not in line and not line.startswith("Tip: "))
    return proc.returncode, proc.stdout, err


@needs_stap
@pytest.mark.parametrize("argv", [
    ["-p1", "-e", "probe end{print(1)}", "-E", "probe begin{ print(2) }", "-E", "probe timer.s(1) { print(3) }"],
    ["-p2", "-e", "probe end{print(1)}", "-E", "probe begin{ print(2) }", "-E", "function f() { return 1 }"],
    ["-p1", "--runtime=bpf", "-e", RUNTIME],
    ["-p1", "--bpf", "-e", RUNTIME],
    ["-p1", "--runtime=kernel", "-e", RUNTIME],
    ["-p2", "--check-version", "-e", VERSIONED],
    ["-p2", "--vp", "10", "--check-version", "-e", 'probe begin, end { %( systemtap_v >= "2.0" %? print(1) %) }'],
    ["-p1", "--vp", "1x", "-e", HELLO],
    ["-p1", "--prologue-searching=x", "-e", HELLO],
    ["-p1", "-s", "0", "-e", HELLO],
    ["-p1", "--runtime=foo", "-e", HELLO],
    ["-p1", "--target-namespace=x", "-e", HELLO],
    ["-p1", "--monitor=x", "-e", HELLO],
    ["-p1", "--download-debuginfo=x", "-e", HELLO],
    ["-p1", "--rlimit-cpu=x", "-e", HELLO],
    ["-p1", "--sysenv=A=B", "-e", HELLO],
    ["-p1", "-S", "x", "-e", HELLO],
    ["-p1", "--modinfo", "1x", "-e", HELLO],
])
def test_same_answer_as_stap(kernel_tree: Path, argv: list[str]) -> None:
    def normal(result: tuple[int, str, str]) -> tuple[int, str, str]:
        rc, out, err = result
        # pass-2 timing lines and stap's elision warnings are other tests' business
        keep = [line for line in err.splitlines(keepends=True)
                if not line.startswith(("Pass ", "WARNING: Eliding")) and not line.startswith(" ")]
        return rc, out, "".join(keep)

    assert normal(run(*argv)) == normal(_stap(kernel_tree, *argv))


@needs_stap
def test_timing_labels_match_stap_p3(kernel_tree: Path) -> None:
    rc, out, err = _stap(kernel_tree, "-p3", "-t", "-e", ALIASES)
    assert rc == 0, err
    inits = re.findall(r'STAP_PROBE_INIT\(\d+, &\w+, "([^"]*)", "[^"]*", "([^"]*)", "([^"]*)"\)', out)
    assert sorted(inits) == sorted(ALIASES_STAP) == sorted(_labels("-e", ALIASES))


# -- the same through pystapd, as a user who is not root ----------------------------------------------


@needs_root
def test_timing_and_quiet_errors_reach_a_users_session(world: unprivileged.World) -> None:
    """Both are compiled into the module, so the user's own pystaprun session honours them."""
    from pystap.loader import foreground
    from pystap.signing import load_signing_key, trust_admin

    with foreground.running(world.base, socket=world.socket, blessed_dir=world.base / "blessed",
                            signer_store=world.signers, groups=unprivileged.GIDS):
        assert world.stap("stapusr", "-p4", "-e", HELLO).returncode == 0  # makes the user's key
        trust_admin.add_certificate(world.signers, load_signing_key(world.key_dir).certificate, owner_uid=0,
                                    signer=True)
        r = world.stap("stapusr", "-t", "--suppress-handler-errors", "-e", FAULTY)
        assert r.returncode == 0, r.stderr
        assert _without_late_ticks(r.stderr) == "WARNING: Number of errors: 3, skipped probes: 0\n"
        lines = r.stdout.split("\n")
        assert lines[:2] == ["end n=4 r=0", "----- probe hit report: "]
        assert re.fullmatch(LINE.format(pp=r"timer\.ms\(2\)", loc=re.escape("<input>:2:1"), hits=4, i=0),
                            lines[2]), lines[2]
        assert re.fullmatch(LINE.format(pp="end", loc=re.escape("<input>:3:1"), hits=1, i=1), lines[3])
        assert lines[4:] == ["----- refresh report:", ""]
