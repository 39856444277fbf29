"""pystapd: the root service that decides which modules a user may run, and owns their sessions.

It never parses a script, generates code or runs a handler (it imports no
pass and no runtime).  Per connection it: authenticates the peer from the
kernel (``SO_PEERCRED``, ``SO_PEERGROUPS``, ``SO_PEERPIDFD``), receives the
module and its signature once (as fds or by value, within size limits),
decides on exactly those bytes (:mod:`pystap.loader.decision`), logs the
decision, sends the granted credentials, and then holds the session until
the client leaves or dies, tearing down whatever the session owns.

A connection is one thread; the number of simultaneous connections is
bounded, the request phase has a total deadline, and every failure of one
connection ends only that connection.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import stat
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pystap import modfile
from pystap.loader import blessed, protocol
from pystap.loader.config import DaemonConfig
from pystap.loader.decision import Outcome, authorize
from pystap.loader.ladder import MSG_NORMAL_USER, Decision
from pystap.loader.peercred import Peer, peer_of
from pystap.loader.protocol import FrameType, PeerClosed, ProtocolError
from pystap.loader.session import Installer, Session, SessionTable
from pystap.privilege import PR_NONE, name

log = logging.getLogger("pystapd")

_REQUEST_KEYS = {"op", "protocol", "module", "path", "name", "signature", "module_size", "signature_size",
                 "targets"}
MAX_TARGETS = 64
# Probe families the client runs itself; anything else needs the kernel installer.
_SOURCES = {"fd", "bytes", "name"}
_SIG_SOURCES = {"fd", "bytes", "none"}
_MAX_PATH = 4096


class RequestError(Exception):
    """The client's request cannot be served; the message is sent back to it."""


class Refused(Exception):
    """A refusal decided before the ladder could run (a bare name that cannot be opened)."""

    def __init__(self, decision: Decision, module_path: str) -> None:
        super().__init__(decision.rule)
        self.decision = decision
        self.module_path = module_path


@dataclass
class Received:
    module_bytes: bytes
    sgn: bytes | None
    module_path: str
    module_fd: int | None
    by_name: bool
    targets: tuple[int, ...] = ()


def parse_targets(value: Any) -> tuple[int, ...]:
    """The request's ``targets``: the -c/-x pids, as a short list of positive integers.

    Only their form is checked here; whether the caller may trace them is the
    installer's decision (a stapusr caller: the process's euid must be theirs).
    """
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_TARGETS:
        raise RequestError(f"malformed load request (targets: a list of at most {MAX_TARGETS} pids)")
    pids = []
    for pid in value:
        if isinstance(pid, bool) or not isinstance(pid, int) or not 0 < pid < 1 << 22:
            raise RequestError("malformed load request (targets: invalid pid)")
        pids.append(pid)
    return tuple(dict.fromkeys(pids))


def refuse_kernel_probes(reason: str) -> Installer:
    """The installer of a daemon without kernel access: modules with kernel probes are refused.

    Granting them would run the handlers with no probe ever firing, which a
    user would take for "nothing happened"; refusing says why.
    """

    def installer(session: Session) -> None:
        if session.module.kernel_probes:
            raise RuntimeError(f"kernel probes are not available from this pystapd ({reason})")

    return installer


def read_fd_once(fd: int, limit: int, what: str) -> bytes:
    """Read a whole regular file from ``fd`` exactly once, refusing anything over ``limit``."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise RequestError(f"the {what} is not a regular file")
    if st.st_size > limit:
        raise RequestError(f"the {what} is too large ({st.st_size} bytes, limit {limit})")
    chunks: list[bytes] = []
    total = 0
    while True:
        try:
            chunk = os.pread(fd, min(1 << 20, limit + 1 - total), total)
        except OSError as exc:
            raise RequestError(f"cannot read the {what}: {exc.strerror}") from None
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise RequestError(f"the {what} is too large (limit {limit} bytes)")
    return b"".join(chunks)


def _systemd_listener() -> socket.socket | None:
    """The socket systemd passed us (socket activation), if any."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return None
    if int(os.environ.get("LISTEN_FDS", "0")) < 1:
        return None
    for var in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(var, None)
    sock = socket.socket(fileno=3)
    os.set_inheritable(sock.fileno(), False)
    return sock


def start_kernel() -> tuple[Any, Installer]:
    """The kernel side (``KernelService``: private tracefs, installer, reaper), or a refusal.

    Must run before any thread starts (it enters a mount namespace).  A
    kernel without tracefs or BPF still gets a working service for modules
    whose probes all run in the client; modules with kernel probes are then
    refused with the reason.
    """
    try:
        from pystap.kernel.service import KernelService

        kernel = KernelService.start()
    except OSError as exc:
        reason = str(exc) or type(exc).__name__
        log.warning("kernel probes unavailable: %s", reason)
        return None, refuse_kernel_probes(reason)
    log.info("kernel probes through tracefs at %s (private mount namespace)", kernel.tfs.root)
    return kernel, kernel.installer


class Daemon:
    """The service; :meth:`listen` then :meth:`serve` (blocks until :meth:`stop`)."""

    def __init__(self, config: DaemonConfig, installer: Installer | None = None) -> None:
        self.config = config
        self.installer = installer
        self.sessions = SessionTable()
        self._slots = threading.BoundedSemaphore(config.limits.max_sessions)
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._bound: tuple[Path, int] | None = None
        self._conns: set[socket.socket] = set()
        self._per_uid: dict[int, int] = {}
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()

    # -- listening socket -------------------------------------------------------------------------

    def listen(self) -> socket.socket:
        listener = _systemd_listener()
        if listener is None:
            listener = self._bind(self.config.socket)
        self._listener = listener
        return listener

    def _bind(self, path: Path) -> socket.socket:
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            st = os.lstat(path)
            if not stat.S_ISSOCK(st.st_mode):
                raise RuntimeError(f"{path} exists and is not a socket")
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(str(path))
            except OSError:
                os.unlink(path)  # stale socket of a dead daemon
            else:
                raise RuntimeError(f"another pystapd is already listening on {path}")
            finally:
                probe.close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o077)
        try:
            sock.bind(str(path))
        finally:
            os.umask(old)
        os.chmod(path, 0o666)  # noqa: S103 - every user may connect; the peer is authenticated
        sock.listen(128)
        self._bound = (path, os.stat(path).st_ino)
        return sock

    # -- main loop --------------------------------------------------------------------------------

    def serve(self) -> None:
        listener = self._listener or self.listen()
        listener.setblocking(False)
        with selectors.DefaultSelector() as sel:
            sel.register(listener, selectors.EVENT_READ)
            while not self._stop.is_set():
                if not sel.select(timeout=0.25):
                    continue
                try:
                    conn, _ = listener.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as exc:
                    log.error("accept failed: %s", exc)
                    continue
                conn.setblocking(True)
                self._start(conn)
        self._shutdown()

    def stop(self) -> None:
        self._stop.set()

    def _start(self, conn: socket.socket) -> None:
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                conn.settimeout(1.0)
                protocol.send_json(conn, FrameType.ERROR, {
                    "message": f"pystapd is busy ({self.config.limits.max_sessions} sessions); "
                               "try again later"
                })
            conn.close()
            log.warning("refused a connection: session limit %d reached", self.config.limits.max_sessions)
            return
        thread = threading.Thread(target=self._connection, args=(conn,), daemon=True)
        with self._lock:
            self._conns.add(conn)
            self._threads.add(thread)
        thread.start()

    def _shutdown(self) -> None:
        with self._lock:
            conns = list(self._conns)
            threads = list(self._threads)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(timeout=5.0)
        if self._listener is not None:
            self._listener.close()
        if self._bound is not None:
            path, ino = self._bound
            with contextlib.suppress(OSError):
                if os.lstat(path).st_ino == ino:
                    os.unlink(path)

    # -- one connection ---------------------------------------------------------------------------

    def _connection(self, conn: socket.socket) -> None:
        peer: Peer | None = None
        counted = False
        try:
            try:
                peer = peer_of(conn)
            except OSError as exc:
                raise RequestError(f"cannot authenticate the connection: {exc.strerror or exc}") from None
            with self._lock:
                per_user = self.config.limits.max_sessions_per_user
                if peer.uid != 0 and self._per_uid.get(peer.uid, 0) >= per_user:
                    raise RequestError(f"too many sessions for uid {peer.uid} (limit {per_user})")
                self._per_uid[peer.uid] = self._per_uid.get(peer.uid, 0) + 1
                counted = True
            self._converse(conn, peer)
        except PeerClosed:
            pass
        except (ProtocolError, RequestError) as exc:
            log.info("request refused (%s): %s", peer.describe() if peer else "unknown peer", exc)
            with contextlib.suppress(OSError):
                conn.settimeout(1.0)
                protocol.send_json(conn, FrameType.ERROR, {"message": str(exc)})
        except OSError as exc:
            log.info("connection ended (%s): %s", peer.describe() if peer else "unknown peer", exc)
        except Exception:
            log.exception("internal error serving %s", peer.describe() if peer else "unknown peer")
            with contextlib.suppress(OSError):
                conn.settimeout(1.0)
                protocol.send_json(conn, FrameType.ERROR, {"message": "pystapd internal error"})
        finally:
            if peer is not None and peer.pidfd is not None:
                os.close(peer.pidfd)
            conn.close()
            with self._lock:
                if counted and peer is not None:
                    self._per_uid[peer.uid] -= 1
                    if not self._per_uid[peer.uid]:
                        del self._per_uid[peer.uid]
                self._conns.discard(conn)
                self._threads.discard(threading.current_thread())
            self._slots.release()

    def _converse(self, conn: socket.socket, peer: Peer) -> None:
        # The whole request phase has one deadline: a slow client loses its connection.
        watchdog = threading.Timer(self.config.limits.request_timeout, _hang_up, args=(conn,))
        watchdog.daemon = True
        watchdog.start()
        try:
            frame = protocol.recv_frame(conn, {FrameType.REQUEST: protocol.MAX_CONTROL_BYTES})
            owned = list(frame.fds)
            try:
                request = frame.json()
                op = request.get("op")
                if op == "whoami":
                    self._whoami(conn, peer)
                    return
                if op == "status":
                    self._status(conn, peer)
                    return
                if op != "load":
                    raise RequestError(f"unknown request {str(op)[:40]!r}")
                try:
                    received = self._receive(conn, request, frame.fds, peer)
                except Refused as refusal:
                    log.info("decision refused rule=%s %s module=%s", refusal.decision.rule, peer.describe(),
                             _printable(refusal.module_path))
                    answer = _reply(refusal.decision, refusal.module_path)
                    protocol.send_json(conn, FrameType.DECISION, answer)
                    return
                if received.by_name and received.module_fd is not None:
                    owned.append(received.module_fd)
                outcome = self._decide(peer, received)
            finally:
                for fd in owned:
                    with contextlib.suppress(OSError):
                        os.close(fd)
        finally:
            watchdog.cancel()
        self._log_decision(peer, received, outcome)
        reply = _reply(outcome.decision, received.module_path, outcome.digest)
        if not outcome.decision.allowed or outcome.module is None:
            protocol.send_json(conn, FrameType.DECISION, reply)
            return
        self._session(conn, peer, received, outcome.module, reply)

    def _session(self, conn: socket.socket, peer: Peer, received: Received, module: modfile.Module,
                 reply: dict[str, Any]) -> None:
        """A granted session: install its probes, send the grant, hold it, tear it down."""
        session = Session(peer=peer, module=module, digest=reply["digest"], credentials=reply["credentials"],
                          targets=received.targets)
        reply["session"] = session.id
        self.sessions.add(session)
        send_lock = threading.Lock()

        def send_events(payload: bytes) -> None:
            with send_lock:
                protocol.send_frame(conn, FrameType.EVENTS, payload)

        def send_synced() -> None:
            with send_lock:
                protocol.send_json(conn, FrameType.INFO, {"op": "synced"})

        session.send_events = send_events
        session.send_synced = send_synced
        try:
            # The grant (and module) precede any EVENTS frame: the installer's reader starts
            # streaming as soon as the probes are armed, so the lock is held from before the
            # install until the grant is out.
            with send_lock:
                if self.installer is not None:
                    try:
                        self.installer(session)
                    except Exception as exc:
                        log.error("session %d: installing probes failed: %s", session.id, exc)
                        message = f"ERROR: Couldn't install the probes of {received.module_path}: {exc}"
                        reply.update(allowed=False, credentials=0, rule="install", exit_status=1,
                                     messages=[message])
                        protocol.send_json(conn, FrameType.DECISION, reply)
                        return
                if session.warnings:  # SystemTap reports a probe it could not register and runs the rest
                    reply["warnings"] = [f"WARNING: {w}" for w in session.warnings]
                protocol.send_json(conn, FrameType.DECISION, reply)
                if received.by_name:
                    protocol.send_frame(conn, FrameType.BLOB, received.module_bytes)
            reason = self._hold(conn, peer, session)
        finally:
            failures = session.close()
            self.sessions.remove(session)
        # The client waits briefly for this after saying goodbye: lost events are its to report.
        with contextlib.suppress(OSError), send_lock:
            conn.settimeout(1.0)
            protocol.send_json(conn, FrameType.INFO, {"op": "summary", "lost": session.lost})
        log.info("session %d ended (%s) uid=%d pid=%d%s", session.id, reason, peer.uid, peer.pid,
                 f" teardown failures: {failures}" if failures else "")

    def serve_one(self, conn: socket.socket) -> None:
        """Serve one already connected client in this thread (root's private service, see
        :mod:`pystap.loader.local`), exactly as a connection accepted on the socket is served."""
        self._slots.acquire()
        with self._lock:
            self._conns.add(conn)
            self._threads.add(threading.current_thread())
        self._connection(conn)

    def _whoami(self, conn: socket.socket, peer: Peer) -> None:
        creds = peer.credentials(self.config.group_gids())
        protocol.send_json(conn, FrameType.INFO, {
            "uid": peer.uid, "credentials": creds, "credentials_name": name(creds),
            "blessed_dir": str(self.config.blessed_dir), "protocol": protocol.PROTOCOL_VERSION,
        })

    def _status(self, conn: socket.socket, peer: Peer) -> None:
        if peer.uid != 0:
            raise RequestError("only root may ask for the service status")
        with self._lock:
            connections = len(self._conns)
        protocol.send_json(conn, FrameType.INFO, {"sessions": len(self.sessions), "connections": connections})

    def _receive(self, conn: socket.socket, request: dict[str, Any], fds: list[int], peer: Peer) -> Received:
        unknown = sorted(set(request) - _REQUEST_KEYS)
        if unknown:
            raise RequestError(f"unknown request field {unknown[0][:40]!r}")
        if request.get("protocol") != protocol.PROTOCOL_VERSION:
            raise RequestError(f"unsupported protocol version (pystapd speaks {protocol.PROTOCOL_VERSION})")
        source, sig_source = request.get("module"), request.get("signature", "none")
        if source not in _SOURCES or sig_source not in _SIG_SOURCES:
            raise RequestError("malformed load request (module/signature source)")
        if source == "name" and sig_source != "none":
            raise RequestError("malformed load request (a module loaded by name brings no signature)")
        wanted = (source == "fd") + (sig_source == "fd")
        if len(fds) != wanted:
            raise RequestError(f"malformed load request ({len(fds)} file descriptors, expected {wanted})")
        limits = self.config.limits
        targets = parse_targets(request.get("targets"))
        if source == "name":
            module_name = request.get("name")
            if not isinstance(module_name, str):
                raise RequestError("malformed load request (name)")
            fd, module_path, problem = blessed.open_by_name(self.config.blessed_dir, module_name)
            if fd is None:
                if peer.uid != 0 and peer.credentials(self.config.group_gids()) == PR_NONE:
                    gate = Decision(False, PR_NONE, "no-credentials", (MSG_NORMAL_USER,))
                    raise Refused(gate, module_path)
                raise Refused(Decision(False, PR_NONE, "not-found", (problem or "",)), module_path)
            try:
                module_bytes = read_fd_once(fd, limits.max_module_bytes, "module")
            except BaseException:
                os.close(fd)
                raise
            sgn_fd = blessed.open_signature_beside(self.config.blessed_dir, module_name)
            sgn = None
            if sgn_fd is not None:
                try:
                    sgn = read_fd_once(sgn_fd, limits.max_signature_bytes, "signature")
                finally:
                    os.close(sgn_fd)
            return Received(module_bytes, sgn, module_path, fd, by_name=True, targets=targets)
        module_path = request.get("path")
        if (not isinstance(module_path, str) or not module_path.startswith("/")
                or len(module_path) > _MAX_PATH or "\0" in module_path):
            raise RequestError("malformed load request (path)")
        fd_iter = iter(fds)
        module_fd: int | None = None
        if source == "fd":
            module_fd = next(fd_iter)
            module_bytes = read_fd_once(module_fd, limits.max_module_bytes, "module")
        else:
            module_bytes = self._blob(conn, request.get("module_size"), limits.max_module_bytes, "module")
        sgn: bytes | None = None
        if sig_source == "fd":
            sgn = read_fd_once(next(fd_iter), limits.max_signature_bytes, "signature")
        elif sig_source == "bytes":
            sgn = self._blob(conn, request.get("signature_size"), limits.max_signature_bytes, "signature")
        return Received(module_bytes, sgn, module_path, module_fd, by_name=False, targets=targets)

    @staticmethod
    def _blob(conn: socket.socket, size: Any, limit: int, what: str) -> bytes:
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= limit:
            raise RequestError(f"the {what} size is missing or over the limit of {limit} bytes")
        frame = protocol.recv_frame(conn, {FrameType.BLOB: size})
        if frame.fds:
            for fd in frame.fds:
                os.close(fd)
            raise RequestError("unexpected file descriptors with data")
        if len(frame.payload) != size:
            raise RequestError(f"the {what} is {len(frame.payload)} bytes, announced {size}")
        return frame.payload

    def _decide(self, peer: Peer, received: Received) -> Outcome:
        outcome = authorize(
            uid=peer.uid,
            credentials=peer.credentials(self.config.group_gids()),
            module_bytes=received.module_bytes,
            sgn=received.sgn,
            module_path=received.module_path,
            module_fd=received.module_fd,
            blessed_dir=self.config.blessed_dir,
            signer_store=self.config.signer_store,
        )
        limit = self.config.limits.max_kernel_probes
        count = len(outcome.module.kernel_probes) if outcome.module is not None else 0
        if outcome.decision.allowed and peer.uid != 0 and count > limit:
            # every kernel probe is a tracefs definition and perf events per CPU and process
            # that the daemon creates as root: a module may not ask for unbounded amounts
            message = (f"ERROR: The module {received.module_path} declares {count} kernel probes; "
                       f"this pystapd allows at most {limit} per session (limits.max_kernel_probes).")
            outcome = replace(outcome, decision=Decision(False, PR_NONE, "limit", (message,)))
        return outcome

    def _log_decision(self, peer: Peer, received: Received, outcome: Outcome) -> None:
        decision = outcome.decision
        log.info(
            "decision %s rule=%s %s module=%s digest=%s level=%s signer=%s verdict=%s credentials=%s",
            "allowed" if decision.allowed else "refused", decision.rule,
            f"{peer.describe()} caller={name(peer.credentials(self.config.group_gids()))}",
            _printable(received.module_path), outcome.digest, name(outcome.level),
            outcome.verdict.signer or "-", outcome.verdict.kind.value, name(decision.credentials),
        )

    def _hold(self, conn: socket.socket, peer: Peer, session: Session) -> str:
        """Keep the session until the client says goodbye, disconnects or dies."""
        started = False
        with selectors.DefaultSelector() as sel:
            sel.register(conn, selectors.EVENT_READ, "conn")
            if peer.pidfd is not None:
                sel.register(peer.pidfd, selectors.EVENT_READ, "pidfd")
            while not self._stop.is_set():
                for key, _ in sel.select(timeout=0.5):
                    if key.data == "pidfd":
                        return "client died"
                    try:
                        frame = protocol.recv_frame(conn, {FrameType.CONTROL: protocol.MAX_CONTROL_BYTES})
                    except PeerClosed:
                        return "client disconnected"
                    for fd in frame.fds:
                        os.close(fd)
                    message = frame.json()
                    if message.get("op") == "started":
                        if not started:  # log it once, however often a client says it
                            started = True
                            log.info("session %d: module started (pid %d)", session.id, peer.pid)
                    elif message.get("op") == "sync":
                        # Everything recorded so far, then the marker (at once without kernel probes).
                        (session.sync or session.send_synced or _nothing)()
                    elif message.get("op") == "exit":
                        status = message.get("status")
                        return f"client exited with status {status if isinstance(status, int) else '?'}"
                    else:
                        raise ProtocolError("unknown control message")
        return "pystapd stopping"


def _reply(decision: Decision, module_path: str, digest: str = "") -> dict[str, Any]:
    return {
        "allowed": decision.allowed,
        "credentials": decision.credentials,
        "rule": decision.rule,
        "messages": list(decision.messages),
        "digest": digest,
        "module_path": module_path,
        "exit_status": 0 if decision.allowed else 1,
    }


def _printable(text: str) -> str:
    """A client-chosen string made safe for a one-line log record."""
    return "".join(c if c.isprintable() and c != " " else f"\\x{ord(c):02x}" for c in text[:4096])


def _nothing() -> None:
    pass


def _hang_up(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)
