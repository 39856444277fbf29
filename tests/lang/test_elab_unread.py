"""The synthetic display of globals that are written but never read."""

from __future__ import annotations

import pytest
from test_elab_helpers import elab

from pystap.lang import ast


def _displays(s: ast.ElaboratedScript) -> dict[str, ast.DerivedProbe]:
    return {p.params["unread_display"]: p for p in s.probes if p.params.get("unread_display")}


def test_scalar_array_and_stats_displays() -> None:
    s = elab('global a, b, c, d; probe begin { a = 1; b[1, "k"] = "x"; c <<< 3; d[1] <<< 2; print(1) }')
    shown = _displays(s)
    assert sorted(shown) == ["a", "b", "c", "d"]
    assert all(p.point == "end" and p.family == "end" for p in shown.values())
    fmt_a = next(n for n in ast.walk(shown["a"].body) if isinstance(n, ast.PrintFormat)).format
    assert fmt_a == "a=%d\n"
    fe = next(n for n in ast.walk(shown["b"].body) if isinstance(n, ast.Foreach))
    assert (fe.sort_column, fe.sort_direction) == (0, -1)
    fmt_b = next(n for n in ast.walk(shown["b"].body) if isinstance(n, ast.PrintFormat)).format
    assert fmt_b == 'b[%#d,"%#s"]="%#s"\n'
    assert [v.name for v in shown["b"].locals] == ["__idx0", "__idx1", "__val"]
    formats = [n.format for n in ast.walk(shown["c"].body) if isinstance(n, ast.PrintFormat)]
    assert formats == ["c @count=%#d @min=%#d @max=%#d @sum=%#d @avg=%#d\n", "c @count=0x0\n"]
    fe_d = next(n for n in ast.walk(shown["d"].body) if isinstance(n, ast.Foreach))
    assert fe_d.sort_aggr == "@count" and fe_d.value is None


def test_read_globals_are_not_displayed() -> None:
    s = elab("global a; probe begin { a = 1; print(a) }")
    assert _displays(s) == {}


def test_exact_formats_are_systemtaps() -> None:
    """elaborate.cxx add_global_var_display as stap 4.8 translates it: values %d, keys %#d, strings %#s."""
    s = elab('global n, t, m; probe begin { n = -1; t[1, "k"] = 2; m["x"] = "y"; print(1) }')
    shown = _displays(s)
    fmts = {k: [x.format for x in ast.walk(p.body) if isinstance(x, ast.PrintFormat)] for k, p in shown.items()}
    assert fmts == {"n": ["n=%d\n"], "t": ['t[%#d,"%#s"]=%d\n'], "m": ['m["%#s"]="%#s"\n']}


def test_tapset_globals_are_never_displayed() -> None:
    # qsq_start() writes queue_stats.stp's globals and reads none of them
    s = elab('probe begin { qsq_start("q") }')
    assert _displays(s) == {}


# Whether stap 4.8 -p2 adds the display probe (its `end` line) for these scripts.
STAP_DISPLAYS = [
    ("global x; probe begin { x++ }", ["x"]),
    ("global x; probe begin { x += 1 }", ["x"]),
    ("global x; probe begin { x = x + 1 }", []),
    ("global a; probe begin { a[1]=1; if (1 in a) print(1) }", []),
    ("global a; probe begin { a[1]=1; foreach (k in a) print(k) }", []),
    ("global x; probe begin { x = 1 } probe end { delete x }", []),  # delete reads, for stap
    ("global a; probe begin { a[1] = 1; delete a[1] }", []),
    ("global a; probe begin { a[1] <<< 1; delete a[1] }", []),
    ("global s; probe begin { s <<< 1 }", ["s"]),
    ("global x; probe begin { x = 1 } probe timer.s(1) if (x) { exit() }", []),
    ("global x; function f() { return x } probe begin { x = 1 }", ["x"]),  # f is never called
    ("global x, y; probe begin { x = 1; y = x }", ["y"]),
    # a crement or compound assignment whose value is used reads, too
    ("global x; probe begin { println(x++) }", []),
    ("global x; probe begin { while (x -= 2) ; }", []),
    ("global x; probe begin { for (x = 1; x < 3; x++) ; }", []),
    ("global x; probe begin { for (i = 1; i < 3; x++) println(i++) }", ["x"]),
    ("global x; probe begin { y = (x = 2); println(y) }", ["x"]),
]


@pytest.mark.parametrize(("src", "shown"), STAP_DISPLAYS)
def test_which_globals_are_displayed_agrees_with_stap(src: str, shown: list[str]) -> None:
    assert sorted(_displays(elab(src))) == shown
