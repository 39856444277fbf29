"""Pass 1-2 speed: ``pystap -p2`` on hello world against ``stap -p2``, and parse throughput.

Prints one JSON object:

* ``hello_ms``: medians (whole process, wall clock) of ``stap -p2`` (Debian's
  systemtap with a stand-in kernel tree, as ``stap`` needs one even for
  pass 2), ``pystap -p2`` cold (``--disable-cache``: no result cache, no
  tapset index) and warm (the second identical run, answered from the
  ``-p2`` result cache);
* ``ratio_*``: pystap time / stap time (goal: warm <= 1/3);
* ``parse``: lines per second parsing a generated 5,000-line script, and
  the time pass 2 takes on it (in-process, median of three);
* ``vs_baseline``: each number divided by ``baseline/p2.json`` (``> 1`` is slower).

Exit status is 0 whenever the measurement ran; the comparison is data.
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

HERE = Path(__file__).resolve().parent
HELLO = 'probe begin { printf("hello %s\\n", "world"); exit() }'
RUNS = 9


def _median_ms(cmd: list[str], env: dict[str, str], runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
        times.append(time.perf_counter() - t)
    return round(statistics.median(times) * 1000, 1)


def _kernel_standin(root: Path) -> Path:
    """The minimal build-tree stand-in ``stap`` needs for passes 1-2."""
    k = root / "kernel"
    (k / "include" / "config").mkdir(parents=True)
    config = b""
    try:
        with gzip.open("/proc/config.gz") as f:
            config = f.read()
    except OSError:
        pass
    (k / ".config").write_bytes(config)
    release = os.uname().release
    (k / "Makefile").write_text(f"KERNELRELEASE={release}\n")
    (k / "include" / "config" / "kernel.release").write_text(release + "\n")
    (k / "Module.symvers").write_text("")
    return k


def _generated_script(lines: int) -> str:
    out = ["global counts, total, names[100]"]
    i = 0
    while len(out) < lines - 4:
        out.append(f"function f{i}(x, s) {{")
        out.append(f"  if (x > {i}) {{ counts[s, x] <<< x * 2 + {i}; total += strlen(s) }}")
        out.append(f'  else {{ names[x % 100] = sprintf("%d-%s", x, s) . "{i}" }}')
        out.append("  foreach ([k, v] in counts- limit 3) { total += @count(counts[k, v]) }")
        out.append(f"  return x + {i}")
        out.append("}")
        i += 1
    calls = " + ".join(f'f{j}({j}, "a")' for j in range(min(i, 50)))
    out.append(f'probe timer.ms(100) {{ printf("%d\\n", {calls}) }}')
    out.append("probe end { println(total) }")
    return "\n".join(out) + "\n"


def _parse_throughput() -> dict[str, float]:
    from pystap.lang.context import ParseContext
    from pystap.lang.elaborate import ElabOptions, elaborate
    from pystap.lang.parser import parse_file
    from pystap.tapset import loader

    text = _generated_script(5000)
    nlines = text.count("\n")
    parse_times, elab_times = [], []
    for _ in range(3):
        ctx = ParseContext()
        lib = loader.load_library(ctx, (), None, use_cache=False)
        t = time.perf_counter()
        user = parse_file(text, "gen.stp", ctx)
        parse_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        elaborate([user, *lib], ElabOptions(suppress_warnings=True))
        elab_times.append(time.perf_counter() - t)
    p = statistics.median(parse_times)
    return {
        "lines": nlines,
        "parse_lines_per_s": round(nlines / p),
        "parse_ms": round(p * 1000, 1),
        "elaborate_ms": round(statistics.median(elab_times) * 1000, 1),
    }


def _library_index(root: Path) -> dict[str, float]:
    """A 5,000-line ``-I`` library: parse everything vs the index-selected files."""
    from pystap.lang.context import ParseContext
    from pystap.tapset import loader

    lib = root / "biglib"
    lib.mkdir()
    for i in range(50):
        body = "".join(
            f"function lib{i}_f{j}(x) {{ if (x > {j}) return x * {j} + strlen(sprint(x)); return {i} }}\n"
            for j in range(100)
        )
        (lib / f"lib{i}.stp").write_text(body)
    words = loader.script_words('probe begin { printf("%d\\n", lib3_f4(1)); exit() }')
    loader.load_library(ParseContext(), [str(lib)], None)  # builds the index

    def med(selected: set[str] | None, cache: bool) -> float:
        times = []
        for _ in range(3):
            t = time.perf_counter()
            loader.load_library(ParseContext(), [str(lib)], selected, use_cache=cache)
            times.append(time.perf_counter() - t)
        return round(statistics.median(times) * 1000, 1)

    return {"parse_all_ms": med(None, False), "index_selected_ms": med(words, True)}


def main() -> int:
    report: dict[str, object] = {}
    pystap = [sys.executable, "-m", "pystap.cli.stap"]
    exe = shutil.which("pystap", path=os.path.dirname(sys.executable))
    if exe:
        pystap = [exe]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = dict(os.environ, XDG_CACHE_HOME=str(root / "cache"))
        hello: dict[str, float | None] = {}
        hello["pystap_cold"] = _median_ms([*pystap, "--disable-cache", "-p2", "-e", HELLO], env)
        subprocess.run([*pystap, "-p2", "-e", HELLO], capture_output=True, env=env, check=False)
        hello["pystap_warm"] = _median_ms([*pystap, "-p2", "-e", HELLO], env)
        stap = shutil.which("stap")
        hello["stap"] = None
        if stap:
            k = _kernel_standin(root)
            probe = subprocess.run(
                [stap, "-r", str(k), "-p2", "-e", HELLO], capture_output=True, env=env, check=False
            )
            if probe.returncode == 0:
                hello["stap"] = _median_ms([stap, "-r", str(k), "-p2", "-e", HELLO], env)
        report["hello_ms"] = hello
        if hello["stap"]:
            report["ratio_cold"] = round(hello["pystap_cold"] / hello["stap"], 3)  # type: ignore[operator]
            report["ratio_warm"] = round(hello["pystap_warm"] / hello["stap"], 3)  # type: ignore[operator]
            report["goal_warm_at_most"] = round(1 / 3, 3)
    report["parse"] = _parse_throughput()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_CACHE_HOME"] = tmp
        report["library_index"] = _library_index(Path(tmp))
    report["load_average"] = os.getloadavg()[0]
    baseline_file = HERE / "baseline" / "p2.json"
    try:
        baseline = json.loads(baseline_file.read_text())
    except (OSError, ValueError):
        baseline = None
    if isinstance(baseline, dict):
        cmp: dict[str, float] = {}
        for k in ("pystap_cold", "pystap_warm"):
            b = baseline.get("hello_ms", {}).get(k)
            if b:
                cmp[k] = round(hello[k] / b, 3)  # type: ignore[operator]
        b = baseline.get("parse", {}).get("parse_lines_per_s")
        if b:
            cmp["parse_lines_per_s"] = round(b / report["parse"]["parse_lines_per_s"], 3)  # type: ignore[index]
        report["vs_baseline"] = cmp
    print(json.dumps(report, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
