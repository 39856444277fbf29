"""Type inference and SystemTap's type error texts."""

from __future__ import annotations

import pytest
from test_elab_helpers import elab, elab_errors

from pystap.lang import ast

T = ast.Type


def _fn(s: ast.ElaboratedScript, name: str) -> ast.FunctionDecl:
    return next(fn for fn in s.functions if fn.name == name)


def test_function_types_flow_from_calls_and_returns() -> None:
    s = elab('function f(x, y) { return x . y } probe begin { print(f("a", "b")) }')
    f = _fn(s, "f")
    assert f.inferred_type is T.STRING
    assert [p.type for p in f.params] == [T.STRING, T.STRING]


def test_declared_types_are_used() -> None:
    s = elab("function f:string(x:long) { return sprint(x) } probe begin { print(f(1)) }")
    f = _fn(s, "f")
    assert (f.inferred_type, f.params[0].type) == (T.STRING, T.LONG)


def test_array_key_and_value_types() -> None:
    s = elab('global a; probe begin { a[1, "k"] = "v"; print(a[1, "k"]) }')
    g = s.globals[0]
    assert (g.type, g.key_types, g.arity) == (T.STRING, [T.LONG, T.STRING], 2)


def test_stats_type() -> None:
    s = elab("global s; probe begin { s <<< 3; print(@avg(s)) }")
    assert s.globals[0].type is T.STATS


def test_mismatch_names_first_inference() -> None:
    assert elab_errors('probe begin { x = "a"; x = 1; print(x) }') == [
        "type mismatch (long)'x'@1:24",
        "type was first inferred here (string)'x'@1:15",
    ]


def test_return_mismatch() -> None:
    assert elab_errors('function f() { return 1; return "a" } probe begin { print(f()) }') == [
        "type mismatch (string)'a'@1:33",
        "type was first inferred here (long)'1'@1:23",
    ]


def test_builtin_argument_mismatch_text() -> None:
    # sic: SystemTap swaps the words for function arguments
    assert elab_errors("probe begin { print(strlen(1)) }") == ["type mismatch: expected long but found string'1'@1:28"]


def test_operator_mismatch_text() -> None:
    assert elab_errors('probe begin { print(1 . "a") }') == ["type mismatch: expected string but found long'1'@1:21"]


def test_comparison_sides_must_agree() -> None:
    assert elab_errors('probe begin { print(1 < "a") }') == ["type mismatch: left and right sides don't agree'<'@1:23"]


def test_unresolved_type() -> None:
    assert elab_errors("probe begin { print(x) }") == ["unresolved type'x'@1:21"]


def test_stats_used_as_value() -> None:
    assert elab_errors("global s; probe begin { s <<< 1; s = 2 }") == [
        "type mismatch (long)'s'@1:34",
        "type was first inferred here (stats)'s'@1:25",
    ]


@pytest.mark.parametrize(
    "src",
    [
        "global s; probe begin { s <<< 1; s++ }",
        'global s; probe begin { s <<< "a" }',
        "global s, a; probe begin { s <<< 1; a[s] = 1; print(a[1]) }",
        "global s; function f(x) { return x } probe begin { s <<< 1; print(f(s)) }",
        "probe begin { x <<< 1; print(@count(x)) }",
    ],
)
def test_stats_misuse_is_an_error(src: str) -> None:
    assert elab_errors(src)


def test_printf_arguments_checked_against_format() -> None:
    assert elab_errors('probe begin { printf("%d\\n", "a") }') == ["type mismatch: expected long but found string'a'@1:30"]
    assert elab_errors('probe begin { printf("%d %d\\n", 1) }')[0].startswith(
        "Wrong number of args to formatted print operator"
    )
    elab('probe begin { printf("%*d %s %%\\n", 3, 1, "x") }')


def test_ternary_arms_agree() -> None:
    s = elab('probe begin { x = 1 ? "a" : "b"; print(x) }')
    assert s.probes[0].locals[0].type is T.STRING
    assert elab_errors('probe begin { print(pid() ? "a" : 2) }')


def test_foreach_limit_and_regex() -> None:
    s = elab('global a; probe begin { a["x"] = 1; foreach (k in a limit 2) if (k =~ "^x") print(k) }')
    assert s.globals[0].key_types == [T.STRING]


def test_void_function_in_expression_is_unresolved() -> None:
    assert elab_errors("function f() { print(1) } probe begin { x = f(); print(x) }")


def test_bare_return_in_valued_function() -> None:
    errs = elab_errors("function f(x) { if (x) return 1; return } probe begin { print(f(1)) }")
    assert errs[0].startswith("type mismatch")


def test_in_and_delete_types() -> None:
    s = elab('global a; probe begin { a["x", 2] = 1; if (["x", 2] in a) delete a["x", 2]; delete a }')
    assert s.globals[0].key_types == [T.STRING, T.LONG]


def test_target_variables_of_process_syscall() -> None:
    s = elab("probe process.syscall { print($syscall + $arg1) }")
    assert s.probes[0].context_vars["$arg1"] is T.LONG
    assert elab_errors("probe process.syscall { print($arg7) }") == [
        "invalid syscall argument number (1-6)'$arg7'@1:31",
        "unresolved type'$arg7'@1:31",
    ]
    assert elab_errors("probe process.syscall { $arg1 = 1 }") == ["utrace '$argN' variable is read-only'$arg1'@1:25"]


def test_target_variable_in_begin_is_unresolved() -> None:
    assert elab_errors("probe begin { print($foo) }") == [
        "unresolved target-symbol expression'$foo'@1:21",
        "unresolved type'$foo'@1:21",
    ]


def test_chained_type_error_renders_each_message_with_its_blank_line():
    # stap prints every message of the chain followed by a blank line (return_no_val_3)
    from pystap.lang.diagnostics import format_error
    from pystap.lang.elaborate import ElaborationError

    src = "probe begin { x = 1; x = \"a\"; println(x) }"
    with pytest.raises(ElaborationError) as info:
        elab(src)
    text = format_error(info.value.errors[0], {"<input>": src})
    assert text == (
        "semantic error: type mismatch (string): identifier 'x' at <input>:1:22\n"
        f"        source: {src}\n" + " " * 37 + "^\n"
        "\n"
        "semantic error: type was first inferred here (long): identifier 'x' at <input>:1:15\n"
        f"        source: {src}\n" + " " * 30 + "^"
    )
