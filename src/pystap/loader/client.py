"""pystaprun's engine: ask pystapd for a grant, then run the module's handlers as the user.

The client never decides anything itself (except root running without the
service, which takes the very same decision in-process): it opens the
module, passes the fd (and the ``.sgn``'s) to pystapd, prints the decision's
messages, and on a grant runs the handler code in this process, under the
user's own uid and with ``no_new_privs``, writing to the user's own
stdout/stderr/``-o`` file.  The call into the runtime is isolated in
:func:`_run_handlers`.
"""

from __future__ import annotations

import contextlib
import ctypes
import hmac
import os
import socket
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from pystap import eventwire, modfile, paths
from pystap.loader import config as config_mod
from pystap.loader import protocol
from pystap.loader.protocol import FrameType
from pystap.privilege import PR_ALL, PR_STAPDEV, PR_STAPSYS, PR_STAPUSR, contains, name

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
PR_SET_NO_NEW_PRIVS = 38
REQUEST_TIMEOUT = 30.0

MSG_NORMAL_USER = (
    "You are trying to run systemtap as a normal user.\n"
    'You should either be root, or be part of the group "stapusr" and possibly one of the groups '
    '"stapsys" or "stapdev".  [man stap]'
)
MSG_AUTO_STAPSYS = (
    "--privilege=stapsys was automatically selected because you are a member of the groups stapusr "
    "and stapsys.  [man stap]"
)
MSG_AUTO_STAPUSR = (
    "--privilege=stapusr was automatically selected because you are a member of the group stapusr.  "
    "[man stap]"
)


class LoadError(Exception):
    """The module may not (or cannot) be run; ``messages`` are printed, ``status`` is the exit code."""

    def __init__(self, messages: list[str] | tuple[str, ...], status: int = 1) -> None:
        super().__init__("\n".join(messages))
        self.messages = tuple(messages)
        self.status = status


@dataclass
class RunRequest:
    """What ``pystaprun`` was asked to do (staprun's options that make sense here)."""

    module: str
    globals: dict[str, str] = field(default_factory=dict)
    output: Path | None = None
    command: str | None = None
    target_pid: int | None = None
    verbose: int = 0
    timeout_ms: int | None = None
    socket: Path | None = None
    stdout: TextIO | None = None  # the module's output stream when not -o (default sys.stdout)


@dataclass
class Grant:
    module: modfile.Module
    module_bytes: bytes
    module_path: str
    credentials: int
    rule: str
    messages: tuple[str, ...]
    session: int | None = None
    conn: socket.socket | None = None
    warnings: tuple[str, ...] = ()

    def close(self, status: int | None = None, err: TextIO | None = None) -> None:
        """Say goodbye to pystapd (ends the session and frees what it holds).

        With ``err``, wait briefly for the session's summary and report the
        kernel events that were lost, as SystemTap reports its overflows.
        """
        if self.conn is None:
            return
        try:
            if status is not None:
                protocol.send_json(self.conn, FrameType.CONTROL, {"op": "exit", "status": status})
                if err is not None:
                    lost = _summary(self.conn)
                    if lost:
                        print(f"WARNING: {lost} kernel events were lost (buffers full); "
                              "the output is incomplete", file=err)
        except OSError:
            pass
        finally:
            self.conn.close()
            self.conn = None


SUMMARY_TIMEOUT = 3.0
SYNC_TIMEOUT = 5.0


def _summary(conn: socket.socket) -> int:
    """The lost-event count from pystapd's end-of-session summary (events still queued are skipped)."""
    conn.settimeout(SUMMARY_TIMEOUT)
    limits = {FrameType.EVENTS: protocol.MAX_EVENT_BATCH_BYTES, FrameType.INFO: protocol.MAX_CONTROL_BYTES}
    while True:
        try:
            frame = protocol.recv_frame(conn, limits)
        except (protocol.ProtocolError, OSError):
            return 0
        for fd in frame.fds:
            os.close(fd)
        if frame.type is FrameType.INFO:
            info = frame.json()
            if info.get("op") != "summary":  # e.g. a sync marker that came after its timeout
                continue
            lost = info.get("lost", 0)
            return lost if isinstance(lost, int) and not isinstance(lost, bool) and lost > 0 else 0


def set_no_new_privs() -> None:
    """From here on, no exec can ever raise this process's privileges."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(err)}")


def is_bare_name(module: str) -> bool:
    """``pystaprun NAME`` (no slash, no suffix) means the module in the blessed directory."""
    return "/" not in module and not module.endswith(modfile.EXTENSION)


def _open_module(module: str) -> tuple[int, int | None, str]:
    """Open the module (and its ``.sgn`` if present): ``(module_fd, sgn_fd, canonical path)``."""
    try:
        real = os.path.realpath(module, strict=True)
        fd = os.open(real, _OPEN_FLAGS)
    except OSError as exc:
        raise LoadError([f"ERROR: Couldn't open file '{module}': {exc.strerror}"]) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LoadError([f"ERROR: '{module}' is not a regular file"])
    try:
        sgn_fd: int | None = os.open(real + modfile.SIGNATURE_SUFFIX, _OPEN_FLAGS)
    except OSError:
        sgn_fd = None
    return fd, sgn_fd, real


def _read_all(fd: int, limit: int) -> bytes:
    chunks, total = [], 0
    while True:
        chunk = os.pread(fd, 1 << 20, total)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise LoadError([f"ERROR: module is too large (limit {limit} bytes)"])


def connect(socket_path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(REQUEST_TIMEOUT)
    try:
        sock.connect(str(socket_path))
    except OSError:
        sock.close()
        raise
    return sock


def _reply(sock: socket.socket, *expected: FrameType) -> protocol.Frame:
    limits = {t: protocol.MAX_CONTROL_BYTES for t in (*expected, FrameType.ERROR)}
    try:
        frame = protocol.recv_frame(sock, limits)
    except protocol.PeerClosed:
        raise LoadError(["ERROR: pystapd closed the connection"]) from None
    except protocol.ProtocolError as exc:
        raise LoadError([f"ERROR: bad reply from pystapd: {exc}"]) from None
    for fd in frame.fds:
        os.close(fd)
    if frame.type is FrameType.ERROR:
        message = frame.json().get("message", "request refused")
        raise LoadError([f"ERROR: pystapd: {message}"])
    return frame


def whoami(socket_path: Path | None = None) -> dict[str, Any]:
    """The caller's credentials as pystapd computes them (its group configuration applies)."""
    sock = connect(socket_path or paths.daemon_socket())
    try:
        protocol.send_json(sock, FrameType.REQUEST, {"op": "whoami"})
        return _reply(sock, FrameType.INFO).json()
    finally:
        sock.close()


def request_grant(module: str, socket_path: Path, targets: list[int] | None = None) -> Grant:
    """Ask pystapd to authorize ``module``; the returned grant holds the session open.

    ``targets`` are the ``-c``/``-x`` pids the session's probes must reach
    (a stapusr session's probes attach to exactly these and to the processes
    the user starts later).
    """
    try:
        sock = connect(socket_path)
    except OSError as exc:
        raise LoadError([f"ERROR: Cannot reach pystapd at {socket_path}: {exc.strerror or exc}. "
                         "Is the pystapd service running?"]) from None
    return request_grant_on(sock, module, targets)


def request_grant_on(sock: socket.socket, module: str, targets: list[int] | None = None) -> Grant:
    """The load conversation on a connected socket (pystapd's, or root's private service's)."""
    module_fd = sgn_fd = None
    try:
        if is_bare_name(module):
            request: dict[str, Any] = {"op": "load", "protocol": protocol.PROTOCOL_VERSION,
                                       "module": "name", "name": module}
            if targets:
                request["targets"] = list(targets)
            protocol.send_json(sock, FrameType.REQUEST, request)
        else:
            module_fd, sgn_fd, real = _open_module(module)
            fds = [module_fd] if sgn_fd is None else [module_fd, sgn_fd]
            request = {"op": "load", "protocol": protocol.PROTOCOL_VERSION, "module": "fd", "path": real,
                       "signature": "none" if sgn_fd is None else "fd"}
            if targets:
                request["targets"] = list(targets)
            protocol.send_json(sock, FrameType.REQUEST, request, fds)
        decision = _reply(sock, FrameType.DECISION).json()
        messages = tuple(str(m) for m in decision.get("messages", []))
        if decision.get("allowed") is not True:
            raise LoadError(messages or ("ERROR: pystapd refused the module",),
                            int(decision.get("exit_status", 1)))
        if module_fd is None:
            blob = protocol.recv_frame(sock, {FrameType.BLOB: modfile.MAX_MODULE_BYTES})
            data = blob.payload
        else:
            data = _read_all(module_fd, modfile.MAX_MODULE_BYTES)
        if not hmac.compare_digest(modfile.digest(data), str(decision.get("digest", ""))):
            raise LoadError([f"ERROR: the module {module} changed while it was being loaded"])
        try:
            parsed = modfile.load(data)
        except modfile.ModuleFormatError as exc:
            raise LoadError([f"ERROR: Couldn't load the module {module}: {exc}"]) from None
        warnings = decision.get("warnings", [])
        grant = Grant(parsed, data, str(decision.get("module_path", module)), int(decision["credentials"]),
                      str(decision.get("rule", "")), messages, decision.get("session"), sock,
                      tuple(str(w) for w in warnings) if isinstance(warnings, list) else ())
        sock.settimeout(None)
        return grant
    except OSError as exc:
        sock.close()
        raise LoadError([f"ERROR: lost the connection to pystapd: {exc.strerror or exc}"]) from None
    except BaseException:
        sock.close()
        raise
    finally:
        for fd in (module_fd, sgn_fd):
            if fd is not None:
                os.close(fd)


def authorize_locally(module: str, cfg: config_mod.DaemonConfig) -> Grant:
    """Root without the service: the daemon's decision, taken in this process."""
    # Imported here: the decision pulls in the signature verifier, which a client
    # talking to pystapd never needs (start-up time matters for every run).
    from pystap.loader import blessed
    from pystap.loader.decision import authorize

    if is_bare_name(module):
        fd, real, problem = blessed.open_by_name(cfg.blessed_dir, module)
        if fd is None:
            raise LoadError([problem or f"ERROR: module {module} not found"])
        sgn_fd = blessed.open_signature_beside(cfg.blessed_dir, module)
    else:
        fd, sgn_fd, real = _open_module(module)
    try:
        data = _read_all(fd, cfg.limits.max_module_bytes)
        sgn = _read_all(sgn_fd, cfg.limits.max_signature_bytes) if sgn_fd is not None else None
        outcome = authorize(uid=os.getuid(), credentials=PR_ALL, module_bytes=data, sgn=sgn, module_path=real,
                            module_fd=fd, blessed_dir=cfg.blessed_dir, signer_store=cfg.signer_store)
    finally:
        os.close(fd)
        if sgn_fd is not None:
            os.close(sgn_fd)
    decision = outcome.decision
    if not decision.allowed or outcome.module is None:
        raise LoadError(decision.messages)
    return Grant(outcome.module, data, real, decision.credentials, decision.rule, decision.messages)


def has_kernel_probes(module: modfile.Module) -> bool:
    return bool(module.kernel_probes)


def obtain_grant(req: RunRequest, targets: list[int] | None = None) -> Grant:
    """Through pystapd; root without the service decides in-process.

    Root's module with kernel probes then runs through a private, forked
    instance of the service (:mod:`pystap.loader.local`): the same install,
    event stream, teardown and reaper as pystapd's, without the socket.
    """
    socket_path = req.socket or paths.daemon_socket()
    if os.getuid() == 0 and req.socket is None and not socket_path.exists():
        try:
            cfg = config_mod.load()
        except config_mod.ConfigError as exc:
            raise LoadError([f"ERROR: {exc}"]) from None
        grant = authorize_locally(req.module, cfg)
        if not has_kernel_probes(grant.module):
            return grant
        from pystap.loader import local

        try:
            sock = local.private_service(cfg)
        except OSError as exc:
            raise LoadError([f"ERROR: cannot start the kernel probe service: {exc.strerror or exc}"]
                            ) from None
        return request_grant_on(sock, req.module, targets)
    return request_grant(req.module, socket_path, targets)


class DaemonEvents:
    """The runtime's event source for kernel probes: EVENTS frames on the session socket.

    Payloads are decoded by :class:`pystap.eventwire.Decoder` (which keeps
    the schemas pystapd defines on this connection) into ``(probe_id,
    fields)`` pairs and :class:`~pystap.eventwire.Rows` blocks, whose
    fields (``pid``, ``tid``, ``cpu``, ``timestamp_ns``, the probe's values)
    are only built for a handler that reads them.  When pystapd goes away,
    or sends something malformed, the source reports the end (an empty
    batch) after one warning, and the handlers keep running.
    """

    def __init__(self, conn: socket.socket, err: TextIO) -> None:
        self._conn = conn
        self._err = err
        self._decoder = eventwire.Decoder()

    def fileno(self) -> int:
        return self._conn.fileno()

    def read_batch(self) -> list[Any]:
        try:
            frame = protocol.recv_frame(self._conn, {FrameType.EVENTS: protocol.MAX_EVENT_BATCH_BYTES})
            return self._decode(frame)
        except (OSError, protocol.ProtocolError) as exc:
            print(f"WARNING: lost the event stream from pystapd ({exc}); kernel probes stopped",
                  file=self._err)
            return []

    def _decode(self, frame: protocol.Frame) -> list[Any]:
        for fd in frame.fds:
            os.close(fd)
        try:
            return self._decoder.decode(frame.payload)
        except eventwire.WireError as exc:
            raise protocol.ProtocolError(str(exc)) from None

    def drain(self, timeout: float = SYNC_TIMEOUT) -> list[Any]:
        """Every event recorded until now (the -c command exited: its events precede the end probes).

        Asks pystapd for a sync and reads up to its marker; on a timeout or a
        lost stream, returns what arrived.
        """
        batch: list[Any] = []
        limits = {FrameType.EVENTS: protocol.MAX_EVENT_BATCH_BYTES,
                  FrameType.INFO: protocol.MAX_CONTROL_BYTES}
        old = self._conn.gettimeout()
        try:
            protocol.send_json(self._conn, FrameType.CONTROL, {"op": "sync"})
            self._conn.settimeout(timeout)
            while True:
                frame = protocol.recv_frame(self._conn, limits)
                if frame.type is FrameType.INFO:
                    for fd in frame.fds:
                        os.close(fd)
                    if frame.json().get("op") == "synced":
                        return batch
                    continue
                batch.extend(self._decode(frame))
        except (OSError, protocol.ProtocolError):
            return batch
        finally:
            with contextlib.suppress(OSError):
                self._conn.settimeout(old)


def _run_handlers(grant: Grant, req: RunRequest, err: TextIO, held: Any = None) -> int:
    """The one call into the runtime (pystap.runtime.run_module)."""
    try:
        from pystap.runtime import RunOptions, run_module
    except ImportError:
        print("ERROR: the pystap runtime is not available in this installation", file=err)
        return 1
    options = RunOptions(
        globals=dict(req.globals), output=req.output, command=req.command, target_pid=req.target_pid,
        verbose=req.verbose, timeout_ms=req.timeout_ms, stderr=err, held_command=held,
    )
    if req.stdout is not None:
        options.stdout = req.stdout
    kernel_probes = has_kernel_probes(grant.module) and grant.conn is not None
    events = DaemonEvents(grant.conn, err) if kernel_probes else None
    return int(run_module(grant.module, credentials=grant.credentials, options=options, events=events))


def run(req: RunRequest, *, err: TextIO | None = None) -> int:
    """Obtain a grant and run the module; returns the exit status (the module's, or 1 when refused)."""
    err = err or sys.stderr
    try:
        set_no_new_privs()
    except OSError as exc:
        print(f"ERROR: {exc}", file=err)
        return 1
    # -c: fork the command now, held before its exec, so the probes are armed on it (pystapd
    # attaches to its pid) before it runs; the runtime releases it after the begin probes.
    held = None
    targets: list[int] = [req.target_pid] if req.target_pid else []
    if req.command:
        from pystap.runtime.command import HeldCommand

        try:
            held = HeldCommand(req.command)
        except OSError as exc:
            print(f"ERROR: cannot run command '{req.command}': {exc.strerror}", file=err)
            return 1
        targets = [held.pid]
    try:
        grant = obtain_grant(req, targets)
    except LoadError as exc:
        if held is not None:
            held.stop()
        for message in exc.messages:
            print(message, file=err)
        return exc.status
    except BaseException:
        if held is not None:
            held.stop()
        raise
    status = 1
    try:
        for warning in grant.warnings:
            print(warning, file=err)
        if req.verbose:
            for message in grant.messages:
                print(message, file=err)
            print(f"pystaprun: module {grant.module_path} allowed by rule '{grant.rule}' with credentials "
                  f"{name(grant.credentials)}", file=err)
        if grant.conn is not None:
            with contextlib.suppress(OSError):
                protocol.send_json(grant.conn, FrameType.CONTROL, {"op": "started"})
        if req.verbose:
            print(f"pystaprun: module started (session {grant.session if grant.session else 'local'})",
                  file=err, flush=True)
        status = _run_handlers(grant, req, err, held)
        return status
    finally:
        if held is not None:
            held.stop()  # the runtime reaped it already, unless it never started
        grant.close(status, err)


def auto_privilege(credentials: int) -> tuple[str, str | None]:
    """The level ``pystap`` pass 5 selects for a user without ``--privilege``, with its message.

    Raises :class:`LoadError` with SystemTap's "normal user" message for a
    user in no privilege group.  stapdev (and root) keep the default level.
    """
    if contains(credentials, PR_STAPDEV):
        return "stapdev", None
    if contains(credentials, PR_STAPSYS):
        return "stapsys", MSG_AUTO_STAPSYS
    if contains(credentials, PR_STAPUSR):
        return "stapusr", MSG_AUTO_STAPUSR
    raise LoadError(MSG_NORMAL_USER.split("\n"))


def caller_credentials(socket_path: Path | None = None) -> int:
    """The caller's credentials: root holds all; others ask pystapd (its group configuration).

    Without the service, the same configuration file (``[groups]`` of
    pystapd.toml) is applied locally, so ``pystap`` and pystapd never
    disagree about which groups grant what.
    """
    if os.getuid() == 0:
        return PR_ALL
    try:
        return int(whoami(socket_path)["credentials"])
    except (OSError, LoadError, KeyError, ValueError):
        from pystap.privilege import own_credentials

        try:
            groups = config_mod.load().groups
        except config_mod.ConfigError:
            groups = None
        return own_credentials(groups)
