"""``=~``: stapregex's syntax and messages, POSIX leftmost-longest spans, the regex.stp functions."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pystap.cli.stap import main
from pystap.ere import EreError, Node, check, compile_pattern
from pystap.runtime.regex import RegexError, compile_ere

# Pattern -> what Debian's stap 4.8 says at -p2 (``None``: accepted).  The pattern is the
# string literal's source text, as the lexer hands it over.
STAP_4_8 = [
    ("a|b", None),
    ("(?:a)", None),
    ("(?", "regex compilation error (at position 1): unexpected '(?'"),
    ("(?i)x", "regex compilation error (at position 2): unexpected '(?i'"),
    ("a(?=b)", "regex compilation error (at position 3): unexpected '(?='"),
    ("a)", None),
    (")", None),
    ("a)b", "regex compilation error (at position 2): unbalanced ')'"),
    ("(", "regex compilation error (at position 0): expected ), found end of regex"),
    ("(ab", "regex compilation error (at position 2): expected ), found end of regex"),
    ("a{1,2", "regex compilation error (at position 4): expected }, found end of regex"),
    ("a{1,2x", "regex compilation error (at position 5): expected }, found x"),
    ("{a", "regex compilation error (at position 0): unexpected '{'"),
    ("*a", "regex compilation error (at position 0): unexpected '*'"),
    ("a|*", "regex compilation error (at position 2): unexpected '*'"),
    ("^*", "regex compilation error (at position 1): postfix closure '*' applied to anchoring operator"),
    ("$*", "regex compilation error (at position 1): postfix closure '*' applied to anchoring operator"),
    ("^+", "regex compilation error (at position 1): postfix closure '+' applied to anchoring operator"),
    ("(^)*", None),
    ("a{2", "regex compilation error (at position 3): unexpected end of regex"),
    ("a{1,", "regex compilation error (at position 4): expected '}' or number"),
    ("a{,2}", "regex compilation error (at position 3): expected number"),
    ("a{1x}", "regex compilation error (at position 3): expected ',' or '}'"),
    ("x{12345}", "regex compilation error (at position 8): 12345 is too large"),
    ("a{12344}", None),
    ("a{0}", None),
    ("x*{2}", None),
    ("a**", None),
    ("a*?", None),
    ("()", None),
    ("a||b", None),
    ("[a-]", None),
    ("[-a]", None),
    ("[]x]", None),
    ("[]", "regex compilation error (at position 1): unclosed character class"),
    ("[^]", "regex compilation error (at position 2): unclosed character class"),
    ("[a", "regex compilation error (at position 1): unclosed character class"),
    ("[abc", "regex compilation error (at position 3): unclosed character class"),
    ("[z-a]", "regex compilation error (at position 4): Inverted character range z-a"),
    ("[[:alpha:]", "regex compilation error (at position 10): unclosed character class '[:alpha:'"),
    ("[[:alpha", "regex compilation error (at position 8): unclosed character class '[:alph'"),
    ("[[:word:]]", "regex compilation error: unknown character class 'word'"),
    ("[[:d:]]", None),
    ("[[.a.]]", None),
    ("[[=a=]]", None),
    ("\\x41", None),
    ("\\x4", "regex compilation error (at position 1): two hex digits required in escape sequence"),
    ("\\xzz", "regex compilation error (at position 3): two hex digits required in escape sequence"),
    ("\\012", None),
    ("\\0", "regex compilation error (at position 1): three octal digits required in escape sequence"),
    ("\\08", "regex compilation error (at position 1): three octal digits required in escape sequence"),
    ("\\1", "regex compilation error (at position 1): three octal digits required in escape sequence"),
    ("\\8", None),
    ("a\\d", None),
    ("\\n", None),
    ("$a", None),
]


@pytest.mark.parametrize(("pattern", "message"), STAP_4_8)
def test_syntax_and_messages_are_stap_4_8s(pattern: str, message: str | None) -> None:
    err = check(pattern)
    assert (err.diagnostic() if err else None) == message


def test_refusals_we_add() -> None:
    # stap 4.8 aborts on an assertion for an inverted count; we refuse it
    assert check("a{2,1}").diagnostic() == "regex compilation error (at position 5): invalid repetition count {2,1}"
    assert "nested more than" in check("(" * 300 + ")" * 300).message
    with pytest.raises(RegexError):
        compile_ere("[[:nope:]]")


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        ("^a.c$", "abc", True),
        ("^a.c$", "abc\n", False),
        ("a.c", "a\nc", True),
        ("[[:digit:]]+", "x42", True),
        ("[[:alpha:]_][[:alnum:]_]*", "9_z", True),
        ("[]x]", "]", True),
        ("[^]x]", "x", False),
        ("a\\\\.b", "a.b", True),  # source text a\\.b: the decoded backslash escapes the dot
        ("a\\\\.b", "axb", False),
        ("a.b", "axb", True),
        ("a\\d", "ad", True),  # \d is a plain d in stapregex
        ("a\\d", "a1", False),
        ("\\x41\\102", "AB", True),
        ("\\t", "a\tb", True),
        ("(ab|cd){2}", "abcd", True),
        ("x{0}y", "y", True),
        ("^$", "", True),
        ("$a", "a", False),
        ("a)", "a", True),  # the trailing ')' is ignored
        ("[[:punct:]]", "-", True),
        ("[[:cntrl:]]", "\x7f", True),
        ("[^a]", "\xe9", True),
    ],
)
def test_matching(pattern: str, text: str, matches: bool) -> None:
    assert (compile_ere(pattern).search(text) >= 0) is matches


@pytest.mark.parametrize(
    ("pattern", "text", "spans"),
    [
        ("a|ab|abc", "abcd", [(0, 3)]),  # leftmost-longest, not Python's leftmost-first "a"
        ("(a|ab)(c|bcd)(d*)", "abcd", [(0, 4), (0, 2), (2, 3), (3, 4)]),
        ("x(a+)(a*)", "xaaa", [(0, 4), (1, 4), (4, 4)]),
        ("([a-z]+)-([0-9]+)", "xx foo-42 yy", [(3, 9), (3, 6), (7, 9)]),
        ("(a|b|c)*(x+)", "abcxx", [(0, 5), (2, 3), (3, 5)]),  # a repeated group reports its last iteration
        ("(a|(b))*", "ba", [(0, 2), (1, 2), (-1, -1)]),  # (b) took no part in the last iteration
        ("(.*)(b)?", "abc", [(0, 3), (0, 3), (-1, -1)]),
        ("(?:a)(b)", "ab", [(0, 2), (1, 2)]),
        ("b*", "abb", [(0, 0)]),  # the leftmost match is the empty one at 0
        ("zz", "abc", []),
    ],
)
def test_posix_spans(pattern: str, text: str, spans: list[tuple[int, int]]) -> None:
    assert compile_pattern(pattern).spans(text) == spans


# -- property tests against a naive reference ---------------------------------------------------


def _ref_ends(node: Node, text: str, i: int) -> Iterator[int]:
    """Every end position of ``node`` from ``i`` by plain backtracking (exponential; small inputs only)."""
    k = node.kind
    if k == "chars":
        if i < len(text) and ord(text[i]) in node.chars:
            yield i + 1
    elif k == "empty":
        yield i
    elif k == "bol":
        if i == 0:
            yield i
    elif k == "eol":
        if i == len(text):
            yield i
    elif k == "group":
        yield from _ref_ends(node.kids[0], text, i)
    elif k == "alt":
        for kid in node.kids:
            yield from _ref_ends(kid, text, i)
    elif k == "cat":
        def cat(index: int, p: int) -> Iterator[int]:
            if index == len(node.kids):
                yield p
                return
            for e in _ref_ends(node.kids[index], text, p):
                yield from cat(index + 1, e)
        yield from cat(0, i)
    else:
        def rep(count: int, p: int) -> Iterator[int]:
            if count >= node.lo:
                yield p
            if node.hi != -1 and count >= node.hi:
                return
            for e in _ref_ends(node.kids[0], text, p):
                if e > p or count < node.lo:
                    yield from rep(count + 1, e)
        yield from rep(0, i)


def _ref_span(node: Node, text: str) -> tuple[int, int] | None:
    for s in range(len(text) + 1):
        ends = set(_ref_ends(node, text, s))
        if ends:
            return s, max(ends)
    return None


_ATOMS = st.sampled_from(["a", "b", ".", "[ab]", "[^a]", "^", "$", "()"])


def _regexes() -> st.SearchStrategy[str]:
    return st.recursive(
        _ATOMS,
        lambda inner: st.one_of(
            st.tuples(inner, inner).map("".join),
            st.tuples(inner, inner).map("|".join),
            inner.map(lambda r: f"({r})"),
            st.tuples(inner.map(lambda r: f"({r})"), st.sampled_from(["*", "+", "?", "{0,2}", "{2}"])).map(
                "".join),
        ),
        max_leaves=6,
    )


@settings(max_examples=300, deadline=None)
@given(_regexes(), st.text(alphabet="abc", max_size=7))
def test_leftmost_longest_matches_the_reference(pattern: str, text: str) -> None:
    p = compile_pattern(pattern)
    want = _ref_span(p.root, text)
    spans = p.spans(text)
    assert (spans[0] if spans else None) == want
    # the fast test agrees with the POSIX one, and with Python's re on the translation
    assert (p.search(text) >= 0) is (want is not None)
    assert (re.search(p.python, text, re.DOTALL) is not None) is (want is not None)


@settings(max_examples=300, deadline=None)
@given(_regexes(), _regexes(), st.text(alphabet="abc", max_size=7))
def test_first_group_takes_the_longest_text(left: str, right: str, text: str) -> None:
    """POSIX: in ``(r1)(r2)`` the first subexpression takes the longest text the match allows."""
    p = compile_pattern(f"({left})({right})")
    spans = p.spans(text)
    if not spans:
        assert _ref_span(p.root, text) is None
        return
    (s, e), g1, g2 = spans[0], spans[1], spans[2 + compile_pattern(left).groups]
    r1, r2 = compile_pattern(left).root, compile_pattern(right).root
    k = max(m for m in _ref_ends(r1, text, s) if e in set(_ref_ends(r2, text, m)))
    assert (g1, g2) == ((s, k), (k, e))


def test_long_texts_stay_polynomial() -> None:
    p = compile_pattern("(.*)x(.*)")
    text = "a" * 250 + "x" + "b" * 250
    assert p.spans(text) == [(0, 501), (0, 250), (251, 501)]


# -- the functions, end to end ----------------------------------------------------------------------


def _stap(script: str, tmp_path, monkeypatch) -> tuple[int, str, str]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out, err = io.StringIO(), io.StringIO()
    rc = main(["-e", script], stdin=io.StringIO(""), stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def test_matched_ngroups_and_matched_str(tmp_path, monkeypatch) -> None:
    rc, out, err = _stap(
        'probe begin { if ("abcd" =~ "a|ab|abc") println(matched_str());'
        ' if ("xx foo-42" =~ "([a-z]+)-([0-9]+)|(q)") printf("%d [%s] [%s] [%s]\\n", ngroups(), matched(1),'
        ' matched(2), matched(3)); exit() }', tmp_path, monkeypatch)
    assert (rc, out) == (0, "abc\n4 [foo] [42] []\n"), err


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("matched(0)", "Attempted to get subexpression 0 from failed match"),
        ("matched_str()", "Attempted to get subexpression 0 from failed match"),
        ("ngroups()", "Attempted to get subexpression count from failed match"),
    ],
)
def test_functions_after_a_failed_match(call: str, message: str, tmp_path, monkeypatch) -> None:
    rc, out, _ = _stap(f'probe begin {{ if ("a" =~ "(b)") print(1); try {{ print({call}) }}'
                         f' catch (e) {{ println(e) }} exit() }}', tmp_path, monkeypatch)
    assert (rc, out) == (0, message + "\n")


def test_nonexistent_subexpression(tmp_path, monkeypatch) -> None:
    rc, out, _ = _stap('probe begin { if ("ab" =~ "(a)") print(""); try { print(matched(2)) }'
                         ' catch (e) { println(e) } exit() }', tmp_path, monkeypatch)
    assert (rc, out) == (0, "Attempted to get nonexistent subexpression 2\n")


def test_pass_2_reports_stapregex_messages(tmp_path, monkeypatch) -> None:
    rc, _, err = _stap('probe begin { if ("x" =~ "a{1x}") print(1) }', tmp_path, monkeypatch)
    assert rc == 1
    assert err.startswith("semantic error: regex compilation error (at position 3): expected ',' or '}'")


def test_error_type() -> None:
    assert RegexError is EreError
