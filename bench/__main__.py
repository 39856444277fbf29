"""Run every benchmark in this folder and print its JSON report.

Each ``bench_*.py`` is a standalone script that measures one part, prints a
JSON object (its own comparison with ``baseline/<name>.json`` and with the
peer where one exists, as ratios) and exits 0.  This runner only runs them
one after another (benchmarks on a 2-core machine must not overlap) and
collects the reports, so ``make bench`` is one command.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    wanted = set(argv)
    reports: dict[str, object] = {}
    status = 0
    for script in sorted(HERE.glob("bench_*.py")):
        name = script.stem.removeprefix("bench_")
        if wanted and name not in wanted:
            continue
        started = time.monotonic()
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=False)
        elapsed = round(time.monotonic() - started, 1)
        if proc.returncode != 0:
            status = 1
            reports[name] = {"error": proc.stderr.strip().splitlines()[-5:], "seconds": elapsed}
            continue
        try:
            reports[name] = json.loads(proc.stdout)
        except json.JSONDecodeError:
            reports[name] = {"output": proc.stdout.strip().splitlines()[-20:]}
        print(f"bench {name}: done in {elapsed}s", file=sys.stderr)
    print(json.dumps(reports, indent=2, sort_keys=True))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
