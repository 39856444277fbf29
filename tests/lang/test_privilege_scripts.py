"""End to end: scripts through the real translator (parser, elaborator, privilege
pass) at each level; every violation's message and position is asserted from
the ``--semantic-keep-going`` catalogue."""

import io
import textwrap

import pytest

from pystap.cli.stap import main
from pystap.policy import probes as probe_policy
from pystap.privilege import Level

USR_FN = "function may not be used when --privilege=stapusr is specified"
GURU_FN = "function may not be used unless -g is specified"
NOT_ALLOWED = "probe point is not allowed for --privilege=stapusr"


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def run(args, script=None):
    out, err = io.StringIO(), io.StringIO()
    argv = ["-p2", "--semantic-keep-going", *args]
    if script is not None:
        argv += ["-e", script]
    rc = main(argv, stdin=io.StringIO(""), stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def catalogue(stderr):
    """(file, line, col, token, message) of every SEMANTIC_ERROR line."""
    rows = []
    for line in stderr.splitlines():
        if line.startswith("SEMANTIC_ERROR\t"):
            _, f, ln, col, tok, msg = line.split("\t")
            rows.append((f, int(ln) if ln != "-" else 0, int(col) if col != "-" else 0, tok, msg))
    return rows


def privilege_rows(stderr):
    return [r for r in catalogue(stderr) if r[4] != "while resolving probe point"]


CASES = [
    # (id, level, script, expected privilege rows as (line, col, token, message))
    ("native-direct", "stapusr", "probe begin { println(kernel_string(0)) }",
     [(1, 23, "kernel_string", USR_FN)]),
    ("native-direct-stapsys", "stapsys", "probe begin { println(kernel_string(0)) }", []),
    ("myproc-direct", "stapusr", 'probe process("/bin/true").begin { println(user_string(0)) }', []),
    ("through-function", "stapusr", "function f() { return kernel_string(0) }\nprobe begin { println(f()) }",
     [(1, 23, "kernel_string", USR_FN)]),
    ("through-two-functions", "stapusr",
     "function g() { return kernel_long(0) }\nfunction f() { return g() }\nprobe begin { println(f()) }",
     [(1, 23, "kernel_long", USR_FN)]),
    ("through-user-alias", "stapusr", "probe a = begin { x = kernel_long(0) }\nprobe a { println(x) }",
     [(1, 23, "kernel_long", USR_FN)]),
    ("guru-direct-stapsys", "stapsys", 'probe begin { printk(0, "x") }', [(1, 15, "printk", GURU_FN)]),
    ("guru-direct-stapusr", "stapusr", 'probe begin { printk(0, "x") }',
     [(1, 15, "printk", USR_FN), (1, 15, "printk", GURU_FN)]),
    ("guru-through-function", "stapsys", 'function f() { printk(0, "x") }\nprobe begin { f() }',
     [(1, 16, "printk", GURU_FN)]),
    ("guru-through-alias", "stapdev", 'probe a = begin { raise(9) }\nprobe a { println(1) }',
     [(1, 19, "raise", GURU_FN)]),
    ("kernel-probe", "stapusr", 'probe kernel.function("vfs_read") { println(1) }',
     [(1, 14, "function", NOT_ALLOWED)]),
    ("kernel-probe-stapsys", "stapsys", 'probe kernel.function("vfs_read") { println(1) }', []),
    ("procfs-through-alias", "stapusr", 'probe a = procfs("x").read { }\nprobe a { println(1) }',
     [(1, 23, "read", NOT_ALLOWED)]),
    ("optional-dropped", "stapusr", 'probe kernel.function("vfs_read") ?, begin { println(1) }', []),
    ("every-violation-at-once", "stapusr",
     'probe kernel.function("vfs_read") { println(1) }\n'
     'probe begin { println(kernel_string(0)); printk(0, "x") }',
     [(1, 14, "function", NOT_ALLOWED), (2, 23, "kernel_string", USR_FN), (2, 42, "printk", USR_FN),
      (2, 42, "printk", GURU_FN)]),
    ("unused-function", "stapusr", "function f() { return kernel_string(0) }\nprobe begin { println(1) }", []),
]


@pytest.mark.parametrize(("level", "script", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_script_violations(level, script, expected):
    rc, _, err = run([f"--privilege={level}"], script)
    got = [(ln, col, tok, msg) for f, ln, col, tok, msg in privilege_rows(err)
           if "not available on this kernel" not in msg and msg != "no match"]
    assert sorted(got) == sorted(expected), err
    if expected:
        assert rc == 1


@pytest.mark.parametrize("level", ["stapusr", "stapsys", "stapdev"])
def test_guru_constructs_are_refused_without_g(level):
    for script, message in [
        ("probe begin { println(@const(\"X\")) }", "using @const operator not permitted; need stap -g"),
        ("probe begin { println(@kderef(4, 0)) }", "using @kderef operator not permitted; need stap -g"),
        ('probe process("/bin/true").begin { println(@kregister(0)) }',
         "using @kregister operator not permitted; need stap -g"),
        ("probe begin { println(%{ 1 %}) }", "embedded expression code in unprivileged script; need stap -g"),
        ("%{ int x; %}\nprobe begin { println(1) }", "embedded code in unprivileged script; need stap -g"),
        ("function f() %{ %}\nprobe begin { f() }", "embedded code in unprivileged script; need stap -g"),
    ]:
        rc, _, err = run([f"--privilege={level}"], script)
        assert rc == 1 and message in err, (script, err)


def test_guru_constructs_with_g_at_stapdev_pass_the_privilege_check():
    _rc, _, err = run(["-g"], "function f() %{ %}\nprobe begin { f() }")
    assert "need stap -g" not in err


@pytest.mark.parametrize(("args", "message"), [
    (["--privilege=stapusr", "-g"], "You can't specify -g and --privilege=stapusr together."),
    (["-g", "--privilege=stapsys"], "You can't specify -g and --privilege=stapsys together."),
    (["--privilege=stapusr", "--privilege=stapsys"], "Privilege level may be set only once."),
    (["--privilege=Stapusr"], "Invalid argument 'Stapusr' for --privilege."),
    (["--unprivileged", "-DMAXACTION=5"], "You can't specify -D when --privilege=stapusr is specified."),
    (["--suppress-time-limits"], "ERROR --suppress-time-limits requires guru mode (-g)"),
    (["-D", "a;b"], "ERROR: Safety pattern mismatch for -D parameter ('a;b' vs. '^[a-z_][a-z_0-9]*(=-?[a-z_0-9]+)?$') rc=1"),
])
def test_option_refusals_through_the_cli(args, message):
    rc, _, err = run(args, "probe begin { println(1) }")
    assert rc == 1 and message in err


# -- -I directories are the user's input -------------------------------------------------------------


@pytest.fixture
def include_dir(tmp_path):
    d = tmp_path / "inc"
    d.mkdir()
    (d / "lib.stp").write_text(textwrap.dedent("""\
        function evil:long () %{ /* unprivileged */ STAP_RETVALUE = 1; %}
        function nice:long () { return pid() + 1 }
        probe kalias = kernel.function("vfs_read") { }
        probe galias = begin { x = kernel_long(0) }
        """))
    return d


def test_include_dir_cannot_mark_a_function_unprivileged(include_dir):
    rc, _, err = run(["--privilege=stapusr", "-I", str(include_dir)], "probe begin { println(evil()) }")
    rows = privilege_rows(err)
    lib = str(include_dir / "lib.stp")
    assert (lib, 1, 10, "evil", USR_FN) in rows
    assert any(r[0] == lib and r[4] == "embedded code in unprivileged script; need stap -g" for r in rows)
    assert rc == 1


def test_include_dir_script_functions_are_fine(include_dir):
    rc, _out, err = run(["--privilege=stapusr", "-I", str(include_dir)], "probe begin { println(nice()) }")
    assert rc == 0, err


def test_include_dir_is_trusted_at_stapdev(include_dir):
    rc, _, err = run(["-I", str(include_dir)], "probe begin { println(evil()) }")
    assert rc == 0, err


@pytest.mark.parametrize(("alias", "row"), [
    ("kalias", (3, 23, "function", NOT_ALLOWED)),
    ("galias", (4, 28, "kernel_long", USR_FN)),
])
def test_include_dir_alias_is_checked(include_dir, alias, row):
    rc, _, err = run(["--privilege=stapusr", "-I", str(include_dir)], f"probe {alias} {{ println(1) }}")
    assert (str(include_dir / "lib.stp"), *row) in privilege_rows(err)
    assert rc == 1


# -- confinement markers and listings --------------------------------------------------------------------


def test_confinement_markers_reach_the_elaborated_script(tmp_path):
    from pystap.cli.stap import Reporter, parse_args, run_pass1, run_pass2

    o = parse_args(["--privilege=stapusr", "-p2", "-e",
                    'probe process("/bin/true").begin { println(user_string(0)) } probe begin { println(1) }'])
    rep = Reporter(io.StringIO(), {})
    script = run_pass2(o, run_pass1(o, io.StringIO(""), rep), rep)
    by_family = {p.family: p.myproc for p in script.probes}
    assert by_family == {"process.begin": True, "begin": False}
    assert script.user_memory_functions == ["user_string"]


def test_dump_probe_types_lists_only_what_stapusr_may_use():
    rc, out, _ = run(["--privilege=stapusr", "--dump-probe-types"])
    assert rc == 0
    types = out.split()
    assert types and "begin" in types
    for t in types:
        row = probe_policy.family_of_type(t)
        if row is not None:
            assert probe_policy.family_allowed(row.family, Level.STAPUSR), t
    assert not any(t.startswith(("kernel.", "kprobe.", "procfs", "perf", "netfilter", "timer.profile"))
                   for t in types)


@pytest.mark.parametrize("var", ["PYSTAP_TAPSET", "PYSTAP_RUNTIME", "PYSTAP_DEBUGINFO_PATH"])
def test_environment_input_is_refused_below_stapdev(var, monkeypatch, tmp_path):
    monkeypatch.setenv(var, str(tmp_path))
    rc, _, err = run(["--unprivileged"], "probe begin { println(1) }")
    assert rc == 1 and f"ERROR: environment variable {var} may not be set when --privilege=stapusr" in err
    rc, _, err = run([], "probe begin { println(1) }")
    assert rc == 0, err


@pytest.mark.parametrize(("level", "listed"), [("stapusr", []), ("stapsys", ["timer.profile.tick"]),
                                               ("stapdev", ["timer.profile.tick"])])
def test_listing_shows_only_what_the_level_allows(level, listed):
    out, err = io.StringIO(), io.StringIO()
    rc = main([f"--privilege={level}", "-l", "timer.profile.tick"], stdin=io.StringIO(""), stdout=out, stderr=err)
    assert rc == 0 and out.getvalue().split() == listed
