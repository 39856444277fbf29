"""End-to-end fixtures: a real pystapd, real users (setpriv), real kernel probes on gcc-built programs.

Nothing here creates accounts: the callers are high uids/gids given to
``setpriv`` and the daemon's configuration names the privilege groups by gid
(override with ``PYSTAP_IT_GIDS=stapusr,stapsys,stapdev`` and
``PYSTAP_IT_UIDS=user,other``).  Every file lives under one temporary
directory the test uids can traverse; programs are private copies built by
gcc, never a shared system binary.

The ``tracefs`` fixture mounts tracefs on a temporary directory (every mount
shows the one kernel state) so the tests can see what a daemon armed, and
every fixture that starts something stops it in a finalizer and checks that
nothing of it is left in tracefs.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pystap import signing
from pystap.kernel import reaper
from pystap.kernel.tracefs import Tracefs, mount_tracefs, unmount
from pystap.loader import foreground
from pystap.signing import trust_admin

HERE = Path(__file__).resolve().parent
TARGET_C = HERE.parent / "kernel" / "target.c"


def _ids(var: str, default: tuple[int, ...]) -> tuple[int, ...]:
    value = os.environ.get(var)
    return tuple(int(x) for x in value.split(",")) if value else default


STAPUSR_GID, STAPSYS_GID, STAPDEV_GID = _ids("PYSTAP_IT_GIDS", (41101, 41102, 41103))
USER_UID, OTHER_UID = _ids("PYSTAP_IT_UIDS", (40111, 40112))
USER_GID = 40110
GIDS = {"stapusr": STAPUSR_GID, "stapsys": STAPSYS_GID, "stapdev": STAPDEV_GID}
# caller -> (uid, gid, supplementary groups); None: root, not through setpriv
CALLERS: dict[str, tuple[int, int, list[int]] | None] = {
    "root": None,
    "stapdev": (USER_UID, USER_GID, [STAPDEV_GID, STAPUSR_GID]),
    "stapusr": (USER_UID, USER_GID, [STAPUSR_GID]),
    "other": (OTHER_UID, USER_GID, [USER_GID]),
}


def _tracefs_and_bpf() -> str | None:
    """Why this kernel cannot run the tests (None: it can)."""
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("gcc", "setpriv", "unshare"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    with open("/proc/filesystems", encoding="utf-8") as f:
        if not any(line.split()[-1:] == ["tracefs"] for line in f):
            return "kernel has no tracefs"
    from pystap.kernel import bpf, btf

    try:
        os.close(bpf.load_euid_gate(btf.cred_offsets(), OTHER_UID))
    except (OSError, btf.BtfError) as exc:
        return f"kernel refuses BPF programs ({exc})"
    return None


def setpriv(caller: str) -> list[str]:
    ids = CALLERS[caller]
    if ids is None:
        return []
    uid, gid, groups = ids
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--groups=" + ",".join(map(str, groups)),
            "--inh-caps=-all"]


@dataclass
class World:
    """Everything the tests share: directories, programs, the trusted signing key."""

    base: Path
    bin: Path
    modules: Path
    blessed: Path
    signers: Path
    home: Path
    key: object
    tracefs: Tracefs
    translated: dict[tuple[str, str], Path] = field(default_factory=dict)

    @property
    def target(self) -> Path:
        return self.bin / "target"

    @property
    def suid(self) -> Path:
        return self.bin / "suid"

    def env(self, socket: Path | None) -> dict[str, str]:
        env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(self.home),
               "XDG_CONFIG_HOME": str(self.home / ".config"), "XDG_CACHE_HOME": str(self.home / ".cache"),
               "LANG": "C.UTF-8", "PYSTAP_SYSCONFDIR": str(self.base / "etc")}
        env["PYSTAP_SOCKET"] = str(socket if socket is not None else self.base / "no-pystapd.sock")
        return env

    def translate(self, script: str, name: str, privilege: str = "stapdev") -> Path:
        """``pystap -p4`` (as root, with tracefs visible for kernel.trace fields), signed by the
        trusted signer; cached per (script, level)."""
        key = (script, privilege)
        if key in self.translated:
            return self.translated[key]
        code = ("import sys\nfrom pystap.kernel.tracefs import mount_tracefs\n"
                "mount_tracefs('/sys/kernel/tracing')\nfrom pystap.cli.stap import main\n"
                "sys.exit(main(sys.argv[1:]))\n")
        cmd = ["unshare", "-m", "--propagation", "private", sys.executable, "-c", code, "-p4", "-m", name,
               f"--privilege={privilege}", "-e", script]
        env = {**self.env(None), "HOME": str(self.base), "XDG_CACHE_HOME": str(self.base / "cache"),
               "XDG_CONFIG_HOME": str(self.base / "config")}
        out = subprocess.run(cmd, cwd=self.modules, env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        path = self.modules / f"{name}.stapmod"
        assert out.stdout.strip() == str(path), out.stdout
        path.chmod(0o644)
        signing.sign_module_file(path, self.key).chmod(0o644)
        self.translated[key] = path
        return path


@pytest.fixture(scope="session")
def world() -> Iterator[World]:
    why = _tracefs_and_bpf()
    if why is not None:
        pytest.skip(why)
    base = Path(tempfile.mkdtemp(prefix="pystap-it-", dir="/tmp"))
    mnt = base / "tracefs"
    mounted = False
    try:
        os.chmod(base, 0o755)
        dirs = {name: base / name for name in ("bin", "modules", "blessed", "signers", "home", "etc", "keys")}
        for d in dirs.values():
            d.mkdir(mode=0o755)
        os.chown(dirs["home"], USER_UID, USER_GID)
        subprocess.run(["gcc", "-O2", "-g", "-pthread", "-o", str(dirs["bin"] / "target"), str(TARGET_C)],
                       check=True, timeout=60)
        shutil.copy(dirs["bin"] / "target", dirs["bin"] / "suid")
        os.chmod(dirs["bin"] / "suid", 0o755 | stat.S_ISUID)
        key = signing.generate_signing_key(dirs["keys"] / "trusted", key_type="ed25519")
        trust_admin.add_certificate(dirs["signers"], key.certificate, owner_uid=0, signer=True)
        mnt.mkdir()
        mount_tracefs(str(mnt))
        mounted = True
        yield World(base, dirs["bin"], dirs["modules"], dirs["blessed"], dirs["signers"], dirs["home"], key,
                    Tracefs(str(mnt)))
    finally:
        if mounted:  # whatever a failed test left behind by a dead daemon (nothing, when all passed)
            reaper.reap(Tracefs(str(mnt)))
            unmount(str(mnt))
        shutil.rmtree(base, ignore_errors=True)


def armed(tfs: Tracefs, daemon_pid: int) -> list[str]:
    """Instances and uprobe groups of any session of the daemon (or private service) ``daemon_pid``."""
    found = [i for i in tfs.instances() if i.startswith("pystap-") and i.endswith(f"-{daemon_pid}")]
    found += sorted({g for g, _ in tfs.uprobe_groups() if g.startswith(f"stp_d{daemon_pid}s")})
    return found


def wait_for(predicate, timeout: float = 10.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


_SPAWNED: list[subprocess.Popen[str]] = []


def track(proc: subprocess.Popen[str]) -> subprocess.Popen[str]:
    """Register a process the test started: killed (with its group) after the test, pass or fail."""
    _SPAWNED.append(proc)
    return proc


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    yield
    while _SPAWNED:
        proc = _SPAWNED.pop()
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL) if os.getpgid(proc.pid) == proc.pid else proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def first_line(proc: subprocess.Popen[str], timeout: float = 20.0) -> str:
    """The first line of ``proc``'s stdout, or "" when none comes within ``timeout`` seconds."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline() if ready else ""


def perf_fds(pid: int) -> int:
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:[perf_event]":
                count += 1
    return count


@dataclass
class Service:
    """A running pystapd of the tests."""

    world: World
    handle: foreground.ForegroundDaemon
    base: Path

    @property
    def pid(self) -> int:
        return self.handle.proc.pid

    @property
    def socket(self) -> Path:
        return self.handle.socket

    def log(self) -> str:
        try:
            return self.handle.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def spawn(self, caller: str, module: Path, *args: str, local: bool = False,
              stdin: int | None = subprocess.DEVNULL) -> subprocess.Popen[str]:
        """``pystaprun ARGS MODULE`` as ``caller``; ``local``: root without the service."""
        cmd = [*setpriv(caller), sys.executable, "-m", "pystap.cli.staprun", *args, str(module)]
        return track(subprocess.Popen(cmd, env=self.world.env(None if local else self.socket),
                                      cwd=self.world.home, stdin=stdin, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, start_new_session=True))

    def run(self, caller: str, module: Path, *args: str, local: bool = False,
            timeout: float = 30) -> subprocess.CompletedProcess[str]:
        proc = self.spawn(caller, module, *args, local=local)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            raise AssertionError(f"pystaprun did not finish: {out!r} {err!r}\n{self.log()[-3000:]}") from None
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def start_service(world: World, name: str) -> Service:
    base = world.base / name
    base.mkdir(mode=0o755, exist_ok=True)
    sock = base / "pystapd.sock"
    log = base / "pystapd.log"
    config = foreground.write_config(base / "pystapd.toml", socket=sock, blessed_dir=world.blessed,
                                     signer_store=world.signers, log_file=log, groups=GIDS,
                                     reap_interval=0.5)
    handle = foreground.start(config, sock, output=base / "pystapd.out", log=log)
    return Service(world, handle, base)


def stop_service(service: Service) -> None:
    """SIGTERM; then nothing of its sessions may be armed (reaped if it was, and the test fails)."""
    status = service.handle.stop()
    left = armed(service.world.tracefs, service.pid)
    if left:
        reaper.reap(service.world.tracefs)
        pytest.fail(f"pystapd (exit {status}) left kernel objects armed: {left}")


@pytest.fixture(scope="module")
def pystapd(world: World) -> Iterator[Service]:
    service = start_service(world, f"svc-{os.getpid()}-{time.monotonic_ns()}")
    try:
        yield service
    finally:
        stop_service(service)
