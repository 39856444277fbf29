"""Hostile input: whatever the bytes, pass 1 raises StapErrors, never anything else."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from parse_corpus import CASES  # tests/lang is on sys.path (rootdir-less test dirs)

from pystap.lang.context import ParseContext
from pystap.lang.diagnostics import ParseErrors, StapError, format_error
from pystap.lang.parser import MAX_NESTING, parse_file
from pystap.lang.preprocess import MacroFileError, parse_library_macros
from pystap.lang.printer import print_file

SEEDS = [c[1] for c in CASES]
PIECES = [
    "probe", "begin", "{", "}", "(", ")", "[", "]", ",", ";", "=", "+=", "%(", "%?", "%:", "%)", "@define",
    "@x", "@1", "$1", "$#", "@#", '"', "%{", "%}", "if", "else", "foreach", "in", "limit", "function",
    "global", "private", "return", "?", "!", ".", "*", "->", "$$", "$", "<<<", "@hist_log", "@count", "try",
    "catch", "\n", " ", "/*", "#", "\\", "\x00", "\xff", "0x", "99999999999999999999", "-", "printf(\"%",
]


def attempt(text: str, args: list[str] | None = None, guru: bool = False) -> None:
    ctx = ParseContext(kernel_config={"CONFIG_A": "y"}, args=args or ["1", "x"])
    try:
        f = parse_file(text, "<input>", ctx, privileged=guru)
    except ParseErrors as e:
        assert e.errors
        for err in e.errors:
            assert isinstance(err, StapError)
            format_error(err, {"<input>": text})  # rendering never fails either
        e.render({"<input>": text})
        return
    # what parses also prints and re-parses
    parse_file(print_file(f), "<input>", ParseContext(kernel_config={}), privileged=guru)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    attempt(data.decode("latin-1"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(PIECES), max_size=40), st.booleans())
def test_random_token_soup(pieces: list[str], guru: bool) -> None:
    attempt(" ".join(pieces), guru=guru)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 3), st.sampled_from(PIECES)), max_size=4),
)
def test_mutated_valid_scripts(seed: str, edits: list[tuple[int, int, str]]) -> None:
    text = seed
    for pos, drop, piece in edits:
        at = pos % (len(text) + 1)
        text = text[:at] + piece + text[at + drop :]
    attempt(text)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_library_macro_files_never_crash(text: str) -> None:
    try:
        parse_library_macros(text, "x.stpm", ParseContext(kernel_config={}))
    except MacroFileError as e:
        assert e.errors


@pytest.mark.parametrize(
    "text",
    [
        "probe begin { x = " + "(" * 100_000,
        "probe begin { x = " + "[" * 100_000,
        "probe begin " + "{" * 100_000,
        "probe " + "{" * 100_000,
        "%( 1 == 1 %? " * 20_000,
        "@define a %( @a %)\nprobe begin { x = @a }",  # self-recursive macro
        "@define a %( 1 1 %) @define b %( @a @a %) @define c %( @b @b @b @b @b @b @b @b %)"
        " @define d %( @c @c @c @c @c @c @c @c %) @define e %( @d @d @d @d @d @d @d @d %)"
        " @define f %( @e @e @e @e @e @e @e @e %) @define g %( @f @f @f @f @f @f @f @f %)"
        " @define h %( @g @g @g @g @g @g @g @g %) probe begin { x = @h }",  # exponential macros
        "probe begin { x = " + "!" * 100_000 + "1 }",
        "probe begin { x = 1" + " . 1" * 50_000 + " }",
        "function f() { return " + "f(" * 100_000 + " }",
        "global g = " + "9" * 100_000,
        'probe begin { printf("%' + "9" * 100_000 + 'q") }',
        "probe begin { x = " + "(" * 250 + "1" + (" + 1" * 40 + ")") * 250 + " }",
    ],
    ids=["parens", "brackets", "blocks", "pp-braces", "conditionals", "recursive-macro", "exploding-macros",
         "unary", "chain", "calls", "long-number", "long-width",
         "stacked-chains"],
)
def test_pathological_inputs(text: str) -> None:
    with pytest.raises(ParseErrors):
        parse_file(text, "<input>", ParseContext(kernel_config={}))


def test_stacked_chains_are_bounded_but_wide_expressions_are_not() -> None:
    ctx = ParseContext(kernel_config={})
    deep = "probe begin { x = " + "(" * 100 + "1" + (" + 1" * 20 + ")") * 100 + " }"
    with pytest.raises(ParseErrors, match="nesting too deep"):
        parse_file(deep, "<input>", ctx)
    wide = "probe begin { " + "x = 1 + 2 . 3 - 4 * 5\n" * 500 + " }"
    f = parse_file(wide, "<input>", ctx)
    assert len(f.probes[0].body.statements) == 500 and print_file(f)


def test_limit_message() -> None:
    with pytest.raises(ParseErrors) as info:
        parse_file("probe begin { x = " + "(" * 10_000 + "1" + ")" * 10_000 + " }", "<input>",
                   ParseContext(kernel_config={}))
    assert info.value.errors[0].message == f"nesting too deep (more than {MAX_NESTING} levels)"
