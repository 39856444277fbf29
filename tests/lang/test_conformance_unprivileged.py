"""The privilege decisions SystemTap's ``systemtap.unprivileged`` tests check at
pass 2, replayed on scripts of our own:

* which probe points an unprivileged (stapusr) script may use, directly and
  through an alias, with ``--unprivileged`` and ``--privilege=stapusr`` alike;
* that the refused ones are listed, one per source line, in the
  ``--semantic-keep-going`` catalog as "probe point is not allowed";
* that stapsys is never refused a probe point for privilege (it may still
  fail on this host for other reasons: no kprobes, no debuginfo);
* that functions which are not tagged unprivileged are refused at stapusr,
  directly and through a script function, and accepted at stapsys;
* that ``-g`` cannot be combined with stapusr or stapsys, in either order.
"""

from __future__ import annotations

import io
import re

import pytest

from pystap.cli.stap import main


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def stap(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    rc = main(list(argv), stdin=io.StringIO(""), stdout=io.StringIO(), stderr=err)
    return rc, err.getvalue()


STAPUSR_OPTIONS = ("--unprivileged", "--privilege=stapusr")
NOT_ALLOWED = "probe point is not allowed for --privilege="

# Probe points stapusr may use that build on any host (pass 2 must succeed).
ALLOWED_HERE = [
    "begin", "begin(-3)", "end", "end(7)", "error", "error(2)", "never",
    "timer.jiffies(20)", "timer.jiffies(20).randomize(4)", "timer.hz(250)",
    "timer.s(2)", "timer.sec(2).randomize(1)", "timer.ms(50)", "timer.msec(50).randomize(5)",
    "timer.us(300)", "timer.usec(300).randomize(10)", "timer.ns(200000)", "timer.nsec(200000).randomize(9)",
    'process("/bin/true").begin', 'process("/bin/true").end', 'process("/bin/true").thread.begin',
    'process("/bin/true").thread.end', 'process("/bin/true").syscall', 'process("/bin/true").syscall.return',
]

# Probe points stapusr may use that need a binary's symbols: only the verdict is checked.
ALLOWED_VERDICT_ONLY = [
    'process("/bin/true").function("main")', 'process("/bin/true").function("main").return',
    'process("/bin/true").function("main").call', 'process("/bin/true").plt', 'process("/bin/true").mark("m")',
    'process("/bin/true").provider("p").mark("m")', 'process("/bin/true").statement(4096)',
    'process("/bin/true").library("libc.so.6").function("exit")',
]

# Probe points stapusr may not use (one per line in the keep-going script).
REFUSED = [
    'kernel.function("vfs_read")', 'kernel.function("vfs_read").return', 'kernel.function("vfs_read").call',
    'kernel.function("vfs_read").return.maxactive(4)', 'kernel.statement("vfs_read")',
    "kernel.statement(4096).absolute", 'kernel.trace("sched_switch")', 'kernel.trace("*")', 'kernel.mark("m")',
    'kernel.mark("m").format("f")', "kernel.data(4096).write", "kernel.data(4096).length(4).rw",
    'kprobe.function("vfs_read")', 'kprobe.function("vfs_read").return', 'kprobe.module("m").function("f")',
    "kprobe.statement(4096).absolute", 'module("ext4").function("ext4_sync_fs")',
    'module("ext4").function("*").return', 'module("ext4").statement("ext4_sync_fs")', "perf.type(0).config(0)",
    "perf.type(0).config(0).sample(1000)", "procfs.read", "procfs.write", 'procfs("status").read',
    "procfs.umask(0640).read.maxsize(64)", "timer.profile.tick",
    'netfilter.hook("NF_INET_PRE_ROUTING").pf("NFPROTO_IPV4")', 'python3.module("m").function("f")',
    'process("/bin/true").insn', 'process("/bin/true").insn.block',
]


@pytest.mark.parametrize("point", ALLOWED_HERE)
@pytest.mark.parametrize("level", ["stapusr", "stapsys"])
@pytest.mark.parametrize("via_alias", [False, True], ids=["direct", "alias"])
def test_allowed_probe_points_pass_pass_2(point: str, level: str, via_alias: bool) -> None:
    body = '{ println("hi"); exit() }'
    script = f"probe mine = {point} {body} probe mine {{}}" if via_alias else f"probe {point} {body}"
    for option in STAPUSR_OPTIONS if level == "stapusr" else ("--privilege=stapsys",):
        rc, err = stap("-p2", option, "-e", script)
        assert rc == 0, err


@pytest.mark.parametrize("point", ALLOWED_VERDICT_ONLY)
def test_user_space_probe_points_are_not_refused_for_privilege(point: str) -> None:
    for option in STAPUSR_OPTIONS:
        _, err = stap("-p2", option, "-e", f'probe {point} {{ println("hi") }}')
        assert NOT_ALLOWED not in err


def test_refused_probe_points_each_have_a_catalog_line(tmp_path) -> None:
    script = tmp_path / "deny.stp"
    script.write_text("".join(f"probe {p} {{}}\n" for p in REFUSED))
    for option in STAPUSR_OPTIONS:
        rc, err = stap("--semantic-keep-going", option, "-p2", str(script))
        assert rc == 1
        denied = {
            int(m.group(1))
            for m in re.finditer(
                r"^SEMANTIC_ERROR\t[^\t]+\t([0-9]+)\t[0-9]+\t[^\t]*\tprobe point is not allowed", err, re.M
            )
        }
        assert denied == set(range(1, len(REFUSED) + 1)), err


@pytest.mark.parametrize("point", REFUSED)
@pytest.mark.parametrize("via_alias", [False, True], ids=["direct", "alias"])
def test_refused_probe_points_name_the_level(point: str, via_alias: bool) -> None:
    script = f"probe mine = {point} {{}} probe mine {{}}" if via_alias else f"probe {point} {{}}"
    rc, err = stap("--privilege=stapusr", "-p2", "-e", script)
    assert rc == 1
    assert "semantic error: probe point is not allowed for --privilege=stapusr" in err


@pytest.mark.parametrize("point", REFUSED)
def test_stapsys_is_never_refused_a_probe_point(point: str) -> None:
    _, err = stap("--privilege=stapsys", "-p2", "-e", f"probe {point} {{}}")
    assert NOT_ALLOWED not in err


def test_optional_and_sufficient_kernel_points_are_still_refused() -> None:
    script = 'probe kernel.function("vfs_read")!, kernel.trace("*")!, kernel.mark("*")!, module("*").function("*") { }'
    rc, err = stap("--unprivileged", "-p2", "-e", script)
    assert rc == 1
    assert NOT_ALLOWED in err


# -- functions: the embedded-C privilege tags ---------------------------------------------------

FUNCTION_REFUSED = "function may not be used when --privilege=stapusr is specified: identifier '{}'"

# (call, tag): tags as SystemTap's tapset gives them.
FUNCTIONS = [
    ("kernel_string(0)", "privileged"), ("task_uid(0)", "privileged"), ("ntohs(1)", "privileged"),
    ("print_backtrace()", "privileged"), ("symname(0)", "privileged"), ("MAJOR(0)", "privileged"),
    ("fp_add(0, 0)", "privileged"), ("sprint_loadavg()", "privileged"),
    ("pid()", "unprivileged"), ("execname()", "unprivileged"), ("gettimeofday_ns()", "unprivileged"),
    ("strlen(\"x\")", "unprivileged"), ("user_string(0)", "myproc-unprivileged"),
    ("user_long(0)", "myproc-unprivileged"), ("uaddr()", "myproc-unprivileged"),
]


def _name(call: str) -> str:
    return call.split("(", 1)[0]


@pytest.mark.parametrize("call,tag", FUNCTIONS)
@pytest.mark.parametrize("transitive", [False, True], ids=["direct", "through-function"])
def test_function_privilege_at_stapusr(call: str, tag: str, transitive: bool) -> None:
    script = f"function f() {{ {call} }} probe begin {{ f() }}" if transitive else f"probe begin {{ {call} }}"
    _, err = stap("-u", "-p2", "--privilege=stapusr", "-e", script)
    refused = FUNCTION_REFUSED.format(_name(call)) in err
    assert refused == (tag == "privileged"), err
    assert "unresolved function" not in err


@pytest.mark.parametrize("call,tag", FUNCTIONS)
def test_no_function_is_refused_at_stapsys(call: str, tag: str) -> None:
    _, err = stap("-u", "-p2", "--privilege=stapsys", "-e", f"probe begin {{ {call} }}")
    assert "may not be used" not in err


# -- options ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options,level",
    [
        (["--unprivileged", "-g"], "stapusr"), (["-g", "--unprivileged"], "stapusr"),
        (["--privilege=stapusr", "-g"], "stapusr"), (["-g", "--privilege=stapusr"], "stapusr"),
        (["--privilege=stapsys", "-g"], "stapsys"), (["-g", "--privilege=stapsys"], "stapsys"),
    ],
)
def test_guru_mode_cannot_be_combined_with_a_lower_level(options: list[str], level: str) -> None:
    rc, err = stap("-e", "probe begin { exit() }", "-p1", *options)
    assert rc == 1
    assert f"You can't specify -g and --privilege={level} together." in err
