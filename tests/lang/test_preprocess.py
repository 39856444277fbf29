"""Preprocessor: conditionals over the (injected) host, macros, library macros."""

from __future__ import annotations

import gzip

import pytest

from pystap.lang import context as context_mod
from pystap.lang.context import ParseContext, kernel_base_release, normalize_arch, parse_kernel_config
from pystap.lang.diagnostics import ParseError
from pystap.lang.preprocess import MacroFileError, c_number, parse_library_macros, preprocess, strverscmp
from pystap.lang.tokens import Token


def ctx(**kw: object) -> ParseContext:
    base: dict[str, object] = dict(
        kernel_release="5.10.0-18-amd64", arch="x86_64", kernel_config={}, privilege="stapusr"
    )
    base.update(kw)
    return ParseContext(**base)  # type: ignore[arg-type]


def texts(src: str, c: ParseContext | None = None) -> list[str]:
    items, _, _, _ = preprocess(src, "<input>", c or ctx())
    out = []
    for i in items:
        out.append(f"ERROR:{i.message}" if isinstance(i, ParseError) else i.text)
    return out


@pytest.mark.parametrize(
    ("a", "b", "sign"),
    [("2.6.9", "2.6.18", -1), ("5.10", "5.9", 1), ("1.0", "1.0", 0), ("000", "00", -1), ("a1", "a01", 1),
     ("4.8", "5.6", -1), ("", "1", -1)],
)
def test_strverscmp(a: str, b: str, sign: int) -> None:
    r = strverscmp(a, b)
    assert (r > 0) - (r < 0) == sign


def test_c_number() -> None:
    assert c_number("0x1F") == 31 and c_number("017") == 15 and c_number("0") == 0
    assert c_number("08") is None and c_number("0x") is None and c_number("1a") is None
    assert c_number(str(2**64 - 1)) == 2**64 - 1 and c_number(str(2**64)) is None
    assert c_number("9" * 10_000) is None and c_number("0x" + "0" * 10_000 + "1") == 1


def test_context_defaults_and_helpers() -> None:
    c = ParseContext(kernel_release="6.1.0-18-amd64", kernel_config={})
    assert c.kernel_version == "6.1.0" and c.runtime == "kernel" and c.compatible == "5.6"
    assert kernel_base_release("6.18.0") == "6.18.0"
    assert normalize_arch("i686") == "i386" and normalize_arch("aarch64") == "arm64"
    assert normalize_arch("armv7l") == "arm" and normalize_arch("x86_64") == "x86_64"
    assert c.has_version("3.0") and not ParseContext(compatible="2.9", kernel_config={}).has_version("3.0")


def test_parse_kernel_config() -> None:
    cfg = parse_kernel_config('# comment\nCONFIG_A=y\nCONFIG_B="str"\nCONFIG_N=100\n# CONFIG_C is not set\n')
    assert cfg == {"CONFIG_A": "y", "CONFIG_B": "str", "CONFIG_N": "100"}


def test_host_config_read_lazily(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    calls = []

    def fake(release: str | None = None) -> dict[str, str]:
        calls.append(release)
        return {"CONFIG_X": "y"}

    monkeypatch.setattr(context_mod, "read_host_kernel_config", fake)
    c = ParseContext(kernel_release="1.2.3")
    assert texts("probe begin {}", c)[:1] == ["probe"] and calls == []
    assert texts('%( CONFIG_X == "y" %? a %: b %)', c) == ["a"] and calls == ["1.2.3"]


def test_read_host_kernel_config_never_fails() -> None:
    assert isinstance(context_mod.read_host_kernel_config("no-such-release"), dict)


def test_gzip_config_parsing_roundtrip(tmp_path) -> None:
    data = gzip.compress(b"CONFIG_Q=m\n")
    assert parse_kernel_config(gzip.decompress(data).decode()) == {"CONFIG_Q": "m"}


@pytest.mark.parametrize(
    ("cond", "expected"),
    [
        ('kernel_v >= "5.10"', True),
        ('kernel_v < "5.9"', False),
        ('kernel_v == "5.10.0"', True),
        ('kernel_vr == "5.10.0-18-amd64"', True),
        ('kernel_vr == "5.10*"', True),
        ('kernel_vr != "4.*"', True),
        ('arch == "x86_64"', True),
        ('arch == "i?86"', False),
        ('arch != "arm*"', True),
        ('runtime == "kernel"', True),
        ('runtime == "bpf"', False),
        ('systemtap_v >= "4.0"', True),
        ('systemtap_v < "5.6"', False),
        ('systemtap_privilege == "stapusr"', True),
        ('systemtap_privilege != "stapdev"', True),
        ("guru_mode == 0", True),
        ("guru_mode != 0", False),
        ('CONFIG_SMP == "y"', True),
        ('CONFIG_SMP == "[ym]"', True),
        ('CONFIG_MISSING == ""', True),
        ("CONFIG_NR == 64", True),
        ("CONFIG_NR > 100", False),
        ("CONFIG_MISSING == 0", True),
        ("CONFIG_NR == CONFIG_NR2", False),
        ("CONFIG_NR < CONFIG_NR2", True),
        ("CONFIG_SMP == CONFIG_SMP2", True),
        ('"abc" < "abd"', True),
        ("10 >= 9", True),
        ("0x10 == 16", True),
        ('1 == 1 && "a" == "b"', False),
        ('1 == 0 || "a" == "a"', True),
        ("1 == 1 || 1 == 0 && 1 == 0", True),
        ("1 == 0 && 1 == 1 || 2 == 2", True),
    ],
)
def test_conditions(cond: str, expected: bool) -> None:
    c = ctx(kernel_config={"CONFIG_SMP": "y", "CONFIG_SMP2": "y", "CONFIG_NR": "64", "CONFIG_NR2": "0x80"})
    assert texts(f"%( {cond} %? yes %: no %)", c) == (["yes"] if expected else ["no"])


@pytest.mark.parametrize(
    ("cond", "message"),
    [
        ("kernel_v > 5", "expected string literal"),
        ('kernel_v < "5.*"', "wildcard not allowed with order comparison operators"),
        ('kernel_v = "5"', "expected comparison operator"),
        ('arch < "x"', "expected '==' or '!='"),
        ('runtime <= "x"', "expected '==' or '!='"),
        ('systemtap_privilege < "stapusr"', "expected '==' or '!='"),
        ('guru_mode == "1"', "expected number"),
        ("guru_mode == 3", "expected 0 or 1"),
        ("guru_mode < 1", "expected '==' or '!='"),
        ("CONFIG_S == 1", "Config option value not a number"),
        ("CONFIG_S == x", "expected string, number literal or other CONFIG_... as right side operand"),
        ('"a" == 1', "expected string literal as right value"),
        ('1 == "a"', "expected number literal as right value"),
        ('bogus == "a"', "expected 'arch', 'kernel_v'"),
    ],
)
def test_condition_errors(cond: str, message: str) -> None:
    out = texts(f"%( {cond} %? yes %: no %)", ctx(kernel_config={"CONFIG_S": "str"}))
    assert out[0].startswith("ERROR:" + message)


def test_conditional_structure_errors() -> None:
    assert texts("a %? b") == ["a", "ERROR:incomplete conditional - missing '%('", "b"]
    assert texts("%( 1 == 1 %? a %: b %: c %)")[:2] == ["a", "ERROR:invalid conditional - duplicate '%:'"]
    assert texts("%( 1 == 1 a %)")[0] == "ERROR:expected '%?' marker for conditional"
    assert texts("%( 1 ==") == ["ERROR:incomplete condition after '%('"]
    assert texts("%( 1 == 1 %? a") == ["a", "ERROR:incomplete conditional at end of file"]


def test_untaken_branch_is_skipped_with_its_errors() -> None:
    assert texts("%( 1 == 0 %? a $9 %( x %: %) %: b %)") == ["b"]
    assert texts("x %( 1 == 1 %? %( 2 == 2 %? a %: b %) %: c %) y") == ["x", "a", "y"]


def test_arguments_inside_conditions() -> None:
    assert texts("%( $# == 2 %? two %: other %)", ctx(args=["a", "b"])) == ["two"]
    assert texts('%( @1 == "x" %? yes %: no %)', ctx(args=["x"])) == ["yes"]


def test_macros_basic_and_params() -> None:
    assert texts("@define A %( 1 + 2 %) x = @A") == ["x", "=", "1", "+", "2"]
    assert texts("@define F(a, b) %( (@a * @b) %) @F(x[1, 2], g(3, 4))") == [
        "(", "x", "[", "1", ",", "2", "]", "*", "g", "(", "3", ",", "4", ")", ")"
    ]


def test_macro_parameter_is_a_closure_over_the_invocation() -> None:
    src = "@define inner(x) %( [@x] %) @define outer(x) %( @inner(@x + 1) %) @outer(7)"
    assert texts(src) == ["[", "7", "+", "1", "]"]


def test_macro_tokens_chain_to_invocation() -> None:
    items, _, _, _ = preprocess("@define A %( q %)\n  @A", "<input>", ctx())
    (tok,) = items
    assert isinstance(tok, Token) and tok.text == "q"
    assert tok.loc.line == 1 and tok.chain is not None and tok.chain.text == "@A" and tok.chain.loc.line == 2


def test_parameterless_macro_leaves_parentheses() -> None:
    assert texts("@define f %( g %) @f(1)") == ["g", "(", "1", ")"]


def test_unknown_at_word_passes_through() -> None:
    assert texts("@cast(x) @nope") == ["@cast", "(", "x", ")", "@nope"]


def test_macro_errors() -> None:
    assert texts("@define A %( 1 %) @define A %( 2 %)")[0] == (
        "ERROR:attempt to redefine macro '@A' in the same file"
    )
    assert texts("@define define %( 1 %)")[0] == "ERROR:attempt to redefine '@define'"
    assert texts("@define 1 %( 1 %)")[0] == "ERROR:expected identifier"
    assert texts("@define A(1) %( 1 %)")[0] == "ERROR:expected identifier"
    assert texts("@define A(a b) %( 1 %)")[0] == "ERROR:expected ',' or ')'"
    assert texts("@define A(a) 1")[0] == "ERROR:expected '%('"
    assert texts("@define A 1")[0] == "ERROR:expected '%(' or '('"
    assert texts("@define A %( 1")[0] == "ERROR:incomplete macro definition - missing '%)'"
    assert texts("@define M(a) %( @a %) @M")[0] == (
        "ERROR:expected '(' in invocation of macro '@M' taking 1 parameter"
    )
    assert texts("@define M(a, b) %( @a %) @M")[0] == (
        "ERROR:expected '(' in invocation of macro '@M' taking 2 parameters"
    )
    assert texts("@define M(a) %( @a %) @M(1, 2)")[0] == "ERROR:too many parameters for macro '@M' (expected 1)"
    assert texts("@define M(a, b) %( @a %) @M(1)")[0] == "ERROR:too few parameters for macro '@M' (expected 2)"
    assert texts("@define M(a) %( @a %) @M(1")[0] == "ERROR:could not find end of macro invocation"
    assert texts("@define M %( @define N %( 1 %) %) @M")[0] == "ERROR:'@define' forbidden inside macro body"


def test_macro_redefining_builtin_warns() -> None:
    _, _, _, pre = preprocess("@define count %( 1 %)", "<input>", ctx())
    assert pre.warnings[0][0] == "macro redefines built-in operator '@count'"


def test_define_in_untaken_branch_is_ignored() -> None:
    assert texts("%( 1 == 0 %? @define A %( 1 %) %) @A") == ["@A"]


def test_library_macros() -> None:
    c = ctx()
    macros = parse_library_macros("@define twice(x) %( (@x * 2) %)\n%( 1 == 1 %? @define one %( 1 %) %)", "a.stpm", c)
    assert set(macros) == {"twice", "one"} and all(m.library for m in macros.values())
    c.library_macros.update(macros)
    assert texts("y = @twice(@one)", c) == ["y", "=", "(", "1", "*", "2", ")"]
    with pytest.raises(MacroFileError, match="duplicate definition of library macro '@one'"):
        parse_library_macros("@define one %( 2 %)", "b.stpm", c)
    with pytest.raises(MacroFileError, match="unexpected token in library macro file 'c.stpm'"):
        parse_library_macros("probe begin {}", "c.stpm", c)
    with pytest.raises(MacroFileError, match="incomplete macro definition"):
        parse_library_macros("@define x %( 1", "d.stpm", c)


def test_file_macro_shadows_library_macro_but_not_inside_library_bodies() -> None:
    c = ctx()
    c.library_macros.update(parse_library_macros("@define v %( 1 %) @define lib %( @v %)", "l.stpm", c))
    assert texts("@define v %( 2 %) a = @v b = @lib", c) == ["a", "=", "2", "b", "=", "1"]
