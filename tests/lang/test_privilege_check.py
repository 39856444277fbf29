"""Pass-2 privilege checks on syntax trees: functions by tag (directly, through
functions, through aliases), trust in tapset files, guru constructs, probe
families and confinement markers.  Messages and positions are asserted.

The trees are built by hand so these tests pin the checker alone; the
end-to-end tests (script text through the real parser and elaborator) are in
test_privilege_scripts.py.
"""

import os
from pathlib import Path

import pytest

from pystap.lang import ast
from pystap.lang.privcheck import check_privilege
from pystap.lang.tokens import SourceLoc, Token, TokenKind
from pystap.policy.functions import FunctionPrivilege
from pystap.privilege import Level

USR, SYS, DEV = Level.STAPUSR, Level.STAPSYS, Level.STAPDEV
U, M, P, G = (FunctionPrivilege.UNPRIVILEGED, FunctionPrivilege.MYPROC, FunctionPrivilege.PRIVILEGED,
              FunctionPrivilege.GURU)
LEVEL_MSG = "function may not be used when --privilege=stapusr is specified"
GURU_MSG = "function may not be used unless -g is specified"
TAGS = {"pid": U, "user_string": M, "kernel_string": P, "printk": G}


class Src:
    """Hands out tokens at increasing positions of one file."""

    def __init__(self, name):
        self.name = name
        self.line = 0

    def tok(self, text, kind=TokenKind.IDENTIFIER):
        self.line += 1
        return Token(kind, text, SourceLoc(self.name, self.line, 5))


def call(src, name, *args, referents=()):
    c = ast.FunctionCall(tok=src.tok(name), name=name, args=list(args))
    c.referents = list(referents)
    return c


def stmt(expr):
    return ast.ExprStatement(tok=expr.tok, expr=expr)


def block(src, *exprs):
    return ast.Block(tok=src.tok("{", TokenKind.OPERATOR), statements=[stmt(e) for e in exprs])


def func(src, name, body, privilege=None):
    fn = ast.FunctionDecl(tok=src.tok(name), name=name, params=[], body=body, file=src.name)
    if privilege is not None:
        fn.privilege = privilege
    return fn


def embedded(src):
    return ast.EmbeddedCode(tok=src.tok("%{ x %}", TokenKind.EMBEDDED), code="x")


def point(src, *names):
    comps = [ast.PPComponent(tok=src.tok(n), name=n) for n in names]
    return ast.ProbePoint(tok=comps[0].tok, components=comps)


def probe(src, body, *names):
    return ast.Probe(tok=src.tok("probe", TokenKind.KEYWORD), points=[point(src, *(names or ("begin",)))],
                     body=body, file=src.name)


def stapfile(src, *, probes=(), functions=(), aliases=(), embeds=(), tapset=False, privileged=False):
    return ast.StapFile(tok=src.tok("file"), name=src.name, probes=list(probes), functions=list(functions),
                        aliases=list(aliases), embeds=list(embeds), tapset=tapset, privileged=privileged)


def derived(src, pr, family="begin"):
    return ast.DerivedProbe(tok=pr.tok, point="begin", family=family, params={}, body=pr.body,
                            origin=pr.points[0])


def script(files, probes=(), level=USR, guru=False):
    return ast.ElaboratedScript(tok=files[0].tok, files=list(files), globals=[], functions=[],
                                probes=list(probes), privilege=int(level), guru=guru)


def check(s, level, guru=False, trusted=()):
    return check_privilege(s, level, guru, builtin_tags=TAGS, trusted_dirs=list(trusted),
                           builtin_lookup=lambda n, a: None)


def summary(errors):
    return [(e.message, e.tok.text, e.tok.loc.file, e.tok.loc.line) for e in errors]


@pytest.fixture
def tapdir(tmp_path):
    d = tmp_path / "tapset"
    d.mkdir()
    return d


# -- native functions called directly ------------------------------------------------------------


@pytest.mark.parametrize(
    ("fn", "level", "guru", "expected"),
    [
        ("pid", USR, False, []), ("user_string", USR, False, []),
        ("kernel_string", USR, False, [LEVEL_MSG]), ("kernel_string", SYS, False, []),
        ("kernel_string", DEV, False, []),
        ("printk", USR, False, [LEVEL_MSG, GURU_MSG]), ("printk", SYS, False, [GURU_MSG]),
        ("printk", DEV, False, [GURU_MSG]), ("printk", DEV, True, []),
        ("printk", SYS, True, [GURU_MSG]),  # -g below stapdev is refused; never honoured here
    ],
)
def test_native_function_called_directly(fn, level, guru, expected):
    src = Src("/home/u/t.stp")
    c = call(src, fn)
    pr = probe(src, block(src, c))
    s = script([stapfile(src, probes=[pr])], [derived(src, pr)], level, guru)
    errors = check(s, level, guru)
    assert [e.message for e in errors] == expected
    assert all(e.tok is c.tok for e in errors)  # natives have no declaration: the call is named


def test_myproc_functions_are_recorded_for_the_runtime():
    src = Src("/home/u/t.stp")
    pr = probe(src, block(src, call(src, "user_string"), call(src, "pid")))
    s = script([stapfile(src, probes=[pr])], [derived(src, pr)])
    assert check(s, USR) == []
    assert s.user_memory_functions == ["user_string"]


def test_resolved_builtin_entry_on_the_call_is_used():
    class Entry:
        privilege = "privileged"

    src = Src("/home/u/t.stp")
    c = call(src, "mystery")
    c.builtin = Entry()
    pr = probe(src, block(src, c))
    s = script([stapfile(src, probes=[pr])], [derived(src, pr)])
    assert [e.message for e in check(s, USR)] == [LEVEL_MSG]


# -- through script functions and aliases ------------------------------------------------------------


def test_through_another_function_names_the_inner_call():
    src = Src("/home/u/t.stp")
    inner = call(src, "kernel_string")
    helper = func(src, "helper", block(src, inner))
    outer = call(src, "helper", referents=[helper])
    pr = probe(src, block(src, outer))
    s = script([stapfile(src, probes=[pr], functions=[helper])], [derived(src, pr)])
    assert summary(check(s, USR)) == [(LEVEL_MSG, "kernel_string", "/home/u/t.stp", inner.tok.loc.line)]
    assert check(s, SYS) == []


def test_through_two_levels_and_recursion_terminates():
    src = Src("/home/u/t.stp")
    a = func(src, "a", None)
    b = func(src, "b", None)
    a.body = block(src, call(src, "b", referents=[b]), call(src, "a", referents=[a]))
    b.body = block(src, call(src, "printk"), call(src, "a", referents=[a]))
    pr = probe(src, block(src, call(src, "a", referents=[a])))
    s = script([stapfile(src, probes=[pr], functions=[a, b])], [derived(src, pr)])
    assert [e.message for e in check(s, USR)] == [LEVEL_MSG, GURU_MSG]


@pytest.mark.parametrize("elaborated", [True, False])
def test_unused_user_function_is_not_checked(elaborated):
    # never translated, so harmless; SystemTap accepts it as well
    src = Src("/home/u/t.stp")
    unused = func(src, "unused", block(src, call(src, "kernel_string")))
    pr = probe(src, block(src, call(src, "pid")))
    f = stapfile(src, probes=[pr], functions=[unused])
    assert check(script([f], [derived(src, pr)]) if elaborated else [f], USR) == []


def test_through_a_tapset_alias_body(tapdir):
    user = Src("/home/u/t.stp")
    tap = Src(str(tapdir / "alias.stp"))
    prologue = block(tap, call(tap, "kernel_string"))
    alias = ast.ProbeAlias(tok=tap.tok("probe"), names=[point(tap, "myalias")], epilogue_style=False,
                           points=[point(tap, "begin")], prologue=prologue, file=tap.name, privileged=True)
    pr = probe(user, block(user, call(user, "pid")), "myalias")
    merged = ast.Block(tok=pr.body.tok, statements=[prologue, pr.body])
    dp = ast.DerivedProbe(tok=pr.tok, point="begin", family="begin", params={}, body=merged, origin=pr.points[0])
    files = [stapfile(user, probes=[pr]), stapfile(tap, aliases=[alias], tapset=True, privileged=True)]
    s = script(files, [dp])
    errors = check(s, USR, trusted=[tapdir])
    assert summary(errors) == [(LEVEL_MSG, "kernel_string", tap.name, prologue.statements[0].tok.loc.line)]


def test_through_a_user_alias_in_files_mode():
    src = Src("/home/u/t.stp")
    body = block(src, call(src, "kernel_string"))
    alias = ast.ProbeAlias(tok=src.tok("probe"), names=[point(src, "a")], epilogue_style=True,
                           points=[point(src, "begin")], epilogue=body, file=src.name)
    errors = check([stapfile(src, aliases=[alias])], USR)
    assert [e.message for e in errors] == [LEVEL_MSG]


def test_files_mode_resolves_by_name():
    src = Src("/home/u/t.stp")
    helper = func(src, "helper", block(src, call(src, "kernel_string")))
    pr = probe(src, block(src, call(src, "helper")))
    assert [e.message for e in check([stapfile(src, probes=[pr], functions=[helper])], USR)] == [LEVEL_MSG]


# -- tagged and untagged tapset functions; trust in files ------------------------------------------------


def _tapset_call(tapdir, tag, *, trusted=True, level=USR, guru=False):
    tap = Src(str(tapdir / "lib.stp"))
    fn = func(tap, "tapfn", embedded(tap), privilege=tag)
    user = Src("/home/u/t.stp")
    c = call(user, "tapfn", referents=[fn])
    pr = probe(user, block(user, c))
    files = [stapfile(user, probes=[pr]), stapfile(tap, functions=[fn], tapset=True, privileged=True)]
    s = script(files, [derived(user, pr)], level, guru)
    return check(s, level, guru, trusted=[tapdir] if trusted else []), fn, c


@pytest.mark.parametrize(
    ("tag", "level", "messages"),
    [
        ("unprivileged", USR, []), ("myproc-unprivileged", USR, []), (None, USR, [LEVEL_MSG]),
        ("privileged", USR, [LEVEL_MSG]), ("privileged", SYS, []), ("guru", SYS, [GURU_MSG]),
        ("guru", USR, [LEVEL_MSG, GURU_MSG]), ("nonsense", USR, [LEVEL_MSG]), (None, SYS, []),
    ],
)
def test_tagged_and_untagged_tapset_functions(tapdir, tag, level, messages):
    errors, fn, c = _tapset_call(tapdir, tag, level=level)
    assert [e.message for e in errors] == messages
    for e in errors:
        # the stapusr error names the declaration in the tapset, the guru error the call
        assert e.tok is (fn.tok if e.message == LEVEL_MSG else c.tok)


@pytest.mark.parametrize("tag", ["unprivileged", "myproc-unprivileged"])
def test_untrusted_tapset_dir_cannot_mark_a_function_unprivileged(tapdir, tag):
    errors, fn, _ = _tapset_call(tapdir, tag, trusted=False)
    assert ("function may not be used when --privilege=stapusr is specified", fn.tok) in [
        (e.message, e.tok) for e in errors
    ]
    assert "embedded code in unprivileged script; need stap -g" in [e.message for e in errors]


def test_untrusted_tapset_dir_is_trusted_at_stapdev(tapdir):
    errors, _, _ = _tapset_call(tapdir, None, trusted=False, level=DEV)
    assert errors == []


def test_symlink_into_the_trusted_dir_does_not_make_a_file_trusted(tapdir, tmp_path):
    outside = tmp_path / "user.stp"
    outside.write_text("")
    os.symlink(outside, tapdir / "evil.stp")
    tap = Src(str(tapdir / "evil.stp"))
    fn = func(tap, "evil", embedded(tap), privilege="unprivileged")
    user = Src("/home/u/t.stp")
    pr = probe(user, block(user, call(user, "evil", referents=[fn])))
    files = [stapfile(user, probes=[pr]), stapfile(tap, functions=[fn], tapset=True, privileged=True)]
    errors = check(script(files, [derived(user, pr)]), USR, trusted=[tapdir])
    assert LEVEL_MSG in [e.message for e in errors]


def test_guru_function_from_a_trusted_tapset_wrapper_is_fine(tapdir):
    tap = Src(str(tapdir / "wrap.stp"))
    wrapper = func(tap, "wrapper", block(tap, call(tap, "printk")))
    user = Src("/home/u/t.stp")
    pr = probe(user, block(user, call(user, "wrapper", referents=[wrapper])))
    files = [stapfile(user, probes=[pr]), stapfile(tap, functions=[wrapper], tapset=True, privileged=True)]
    assert check(script(files, [derived(user, pr)], SYS), SYS, trusted=[tapdir]) == []
    # the same wrapper from an untrusted directory is the user's own call
    assert [e.message for e in check(script(files, [derived(user, pr)], SYS), SYS)] == [GURU_MSG]


def test_guru_call_through_a_macro_expansion_is_judged_at_the_invocation(tapdir):
    user = Src("/home/u/t.stp")
    invocation = user.tok("@mymacro")
    expanded = Token(TokenKind.IDENTIFIER, "printk", SourceLoc(str(tapdir / "m.stpm"), 3, 1), chain=invocation)
    c = ast.FunctionCall(tok=expanded, name="printk", args=[])
    pr = probe(user, block(user, c))
    files = [stapfile(user, probes=[pr])]
    assert [e.message for e in check(script(files, [derived(user, pr)], SYS), SYS, trusted=[tapdir])] == [GURU_MSG]


# -- guru-only constructs --------------------------------------------------------------------------------


def _at(src, name):
    return ast.AtOp(tok=src.tok(name, TokenKind.OPERATOR), name=name, args=[])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda s: ast.EmbeddedExpr(tok=s.tok("%{ 1 %}", TokenKind.EMBEDDED), code="1"),
         "embedded expression code in unprivileged script; need stap -g"),
        (lambda s: _at(s, "@const"), "using @const operator not permitted; need stap -g"),
        (lambda s: _at(s, "@kregister"), "using @kregister operator not permitted; need stap -g"),
        (lambda s: _at(s, "@kderef"), "using @kderef operator not permitted; need stap -g"),
        (lambda s: _at(s, "@uregister"), None),
        (lambda s: _at(s, "@uderef"), None),
    ],
)
@pytest.mark.parametrize("where", ["user", "include-dir"])
@pytest.mark.parametrize("level", [USR, SYS, DEV], ids=lambda lv: lv.label)
def test_guru_expressions_in_reached_functions(make, message, where, level):
    user = Src("/home/u/t.stp")
    src = user if where == "user" else Src("/home/u/inc/lib.stp")
    node = make(src)
    fn = func(src, "f", block(src, node))
    pr = probe(user, block(user, call(user, "f", referents=[fn])))
    if where == "user":
        files = [stapfile(user, probes=[pr], functions=[fn])]
    else:
        files = [stapfile(user, probes=[pr]), stapfile(src, functions=[fn], tapset=True, privileged=True)]
    errors = check(script(files, [derived(user, pr)]), level)
    if message is None or (where != "user" and level is DEV):
        assert errors == []
    else:
        assert summary(errors) == [(message, node.tok.text, src.name, node.tok.loc.line)]
    assert check(script(files, [derived(user, pr)], DEV, True), DEV, guru=True) == []


def test_unreached_functions_of_an_include_dir_do_not_count_but_its_embeds_do():
    user = Src("/home/u/t.stp")
    inc = Src("/home/u/inc/lib.stp")
    unused = func(inc, "unused", block(inc, _at(inc, "@kderef")))
    unused_c = func(inc, "unused_c", embedded(inc))
    top = ast.EmbeddedTopLevel(tok=inc.tok("%{ x %}", TokenKind.EMBEDDED), code="x")
    pr = probe(user, block(user, call(user, "pid")))
    files = [stapfile(user, probes=[pr]),
             stapfile(inc, functions=[unused, unused_c], embeds=[top], tapset=True, privileged=True)]
    assert summary(check(script(files, [derived(user, pr)]), USR)) == [
        ("embedded code in unprivileged script; need stap -g", top.tok.text, inc.name, top.tok.loc.line)
    ]


@pytest.mark.parametrize("level", [USR, SYS, DEV], ids=lambda lv: lv.label)
@pytest.mark.parametrize("elaborated", [True, False])
def test_embedded_code_top_level_and_function_body(level, elaborated):
    src = Src("/home/u/t.stp")
    top = ast.EmbeddedTopLevel(tok=src.tok("%{ #include %}", TokenKind.EMBEDDED), code="#include")
    fn = func(src, "f", embedded(src))
    pr = probe(src, block(src, call(src, "f", referents=[fn])))
    f = stapfile(src, functions=[fn], embeds=[top], probes=[pr])
    s = script([f], [derived(src, pr)], level) if elaborated else [f]
    msg = "embedded code in unprivileged script; need stap -g"
    got = summary(check(s, level))
    assert (msg, top.tok.text, src.name, top.tok.loc.line) in got
    assert (msg, fn.body.tok.text, src.name, fn.body.tok.loc.line) in got
    s = script([f], [derived(src, pr)], DEV, True) if elaborated else [f]
    assert [e for e in check(s, DEV, guru=True) if "embedded code" in e.message] == []


def _lit(src):
    return ast.NumberLit(tok=src.tok("1", TokenKind.NUMBER), value=1)


@pytest.mark.parametrize(
    ("target", "points", "family", "message"),
    [
        (lambda s: ast.TargetSymbol(tok=s.tok("$x"), name="$x"), ("process", "syscall"), "process.syscall",
         "write to target variable not permitted; need stap -g"),
        (lambda s: ast.AtVar(tok=s.tok("@var"), name="x"), ("process", "syscall"), "process.syscall",
         "write to target variable not permitted; need stap -g"),
        (lambda s: ast.CastOp(tok=s.tok("@cast"), operand=_lit(s), type_name="task_struct"), ("begin",), "begin",
         "write to @cast context variable not permitted; need stap -g"),
        (lambda s: ast.Autocast(tok=s.tok("->"), operand=_lit(s)), ("begin",), "begin",
         "write not permitted; need stap -g"),
        (lambda s: ast.TargetSymbol(tok=s.tok("$prev"), name="$prev"), ("kernel", "trace"), "kernel.trace",
         "write to tracepoint variable '$prev' not permitted; need stap -g"),
        (lambda s: ast.TargetSymbol(tok=s.tok("$verdict"), name="$verdict"), ("netfilter", "hook"), "netfilter",
         "write to netfilter verdict requires guru mode; need stap -g"),
    ],
)
@pytest.mark.parametrize("form", ["assign", "crement"])
@pytest.mark.parametrize("elaborated", [True, False])
def test_writes_to_target_variables(target, points, family, message, form, elaborated):
    src = Src("/home/u/t.stp")
    t = target(src)
    if form == "assign":
        e = ast.Assign(tok=src.tok("=", TokenKind.OPERATOR), op="=", target=t, value=_lit(src))
    else:
        e = ast.Crement(tok=src.tok("++", TokenKind.OPERATOR), op="++", operand=t, prefix=True)
    pr = probe(src, block(src, e), *points)
    f = stapfile(src, probes=[pr])

    def make(level, guru=False):
        return script([f], [derived(src, pr, family)], level, guru) if elaborated else [f]

    for level in (USR, SYS, DEV):
        got = [g for g in summary(check(make(level), level)) if "probe point" not in g[0]]
        assert got == [(message, t.tok.text, src.name, t.tok.loc.line)]
    assert [e for e in check(make(DEV, True), DEV, guru=True) if "probe point" not in e.message] == []


def test_reading_target_variables_is_fine():
    src = Src("/home/u/t.stp")
    read = ast.Assign(tok=src.tok("="), op="=", target=ast.Symbol(tok=src.tok("x"), name="x"),
                      value=ast.TargetSymbol(tok=src.tok("$x"), name="$x"))
    pr = probe(src, block(src, read), "process", "syscall")
    f = stapfile(src, probes=[pr])
    assert check(script([f], [derived(src, pr, "process.syscall")]), USR) == []
    assert check([f], USR) == []


# -- derived probes: families, guru-only families, confinement markers ------------------------------------


@pytest.mark.parametrize(
    ("family", "level", "guru", "message"),
    [
        ("begin", USR, False, None), ("process.syscall", USR, False, None),
        ("kernel.function", USR, False, "probe point is not allowed for --privilege=stapusr"),
        ("kernel.function", SYS, False, None), ("timer.profile", USR, False,
                                                 "probe point is not allowed for --privilege=stapusr"),
        ("no.such.family", DEV, False, "probe point is not allowed for --privilege=stapdev"),
        ("kernel.statement.absolute", DEV, False, "absolute statement probe in unprivileged script; need stap -g"),
        ("kernel.statement.absolute", DEV, True, None),
        ("kernel.statement.absolute", USR, False, "probe point is not allowed for --privilege=stapusr"),
    ],
)
def test_derived_probe_families(family, level, guru, message):
    src = Src("/home/u/t.stp")
    pr = probe(src, block(src), "kernel", "function")
    dp = derived(src, pr, family)
    errors = check(script([stapfile(src, probes=[pr])], [dp], level, guru), level, guru)
    if message is None:
        assert errors == []
    else:
        # at the last component, as SystemTap reports it
        assert summary(errors) == [(message, "function", src.name, pr.points[0].components[-1].tok.loc.line)]


@pytest.mark.parametrize(("family", "myproc"), [("process.begin", True), ("process.end", True),
                                                ("process.function", True), ("begin", False), ("timer", False)])
def test_confinement_marker_on_derived_probes(family, myproc):
    src = Src("/home/u/t.stp")
    pr = probe(src, block(src), "process", "begin")
    dp = derived(src, pr, family)
    check(script([stapfile(src, probes=[pr])], [dp], DEV), DEV)
    assert dp.myproc is myproc


# -- keep-going: every violation of one run ------------------------------------------------------------


def test_every_violation_is_listed_once():
    src = Src("/home/u/t.stp")
    ks1, ks2, pk = call(src, "kernel_string"), call(src, "kernel_string"), call(src, "printk")
    helper = func(src, "helper", block(src, ks1))
    t = ast.TargetSymbol(tok=src.tok("$x"), name="$x")
    write = ast.Assign(tok=src.tok("="), op="=", target=t, value=_lit(src))
    pr = probe(src, block(src, call(src, "helper", referents=[helper]), ks2, pk, write), "kernel", "function")
    s = script([stapfile(src, probes=[pr], functions=[helper])], [derived(src, pr, "kernel.function")])
    got = summary(check(s, USR))
    assert sorted(got, key=lambda g: g[3]) == sorted([
        ("write to target variable not permitted; need stap -g", "$x", src.name, t.tok.loc.line),
        ("probe point is not allowed for --privilege=stapusr", "function", src.name,
         pr.points[0].components[-1].tok.loc.line),
        (LEVEL_MSG, "kernel_string", src.name, ks1.tok.loc.line),
        (LEVEL_MSG, "kernel_string", src.name, ks2.tok.loc.line),
        (LEVEL_MSG, "printk", src.name, pk.tok.loc.line),
        (GURU_MSG, "printk", src.name, pk.tok.loc.line),
    ], key=lambda g: g[3])


def test_unknown_level_gets_the_strictest_rules():
    src = Src("/home/u/t.stp")
    pr = probe(src, block(src, call(src, "kernel_string")))
    s = script([stapfile(src, probes=[pr])], [derived(src, pr)])
    assert [e.message for e in check(s, 0x1)] == [LEVEL_MSG]


def test_default_trusted_dir_is_the_package_tapset():
    from pystap.lang.privcheck import builtin_tapset_dir

    assert (builtin_tapset_dir() / "__init__.py").is_file()
    assert Path(builtin_tapset_dir()).is_absolute()


def test_a_very_deep_call_chain_is_followed_without_recursion():
    src = Src("/home/u/t.stp")
    last = call(src, "kernel_string")
    fns = [func(src, "f0", block(src, last))]
    for i in range(1, 5000):
        fns.append(func(src, f"f{i}", block(src, call(src, f"f{i - 1}", referents=[fns[-1]]))))
    pr = probe(src, block(src, call(src, "f4999", referents=[fns[-1]])))
    s = script([stapfile(src, probes=[pr], functions=fns)], [derived(src, pr)])
    assert summary(check(s, USR)) == [(LEVEL_MSG, "kernel_string", src.name, last.tok.loc.line)]


def test_resolution_by_name_respects_arity_in_files_mode():
    src = Src("/home/u/t.stp")
    two = func(src, "helper", block(src, call(src, "kernel_string")))
    two.params = [ast.Param(tok=src.tok("a"), name="a"), ast.Param(tok=src.tok("b"), name="b")]
    pr = probe(src, block(src, call(src, "helper")))  # helper() with no arguments: not the 2-ary one
    assert check([stapfile(src, probes=[pr], functions=[two])], USR) == []
