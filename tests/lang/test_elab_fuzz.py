"""Pass 2 never raises anything but a StapError, whatever the (parsable) input."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pystap.lang.context import ParseContext
from pystap.lang.diagnostics import StapError
from pystap.lang.elaborate import ElabOptions, elaborate
from pystap.lang.parser import parse_file
from pystap.privilege import PR_STAPUSR
from pystap.tapset import loader

_CTX = ParseContext()
_LIB = loader.load_library(_CTX, (), None, use_cache=False)

names = st.sampled_from(["x", "y", "g", "a", "s", "NULL", "f", "$x", "$arg1", "$syscall"])
lits = st.one_of(st.integers(-(2**63), 2**63 - 1).map(str), st.sampled_from(['"s"', '""', "0"]))
atoms = st.one_of(names, lits, st.sampled_from(["g[1]", "a[x,\"k\"]", "f(1)", "strlen(y)", "@count(s)"]))


def exprs(depth: int = 3) -> st.SearchStrategy[str]:
    if depth == 0:
        return atoms
    sub = exprs(depth - 1)
    ops = st.sampled_from(["+", "-", ".", "==", "<", "&&", "=", "+=", "<<<", ".=", "%"])
    return st.one_of(
        atoms,
        st.tuples(sub, ops, sub).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(sub, sub, sub).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"),
        sub.map(lambda e: f"print({e})"),
        sub.map(lambda e: f'printf("%d %s\\n", {e}, {e})'),
        sub.map(lambda e: f"@defined({e})"),
    )


stmts = st.one_of(
    exprs().map(lambda e: f"{e};"),
    st.tuples(exprs(1), exprs(1)).map(lambda t: f"if ({t[0]}) {t[1]};"),
    exprs(1).map(lambda e: f"foreach (k in g) {e};"),
    exprs(1).map(lambda e: f"foreach ([k, v] in a-) {e};"),
    st.just("delete g;"),
    st.just("next;"),
    exprs(1).map(lambda e: f'try {{ {e}; }} catch (m) {{ print(m) }}'),
)
points = st.sampled_from(
    ["begin", "end", "timer.ms(10)", "process.syscall", "process.begin", "foo", "never", "timer.s(0)", "oneshot",
     "kernel.trace(\"x:y\")", "syscall.read", "begin ?", "nosuch !", "al", "al.x"]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.lists(points, min_size=1, max_size=3), st.lists(stmts, max_size=4)), min_size=1,
                max_size=3), st.booleans(), st.booleans(), st.booleans())
def test_pass2_errors_are_stap_errors(probes: list, unoptimized: bool, stapusr: bool, keep_going: bool) -> None:
    src = "global g, a, s\nfunction f(p) { return p }\nprobe al = begin { x = 1 }\n"
    for pps, body in probes:
        src += f"probe {', '.join(pps)} {{ {' '.join(body)} }}\n"
    try:
        user = parse_file(src, "<fuzz>", _CTX)
    except StapError:
        return
    opts = ElabOptions(unoptimized=unoptimized, privilege=PR_STAPUSR if stapusr else 0x8, keep_going=keep_going)
    try:
        elaborate([user, *_LIB], opts)
    except StapError:
        pass


def test_deep_nesting_is_a_clean_error_or_success() -> None:
    depth = 400
    src = "probe begin { x = " + "(" * depth + "1" + ")" * depth + "; print(x) }"
    try:
        user = parse_file(src, "<deep>", _CTX)
    except StapError:
        return
    try:
        elaborate([user, *_LIB], ElabOptions())
    except StapError:
        pass
