"""pystapd: time from connect to "module started", and sessions/s with 8 concurrent clients.

Starts a real pystapd (foreground, temporary socket, signer store and
configuration; needs root), trusts a fresh ML-DSA-65 signer, signs a small
stapusr module and runs the clients as an unprivileged stapusr member
(``setpriv``), so every session takes the full path: peer credentials, fd
passing, one read, signature verification, ladder, manifest check, grant,
"started", "exit".  "Module started" is the moment the client has the grant,
has checked and parsed the module and has told pystapd it started (the
runtime's own start-up is measured by the runtime's benchmark).

Prints one JSON object with the goal (< 50 ms), the numbers and their ratio
to ``baseline/loader.json`` (> 1 means slower); ``--write-baseline`` stores
the current numbers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASELINE = HERE / "baseline" / "loader.json"
GOAL_START_MS = 50.0
UID, GID, STAPUSR = 40201, 40200, 41101
CLIENTS = 8
LATENCY_RUNS = 200
THROUGHPUT_SECONDS = 3.0

_CLIENT = r"""
import json, sys, time
from pathlib import Path
from pystap.loader import protocol
from pystap.loader.client import request_grant

module, sock, mode, amount = sys.argv[1], Path(sys.argv[2]), sys.argv[3], float(sys.argv[4])

def one():
    grant = request_grant(module, sock)
    protocol.send_json(grant.conn, protocol.FrameType.CONTROL, {"op": "started"})
    grant.close(0)

one()  # warm-up (imports, first connection)
if mode == "latency":
    samples = []
    for _ in range(int(amount)):
        t = time.perf_counter()
        one()
        samples.append((time.perf_counter() - t) * 1000)
    print(json.dumps(samples))
else:
    count, end = 0, time.monotonic() + amount
    while time.monotonic() < end:
        one()
        count += 1
    print(json.dumps(count))
"""


def _as_user(*args: str) -> list[str]:
    return ["setpriv", f"--reuid={UID}", f"--regid={GID}", f"--groups={STAPUSR}", "--inh-caps=-all",
            sys.executable, "-c", _CLIENT, *args]


def _setup(base: Path) -> tuple[Path, Path, subprocess.Popen]:
    from pystap import modfile, signing
    from pystap.signing import trust_admin

    signers, blessed, home = base / "signers", base / "blessed", base / "home"
    for d in (signers, blessed, home):
        d.mkdir(mode=0o755)
    os.chown(home, UID, GID)
    key = signing.generate_signing_key(base / "key", key_type="ml-dsa-65")
    trust_admin.add_certificate(signers, key.certificate, owner_uid=0, signer=True)
    module = modfile.dump(modfile.Module(
        name="stap_bench", translator="pystap bench", privilege="stapusr", release=os.uname().release,
        arch=os.uname().machine, script_digest="ab" * 32,
        probes=(modfile.ProbeEntry(id=0, family="begin", point="begin", handler="probe_0"),),
        code='def probe_0(c):\n    _b_log(c, "hello")\n    _b_exit(c)\n',
    ))
    path = home / "bench.stapmod"
    path.write_bytes(module)
    Path(str(path) + ".sgn").write_bytes(signing.sign_module(module, key))
    sock = base / "pystapd.sock"
    config = base / "pystapd.toml"
    config.write_text(
        f'socket = "{sock}"\nblessed_dir = "{blessed}"\nsigner_store = "{signers}"\n'
        f'log_file = "{base / "pystapd.log"}"\n[groups]\nstapusr = {STAPUSR}\nstapsys = {STAPUSR + 1}\n'
        f"stapdev = {STAPUSR + 2}\n"
    )
    proc = subprocess.Popen([sys.executable, "-m", "pystap.cli.stapd", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("pystapd did not start")
        time.sleep(0.02)
    return path, sock, proc


def main(argv: list[str]) -> int:
    if os.geteuid() != 0:
        print(json.dumps({"error": "bench_loader needs root (it starts pystapd and uses setpriv)"}))
        return 1
    base = Path(tempfile.mkdtemp(prefix="pystap-bench-loader-", dir="/tmp"))
    os.chmod(base, 0o755)
    proc = None
    try:
        module, sock, proc = _setup(base)
        out = subprocess.run(_as_user(str(module), str(sock), "latency", str(LATENCY_RUNS)),
                             capture_output=True, text=True, check=True).stdout
        samples = sorted(json.loads(out))
        clients = [subprocess.Popen(_as_user(str(module), str(sock), "throughput", str(THROUGHPUT_SECONDS)),
                                    stdout=subprocess.PIPE, text=True) for _ in range(CLIENTS)]
        counts = [json.loads(c.communicate()[0]) for c in clients]
        results = {
            "connect_to_started_ms": {
                "median": round(statistics.median(samples), 3),
                "p90": round(samples[int(len(samples) * 0.9)], 3),
                "max": round(samples[-1], 3),
            },
            "sessions_per_s_8_clients": {"value": round(sum(counts) / THROUGHPUT_SECONDS, 1)},
        }
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)
        shutil.rmtree(base, ignore_errors=True)
    report: dict[str, object] = {
        "path": "stapusr member, ML-DSA-65 signed module passed by fd, through pystapd",
        "results": results,
        "goal_connect_to_started_ms": GOAL_START_MS,
        "goal_met": results["connect_to_started_ms"]["median"] < GOAL_START_MS,
        "cpus": os.cpu_count(),
    }
    if "--write-baseline" in argv:
        BASELINE.write_text(json.dumps({"results": results}, indent=2, sort_keys=True) + "\n")
    elif BASELINE.exists():
        base_results = json.loads(BASELINE.read_text())["results"]
        report["ratio_to_baseline"] = {
            "connect_to_started_median": round(
                results["connect_to_started_ms"]["median"]
                / base_results["connect_to_started_ms"]["median"], 2),
            "sessions_per_s_8_clients": round(
                results["sessions_per_s_8_clients"]["value"]
                / base_results["sessions_per_s_8_clients"]["value"], 2),
        }
    print(json.dumps(report, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
