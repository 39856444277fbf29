"""POSIX ERE translation and its refusals."""

import pytest

from pystap.runtime.regex import RegexError, check, compile_ere


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        ("^a.c$", "abc", True),
        ("^a.c$", "abc\n", False),
        ("[[:digit:]]+", "x42", True),
        ("[[:alpha:]_][[:alnum:]_]*", "9_z", True),
        ("[]x]", "]", True),
        ("[^]x]", "x", False),
        ("a\\.b", "a.b", True),
        ("a\\.b", "axb", False),
        ("[a\\]", "\\", True),
        ("(ab|cd){2}", "abcd", True),
        ("^$", "", True),
    ],
)
def test_matching(pattern, text, matches):
    assert (compile_ere(pattern).search(text) is not None) is matches


@pytest.mark.parametrize("pattern", ["(?i)x", "a\\d", "(", "a)", "[abc", "[[:nope:]]", "a*?", "\\1"])
def test_rejected(pattern):
    with pytest.raises(RegexError):
        compile_ere(pattern)
    assert check(pattern)


def test_groups():
    m = compile_ere("([a-z]+)-([0-9]+)").search("xx foo-42 yy")
    assert m.group(1) == "foo" and m.group(2) == "42"
