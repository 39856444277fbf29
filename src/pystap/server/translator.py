"""The translator child: passes 1-4 of one request, always in a process of its own.

The server process never parses a script.  For each request it runs::

    python -I -m pystap.cli.stap --disable-cache --no-sign -r REL -a ARCH [server -I/-D]
           --client-options CLIENT-OPTIONS -- [script/NAME] ARGS

* ``-I`` (isolated mode): neither the working directory, which holds the
  client's files, nor ``PYTHON*`` variables change which code runs;
* ``--disable-cache``: nothing one request writes is read by another;
* ``--no-sign``: the translator never sees the server's signing key -- the
  server signs the module afterwards, once it has checked what was built;
* ``--client-options``: everything after it is the client's, checked with
  SystemTap's client table (:mod:`pystap.policy.options`), and pass 5 is
  never run;
* ``--`` ends the options, so no script argument is ever read as one.

The argv is a list (no shell).  The working directory is the request's
directory, stdin is ``/dev/null``, stdout and stderr go to files, and the
environment is built from an allowlist: the client's environment never
reaches the server (only validated locale variables, spec §2.6), and of the
server's own only ``PATH``.  Resource limits are set in the child before
``exec`` (CPU seconds, address space, file size, open files, no core file);
a wall-clock timeout kills the child's whole process group.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial

from pystap.policy.environment import server_locale
from pystap.server.protocol import Request, option_argv
from pystap.server.workdir import WorkDir

TRANSLATOR = (sys.executable, "-I", "-m", "pystap.cli.stap")
SERVER_ENV_ALLOWLIST = ("PATH",)
DEFAULT_PATH = "/usr/bin:/bin"
MIB = 1024 * 1024


@dataclass(frozen=True)
class ChildLimits:
    """Per-translation limits (``pystap-server`` options of the same names)."""

    cpu_seconds: int = 60
    memory_bytes: int = 1024 * MIB
    file_bytes: int = 64 * MIB
    open_files: int = 256
    wall_seconds: float = 120.0
    max_output: int = 1 * MIB


@dataclass(frozen=True)
class ChildResult:
    rc: int
    note: str | None = None  # why the child was stopped, for the client


def translator_argv(
    request: Request, server_options: Sequence[tuple[str, str | None]], release: str, arch: str
) -> list[str]:
    """The child's argv: the server's options first, then the client's after ``--client-options``."""
    argv = [*TRANSLATOR, "--disable-cache", "--no-sign", "-r", release, "-a", arch]
    argv += option_argv(server_options)
    argv.append("--client-options")
    argv += option_argv(request.options)
    argv.append("--")
    if request.script is not None:
        argv.append(request.script)
    argv += request.args
    return argv


def translator_env(
    server_env: Mapping[str, str], locale: Mapping[str, str], work: WorkDir
) -> tuple[dict[str, str], list[str]]:
    """The child's environment, and SystemTap's messages for locale entries that were refused."""
    env = {name: server_env[name] for name in SERVER_ENV_ALLOWLIST if name in server_env}
    env.setdefault("PATH", DEFAULT_PATH)
    env.update(
        HOME=str(work.home),
        XDG_CONFIG_HOME=str(work.home / ".config"),
        XDG_CACHE_HOME=str(work.home / ".cache"),
        TMPDIR=str(work.tmp),
    )
    accepted, problems = server_locale("".join(f"{k}={v}\n" for k, v in sorted(locale.items())))
    env.update(accepted)
    return env, problems


def _apply_limits(limits: ChildLimits) -> None:  # runs in the child between fork and exec
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


_SIGNALS = {
    signal.SIGXCPU: "the CPU time limit ({cpu} s) was exceeded",
    signal.SIGXFSZ: "the file size limit was exceeded",
    signal.SIGKILL: "it was killed",
    signal.SIGSEGV: "it crashed",
}


class Runner:
    """Runs translator children and remembers the live ones (so shutdown can stop them)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: set[subprocess.Popen[bytes]] = set()
        self._stopping = False

    def run(self, argv: list[str], env: dict[str, str], work: WorkDir, limits: ChildLimits) -> ChildResult:
        out_fd, err_fd = work.outputs()
        with self._lock:
            if self._stopping:
                return ChildResult(1, "the server is shutting down")
            proc = subprocess.Popen(
                argv, cwd=work.request, env=env, stdin=subprocess.DEVNULL, stdout=out_fd, stderr=err_fd,
                close_fds=True, start_new_session=True, preexec_fn=partial(_apply_limits, limits),
            )
            self._live.add(proc)
        note = None
        try:
            rc = proc.wait(timeout=limits.wall_seconds)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            rc = proc.wait()
            note = f"it did not finish within {limits.wall_seconds:g} seconds"
        finally:
            with self._lock:
                self._live.discard(proc)
        if rc < 0 and note is None:
            note = _SIGNALS.get(-rc, f"it was stopped by signal {-rc}").format(cpu=limits.cpu_seconds)
            if self._stopping:
                note = "the server is shutting down"
        return ChildResult(rc, note)

    def stop_all(self) -> None:
        """Kill every running translator (server shutdown); later runs are refused."""
        with self._lock:
            self._stopping = True
            live = list(self._live)
        for proc in live:
            _kill_group(proc)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    # The child leads its own session (start_new_session); while it is not reaped its
    # process group id is still its own, so this does not reach an unrelated process.
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
