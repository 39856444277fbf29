"""Start a private pystapd in the foreground: for tests, benchmarks and the demo.

Writes a temporary configuration (socket, blessed directory, signer store,
log file, privilege groups by gid or name, limits) and runs
``python -m pystap.cli.stapd --config … --foreground`` as a child process,
returning once its socket exists.  The daemon's output goes to a file, never
to a pipe nobody reads (a full pipe would block the daemon's logging).
Needs root, like pystapd itself.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ForegroundDaemon:
    config: Path
    socket: Path
    log: Path
    output: Path
    proc: subprocess.Popen[bytes] = field(repr=False)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def _toml_value(value: int | float | str | Path) -> str:
    if isinstance(value, bool):
        raise TypeError("booleans are not configuration values")
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if any(c in text for c in '"\\\n'):
        raise ValueError(f"unsupported character in configuration value {text!r}")
    return f'"{text}"'


def write_config(
    path: Path,
    *,
    socket: Path,
    blessed_dir: Path,
    signer_store: Path,
    log_file: Path | None = None,
    groups: Mapping[str, int | str] | None = None,
    limits: Mapping[str, int | float] | None = None,
    reap_interval: float | None = None,
) -> Path:
    """Write a pystapd configuration file (see :mod:`pystap.loader.config`)."""
    lines = [f"socket = {_toml_value(socket)}", f"blessed_dir = {_toml_value(blessed_dir)}",
             f"signer_store = {_toml_value(signer_store)}"]
    if log_file is not None:
        lines.append(f"log_file = {_toml_value(log_file)}")
    if reap_interval is not None:
        lines.append(f"reap_interval = {_toml_value(float(reap_interval))}")
    for table, values in (("groups", groups), ("limits", limits)):
        if values:
            lines.append(f"[{table}]")
            lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def start(config: Path, socket: Path, *, output: Path, log: Path, timeout: float = 15.0) -> ForegroundDaemon:
    """Run pystapd on ``config`` and wait until it listens on ``socket``."""
    with open(output, "ab") as out:
        command = [sys.executable, "-m", "pystap.cli.stapd", "--config", str(config), "--foreground"]
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    daemon = ForegroundDaemon(config, socket, log, output, proc)
    deadline = time.monotonic() + timeout
    while not socket.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            daemon.stop()
            raise RuntimeError(f"pystapd did not start: {output.read_text(errors='replace')[-2000:]}")
        time.sleep(0.02)
    return daemon


@contextlib.contextmanager
def running(base: Path, **config: object) -> Iterator[ForegroundDaemon]:
    """``with running(tmpdir, blessed_dir=…, signer_store=…, groups=…) as d:`` — socket, log and
    output go under ``base``; the daemon is stopped on exit, whatever happens."""
    sock = Path(str(config.pop("socket", base / "pystapd.sock")))
    log = Path(str(config.pop("log_file", base / "pystapd.log")))
    cfg = write_config(base / "pystapd.toml", socket=sock, log_file=log, **config)  # type: ignore[arg-type]
    daemon = start(cfg, sock, output=base / "pystapd.out", log=log)
    try:
        yield daemon
    finally:
        daemon.stop()
