"""``=~`` and printf costs: what a handler pays per match and per formatted line.

1. The match test (every ``=~``): Python's ``re`` on the translated pattern.
2. The POSIX leftmost-longest spans (only when ``matched()`` asks): the
   memoised position-set simulation, on a short log line and on a
   pathological 500-character text (``(.*)x(.*)``), where a naive
   per-iteration search was quadratic.
3. ``Python re`` leftmost-first spans of the same pattern, for scale.
4. A compiled printf with flags, widths and a string (the generic path).

Prints one JSON object with the numbers and their ratio to
``baseline/regex.json`` (>1 means slower than the baseline).
"""

from __future__ import annotations

import json
import re
import sys
import timeit
from pathlib import Path

from pystap.ere import compile_pattern
from pystap.runtime.printf import compile_format

HERE = Path(__file__).resolve().parent
BASELINE = HERE / "baseline" / "regex.json"


def _us(fn, number: int) -> float:
    best = min(timeit.repeat(fn, number=number, repeat=5))
    return round(best / number * 1e6, 2)


def measure() -> dict[str, float]:
    log = "2026-11-26 23:59:01 worker-17 served /index.html in 42 ms"
    p = compile_pattern("([a-z]+)-([0-9]+) served ([^ ]+) in ([0-9]+) ms")
    py = re.compile(r"([a-z]+)-([0-9]+) served ([^ ]+) in ([0-9]+) ms")
    long_p = compile_pattern("(.*)x(.*)")
    long_text = "a" * 250 + "x" + "b" * 250
    fmt = compile_format("%-10s|%08x|%+5d|%#o\n")
    return {
        "match_test_us": _us(lambda: p.search(log), 200_000),
        "posix_spans_short_us": _us(lambda: p.spans(log), 2_000),
        "posix_spans_500_chars_ms": round(_us(lambda: long_p.spans(long_text), 5) / 1000, 2),
        "python_leftmost_first_spans_us": _us(lambda: py.search(log).span(4), 200_000),
        "printf_generic_us": _us(lambda: fmt("worker", 48879, 42, 8), 200_000),
    }


def main() -> int:
    report: dict[str, object] = {"numbers": measure()}
    if BASELINE.exists():
        base = json.loads(BASELINE.read_text())["numbers"]
        report["ratio_to_baseline"] = {k: round(v / base[k], 2) for k, v in report["numbers"].items()  # type: ignore[union-attr]
                                       if base.get(k)}
    print(json.dumps(report, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
