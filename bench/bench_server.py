"""Compile server: round-trip time of a remote ``pystap -p4`` on hello world vs a local one.

Starts a real ``pystap-server`` (as an unprivileged uid with ``setpriv``, on
127.0.0.1, port 0, its own TLS identity and signing key in a temporary
directory; needs root), trusts its TLS certificate in a temporary client
configuration and times whole processes (wall clock, median of RUNS):

* ``local_cold_ms``: ``pystap -p4 --disable-cache -m hello`` (passes 1-4 and
  the signature with the user's own key, no cache: what the server does);
* ``local_warm_ms``: ``pystap -p4`` answered from the module cache (``-m``
  bypasses the cache, so it is not given here);
* ``remote_ms``: ``pystap -p4 --use-server=… -m hello`` (TLS handshake,
  pinning, request, translator child on the server, signature, response);
* ``server_ms``: the server's own duration per request (its audit log);
* ``ratio_remote_to_local_cold``: remote median / local cold median.

Prints one JSON object with the numbers and their ratio to
``baseline/server.json`` (> 1 means slower); ``--write-baseline`` stores the
current numbers.  Exit status is 0 whenever the measurement ran.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASELINE = HERE / "baseline" / "server.json"
HELLO = 'probe begin { printf("hello %s\\n", "world"); exit() }'
RUNS = 9
SERVER_UID = 40202
READY = re.compile(r"listening on \S+ port (\d+)")


def _median_ms(cmd: list[str], env: dict[str, str], cwd: Path, runs: int = RUNS) -> float:
    subprocess.run(cmd, env=env, cwd=cwd, check=True, capture_output=True)  # warm-up, and a check
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(cmd, env=env, cwd=cwd, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 1)


def _start_server(base: Path) -> tuple[subprocess.Popen, int]:
    home = base / "server"
    home.mkdir(mode=0o700)
    os.chown(home, SERVER_UID, SERVER_UID)
    out = base / "server.out"
    cmd = ["setpriv", f"--reuid={SERVER_UID}", f"--regid={SERVER_UID}", "--clear-groups", sys.executable,
           "-m", "pystap.cli.server", "--listen", "127.0.0.1", "--port", "0",
           "--log", str(home / "audit.log")]
    with open(out, "wb") as sink:
        proc = subprocess.Popen(cmd, env={"PATH": "/usr/bin:/bin", "HOME": str(home), "TMPDIR": str(home)},
                                stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while not (match := READY.search(out.read_text(errors="replace"))):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"pystap-server did not start: {out.read_text(errors='replace')}")
        time.sleep(0.02)
    return proc, int(match.group(1))


def main(argv: list[str]) -> int:
    if os.geteuid() != 0:
        print(json.dumps({"error": "bench_server needs root (it starts pystap-server with setpriv)"}))
        return 1
    from pystap.signing import certificates, trust_admin

    base = Path(tempfile.mkdtemp(prefix="pystap-bench-server-", dir="/tmp"))
    os.chmod(base, 0o755)
    proc = None
    try:
        proc, port = _start_server(base)
        cert = certificates.load_certificate(
            (base / "server" / ".config" / "pystap" / "server" / "ssl" / "tls-cert.pem").read_bytes())
        config, cwd = base / "client-config", base / "cwd"
        cwd.mkdir()
        trust_admin.add_certificate(config / "pystap" / "ssl" / "client", cert, owner_uid=0, signer=False)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(base), "XDG_CONFIG_HOME": str(config),
               "XDG_CACHE_HOME": str(base / "cache"), "PYSTAP_SYSCONFDIR": str(base / "etc"),
               "LANG": "C.UTF-8"}
        stap = [sys.executable, "-m", "pystap.cli.stap"]
        remote = f"--use-server=127.0.0.1:{port}"
        cold = "--disable-cache"
        results = {
            "local_cold_ms": _median_ms([*stap, "-p4", cold, "-m", "hello", "-e", HELLO], env, cwd),
            "local_warm_ms": _median_ms([*stap, "-p4", "-e", HELLO], env, cwd),
            "remote_ms": _median_ms([*stap, "-p4", remote, "-m", "hello", "-e", HELLO], env, cwd),
        }
        durations = [int(m) for m in re.findall(r": request .* duration_ms=(\d+)",
                                                 (base / "server" / "audit.log").read_text())]
        results["server_ms"] = float(statistics.median(durations)) if durations else -1.0
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        shutil.rmtree(base, ignore_errors=True)
    report: dict[str, object] = {
        "runs": RUNS,
        "results": results,
        "ratio_remote_to_local_cold": round(results["remote_ms"] / results["local_cold_ms"], 2),
    }
    if "--write-baseline" in argv:
        BASELINE.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    elif BASELINE.exists():
        old = json.loads(BASELINE.read_text())["results"]
        report["vs_baseline"] = {k: round(v / old[k], 2) for k, v in results.items() if old.get(k)}
    print(json.dumps(report, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
