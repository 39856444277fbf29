"""Symbol resolution: locals, globals, arity, functions, overloads, private, tapset pull-in."""

from __future__ import annotations

from test_elab_helpers import elab, elab_errors

from pystap.lang import ast


def test_undeclared_names_are_locals_of_their_body() -> None:
    s = elab('probe begin { x = 1; y = "a"; printf("%d%s\\n", x, y) }')
    p = s.probes[0]
    assert [(v.name, v.type) for v in p.locals] == [("x", ast.Type.LONG), ("y", ast.Type.STRING)]


def test_global_visible_everywhere() -> None:
    s = elab("global g; function f() { return g } probe begin { g = 2; print(f()) }")
    assert [g.name for g in s.globals] == ["g"]
    assert s.globals[0].type is ast.Type.LONG


def test_array_without_global_declaration() -> None:
    assert elab_errors("probe begin { a[1] = 1; print(a[1]) }")[0] == (
        "unresolved arity-1 global array a, missing global declaration?'a'@1:15"
    )


def test_inconsistent_arity_names_first_use() -> None:
    errs = elab_errors("global a; probe begin { a[1] = 1; a[1,2] = 2; print(a[1]) }")
    assert errs[:2] == ["inconsistent arity (1 vs 2)'a'@1:35", "arity 1 first inferred here'a'@1:25"]


def test_local_used_as_array() -> None:
    errs = elab_errors("probe begin { x = 1; print(x[1]) }")
    assert errs == ["inconsistent arity (0 vs 1)'x'@1:28", "arity 0 first inferred here'x'@1:15"]


def test_unresolved_function_suggests_similar_names() -> None:
    errs = elab_errors("probe begin { print(strlenn(\"a\")) }")
    assert errs[0].startswith("unresolved function strlenn (similar: strlen")


def test_functions_overload_by_arity() -> None:
    s = elab("function f(x) { return x } function f(x, y) { return x + y } probe begin { print(f(1) + f(1, 2)) }")
    assert sorted(len(fn.params) for fn in s.functions) == [1, 2]


def test_same_arity_overloads_in_priority_order() -> None:
    s = elab("function f:long(x) { next } function f:long(x):1 { return 2 } probe begin { print(f(1)) }")
    call = next(n for n in ast.walk(s.probes[0].body) if isinstance(n, ast.FunctionCall))
    assert [fn.priority for fn in call.referents] == [0, 1]


def test_builtin_call_resolves_to_table_entry() -> None:
    s = elab('probe begin { print(strlen("abc")) }')
    call = next(n for n in ast.walk(s.probes[0].body) if isinstance(n, ast.FunctionCall))
    assert call.referents == [] and call.builtin.name == "strlen"
    assert [b.name for b in s.builtins] == ["strlen"]


def test_tapset_global_pulled_in_on_demand() -> None:
    s = elab("probe begin { print(NULL) }")
    assert [g.name for g in s.globals] == ["NULL"]
    assert s.globals[0].type is ast.Type.LONG


def test_tapset_script_function_pulled_in() -> None:
    s = elab('probe begin { assert(1, "fine") }')
    assert [fn.name for fn in s.functions] == ["assert"]
    assert any(b.name == "error" for b in s.builtins)


def test_unreached_functions_are_not_checked() -> None:
    s = elab('function bad() { return 1 + "x" } probe begin { print(1) }')
    assert s.functions == []


def test_probe_condition_rules() -> None:
    assert elab_errors("global x; probe begin if (y > 1) {print(1)}") == [
        "probe condition must not reference undeclared global'y'@1:27"
    ]
    assert elab_errors("global x; probe begin if (x > f()) {print(1)} function f() {return 1}") == [
        "probe condition must not reference function'f'@1:31"
    ]
    assert elab_errors("global x; probe begin if (x++ > 1) {print(1)}")[0].startswith(
        "probe condition must not modify any variables"
    )


def test_condition_on_global_is_kept() -> None:
    s = elab("global on = 1; probe timer.ms(100) if (on) { print(1) }")
    assert isinstance(s.probes[0].condition, ast.Symbol)


def test_private_global_only_visible_in_its_file(tmp_path) -> None:
    from pystap.lang.context import ParseContext
    from pystap.lang.elaborate import ElabOptions, ElaborationError, elaborate
    from pystap.lang.parser import parse_file

    lib = tmp_path / "lib.stp"
    lib.write_text("private global secret = 5\nfunction peek() { return secret }\n")
    ctx = ParseContext()
    libf = parse_file(lib.read_text(), str(lib), ctx, tapset=True)
    ok = parse_file("probe begin { print(peek()) }", "<input>", ctx)
    s = elaborate([ok, libf], ElabOptions())
    assert [g.name for g in s.globals] == ["secret"]
    bad = parse_file("global x; probe begin { secret = 1; print(secret) }", "<input>", ctx)
    s2 = elaborate([bad, libf], ElabOptions())
    # in the user's file 'secret' is a plain local
    assert [v.name for v in s2.probes[0].locals] == ["secret"]
    assert not isinstance(ElaborationError, type(None))


def test_catch_variable_is_a_string_local() -> None:
    s = elab('probe begin { try { error("x") } catch (msg) { print(msg) } }')
    assert [(v.name, v.type) for v in s.probes[0].locals] == [("msg", ast.Type.STRING)]


def test_foreach_binds_index_and_value() -> None:
    s = elab('global a; probe begin { a["k"] = 1; foreach (v = k in a) printf("%s %d\\n", k, v) }')
    types = {v.name: v.type for v in s.probes[0].locals}
    assert types == {"v": ast.Type.LONG, "k": ast.Type.STRING}


def test_arity_mismatch_names_the_known_arity() -> None:
    assert elab_errors("probe begin { exit(1) }") == ["arity mismatch found (function 'exit' takes 0 args)'exit'@1:15"]
    assert elab_errors("function f(a, b) { return a + b } probe begin { print(f(1)) }")[0].startswith(
        "arity mismatch found (function 'f' takes 2 args)"
    )
