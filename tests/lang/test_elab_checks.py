"""Pass-2 checks: foreach mutation, statistics consistency, regexes, wrap-around."""

from __future__ import annotations

import pytest
from test_elab_helpers import elab, elab_errors

from pystap import ere


def test_foreach_mutation_direct_and_through_calls() -> None:
    assert elab_errors("global a; probe begin { a[1]=1; foreach (k in a) { a[k] = 2 } }") == [
        "variable 'a' modified during 'foreach' iteration'a'@1:52"
    ]
    assert elab_errors("global a; function f() { a[1]=2 } probe begin { a[1]=1; foreach (k in a) { f() } }") == [
        "function call modifies var 'a' during 'foreach' iteration'f'@1:76"
    ]
    assert elab_errors("global a; probe begin { a[1]=1; foreach (k in a) { delete a[k] } }")
    elab("global a, b; probe begin { a[1]=1; foreach (k in a) { b[k] = a[k] } print(b[1]) }")


def test_histogram_kinds_must_agree() -> None:
    errs = elab_errors("global s; probe begin { s <<< 1; print(@hist_log(s)); print(@hist_linear(s,0,10,1)) }")
    assert errs == ["multiple histogram types declared on 's''@hist_linear'@1:61"]
    elab("global s; probe begin { s <<< 1; print(@hist_log(s)); print(@hist_log(s)) }")


def test_histogram_is_not_a_value() -> None:
    s = elab("global s; probe begin { s <<< 1; print(@hist_log(s)[64]); foreach (b in @hist_log(s)) print(b) }")
    assert s.globals[0].type.value == "stats"


def test_bad_regex() -> None:
    errs = elab_errors('probe begin { if ("a" =~ "(") print(1) }')
    assert errs[0].startswith("regex compilation error")
    elab('probe begin { if ("abc" =~ "^a[[:alpha:]]+$" && "x" !~ "y{2,3}") print(1) }')


@pytest.mark.parametrize("pattern", ["(", "[abc", "a\\1", "[[:nope:]]", "x{2,1}"])
def test_regex_errors(pattern: str) -> None:
    assert ere.check(pattern) is not None


def test_regex_error_text_and_position() -> None:
    """The pass-2 message is stapregex's, with the pattern's position (stap 4.8 prints the same)."""
    errs = elab_errors('probe begin { if ("x" =~ "[z-a]") print(1) }')
    assert errs == ["regex compilation error (at position 4): Inverted character range z-a'[z-a]'@1:26"]


def test_wrap_on_scalar() -> None:
    assert elab_errors("global a%; probe begin { a = 1; print(a) }") == ["wrapping not supported for scalars'a'@1:8"]
    elab("global a%[3]; probe begin { a[1] = 1; print(a[1]) }")


@pytest.mark.parametrize(
    ("src", "first"),
    [
        ("probe begin { 1 = 2 }", "Expecting lvalue for assignment'='@1:17"),
        ("function f() { return 1 } probe begin { f() = 1 }", "Expecting lvalue for assignment'='@1:45"),
        ("probe begin { print(@entry(1)) }", "@entry is only valid in .return probes'@entry'@1:21"),
        ("global s; probe begin { s <<< 1; print(@variance(s, 3) + @variance(s, 4)) }",
         "conflicting bit shifts declared (previously 3)'@variance'@1:58"),
        ("global a; probe begin { a[1]=1; foreach (k in a[1, *]) print(k) }",
         "unresolved arity-2 global array a, missing global declaration?'a'@1:47"),
        ("probe begin { print(@count(1)) }", "type mismatch: expected stats but found long'1'@1:28"),
    ],
)
def test_semantic_errors_with_positions(src: str, first: str) -> None:
    assert elab_errors(src)[0] == first
