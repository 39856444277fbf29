"""Lexer: token classes, positions, escapes, comments, junk and $N/@N pasting."""

from __future__ import annotations

import pytest

from pystap.lang.lexer import BASE_KEYWORDS, Lexer, tokenize
from pystap.lang.tokens import TokenKind as K


def kinds(src: str, args: list[str] | None = None) -> list[tuple[str, str]]:
    return [(t.kind.name, t.text) for t in tokenize(src, "<input>", args or [])]


def test_token_classes() -> None:
    assert kinds('probe begin { x$ = 0x1f . "s" } %{ c %} @count $var $$vars') == [
        ("KEYWORD", "probe"),
        ("IDENTIFIER", "begin"),
        ("OPERATOR", "{"),
        ("IDENTIFIER", "x$"),
        ("OPERATOR", "="),
        ("NUMBER", "0x1f"),
        ("OPERATOR", "."),
        ("STRING", "s"),
        ("OPERATOR", "}"),
        ("EMBEDDED", " c "),
        ("OPERATOR", "@count"),
        ("IDENTIFIER", "$var"),
        ("IDENTIFIER", "$$vars"),
    ]


def test_all_keywords() -> None:
    for word in BASE_KEYWORDS | {"private"}:
        assert kinds(word) == [("KEYWORD", word)]
    # without --compatible>=3.0 'private' is an identifier
    toks, _ = Lexer("private", "f", keywords=BASE_KEYWORDS).tokens()
    assert toks[0].kind is K.IDENTIFIER


def test_numbers_are_lexed_greedily() -> None:
    assert kinds("2015a 0xzoo 0880 1-1") == [
        ("NUMBER", "2015a"),
        ("NUMBER", "0xzoo"),
        ("NUMBER", "0880"),
        ("NUMBER", "1"),
        ("OPERATOR", "-"),
        ("NUMBER", "1"),
    ]


@pytest.mark.parametrize(
    "op",
    "<<< >>> <<= >>= == != <= >= =~ !~ += -= *= /= %= &= ^= |= .= && || ++ -- -> << >> %( %? %: %)".split(),
)
def test_multi_char_operators(op: str) -> None:
    assert kinds(f"a {op} b") == [("IDENTIFIER", "a"), ("OPERATOR", op), ("IDENTIFIER", "b")]


def test_longest_match() -> None:
    assert [t for _, t in kinds("a<<<=b")] == ["a", "<<<", "=", "b"]
    assert [t for _, t in kinds("x!~y")] == ["x", "!~", "y"]
    assert [t for _, t in kinds("a---b")] == ["a", "--", "-", "b"]


def test_string_escapes_kept_in_source_form() -> None:
    # \n \t \\ \ooo \x stay escapes; any other \c becomes c
    (t,) = tokenize(r'"a\n\t\\\101\x41\q\""')
    assert t.kind is K.STRING
    assert t.text == r"a\n\t\\\101\x41q" + '"'


def test_string_backslash_newline_continues() -> None:
    (t,) = tokenize('"ab\\\ncd"')
    assert t.kind is K.STRING and t.text == "ab\ncd"


def test_unclosed_string_is_junk_up_to_newline() -> None:
    toks = tokenize('x = "abc\ny')
    assert toks[2].kind is K.JUNK
    assert toks[2].junk == "Could not find matching closing quote"
    assert toks[2].text == '"abc'
    assert (toks[3].text, toks[3].loc.line, toks[3].loc.col) == ("y", 2, 1)


def test_unclosed_embedded_is_junk() -> None:
    toks = tokenize("a %{ int x;")
    assert toks[1].kind is K.JUNK
    assert toks[1].junk == "Could not find matching '%}' to close embedded function block"


def test_embedded_warns_on_reversed_close() -> None:
    lx = Lexer("%{ x }% y %}", "f")
    toks, _ = lx.tokens()
    assert toks[0].kind is K.EMBEDDED and toks[0].text == " x }% y "
    assert lx.warnings and "possible erroneous closing" in lx.warnings[0][0]


def test_junk_bytes() -> None:
    toks = tokenize("a \x01 \xff \x7f")
    assert [(t.kind, t.text) for t in toks[1:]] == [(K.JUNK, "\\x01"), (K.JUNK, "\\xff"), (K.JUNK, "\\x7f")]
    assert toks[1].junk == ""  # parser keeps its own message for these


def test_comments_and_positions() -> None:
    src = "# one\n// two\n/* three\n */ a /* x */ b\n\tc # tail\n  d"
    toks = tokenize(src)
    assert [(t.text, t.loc.line, t.loc.col) for t in toks] == [("a", 4, 5), ("b", 4, 15), ("c", 5, 2), ("d", 6, 3)]


def test_hash_after_sigil_is_not_a_comment() -> None:
    assert kinds("$# @#", ["a", "b", "c"]) == [("NUMBER", "3"), ("STRING", "3")]


def test_unterminated_c_comment_eats_rest() -> None:
    assert kinds("a /* b c") == [("IDENTIFIER", "a")]


def test_only_c_whitespace() -> None:
    # \x1c..\x1f are Unicode whitespace but not C isspace: junk
    toks = tokenize("a\x1cb")
    assert toks[1].kind is K.JUNK


def test_spaced_flags() -> None:
    toks, spaced = Lexer("a*b *c/**/d", "f").tokens()
    assert [t.text for t in toks] == ["a", "*", "b", "*", "c", "d"]
    assert spaced == [False, False, False, True, False, True]


def test_argument_pasting_raw_and_quoted() -> None:
    toks = tokenize("x = $1 + @2", "f", ["a . b", 'q"\\'])
    assert [(t.kind.name, t.text) for t in toks] == [
        ("IDENTIFIER", "x"),
        ("OPERATOR", "="),
        ("IDENTIFIER", "a"),
        ("OPERATOR", "."),
        ("IDENTIFIER", "b"),
        ("OPERATOR", "+"),
        ("STRING", 'q\\"\\\\'.replace('\\"', '"')),
    ]
    # every pasted token carries the location of the $N
    assert {(t.loc.line, t.loc.col) for t in toks[2:5]} == {(1, 5)}
    assert (toks[5].loc.line, toks[5].loc.col) == (1, 8)


def test_pasted_text_glues_with_following_characters() -> None:
    assert kinds("$1bar", ["foo"]) == [("IDENTIFIER", "foobar")]


def test_pasted_newlines_do_not_shift_lines() -> None:
    toks = tokenize("$1 z\ny", "f", ["a\n\nb"])
    assert [(t.text, t.loc.line, t.loc.col) for t in toks] == [("a", 1, 1), ("b", 1, 1), ("z", 1, 4), ("y", 2, 1)]


def test_argument_errors() -> None:
    toks = tokenize("$3 $0 @9", "f", ["a", "b"])
    assert [t.junk for t in toks] == ["command line argument out of range [1-2]"] * 3
    toks = tokenize("$1", "f", ["$2", "x"])
    assert toks[0].junk == "invalid nested substitution of command line arguments"
    toks = tokenize("$1", "f", ["$#"])
    assert toks[0].junk == "invalid nested substitution of command line arguments"


def test_multi_digit_argument() -> None:
    args = [str(i) for i in range(1, 13)]
    assert kinds("$12 $1", args) == [("NUMBER", "12"), ("NUMBER", "1")]
    # with two args "$12" reads "$1" then stops once the index passes the count
    toks = tokenize("$123", "f", ["a", "b"])
    assert toks[0].kind is K.JUNK and toks[1].text == "3"


def test_positions_after_multiline_tokens() -> None:
    toks = tokenize('"a\\\nb" x\n%{\n\n%} y\n/*\n*/ z')
    assert [(t.text, t.loc.line, t.loc.col) for t in toks[1:2] + toks[3:]] == [("x", 2, 4), ("y", 5, 4), ("z", 7, 4)]
