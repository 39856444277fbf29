"""Runtime benchmarks: end-to-end ``pystap`` wall time and generated-handler throughput.

1. ``pystap -e 'probe begin { exit() }'`` as a whole process: cold (empty
   module cache, passes 1-5) and cached (passes 4-5 from the cache); medians;
   each also with ``--no-sign``, so the cost of pass 4's signature shows;
   and the signing step alone (fresh process, imports included).
2. Handler throughput: the module built from ``a[tid()] <<< n``-style code
   driven with synthetic event records, (a) calling the generated handler
   directly, (b) through ``Session.fire`` (what every event pays), (c)
   through the session's event loop with batches from an EventSource.  A
   cProfile summary of (b) shows where the time goes.

Prints one JSON object with the numbers and their ratio to
``baseline/runtime.json`` (>1 means slower than the baseline).
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASELINE = HERE / "baseline" / "runtime.json"
SCRIPT = "probe begin { exit() }"
HANDLER_SCRIPT = "global a; probe timer.s(3600) { a[tid()] <<< cpu() }"
EVENTS = 200_000
RUNS = 7


def _pystap() -> list[str]:
    return [sys.executable, "-m", "pystap.cli.stap"]


def _timed(args: list[str], env: dict[str, str], bucket: list[float]) -> None:
    t0 = time.perf_counter()
    subprocess.run([*_pystap(), *args, "-e", SCRIPT], env=env, check=True, capture_output=True)
    bucket.append(time.perf_counter() - t0)


def wall_times() -> dict[str, float]:
    """Cold (empty module cache) and cached runs, signed (the default) and with ``--no-sign``.

    Every module is signed at pass 4 with the user's key; here a private
    configuration directory holds one key made before timing (the steady
    state), and ``cold_new_key_s`` is a cold run that first creates the key
    (once per user).  The difference signed - unsigned is what signing costs.
    """
    buckets: dict[str, list[float]] = {k: [] for k in ("cold_s", "cached_s", "cold_unsigned_s",
                                                       "cached_unsigned_s", "cold_new_key_s")}
    with tempfile.TemporaryDirectory() as config:
        base = {**os.environ, "XDG_CONFIG_HOME": config}
        subprocess.run([*_pystap(), "-p4", "-e", SCRIPT], check=True, capture_output=True,
                       env={**base, "XDG_CACHE_HOME": config})  # the steady state: the key exists
        for _ in range(RUNS):
            for flags, cold, cached in (([], "cold_s", "cached_s"),
                                        (["--no-sign"], "cold_unsigned_s", "cached_unsigned_s")):
                with tempfile.TemporaryDirectory() as cache:
                    env = {**base, "XDG_CACHE_HOME": cache}
                    _timed(flags, env, buckets[cold])
                    _timed(flags, env, buckets[cached])
            with tempfile.TemporaryDirectory() as fresh:
                _timed([], {**os.environ, "XDG_CONFIG_HOME": fresh, "XDG_CACHE_HOME": fresh},
                       buckets["cold_new_key_s"])
    result = {k: round(statistics.median(v), 3) for k, v in buckets.items()}
    result["signing_cost_cold_s"] = round(result["cold_s"] - result["cold_unsigned_s"], 3)
    result["signing_cost_cached_s"] = round(result["cached_s"] - result["cached_unsigned_s"], 3)
    return result


_SIGN_STEP = """
import sys, time
from pathlib import Path
import pystap.translate.driver  # what every pystap run with passes 3-5 has imported already
t0 = time.perf_counter()
from pystap.translate import signature
signature.ensure_signature(Path(sys.argv[1]), signature.SignSettings(), sys.stderr)
print((time.perf_counter() - t0) * 1000)
"""


def signing_step_ms() -> dict[str, float]:
    """Pass 4's signing step alone, each sample in a fresh process (imports included), medians in ms.

    ``sign_ms``: a new module (loads the key, signs, writes the .sgn: what a
    cold run adds); ``cached_check_ms``: a cached module whose .sgn is still
    good (what a cached run adds).  Less noisy than the whole-process
    difference on a shared machine.
    """
    samples: dict[str, list[float]] = {"sign_ms": [], "cached_check_ms": []}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "XDG_CONFIG_HOME": tmp, "XDG_CACHE_HOME": tmp}
        out = subprocess.run([*_pystap(), "-p4", "-e", SCRIPT], env=env, check=True, capture_output=True,
                             text=True).stdout
        module = out.strip()
        for _ in range(RUNS):
            for name in ("sign_ms", "cached_check_ms"):
                if name == "sign_ms":
                    Path(f"{module}.sgn").unlink()
                took = subprocess.run([sys.executable, "-c", _SIGN_STEP, module], env=env, check=True,
                                      capture_output=True, text=True).stdout
                samples[name].append(float(took))
    return {k: round(statistics.median(v), 1) for k, v in samples.items()}


def build_session():
    from pystap.cli.stap import CliOptions, Reporter, run_pass1, run_pass2
    from pystap.runtime.options import RunOptions
    from pystap.runtime.session import Session
    from pystap.translate import build

    o = CliOptions(script=HANDLER_SCRIPT, no_warnings=True)
    rep = Reporter(io.StringIO(), {})
    module, _ = build(run_pass2(o, run_pass1(o, io.StringIO(), rep), rep), None)
    session = Session(module, RunOptions(stdout=io.BytesIO(), stderr=io.BytesIO(), handle_signals=False))
    session.load()
    session.mypid = os.getpid()
    probe = next(p for p in session.probes if p.family == "timer")
    return session, probe


class Events:
    def __init__(self, probe_id: int, total: int, batch: int = 1000) -> None:
        self.r, self.w = os.pipe()
        os.write(self.w, b"x")
        self.left = total
        self.batch = [(probe_id, {"tid": 1000 + i % 64, "pid": 1000, "cpu": i % 2}) for i in range(batch)]

    def fileno(self) -> int:
        return self.r

    def read_batch(self):
        if self.left <= 0:
            return []
        self.left -= len(self.batch)
        return self.batch


def throughput() -> dict[str, object]:
    session, probe = build_session()
    c = session.ctx
    handler = probe.handler
    fields = [{"tid": 1000 + i % 64, "pid": 1000, "cpu": i % 2} for i in range(EVENTS)]
    t0 = time.perf_counter()
    for f in fields:
        c.act = 10000
        c.tid = f["tid"]
        handler(c)
    direct = EVENTS / (time.perf_counter() - t0)

    session, probe = build_session()
    fire = session.fire
    t0 = time.perf_counter()
    for f in fields:
        fire(probe, f)
    dispatched = EVENTS / (time.perf_counter() - t0)

    session, probe = build_session()
    events = Events(probe.id, EVENTS)
    session.events = events
    session.state = "running"
    t0 = time.perf_counter()


    def stop_when_drained(orig=events.read_batch):
        batch = orig()
        if not batch:
            session.request_exit()
        return batch

    events.read_batch = stop_when_drained  # type: ignore[method-assign]
    session._loop([])
    looped = EVENTS / (time.perf_counter() - t0)
    os.close(events.r)
    os.close(events.w)


    session, probe = build_session()
    prof = cProfile.Profile()
    prof.enable()
    for f in fields[:50_000]:
        session.fire(probe, f)
    prof.disable()
    stats = pstats.Stats(prof)
    total = sum(v[2] for v in stats.stats.values()) or 1.0  # type: ignore[attr-defined]
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:6]  # type: ignore[attr-defined]
    profile = [{"function": f"{Path(k[0]).name}:{k[2]}", "share": round(v[2] / total, 2)} for k, v in rows]
    return {
        "events": EVENTS,
        "handler_direct_events_per_s": int(direct),
        "session_fire_events_per_s": int(dispatched),
        "event_loop_events_per_s": int(looped),
        "profile_session_fire_tottime_share": profile,
    }


def main() -> int:
    report: dict[str, object] = {"end_to_end": wall_times(), "signing_step": signing_step_ms(),
                                  "throughput": throughput()}
    report["goals"] = {"cold_s": 0.5, "cached_s": 0.25, "events_per_s": 300_000}
    if BASELINE.exists():
        base = json.loads(BASELINE.read_text())
        ratios = {}
        for k in ("cold_s", "cached_s", "cold_unsigned_s", "cached_unsigned_s", "cold_new_key_s"):
            if k in base["end_to_end"]:
                ratios[k] = round(report["end_to_end"][k] / base["end_to_end"][k], 2)  # type: ignore[index]
        for k in ("sign_ms", "cached_check_ms"):
            if k in base.get("signing_step", {}):
                ratios[k] = round(report["signing_step"][k] / base["signing_step"][k], 2)  # type: ignore[index]
        for k in ("handler_direct_events_per_s", "session_fire_events_per_s", "event_loop_events_per_s"):
            ratios[k] = round(base["throughput"][k] / report["throughput"][k], 2)  # type: ignore[index]
        report["ratio_to_baseline"] = ratios
    print(json.dumps(report, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
