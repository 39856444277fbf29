"""The -p2 listing, compared with what stap -p2 prints for the same scripts."""

from __future__ import annotations

from test_elab_helpers import elab

from pystap.lang.dump import dump

SCRIPT = """\
global a, b[10], s
function f(x, y:string) { return x + strlen(y) }
probe begin { a = f(1, "x"); b[1,"k"] = 3; s <<< 4; printf("%d %d\\n", a, @count(s)); exit() }
probe timer.ms(100), end { println(b[1,"k"]) }
"""

EXPECTED = """\
# globals
a:long
b[10]:long [long, string]
s:stats
# functions
exit:unknown ()
f:long (x:long, y:string)
strlen:long (s:string)
# probes
begin /* <- begin */
timer.ms(100) /* <- timer.ms(100),end */
end /* <- timer.ms(100),end */
"""


def test_listing_matches_stap() -> None:
    assert dump(elab(SCRIPT)) == EXPECTED


def test_listing_with_aliases_locals_and_unread_globals() -> None:
    s = elab(
        "global a%[5], st, g; probe oneshot { a[1]=1; st[1,\"x\"] <<< 2; print(@count(st[1,\"x\"])) }"
        " function h() { print(1) } probe end { h(); print(a[1]); x = 1; g = x }"
    )
    assert dump(s) == (
        "# globals\n"
        "a%[5]:long [long]\n"
        "st:stats [long, string]\n"
        "g:long\n"
        "# functions\n"
        "exit:unknown ()\n"
        "h:unknown ()\n"
        "# probes\n"
        "begin /* <- oneshot += begin <- oneshot */\n"
        "end /* <- end */\n"
        "  # locals\n"
        "  x:long\n"
        "end /* <- end */\n"
    )


def test_verbose_listing_has_bodies() -> None:
    text = dump(elab('probe begin { printf("%d\\n", 1) }'), verbose=True)
    assert text.startswith("# probes\nbegin /* <- begin */\n")
    assert "printf" in text


def test_listing_shows_stacked_conditions() -> None:
    s = elab("global p; probe alias0 = begin if (3) { p = 1 } probe alias0 if (p) { print(p) }")
    # as stap 4.8 prints it: the resolved condition names the global as generated code does
    assert dump(s).endswith("begin if ((3) && (__global_p)) /* <- alias0 = begin if (3) <- alias0 if (p) */\n")
