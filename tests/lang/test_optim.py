"""The optimiser behaviour the corpus depends on, and -u."""

from __future__ import annotations

from test_elab_helpers import elab, elab_errors, warnings

from pystap.lang import ast


def test_empty_probe_is_elided_and_no_probes_found() -> None:
    assert elab_errors("probe begin {}") == ["no probes found"]
    assert elab("probe begin {}", unoptimized=True).probes[0].point == "begin"


def test_write_only_local_is_elided_with_warnings() -> None:
    assert elab_errors("probe begin { x = 1 }") == ["no probes found"]
    w = warnings("probe begin { x = 1; print(2) }")
    assert w[:2] == ["Eliding assignment to 'x'", "Eliding side-effect-free expression "]


def test_local_stats_accepted_when_elided() -> None:
    # write-only: optimised away before the type checker sees a stats local
    s = elab("probe begin { a <<< 2; print(1) }")
    assert s.probes[0].locals == []
    assert elab_errors("probe begin { a <<< 2; print(1) }", unoptimized=True)


def test_side_effect_free_statements_with_bad_target_vars_vanish() -> None:
    s = elab("probe begin { $nosuch; print(1) }")
    assert len(s.probes) == 1
    assert elab_errors("probe begin { $nosuch; print(1) }", unoptimized=True)[0].startswith(
        "unresolved target-symbol expression"
    )


def test_defined_is_folded_even_without_optimisation() -> None:
    s = elab("probe begin { print(@defined($x) ? 1 : 2) }", unoptimized=True)
    lits = [n for n in ast.walk(s.probes[0].body) if isinstance(n, ast.Ternary)]
    assert isinstance(lits[0].cond, ast.NumberLit) and lits[0].cond.value == 0
    s = elab("probe process.syscall { print(@defined($syscall) ? $syscall : 0) }")
    assert "print" in repr(s.probes[0].body)


def test_constant_folding() -> None:
    s = elab("probe begin { print(1 + 2 * 3, 1 < 2, -(4), 7 / 2, -7 % 3, 1 << 62, -4096 >> 3) }")
    p = next(n for n in ast.walk(s.probes[0].body) if isinstance(n, ast.PrintFormat))
    assert [a.value for a in p.args] == [7, 1, -4, 3, -1, 2**62, -512]


def test_shift_counts_outside_0_63_are_left_for_run_time() -> None:
    """SystemTap clamps a shift count to [0, 64] at run time (a negative count shifts
    nothing); the optimiser does not fold those, so it cannot disagree with -u."""
    s = elab("probe begin { print(120 << -2, -4096 >> -3, 1 << 65) }")
    p = next(n for n in ast.walk(s.probes[0].body) if isinstance(n, ast.PrintFormat))
    assert all(isinstance(a, ast.Binary) for a in p.args)


def test_division_by_zero_is_left_for_run_time() -> None:
    s = elab("probe begin { print(1 / 0) }")
    p = next(n for n in ast.walk(s.probes[0].body) if isinstance(n, ast.PrintFormat))
    assert isinstance(p.args[0], ast.Binary)


def test_dead_branches() -> None:
    assert elab_errors("probe begin { if (0) print(1) }") == ["no probes found"]
    s = elab("probe begin { if (1) print(1) else print(2) }")
    assert isinstance(s.probes[0].body.statements[0], ast.ExprStatement)


def test_elision_warning_names_the_probe() -> None:
    s = elab("probe begin { print(1) } probe end {}")
    assert [p.point for p in s.probes] == ["begin"]
    assert "Probe 'end' has been elided" in [w.message for w in s.warnings]


def test_w_silences_and_W_promotes_warnings() -> None:
    assert warnings("probe begin { x = 1; print(2) }", suppress_warnings=True) == []
    errs = elab_errors("probe begin { x = 1; print(2) }", warnings_as_errors=True)
    assert errs and "warning treated as error" in errs[0]


def test_never_assigned_local_warning() -> None:
    w = warnings("probe begin { y = 1; print(y + x) }", unoptimized=True)
    assert "never-assigned local variable 'x'" in w


def test_unreachable_functions_disappear_after_optimisation() -> None:
    s = elab("function f() { return 1 } probe begin { if (0) print(f()); print(2) }")
    assert s.functions == []


def test_optimizer_clears_semok_style_noise() -> None:
    # side-effect-free for-clauses and empty ifs go, taking unresolvable $vars with them
    s = elab(
        "function zoo(x) { return x } probe begin { for (2<$i; zoo(333); poo) ; } "
        "probe begin { foo = $bar; if (foo) {} } probe begin { { { { } } } } probe begin { println(1) }"
    )
    assert [p.point for p in s.probes] == ["begin", "begin"]
