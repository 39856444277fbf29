"""The probe-family table: every family x level, types, confinement markers.

Expectations are written here by hand (from SystemTap's registration code),
so a wrong row in the table fails a test rather than agreeing with itself.
"""

import pytest

from pystap.policy import probes as T
from pystap.privilege import PR_ALL, PR_PRIVILEGED, Level

USR, SYS, DEV = Level.STAPUSR, Level.STAPSYS, Level.STAPDEV

FOR_EVERYONE = {
    "begin", "end", "error", "never", "timer", "process.begin", "process.end", "process.thread.begin",
    "process.thread.end", "process.syscall", "process.syscall.return", "process.function",
    "process.statement", "process.mark", "process.plt",
}
PRIVILEGED_ONLY = {
    "timer.profile", "process.insn", "process.data", "kernel.trace", "syscall", "kernel.function",
    "kernel.statement.absolute", "kprobe", "kernel.mark", "kernel.data", "perf", "procfs", "netfilter",
    "kernel.lsm", "python", "java", "debuginfod",
}


def test_every_family_has_an_expectation():
    assert {row.family for row in T.FAMILIES} == FOR_EVERYONE | PRIVILEGED_ONLY


@pytest.mark.parametrize("family", sorted(FOR_EVERYONE | PRIVILEGED_ONLY))
@pytest.mark.parametrize("level", [USR, SYS, DEV], ids=lambda lv: lv.label)
def test_family_by_level(family, level):
    expected = family in FOR_EVERYONE or level is not USR
    assert T.family_allowed(family, level) is expected


@pytest.mark.parametrize("level", [0, 1, USR, SYS, DEV, PR_ALL])
def test_unknown_families_are_refused(level):
    assert not T.family_allowed("kernel.function.bogus", level)
    assert not T.family_allowed("", level)


def test_requirements_are_the_two_systemtap_masks():
    assert {row.allowed for row in T.FAMILIES} == {PR_ALL, PR_PRIVILEGED}


def test_only_absolute_kernel_addresses_need_guru():
    assert [row.family for row in T.FAMILIES if row.needs_guru] == ["kernel.statement.absolute"]


def test_confinement_markers_cover_every_process_family():
    assert {row.family for row in T.FAMILIES if row.myproc} == {
        f for f in FOR_EVERYONE | PRIVILEGED_ONLY if f.startswith("process.")
    }


@pytest.mark.parametrize(
    ("probe_type", "family"),
    [
        ("begin", "begin"), ("timer.ms(number).randomize(number)", "timer"),
        ("timer.profile.tick", "timer.profile"), ("process(string).syscall.return", "process.syscall.return"),
        ("process.library(string).function(string).callee(string).return", "process.function"),
        ("process(number).statement(number).absolute.return", "process.statement"),
        ("process(string).library(string).provider(string).mark(string)", "process.mark"),
        ("process.plt(string).return", "process.plt"), ("process(number).insn.block", "process.insn"),
        ("kernel.function(string).return.maxactive(number)", "kernel.function"),
        ("module(string).statement(number).nearest", "kernel.function"),
        ("kernel.statement(number).absolute", "kernel.statement.absolute"),
        ("kprobe.module(string).function(string).return", "kprobe"), ("kernel.trace(string)", "kernel.trace"),
        ("kernel.data(string).rw", "kernel.data"), ("perf.type(number).config(number).process(string)", "perf"),
        ("procfs(string).umask(number).read.maxsize(number)", "procfs"),
        ("netfilter.pf(string).hook(string).priority(string)", "netfilter"),
        ("kernel.mark(string).format(string)", "kernel.mark"),
    ],
)
def test_family_of_type(probe_type, family):
    row = T.family_of_type(probe_type)
    assert row is not None and row.family == family


def test_no_process_pid_library():
    assert T.family_of_type("process(number).library(string).function(string)") is None
    assert T.family_of_type("kernel.data(string).length(number).rw") is None


def test_dump_probe_types_lists_only_what_the_level_allows():
    usr = T.probe_types(USR)
    assert usr[:7] == ["begin", "begin(number)", "end", "end(number)", "error", "error(number)", "never"]
    assert all(T.family_of_type(t).allowed == PR_ALL for t in usr)
    assert "kernel.function(string)" not in usr and "timer.profile.tick" not in usr
    assert T.probe_types(SYS) == T.probe_types(DEV)
    # as Debian's stap 4.8 lists them (171 and 260 types; the stapusr list is compared
    # line by line in tests/lang/test_privilege_vs_stap.py), plus newer or optional forms
    newer = {
        "kernel.tracepoint(string)", "kernel.lsm(string)", "debuginfod.process(string)",
        "debuginfod.archive(string).process(string)",
        *(f"python3.module(string).function(string){s}" for s in ("", ".call", ".return")),
        *(f"java({k}).class(string).method(string){s}" for k in ("string", "number") for s in ("", ".return")),
        *(f"process.data({k}){s}" for k in ("number", "string")
          for s in (".write", ".rw", ".length(number).write", ".length(number).rw")),
    }
    assert len(usr) == 171 and not newer & set(usr)
    assert newer <= set(T.probe_types(DEV)) and len(set(T.probe_types(DEV)) - newer) == 260


def test_dump_order_is_systemtaps():
    usr = T.probe_types(USR)
    # every process.* form before process(number)..., which precede process(string)...
    assert usr.index("process.thread.end") < usr.index("process(number).begin") < usr.index("process(string).begin")
    assert usr.index("timer.hz(number)") < usr.index("timer.jiffies(number)")


def test_unavailable_families_say_why():
    for row in T.FAMILIES:
        if not row.available:
            assert row.unavailable_reason


def test_every_family_explains_itself():
    for row in T.FAMILIES:
        assert row.why and row.patterns, row.family


def test_every_registered_shape_has_a_row_that_agrees():
    """The pass-2 registry asks this table before building: a shape whose family
    has no row would be refused to everybody, stapdev included."""
    from pystap.probes.registry import default_registry, shape_text

    for s in default_registry().shapes:
        row = T.lookup(s.family)
        assert row is not None, (shape_text(s), s.family)
        typed = T.family_of_type(shape_text(s))
        if typed is not None:
            assert typed.allowed == row.allowed, (shape_text(s), s.family, typed.family)


def _unregistered_types():
    from pystap.probes.registry import default_registry, shape_text

    registered = {shape_text(s) for s in default_registry().shapes}
    return sorted(t for row in T.FAMILIES for t in row.types if t not in registered)


def test_probe_types_registered_by_pass_2():
    """Most of the table is registered, so the privilege check answers first."""
    missing = _unregistered_types()
    assert len(missing) < len(T.probe_types(DEV)) // 4, missing


def test_every_probe_type_is_registered_so_privilege_wins_over_unsupported():
    assert _unregistered_types() == []
