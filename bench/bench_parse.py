"""Pass 1 speed: parse throughput on a generated 5,000-line script, and hello world.

Prints one JSON object:

* ``throughput``: lines/s and tokens/s of the lexer alone and of the whole of
  pass 1 (lex, preprocess, parse) on a generated 5,000-line script, and of
  printing it back (``-p1``); in-process medians;
* ``hello``: pass-1 time of a hello-world script in-process (µs), and whole
  processes ``pystap -p1`` against ``stap -p1`` (Debian's systemtap with a
  stand-in kernel tree, as ``stap`` wants one even for pass 1), medians of
  several runs, with their ratio;
* ``vs_baseline``: each number divided by ``baseline/parse.json`` (for rates
  ``< 1`` is slower, for times ``> 1`` is slower).

``--write-baseline`` stores the current numbers.  Exit status is 0 whenever
the measurement ran; the comparison is data, not a verdict.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pystap.lang.context import ParseContext
from pystap.lang.lexer import Lexer
from pystap.lang.parser import parse_file
from pystap.lang.printer import print_file

HERE = Path(__file__).resolve().parent
BASELINE = HERE / "baseline" / "parse.json"
HELLO = 'probe begin { printf("hello %s\\n", "world"); exit() }'
LINES = 5000


def generate(lines: int = LINES) -> str:
    """A deterministic script of realistic shape: functions, probes, arrays,
    stats, foreach, string formatting, conditionals, a macro."""
    out = [
        "global counts, totals[1000], names%, hits",
        "@define clamp(v, lo) %( ((@v) < (@lo) ? (@lo) : (@v)) %)",
        "",
    ]
    i = 0
    while len(out) < lines:
        out += [
            f"function helper{i}:long (a:long, b:string) {{",
            f'  if (a > {i} && b != "x{i}") {{ totals[a % 1000] += a * 2 + {i}; return @clamp(a, {i}) }}',
            '  foreach ([k, v] in counts- limit 10) printf("%d %s %5.2x\\n", k, v, a)',
            f'  names[b] = sprintf("%s-%d", b . "{i}", a); return strlen(b) + {i}',
            "}",
            f"probe timer.ms({i % 100 + 1}), process(\"/bin/true\").begin? {{",
            f"  counts[pid(), execname()] <<< {i}; hits++",
            f'  x = helper{i}(gettimeofday_us(), "y") ? 1 : 2; if (x) next',
            "  try { y = 10 / x } catch (msg) { println(msg) }",
            "}",
            "",
        ]
        i += 1
    return "\n".join(out) + "\n"


def _median(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _median_process_ms(cmd: list[str], runs: int = 7) -> float | None:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - t)
        if proc.returncode != 0:
            return None
    return round(statistics.median(times) * 1000, 1)


def _stap_tree(tmp: str) -> str:
    """The minimal kernel build tree stap wants before it will even parse."""
    tree = os.path.join(tmp, "k")
    os.makedirs(os.path.join(tree, "include", "config"))
    config = b""
    try:
        with gzip.open("/proc/config.gz") as f:
            config = f.read()
    except OSError:
        pass
    release = os.uname().release
    Path(tree, ".config").write_bytes(config)
    Path(tree, "Makefile").write_text(f"KERNELRELEASE={release}\n")
    Path(tree, "include", "config", "kernel.release").write_text(release + "\n")
    Path(tree, "Module.symvers").write_text("")
    return tree


def measure() -> dict[str, object]:
    ctx = ParseContext(kernel_config={})
    src = generate()
    nlines = src.count("\n")
    tokens = len(Lexer(src, "gen.stp").tokens()[0])
    lex_s = _median(lambda: Lexer(src, "gen.stp").tokens(), 5)
    parse_s = _median(lambda: parse_file(src, "gen.stp", ctx), 5)
    tree = parse_file(src, "gen.stp", ctx)
    print_s = _median(lambda: print_file(tree), 5)
    hello_us = _median(lambda: parse_file(HELLO, "<input>", ctx), 200) * 1e6

    result: dict[str, object] = {
        "throughput": {
            "lines": nlines,
            "tokens": tokens,
            "lex_lines_per_s": round(nlines / lex_s),
            "parse_lines_per_s": round(nlines / parse_s),
            "parse_tokens_per_s": round(tokens / parse_s),
            "print_lines_per_s": round(nlines / print_s),
        },
        "hello": {"pass1_in_process_us": round(hello_us, 1)},
    }
    hello: dict[str, object] = result["hello"]  # type: ignore[assignment]
    pystap = shutil.which("pystap") or str(Path(sys.executable).with_name("pystap"))
    if os.path.exists(pystap):
        hello["pystap_p1_ms"] = _median_process_ms([pystap, "-p1", "-e", HELLO])
    stap = shutil.which("stap")
    if stap:
        with tempfile.TemporaryDirectory() as tmp:
            hello["stap_p1_ms"] = _median_process_ms([stap, "-r", _stap_tree(tmp), "-p1", "-e", HELLO])
    if hello.get("pystap_p1_ms") and hello.get("stap_p1_ms"):
        hello["ratio_pystap_to_stap"] = round(hello["pystap_p1_ms"] / hello["stap_p1_ms"], 3)  # type: ignore[operator]
    return result


def compare(current: dict[str, object], baseline: dict[str, object]) -> dict[str, float]:
    out: dict[str, float] = {}
    for group in ("throughput", "hello"):
        cur = current.get(group, {})
        base = baseline.get(group, {})
        assert isinstance(cur, dict) and isinstance(base, dict)
        for key, value in cur.items():
            ref = base.get(key)
            if isinstance(value, (int, float)) and isinstance(ref, (int, float)) and ref:
                out[f"{group}.{key}"] = round(value / ref, 3)
    return out


def main(argv: list[str]) -> int:
    current = measure()
    if "--write-baseline" in argv:
        BASELINE.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    if BASELINE.exists():
        current["vs_baseline"] = compare(current, json.loads(BASELINE.read_text()))
    print(json.dumps(current, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
