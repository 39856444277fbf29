"""The probe-family registry: shapes, policy rows, builders."""

from __future__ import annotations

import pytest

from pystap.lang import ast
from pystap.lang.diagnostics import SemanticError
from pystap.lang.tokens import synthetic
from pystap.policy.probes import lookup
from pystap.privilege import PR_STAPUSR
from pystap.probes import process, timer
from pystap.probes.registry import BuildContext, Registry, default_registry, shape, shape_text


def test_every_shape_has_a_policy_row() -> None:
    for s in default_registry().shapes:
        assert lookup(s.family) is not None, shape_text(s)


def test_stapusr_families_are_the_documented_set() -> None:
    from pystap.policy.probes import family_allowed

    allowed = {s.family for s in default_registry().shapes if family_allowed(s.family, PR_STAPUSR)}
    assert {"begin", "end", "error", "never", "timer", "process.begin", "process.syscall"} <= allowed
    assert not allowed & {"timer.profile", "kernel.trace", "syscall", "kernel.function", "kprobe", "procfs"}


def test_duplicate_shapes_are_refused() -> None:
    reg = Registry([shape("x(N)", "begin", lambda pp, a, c: [])])
    with pytest.raises(ValueError):
        reg.add(shape("x(N)", "begin", lambda pp, a, c: []))


def test_shape_text() -> None:
    assert shape_text(shape("timer.ms(N).randomize(N)", "timer", lambda pp, a, c: [])) == (
        "timer.ms(number).randomize(number)"
    )


def _pp() -> ast.ProbePoint:
    t = synthetic("x")
    return ast.ProbePoint(tok=t, components=[ast.PPComponent(tok=t, name="x")])


def test_timer_builder_limits() -> None:
    build = timer._hrtimer("ms")
    assert build(_pp(), {"ms": 1}, BuildContext())[0].params["interval_ns"] == 1_000_000
    with pytest.raises(SemanticError, match=r"interval value out of range \(1, 86400000\)"):
        build(_pp(), {"ms": 0}, BuildContext())
    with pytest.raises(SemanticError, match="randomization value out of range"):
        build(_pp(), {"ms": 5, "randomize": -1}, BuildContext())


def test_process_path_search(tmp_path) -> None:
    exe = tmp_path / "tool"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    assert process.resolve_path("tool", str(tmp_path)) == str(exe)
    assert process.resolve_path("missing-tool", str(tmp_path)) == "missing-tool"


def test_syscall_target_rules() -> None:
    entry = process._syscall_target(False)
    ret = process._syscall_target(True)
    assert entry("$arg6", False) is ast.Type.LONG
    assert ret("$return", False) is ast.Type.LONG
    with pytest.raises(SemanticError, match="read-only"):
        entry("$syscall", True)
    with pytest.raises(SemanticError, match="support \\$argN"):
        ret("$arg1", False)


def test_kernel_trace_fields_from_format(tmp_path) -> None:
    from pystap.probes import kernel_trace

    d = tmp_path / "sched" / "sched_switch"
    d.mkdir(parents=True)
    (d / "format").write_text(
        "name: sched_switch\n"
        "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
        "\tfield:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:0;\n"
        "\tfield:pid_t prev_pid;\toffset:24;\tsize:4;\tsigned:1;\n"
    )
    assert kernel_trace.list_tracepoints(str(tmp_path)) == [("sched", "sched_switch")]
    fields = kernel_trace.event_fields(str(tmp_path), "sched", "sched_switch")
    assert fields == {"$prev_comm": ast.Type.STRING, "$prev_pid": ast.Type.LONG}


def test_every_policy_probe_type_is_matchable() -> None:
    """A type in the policy table never ends in "probe point mismatch": it is built or clearly refused."""
    from pystap.policy.probes import FAMILIES
    from pystap.probes.registry import _shape_from_type

    paths = {s.path for s in default_registry().shapes}
    for row in FAMILIES:
        for text in row.types:
            assert shape(_shape_from_type(text), row.family, lambda pp, a, c: []).path in paths, text
