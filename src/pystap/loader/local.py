"""Root without pystapd: a private, forked instance of the service for one session.

Root may run modules without the service (as SystemTap's root runs staprun
directly), but kernel probes need what the service does: a private tracefs
mount, the installer, an event stream, a teardown that survives the client's
death, and the reaper.  Rather than a second implementation, root's client
forks a private copy of the service and talks to it over a socketpair with
the very same protocol:

* the helper is a *grandchild* in its own session (``setsid``): Ctrl-C in
  the terminal reaches the client, which runs its end probes and says
  goodbye, never the helper in the middle of a teardown; and it is never
  left a zombie of a long-lived caller;
* it keeps only the socket (stdio on ``/dev/null``), so whoever reads the
  client's output sees its end when the client exits, not when the kernel
  has finished removing the probes (~60 ms per enabled uprobe);
* it authenticates its peer from the socket (``SO_PEERCRED``/pidfd: the
  client), decides on the module bytes it receives, installs, streams, and
  tears everything down when the client leaves or dies; a SIGKILLed helper's
  leftovers are reaped by the next helper or pystapd.

Forking (no exec) keeps the start cost to a few milliseconds; the helper is
single-threaded right after the fork, which entering a mount namespace needs.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import stat
from pathlib import Path
from typing import Any

from pystap.loader.config import DaemonConfig

log = logging.getLogger("pystapd")


def run_as_root(module: Any, path: os.PathLike[str] | str, options: Any) -> int:
    """``pystap`` pass 5 as root: handlers in this process; kernel probes through a service.

    A module whose probes all run in the client (begin/end/error/timer) runs
    right here, importing nothing of the loader or the kernel side (start-up
    time).  A module with kernel probes goes through pystapd when it is
    running, else through the private service; ``options`` is the
    ``RunOptions`` the caller built (output, streams, -c/-x, -T, -G, -v).
    """
    if all(p.family in ("begin", "end", "error", "never", "timer") for p in module.probes):
        from pystap import privilege
        from pystap.runtime import run_module

        return run_module(module, credentials=privilege.own_credentials(), options=options)
    from pystap.loader.client import RunRequest, run

    timeout = options.effective_timeout()
    req = RunRequest(module=os.fspath(path), globals=dict(options.globals),
                     output=None if options.output is None else Path(os.fspath(options.output)),
                     command=options.command, target_pid=options.target_pid, verbose=options.verbose,
                     timeout_ms=None if timeout is None else max(1, int(timeout * 1000)),
                     stdout=options.stdout)
    return run(req, err=options.stderr)


def private_service(cfg: DaemonConfig) -> socket.socket:
    """Fork root's private service for one session; the connected client end of its socket."""
    if os.geteuid() != 0:
        raise PermissionError(1, "the private kernel probe service is for root")
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the forked children
        status = 1
        try:
            ours.close()
            if os.fork() == 0:
                _helper(theirs, cfg)
                status = 0
            else:
                status = 0
        finally:
            os._exit(status)
    theirs.close()
    os.waitpid(pid, 0)
    ours.set_inheritable(False)
    return ours


def _isolate(keep: int, log_file: Any) -> None:
    """Own session, no terminal signals, stdio on /dev/null, no fd but ``keep`` (and a log file)."""
    os.setsid()
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU):
        signal.signal(sig, signal.SIG_IGN)
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    keep_fds = sorted({keep} | ({log_file} if isinstance(log_file, int) else set()))
    low = 3
    for fd in keep_fds:
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX") if os.sysconf("SC_OPEN_MAX") > 0 else 65536)


def _helper(conn: socket.socket, cfg: DaemonConfig) -> None:  # pragma: no cover - forked child
    log_fd = None
    if cfg.log_file is not None:
        try:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            log_fd = os.open(cfg.log_file, flags, 0o600)
            if not stat.S_ISREG(os.fstat(log_fd).st_mode):
                os.close(log_fd)
                log_fd = None
        except OSError:
            log_fd = None
    _isolate(conn.fileno(), log_fd)
    for handler in list(log.handlers):
        log.removeHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)
    if log_fd is not None:
        stream = os.fdopen(log_fd, "a", buffering=1, encoding="utf-8")
        handler: logging.Handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(asctime)s pystap-local[%(process)d]: %(message)s"))
    else:
        handler = logging.NullHandler()
    log.addHandler(handler)

    from pystap.loader.daemon import Daemon, start_kernel

    kernel, installer = start_kernel()
    try:
        Daemon(cfg, installer=installer).serve_one(conn)
    finally:
        if kernel is not None:
            kernel.close()
