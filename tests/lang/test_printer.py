"""-p1 printer: stap-like layout, and parse → print → parse gives the same tree."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from parse_corpus import CASES, OK  # tests/lang is on sys.path (rootdir-less test dirs)

from pystap.lang import ast
from pystap.lang.context import ParseContext
from pystap.lang.parser import parse_file
from pystap.lang.printer import print_file, print_parse_tree, quote


def ctx(args: list[str] | None = None) -> ParseContext:
    return ParseContext(kernel_release="6.1.0", arch="x86_64", kernel_config={}, args=args or [])


def roundtrip(src: str, args: list[str] | None = None, guru: bool = False) -> str:
    f1 = parse_file(src, "<input>", ctx(args), privileged=guru)
    text1 = print_file(f1)
    f2 = parse_file(text1, "<input>", ctx(), privileged=guru)
    text2 = print_file(f2)
    assert text1 == text2
    for field in ("globals", "functions", "probes", "aliases", "embeds"):
        assert ast.same_tree(getattr(f1, field), getattr(f2, field)), field
    return text1


def test_layout_follows_stap() -> None:
    src = (
        "global a = 1, b[10], c%\nfunction f(x, y) { return x + y }\n"
        "probe begin, end? { a = f(1, 2) . \"x\"; if (a > 1) printf(\"%d\\n\", a) else { b[1, \"x\"] <<< 3 } }\n"
        "probe x = begin { y = 1 }\n"
    )
    assert print_parse_tree([parse_file(src, "<input>", ctx())]) == (
        "# parse tree dump\n"
        "# file <input>\n"
        "global a = 1\n"
        "global b[10]\n"
        "global c%\n"
        "probe x = begin{\n"
        "(y) = (1);\n"
        "}\n"
        "probe begin,end?{\n"
        "(a) = ((f(1, 2)) . (\"x\"));\n"
        "if ((a) > (1)) printf(\"%d\\n\", a);\n"
        "else {\n"
        "(b[1, \"x\"]) <<< (3);\n"
        "}\n"
        "}\n"
        "function f (x, y)\n"
        "{\n"
        "return (x) + (y);\n"
        "}\n\n"
    )


def test_quote_escapes_everything_needed() -> None:
    assert quote('a"b\\c\n\t\x01\x7f\xe9') == '"a\\"b\\\\c\\n\\t\\001\\177\\351"'


def test_types_priorities_epilogues_and_private_are_kept() -> None:
    text = roundtrip(
        "private global g = \"s\"\nprivate function f:string(a:long) :3 { return \"\" }\n"
        "probe a = begin { x = 1 }, { y = 2 }\nprobe b += a { z = 3 }"
    )
    assert "private global g = \"s\"" in text
    assert "private function f:string (a:long) : 3" in text
    assert "}, {" in text and "probe b += a{" in text


def test_wrapped_literals_print_unsigned_in_expressions() -> None:
    text = roundtrip("global g = -5\nprobe begin(-3) { x = 18446744073709551615; y = -9223372036854775808 }")
    assert "global g = -5" in text and "probe begin(-3)" in text
    assert "(x) = (18446744073709551615)" in text and "-(9223372036854775808)" in text


def test_pretty_print_forms_roundtrip() -> None:
    roundtrip("probe begin { a = $x$; b = $x->y$$; c = $x[1] $; d = $$vars$; e = ($p) $; f = $ $; g = $$ $ }")


@pytest.mark.parametrize(
    ("name", "src", "args", "guru"),
    [(c[0], c[1], c[2], c[3]) for c in CASES if c[4] == OK],
    ids=[c[0] for c in CASES if c[4] == OK],
)
def test_corpus_roundtrip(name: str, src: str, args: list[str], guru: bool) -> None:
    roundtrip(src, args, guru)


# -- generated scripts ---------------------------------------------------------------------------

_NAMES = st.sampled_from(["a", "b", "x1", "_y", "z$", "cnt"])
_STRINGS = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=6)


def _string_literal(s: str) -> str:
    return quote(s)


_ATOMS = st.one_of(
    _NAMES,
    st.integers(min_value=0, max_value=2**64 - 1).map(str),
    st.integers(min_value=0, max_value=0o777).map(lambda n: "0" + oct(n)[2:]),
    st.integers(min_value=0, max_value=2**32).map(hex),
    _STRINGS.map(_string_literal),
    st.sampled_from(["$var", "$var->m", "$p[1]$", "@count(s)", "@avg(s)", "@variance(s, 2)", "arr[1, \"k\"]",
                     "@defined($x)", "@entry(x1)", "@cast(p, \"t\")->f", "&$q", "@hist_log(s)[3]"]),
)

_BINOPS = ["+", "-", "*", "/", "%", ".", "<<", ">>", ">>>", "&", "|", "^", "&&", "||",
           "<", ">", "<=", ">=", "==", "!="]
_ASSIGN = ["=", "+=", "-=", ".=", "<<<", "|=", "<<="]


def _extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, st.sampled_from(_BINOPS), inner).map(" ".join),
        st.tuples(st.sampled_from(["-", "!", "~", "+"]), inner).map(lambda t: f"{t[0]} {t[1]}"),
        inner.map(lambda e: f"( {e} )"),
        st.tuples(inner, inner, inner).map(lambda t: f"{t[0]} ? {t[1]} : {t[2]}"),
        st.tuples(_NAMES, st.sampled_from(_ASSIGN), inner).map(" ".join),
        st.tuples(inner, _STRINGS).map(lambda t: f"( ({t[0]}) =~ {quote(t[1])} )"),
        inner.map(lambda e: f"( {e} in arr )"),
        st.tuples(inner, inner).map(lambda t: f"( [({t[0]}), *, ({t[1]})] in arr )"),
        st.lists(inner, max_size=3).map(lambda xs: f"fn({', '.join(xs)})"),
        st.lists(inner, min_size=1, max_size=3).map(lambda xs: f"sprintf(\"%d %s\", {', '.join(xs)})"),
        _NAMES.map(lambda n: f"{n}++"),
        _NAMES.map(lambda n: f"-- {n}"),
        inner.map(lambda e: f"( {e} )->m"),
    )


EXPRS = st.recursive(_ATOMS, _extend, max_leaves=8)


def _stmts(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        inner.map(lambda s: "{ " + s + " }"),
        st.tuples(EXPRS, inner).map(lambda t: f"if ({t[0]}) {t[1]}"),
        st.tuples(EXPRS, inner, inner).map(lambda t: f"if ({t[0]}) {t[1]} else {t[2]}"),
        st.tuples(EXPRS, inner).map(lambda t: f"while ({t[0]}) {t[1]}"),
        st.tuples(EXPRS, inner).map(lambda t: f"for (i = 0; {t[0]}; i++) {t[1]}"),
        inner.map(lambda s: f"for (;;) {s}"),
        st.tuples(st.sampled_from(["k", "[k, j+]", "v- = [k]", "k-"]), inner).map(
            lambda t: f"foreach ({t[0]} in arr limit 3) {t[1]}"
        ),
        st.tuples(inner, inner).map(lambda t: f"try {{ {t[0]} }} catch (msg) {{ {t[1]} }}"),
    )


_SIMPLE = st.one_of(
    EXPRS.map(lambda e: e + ";"),
    st.just(";"),
    st.sampled_from(["next", "break;", "continue", "delete arr[1, *]", "delete arr"]),
)
STMTS = st.recursive(_SIMPLE, _stmts, max_leaves=6)


@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(STMTS, min_size=1, max_size=4), st.lists(STMTS, max_size=3))
def test_generated_scripts_roundtrip(probe_body: list[str], fn_body: list[str]) -> None:
    src = (
        "global arr, s\n"
        f"function fn(p) {{ {' '.join(fn_body)} return p }}\n"
        f"probe begin, timer.ms(10)? {{ {' '.join(probe_body)} }}\n"
    )
    roundtrip(src)
