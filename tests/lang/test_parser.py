"""Parser: the acceptance corpus, tree shapes (precedence as SystemTap's code
has it), every construct, error texts/positions and their rendering."""

from __future__ import annotations

import pytest
from parse_corpus import CASES, OK  # tests/lang is on sys.path (rootdir-less test dirs)

from pystap.lang import ast
from pystap.lang.context import ParseContext
from pystap.lang.diagnostics import ParseError, ParseErrors, StapError, format_error
from pystap.lang.parser import MAX_NESTING, decode_string, parse_expression, parse_file
from pystap.lang.printer import print_expr
from pystap.lang.printf_format import FormatError, parse_format


def ctx(args: list[str] | None = None) -> ParseContext:
    return ParseContext(kernel_release="6.1.0", arch="x86_64", kernel_config={}, args=args or [])


def parse(src: str, **kw: object) -> ast.StapFile:
    return parse_file(src, "<input>", ctx(), **kw)  # type: ignore[arg-type]


def first_error(src: str, args: list[str] | None = None, guru: bool = False) -> StapError:
    with pytest.raises(ParseErrors) as info:
        parse_file(src, "<input>", ctx(args), privileged=guru)
    return info.value.errors[0]


@pytest.mark.parametrize(("name", "src", "args", "guru", "expected"), CASES, ids=[c[0] for c in CASES])
def test_corpus(name: str, src: str, args: list[str], guru: bool, expected: object) -> None:
    if expected == OK:
        parse_file(src, "<input>", ctx(args), privileged=guru)
        return
    message, line, col = expected  # type: ignore[misc]
    err = first_error(src, args, guru)
    assert err.message == message
    if line:
        assert err.tok is not None and (err.tok.loc.line, err.tok.loc.col) == (line, col)


def expr(src: str) -> str:
    """Parse one expression and show its structure fully parenthesised."""
    return print_expr(parse_expression(src, ctx()))


@pytest.mark.parametrize(
    ("src", "shape"),
    [
        ("a & b == c", "(a) & ((b) == (c))"),
        ("x << y . z", "(x) << ((y) . (z))"),
        ("a . b + c", "(a) . ((b) + (c))"),
        ("1 - 1", "(1) - (1)"),
        ("-1", "-(1)"),
        ("a || b && c | d ^ e & f", "(a) || ((b) && ((c) | ((d) ^ ((e) & (f)))))"),
        ("a + b * c - d", "((a) + ((b) * (c))) - (d)"),
        ("a - b - c", "((a) - (b)) - (c)"),
        ("a < b < c", "((a) < (b)) < (c)"),
        ("a >>> 2 >> 1", "((a) >>> (2)) >> (1)"),
        ("a = b = c", "(a) = ((b) = (c))"),
        ("a ? b : c ? d : e", "(a)?(b):((c)?(d):(e))"),
        ("a ? b = 1 : c", "(a)?((b) = (1)):(c)"),
        ("a > 0 ? b = 4 : c = 5", "(((a) > (0))?((b) = (4)):(c)) = (5)"),
        ("x in a && y", "([x] in a) && (y)"),
        ("x + 1 in a", "[((x) + (1))] in a"),
        ("[x, *] in a", "[x, *] in a"),
        ("s =~ \"a\" == 1", None),
        ("!a++", "!((a)++)"),
        ("- -a", "-(-(a))"),
        ("++a[1]", "++(a[1])"),
        ("(foo)[1]", "(foo)[1]"),
        ("foo[1]", "foo[1]"),
        ("f(1)->x", "(f(1))->x"),
        ("&$p->a[2]", "&$p->a[2]"),
        ("$p$", "$p->$"),
        ("$p->a$$", "$p->a->$$"),
        ("$$parms$", "$$parms->$"),
        ("@cast(p, \"t\")->m $", "@cast(p, \"t\")->m->$"),
        ("x <<< 1", "(x) <<< (1)"),
    ],
)
def test_precedence(src: str, shape: str | None) -> None:
    if shape is None:
        with pytest.raises(ParseErrors):
            expr(src)
    else:
        assert expr(src) == shape


def test_expression_nodes() -> None:
    e = parse_expression('a[1, "x", *] . sprintf("%d", 3) . @count(s) . @hist_log(s)[2]', ctx())
    assert isinstance(e, ast.Binary) and e.op == "."
    first = e.left.left.left  # type: ignore[attr-defined]
    assert isinstance(first, ast.ArrayIndex) and first.indexes[2] is None
    fmt = e.left.left.right  # type: ignore[attr-defined]
    assert isinstance(fmt, ast.PrintFormat) and fmt.format == "%d" and len(fmt.components) == 1
    assert isinstance(e.left.right, ast.StatOp) and e.left.right.op == "@count"  # type: ignore[attr-defined]
    hist = e.right
    assert isinstance(hist, ast.ArrayIndex) and isinstance(hist.base, ast.HistogramOp)


def test_literals() -> None:
    f = parse('global a = -9223372036854775808, b = 18446744073709551615, c = "x\\ty" "z"\nprobe begin {}')
    assert [g.init.value for g in f.globals] == [-(2**63), -1, "x\tyz"]  # type: ignore[union-attr]
    assert first_error("global a = -9223372036854775809\nprobe begin{}").message == "number invalid or out of range"


def test_decode_string() -> None:
    assert decode_string(r"a\n\t\\\101\x41\0\1234\xg") == "a\n\t\\AA\x00S4xg"


def test_probe_points_and_braces() -> None:
    f = parse("global g\nprobe {a, b}.{c(1), d}? if (g), e.f(\"s\")! {}")
    pts = f.probes[0].points
    names = [".".join(c.name + (f"({c.arg.value})" if c.arg else "") for c in p.components) for p in pts]
    assert names == ["a.c(1)", "a.d", "b.c(1)", "b.d", "e.f(s)"]
    assert all(p.optional and not p.sufficient and p.condition is not None for p in pts[:4])
    assert pts[4].sufficient and pts[4].optional and pts[4].condition is None


def test_wildcard_components_glue() -> None:
    f = parse("probe sys**open.*, a*b.return {}")
    assert [[c.name for c in p.components] for p in f.probes[0].points] == [["sys**open", "*"], ["a*b", "return"]]


def test_aliases() -> None:
    f = parse("probe a = b = begin { x = 1 }, { y = 2 }\nprobe c += end { z = 3 }")
    a, c = f.aliases
    assert [n.components[0].name for n in a.names] == ["a", "b"]
    assert not a.epilogue_style and a.prologue is not None and a.epilogue is not None
    assert c.epilogue_style and c.prologue is None and c.epilogue is not None


def test_functions_and_globals() -> None:
    f = parse(
        "private global p\nglobal w%[5], s\nfunction f:string(a:long, b) :7 { return \"\" }\n"
        "private function g() { }\nfunction long() { }\nprobe begin {}"
    )
    p, w, s = f.globals
    assert p.private and w.wrap and w.size == 5 and not s.private
    fn, g, lng = f.functions
    assert fn.return_type is ast.Type.STRING and fn.priority == 7
    assert [(x.name, x.declared_type) for x in fn.params] == [("a", ast.Type.LONG), ("b", ast.Type.UNKNOWN)]
    assert g.private and g.priority == 0 and lng.name == "long"
    assert all(x.file == "<input>" for x in (*f.globals, *f.functions))


def test_tapset_defaults() -> None:
    f = parse_file("function f() { }", "t.stp", ctx(), tapset=True)
    assert f.tapset and f.privileged and f.functions[0].priority == 1 and f.functions[0].privileged
    # tapsets may be empty; user files may not
    parse_file("", "t.stp", ctx(), tapset=True)
    assert first_error("").message == "Input file '<input>' is empty."


def test_embedded_code() -> None:
    f = parse("%{ #include <x> %}\nfunction f() %{ /* pure */ %}\nprobe begin { %{ 1 %} }", privileged=True)
    assert f.embeds[0].code == " #include <x> "
    assert isinstance(f.functions[0].body, ast.EmbeddedCode)
    st = f.probes[0].body.statements[0]
    assert isinstance(st, ast.ExprStatement) and isinstance(st.expr, ast.EmbeddedExpr)


def test_statements() -> None:
    f = parse(
        "global a\nfunction f() { return }\nprobe begin { ; if (1) x = 1; else { }\nwhile (1) break\n"
        "for (;;) continue\nforeach (v- = [k1, k2] in a[1, *] limit 3) next\ndelete a[*, 1]\n"
        "try { } catch (e) { } }"
    )
    sts = f.probes[0].body.statements
    assert [type(s).__name__ for s in sts] == [
        "NullStatement", "If", "While", "For", "Foreach", "Delete", "TryCatch"
    ]
    fe = sts[4]
    assert isinstance(fe, ast.Foreach)
    assert fe.value is not None and fe.value.name == "v" and [i.name for i in fe.indexes] == ["k1", "k2"]
    assert (fe.sort_column, fe.sort_direction) == (0, -1) and fe.slice is not None and fe.slice[1] is None
    loop = sts[3]
    assert isinstance(loop, ast.For) and isinstance(loop.cond, ast.NumberLit) and loop.cond.value == 1


def test_foreach_sort_forms() -> None:
    f = parse("global a\nprobe begin { foreach ([x, y+] in a) ; foreach (x in a @max-) ; foreach (x in a+) ; }")
    s1, s2, s3 = f.probes[0].body.statements
    assert (s1.sort_column, s1.sort_direction) == (2, 1)  # type: ignore[attr-defined]
    assert (s2.sort_column, s2.sort_direction, s2.sort_aggr) == (0, -1, "@max")  # type: ignore[attr-defined]
    assert (s3.sort_column, s3.sort_direction, s3.sort_aggr) == (0, 1, None)  # type: ignore[attr-defined]


def test_printf_components() -> None:
    comps = parse_format("a%%b %-5d|%08.3x|%*.*s|%#o|%lu|%p|%c|%b|%X%%")
    kinds = [c.kind for c in comps]
    assert kinds == ["literal", "number", "literal", "number", "literal", "string", "literal", "number",
                     "literal", "number", "literal", "pointer", "literal", "char", "literal", "binary",
                     "literal", "number", "literal"]
    assert comps[0].text == "a%b " and comps[-1].text == "%"
    d = comps[1]
    assert d.flags == {"left", "sign"} and d.width == 5
    x = comps[3]
    assert x.flags == {"zeropad"} and x.width == 8 and x.precision == 3 and x.base == 16
    s = comps[5]
    assert s.width_dynamic and s.precision_dynamic and s.arguments == 3
    assert comps[-2].flags == {"large"}
    assert parse_format("%l") == [] and parse_format("%.") == []
    # a lone '%' at the end is an error in stap 4.8 (its parser steps past the end)
    with pytest.raises(FormatError, match="invalid or missing conversion specifier"):
        parse_format("100%")


def test_errors_are_all_collected_and_rendered_like_stap() -> None:
    src = "foo bar\nprobe begin { x = }\nprobe end { y = 1 +\n}\nprobe never { }"
    with pytest.raises(ParseErrors) as info:
        parse_file(src, "t.stp", ctx())
    e = info.value
    assert [x.message for x in e.errors] == [
        "expected 'probe', 'global', 'private', 'function', or '%{'",
        "expected literal string or number",
        "expected literal string or number",
    ]
    assert e.render({"t.stp": src}) == (
        "parse error: expected 'probe', 'global', 'private', 'function', or '%{'\n"
        "        saw: identifier 'foo' at t.stp:1:1\n"
        "     source: foo bar\n"
        "             ^\n\n"
        "parse error: expected literal string or number\n"
        "        saw: operator '}' at t.stp:2:19\n"
        "     source: probe begin { x = }\n"
        "                               ^\n\n"
        "parse error: expected literal string or number\n"
        "        saw: operator '}' at t.stp:4:1\n"
        "     source: }\n"
        "             ^\n\n"
        "3 parse errors."
    )
    assert isinstance(e, StapError) and e.count == 3


def test_render_details() -> None:
    src = "probe begin {\n\tif (x) return 1 }"
    err = first_error(src)
    assert format_error(err, {"<input>": src}) == (
        "parse error: found 'return' not in function context\n"
        "        saw: keyword at <input>:2:9\n"
        "     source: \tif (x) return 1 }\n"
        "             \t       ^"
    )
    err = first_error('probe begin { x = "abc }')
    assert format_error(err).splitlines()[:2] == [
        "parse error: Could not find matching closing quote",
        "         at: junk '\"abc }' at <input>:1:19",
    ]
    err = first_error("probe begin {")
    assert format_error(err) == "parse error: expected statement\n        saw: <input> EOF"
    with pytest.raises(ParseErrors) as info:
        parse_file("%( 1 == 0 %? probe begin {} %)", "<input>", ctx())
    assert info.value.render() == "Input file '<input>' is empty after preprocessing."


def test_macro_expansion_errors_name_the_invocation() -> None:
    src = "@define bad %( 1 + %)\nprobe begin { x = @bad }"
    err = first_error(src)
    assert err.message == "expected literal string or number"
    assert err.tok is not None and err.tok.text == "}"
    src = "@define bad %( ) %)\nprobe begin { x = @bad }"
    err = first_error(src)
    assert err.tok is not None and err.tok.chain is not None and err.tok.chain.text == "@bad"
    assert "in expansion of: operator '@bad' at <input>:2:19" in format_error(err)


def test_embedded_refusals_do_not_skip() -> None:
    with pytest.raises(ParseErrors) as info:
        parse("probe begin { %{ x %} }")
    assert [e.message for e in info.value.errors] == [
        "embedded expression code in unprivileged script; need stap -g",
        "embedded code in unprivileged script; need stap -g",
        "expected 'probe', 'global', 'private', 'function', or '%{'",
    ]
    assert all(isinstance(e, ParseError) for e in info.value.errors)


def test_warnings_recorded() -> None:
    f = parse("@define sum %( 1 %)\nprobe begin { x = @sum }")
    assert f.warnings[0].message == "macro redefines built-in operator '@sum'"
    assert f.warnings[0].render() == (
        "WARNING: macro redefines built-in operator '@sum': identifier 'sum' at <input>:1:9"
    )


@pytest.mark.parametrize(
    "src",
    [
        "probe begin { x = " + "(" * (MAX_NESTING + 5) + "1" + ")" * (MAX_NESTING + 5) + " }",
        "probe begin { x = " + "- " * (MAX_NESTING + 5) + "1 }",
        "probe begin " + "{" * (MAX_NESTING + 5) + "}" * (MAX_NESTING + 5),
        "probe begin { x = 1" + " + 1" * (MAX_NESTING + 5) + " }",
        "probe begin { x = " + "a = " * (MAX_NESTING + 5) + "1 }",
        "probe begin { x = " + "a ? b : " * (MAX_NESTING + 5) + "1 }",
        "probe " + "{" * (MAX_NESTING + 5) + "begin" + "}" * (MAX_NESTING + 5) + " {}",
        "probe begin { " + "if (1) " * (MAX_NESTING + 5) + "x = 1 }",
    ],
)
def test_deep_nesting_is_a_parse_error(src: str) -> None:
    err = first_error(src)
    assert err.message == f"nesting too deep (more than {MAX_NESTING} levels)"


def test_nesting_below_limit_is_fine() -> None:
    depth = MAX_NESTING // 3
    parse("probe begin { x = " + "(" * depth + "1" + ")" * depth + " }")


def test_parse_expression_rejects_trailing_tokens() -> None:
    with pytest.raises(ParseErrors, match="unexpected token after expression"):
        parse_expression("1 2", ctx())


def test_bytes_input_is_latin1() -> None:
    f = parse_file(b'probe begin { x = "\xe9" }', "<input>", ctx())
    st = f.probes[0].body.statements[0]
    assert st.expr.value.value == "\xe9"  # type: ignore[attr-defined]


def test_compatible_gates() -> None:
    old = ParseContext(kernel_config={}, compatible="2.9")
    f = parse_file("global private\nprobe begin { private = 1 }", "<input>", old)
    assert f.globals[0].name == "private"
    with pytest.raises(ParseErrors, match="unknown operator @kregister"):
        parse_file("probe begin { x = @kregister(1) }", "<input>", ParseContext(kernel_config={}, compatible="3.0"))
    e = parse_expression("a ? b : c = 1", ParseContext(kernel_config={}, compatible="3.9"))
    assert isinstance(e, ast.Ternary) and isinstance(e.false_expr, ast.Assign)


def test_newer_at_operators() -> None:
    e = parse_expression('@enum("RED") + @enumname(x, "enum color", "kernel") + @uderef(8, p)', ctx())
    assert isinstance(e, ast.Binary)
    ops = [n for n in ast.walk(e) if isinstance(n, ast.AtOp)]
    assert [o.name for o in ops] == ["@enum", "@enumname", "@uderef"]
    assert [len(o.args) for o in ops] == [1, 3, 2]
    with pytest.raises(ParseErrors, match="expected non-empty string"):
        parse_expression('@enum("")', ctx())
    with pytest.raises(ParseErrors, match="unknown operator @enum"):
        parse_expression('@enum("X")', ParseContext(kernel_config={}, compatible="5.4"))


def test_stat_op_skips_stray_tokens_like_stap() -> None:
    # SystemTap's loop after the operand reads on until ')' or ','
    e = parse_expression("@count(s t)", ctx())
    assert isinstance(e, ast.StatOp) and isinstance(e.stat, ast.Symbol)


def test_lexer_warning_reaches_the_file() -> None:
    f = parse("function f() %{ x }% %}\nprobe begin {}", privileged=True)
    assert f.warnings[0].message == "possible erroneous closing '}%', use '%}'?"
