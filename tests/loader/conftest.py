"""A real pystapd on a temporary socket, with temporary groups, signers and blessed directory.

No accounts are created: callers are high uids/gids given to ``setpriv``, and
the daemon's configuration names the privilege groups by gid.  Everything
lives under one temporary directory that the test uids can reach.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from pystap import modfile
from pystap.loader import foreground

USER_UID = 40101
USER_GID = 40100
GIDS = {"stapusr": 41001, "stapsys": 41002, "stapdev": 41003}
# caller → (uid, primary gid, supplementary gids)
CALLERS = {
    "root": (0, 0, []),
    "stapdev": (USER_UID, USER_GID, [GIDS["stapdev"], GIDS["stapusr"]]),
    "stapsys": (USER_UID, USER_GID, [GIDS["stapsys"], GIDS["stapusr"]]),
    "stapusr": (USER_UID, USER_GID, [GIDS["stapusr"]]),
    "nogroup": (USER_UID, USER_GID, [USER_GID]),
}

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="pystapd and setpriv need root")


def make_module(level: str = "stapusr", *, name: str = "m", code: str | None = None,
                probes: tuple[modfile.ProbeEntry, ...] | None = None) -> bytes:
    if probes is None:
        probes = (modfile.ProbeEntry(id=0, family="begin", point="begin", handler="probe_0", params={}),)
    return modfile.dump(modfile.Module(
        name=name, translator="pystap test", privilege=level, release=os.uname().release,
        arch=os.uname().machine, script_digest="0" * 64, probes=probes,
        code=code if code is not None else f'def probe_0(c):\n    _b_log(c, "running {level}")\n    _b_exit(c)\n',
    ))


@dataclass
class Daemon:
    base: Path
    socket: Path
    config: Path
    blessed: Path
    signers: Path
    home: Path
    log: Path
    proc: subprocess.Popen

    def user_env(self) -> dict[str, str]:
        return {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_CACHE_HOME": str(self.home / ".cache"),
            "PYSTAP_SOCKET": str(self.socket),
            "LANG": "C.UTF-8",
        }

    def run_as(self, caller: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run ``pystaprun ARGS`` as ``caller`` (see CALLERS) with a clean environment."""
        uid, gid, groups = CALLERS[caller]
        cmd = [sys.executable, "-m", "pystap.cli.staprun", *args]
        if caller != "root":
            cmd = ["setpriv", f"--reuid={uid}", f"--regid={gid}",
                   "--groups=" + ",".join(str(g) for g in groups), "--inh-caps=-all", *cmd]
        return subprocess.run(cmd, env=self.user_env(), cwd=self.home, capture_output=True, text=True,
                              timeout=timeout, check=False)

    def status(self) -> dict:
        from pystap.loader import protocol

        deadline = time.monotonic() + 5
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(5)
            try:
                sock.connect(str(self.socket))
                protocol.send_json(sock, protocol.FrameType.REQUEST, {"op": "status"})
                frame = protocol.recv_frame(sock, {protocol.FrameType.INFO: 65536, protocol.FrameType.ERROR: 65536})
            finally:
                sock.close()
            if frame.type is protocol.FrameType.INFO:
                return frame.json()
            if time.monotonic() > deadline:  # busy for too long
                raise AssertionError(frame.json())
            time.sleep(0.05)

    def wait_idle(self, timeout: float = 5.0) -> dict:
        """Wait until the daemon holds no session (the status connection itself counts as one)."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if status["sessions"] == 0 and status["connections"] <= 1:
                return status
            if time.monotonic() > deadline:
                return status
            time.sleep(0.05)

    def fd_count(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))


def start_daemon(base: Path, limits: dict | None = None) -> Daemon:
    blessed = base / "blessed"
    signers = base / "signers"
    home = base / "home"
    for d in (blessed, signers, home):
        d.mkdir(mode=0o755)
    os.chown(home, USER_UID, USER_GID)
    (base / "run").mkdir(mode=0o755)
    sock = base / "run" / "pystapd.sock"
    log = base / "pystapd.log"
    config = foreground.write_config(base / "pystapd.toml", socket=sock, blessed_dir=blessed,
                                     signer_store=signers, log_file=log, groups=GIDS, limits=limits)
    handle = foreground.start(config, sock, output=base / "pystapd.out", log=log)
    return Daemon(base, sock, config, blessed, signers, home, log, handle.proc)


def stop_daemon(daemon: Daemon) -> None:
    if daemon.proc.poll() is None:
        daemon.proc.send_signal(signal.SIGTERM)
        try:
            daemon.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            daemon.proc.kill()
            daemon.proc.wait()


def make_base() -> Path:
    base = Path(tempfile.mkdtemp(prefix="pystapd-test-", dir="/tmp"))
    os.chmod(base, 0o755)
    return base


@pytest.fixture(scope="module")
def pystapd():
    if os.geteuid() != 0:
        pytest.skip("pystapd and setpriv need root")
    base = make_base()
    daemon = start_daemon(base)
    try:
        yield daemon
    finally:
        stop_daemon(daemon)
        assert not daemon.socket.exists(), "pystapd left its socket behind"
        shutil.rmtree(base, ignore_errors=True)
