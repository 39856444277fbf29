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
    # stap 4.8 names the closest other variables (its weighted Levenshtein, top 5)
    w = warnings("probe begin { y = 1; print(y + x) }")
    assert "never-assigned local variable 'x' (similar: y)" in w


def test_never_assigned_suggestions_rank_as_stap() -> None:
    # insert/delete/substitute cost 2, a case-only change 1; ties by name; globals and
    # parameters count too (stap -p2 prints the same lists)
    w = warnings("global abce probe begin { abcdef = 1; abcxyz = 1; zzzzzz = 1; abc = 1; Abcdeg = 2;"
                 " abce = 3; println(abcdeg * 2) }")
    assert "never-assigned local variable 'abcdeg' (similar: Abcdeg, abcdef, abce, abc, abcxyz)" in w
    w = warnings("function f(abcd) { return abcx * abcd } probe begin { println(f(1)) }")
    assert "never-assigned local variable 'abcx' (similar: abcd)" in w


def test_never_assigned_is_an_optimiser_warning() -> None:
    # stap warns from semantic_pass_opt2, which -u skips
    w = warnings("probe begin { y = 1; print(y + x) }", unoptimized=True)
    assert not any(m.startswith("never-assigned") for m in w)


def test_unreachable_functions_disappear_after_optimisation() -> None:
    s = elab("function f() { return 1 } probe begin { if (0) print(f()); print(2) }")
    assert s.functions == []


def test_optimizer_clears_semok_style_noise() -> None:
    # side-effect-free for-clauses, empty loops and empty ifs go, taking unresolvable $vars with
    # them (semok/optimize.stp: stap 4.8 keeps only the probe that prints)
    s = elab(
        "function zoo(x) { return x } probe begin { for (2<$i; zoo(333); poo) ; } "
        "probe begin { foo = $bar; if (foo) {} } probe begin { { { { } } } } probe begin { println(1) }"
    )
    assert [p.point for p in s.probes] == ["begin"]


def test_empty_loops_and_ifs_reduce_as_stap() -> None:
    from pystap.lang.printer import print_stmt

    s = elab("global x; probe begin { while (24) ; if (x++) ; for (i = 0; i < 3; i++) ; println(x) }")
    # as stap 4.8 -p2 -v: the idle loop is gone, the empty if leaves its condition's effect
    assert print_stmt(s.probes[0].body, listing=True) == (
        "{\n(__global_x)++;\nfor ((i) = (0); (i) < (3); (i)++) ;\nprintln(__global_x);\n}")


def _printed(expr: str, decls: str = "") -> str:
    """The argument ``println`` is left with once ``expr`` went through the optimiser."""
    from pystap.lang.printer import print_expr

    s = elab(decls + "probe begin { i = 3; s = \"s\"; g = 4; println(" + expr + ") }")
    calls = [n for n in ast.walk(s.probes[0].body) if isinstance(n, ast.PrintFormat)]
    return print_expr(calls[-1].args[0], listing=True)


# stap 4.8 -p2 -v prints the same folds (elaborate.cxx const_folder::visit_binary_expression)
IDENTITY_FOLDS = [
    ("i*0", "0"), ("0*i", "0"), ("i&0", "0"), ("0<<i", "0"), ("0>>i", "0"), ("-1|i", "-1"),
    ("i%1", "0"), ("i%-1", "0"), ("i|-1", "-1"), ("f()*0", "(f()) * (0)"),
    ("i-0", "i"), ("0+i", "i"), ("i|0", "i"), ("i^0", "i"), ("1*i", "i"), ("i/1", "i"), ("-1&i", "i"),
    ("i<<0", "i"), ("i>>-3", "i"), ("0-i", "(0) - (i)"), ("0/i", "(0) / (i)"), ("i%0", "(i) % (0)"),
    ("i&&0", "0"), ("i||1", "1"), ("f()&&0", "(f()) && (0)"), ('"" . s', "s"),
    ("i <= 9223372036854775807", "1"), ("i > 9223372036854775807", "0"),
    ("i < -9223372036854775808", "0"), ("-9223372036854775808 <= i", "1"),
]


def test_identity_and_absorbing_constants_fold_as_stap() -> None:
    for expr, want in IDENTITY_FOLDS:
        got = _printed(expr, 'function f() { println("x"); return 1 } ')
        assert got == want, expr


def test_a_folded_operator_still_types_its_operand() -> None:
    # ``x + 0`` became ``x`` but still makes x a long (and "" . y a string), as stap's folder does
    assert elab_errors('probe begin { s = "a"; println(s + 0) }')[0] == "type mismatch (long)'s'@1:32"
    s = elab("probe begin { println(h - 0) }")
    assert [(v.name, v.type) for v in s.probes[0].locals] == [("h", ast.Type.LONG)]


def test_for_clauses_are_never_void():
    # stap's void_statement_reducer leaves a for loop's init/incr alone ("never void")
    w = warnings("probe begin { i = 0; for (i; i < 3; i + 1) { i++ } println(i) }")
    assert not any(m.startswith("Eliding side-effect-free") for m in w)


def test_function_reduced_to_nothing_is_reported():
    # stap 4.8 -p2: the call goes, then the emptied function is named at its definition
    w = warnings("function f() { x = 1 } probe begin { f(); println(2) }")
    assert w == ["Eliding assignment to 'x'", "Eliding side-effect-free expression ",
                 "Eliding side-effect-free expression ", "side-effect-free function 'f'"]


def test_unused_assignments_of_every_body_are_reported_first():
    # stap's semantic_pass_opt2 runs over all probes and functions before the void-statement reducer
    w = warnings("function g() { b = 2; return 1 } probe begin { a = 1; println(g()) }")
    assert w == ["Eliding assignment to 'a'", "Eliding assignment to 'b'", "Eliding side-effect-free expression ",
                 "Eliding side-effect-free expression "]


def test_only_the_first_optimiser_round_warns():
    # ``y`` becomes unread only once round 1 drops ``x = y``; stap suppresses later rounds' warnings
    w = warnings("probe begin { y = 1; x = y; println(2) }")
    assert w == ["Eliding assignment to 'x'", "Eliding side-effect-free expression "]
