"""The unread-global display at exit, byte for byte as SystemTap's synthetic end probe prints it."""

from __future__ import annotations

import io

from pystap.cli.stap import main

SCRIPT = r"""
global neg, zero, big, text, keys, tie, st, none, sarr
probe begin {
  neg = -5; zero = 0; big = 9223372036854775807
  text = "a\tb \"q\""
  keys["x", 2] = 10; keys["y", -1] = 30; keys["z", 0] = 20
  tie[1] = 7; tie[2] = 7; tie[3] = 8
  st <<< 3; st <<< 5; st <<< -4
  if (randint(1) == 1) none <<< 1  # written, never filled
  sarr["b"] <<< 1; sarr["a"] <<< 1; sarr["a"] <<< 2
  exit()
}
probe end { print("end\n") }
"""

# elaborate.cxx add_global_var_display as stap 4.x compiles it: longs in decimal, keys %#d,
# strings "%#s" (no escaping),
# statistics %#d, arrays in descending value order (statistics by @count), ties in insertion order;
# an empty scalar statistic as "@count=0x0".
EXPECTED = (
    "end\n"
    "neg=-5\n"
    "zero=0\n"
    "big=9223372036854775807\n"
    'text="a\tb "q""\n'
    'keys["y",-1]=30\n'
    'keys["z",0]=20\n'
    'keys["x",2]=10\n'
    "tie[3]=8\n"
    "tie[1]=7\n"
    "tie[2]=7\n"
    "st @count=3 @min=-4 @max=5 @sum=4 @avg=1\n"
    "none @count=0x0\n"
    'sarr["a"] @count=2 @min=1 @max=2 @sum=3 @avg=1\n'
    'sarr["b"] @count=1 @min=1 @max=1 @sum=1 @avg=1\n'
)


def test_display_is_systemtaps(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out, err = io.StringIO(), io.StringIO()
    rc = main(["-w", "-e", SCRIPT], stdin=io.StringIO(""), stdout=out, stderr=err)
    assert (rc, out.getvalue()) == (0, EXPECTED), err.getvalue()
