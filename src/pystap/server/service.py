"""``pystap-server``'s listener: TLS connections, limits, and one request end to end.

Each connection is one thread.  At most ``max_connections`` are open at
once; further clients wait in the listen backlog (as SystemTap's server
waits for a free thread).  Per connection:

1. the TLS 1.3 handshake and the whole request must arrive within
   ``request_timeout`` seconds, or the connection is cut (a slow client --
   slowloris -- costs one connection slot for that long, nothing more);
2. the announced length is checked with SystemTap's messages; N = 0 is a
   hello, answered with the server's description and signing certificate;
3. a translation slot is taken: at most ``max_threads`` requests are
   decompressed, validated and translated at once, the others wait;
4. the request is inflated within ``max_request`` bytes and validated
   (:mod:`.protocol`); its target must be one this server supports; its
   options are checked against SystemTap's client table before anything
   runs; its files are written into a private directory (:mod:`.workdir`);
5. the translator runs in a child process (:mod:`.translator`); a module it
   built is checked (privilege, target) and signed by the server's signing
   key -- every module, so the loader's ladder decides what it grants;
6. the response goes back, the request is logged (:mod:`.audit`) and its
   directory removed, whatever happened.

Every failure ends only its own connection: the client gets ``rc`` 1 and a
``Server: …`` message when it can still read one.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pystap import modfile
from pystap.policy.options import check_options, lookup, parse_privilege
from pystap.privilege import Level
from pystap.server import protocol
from pystap.server.audit import AuditLog
from pystap.server.identity import ServerIdentity
from pystap.server.protocol import ProtocolError, Request, Response
from pystap.server.translator import ChildLimits, Runner, translator_argv, translator_env
from pystap.server.workdir import WorkDir, WorkDirError
from pystap.signing import SigningError, sign_module

LISTINGS = frozenset({"-l", "-L", "--dump-probe-types", "--dump-probe-aliases", "--dump-functions"})


def server_version() -> str:
    try:
        return f"pystap-server {importlib.metadata.version('pystap')}"
    except importlib.metadata.PackageNotFoundError:
        return "pystap-server"


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``pystap-server``'s options decide (see ``docs/admin/server.md``)."""

    identity: ServerIdentity
    releases: tuple[str, ...]
    arch: str
    tmpdir: Path
    listen: str | None = None
    port: int = 0
    server_options: tuple[tuple[str, str | None], ...] = ()
    max_compressed: int = protocol.DEFAULT_MAX_COMPRESSED
    max_request: int = protocol.DEFAULT_MAX_REQUEST
    max_files: int = protocol.DEFAULT_MAX_FILES
    max_threads: int = 1
    max_connections: int = 16
    request_timeout: float = 10.0
    send_timeout: float = 30.0
    child: ChildLimits = field(default_factory=ChildLimits)


def server_message(text: str) -> bytes:
    return f"Server: {text}\n".encode()


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _peer(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host = str(address[0])
        return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
    return str(address)


def requested_pass(request: Request) -> int:
    """The last pass the client asked for; a listing or dump never builds a module."""
    last = 5
    for name, value in request.options:
        if name in LISTINGS:
            return 2
        if name == "-p" and value in ("1", "2", "3", "4", "5"):
            last = int(value)
    return last


def option_shape_problem(request: Request) -> str | None:
    """A client option whose value does not fit its table row: it would shift the argv.

    A flag with a value, or a value option without one, would make the
    translator's getopt read the next element differently from the checks
    (``-g`` ``/etc/passwd`` would turn a value into the script file).  Unknown
    options are left to :func:`check_options`, which refuses them by name.
    """
    for name, value in request.options:
        row = lookup(name)
        if row is None or name not in row.names:
            continue
        if row.takes_value and value is None:
            return f"ERROR: {name} requires an argument"
        if not row.takes_value and value is not None:
            return f"Invalid request: option {name} takes no value"
    return None


class _Closed(Exception):
    """The client went away before sending anything (a probe, or a refused certificate)."""


class CompileServer:
    """The listener and its connections; :meth:`serve` until :meth:`stop`."""

    def __init__(self, config: ServerConfig, audit: AuditLog, server_env: Mapping[str, str]) -> None:
        self.config = config
        self.audit = audit
        self.server_env = dict(server_env)
        self.runner = Runner()
        self.version = server_version()
        self._context = self._tls_context()
        self._listeners: list[socket.socket] = []
        self._lock = threading.Condition()
        self._active: dict[threading.Thread, socket.socket] = {}
        self._slots = threading.BoundedSemaphore(max(1, config.max_threads))
        self._translating = 0
        self._stopping = False
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._home = self.server_env.get("HOME", "")

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.verify_mode = ssl.CERT_NONE  # no client certificates (as SystemTap)
        context.load_cert_chain(self.config.identity.tls_cert_path, self.config.identity.tls_key_path)
        return context

    # -- listening ----------------------------------------------------------------------------------

    def listen(self) -> tuple[str, int]:
        """Bind and listen; returns the address and the port (chosen by the kernel for port 0)."""
        port = self.config.port
        if self.config.listen is None:
            try:
                sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                address: tuple[object, ...] = ("::", port)
            except OSError:
                sock, address = socket.socket(socket.AF_INET, socket.SOCK_STREAM), ("0.0.0.0", port)  # noqa: S104
        else:
            info = socket.getaddrinfo(self.config.listen, port, type=socket.SOCK_STREAM,
                                      flags=socket.AI_PASSIVE)
            family, _type, _proto, _name, address = info[0]
            sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        self._listeners.append(sock)
        host, bound_port = sock.getsockname()[:2]
        return str(host), int(bound_port)

    def stop(self) -> None:
        """Ask :meth:`serve` to end (safe from a signal handler: one write to a pipe)."""
        self._stopping = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def serve(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._wake_r, selectors.EVENT_READ)
        for sock in self._listeners:
            selector.register(sock, selectors.EVENT_READ)
        try:
            while not self._stopping:
                with self._lock:
                    while len(self._active) >= self.config.max_connections and not self._stopping:
                        self._lock.wait(0.2)  # at the limit: new clients wait in the backlog
                if self._stopping:
                    break
                for key, _events in selector.select():
                    if key.fileobj == self._wake_r:
                        continue
                    listener = key.fileobj
                    assert isinstance(listener, socket.socket)
                    try:
                        conn, address = listener.accept()
                    except OSError:
                        continue
                    self._start(conn, address)
                    break  # re-check the connection limit before the next accept
        finally:
            selector.close()
            self._shutdown()

    def _start(self, conn: socket.socket, address: object) -> None:
        # A duplicate of the connection's descriptor, to cut it from another thread (the
        # watchdog, shutdown): TLS takes the original over, and shutdown() acts on the
        # connection, whichever descriptor names it.
        try:
            cutter = conn.dup()
        except OSError:
            conn.close()
            return
        thread = threading.Thread(target=self._connection, args=(conn, cutter, address), daemon=True)
        with self._lock:
            self._active[thread] = cutter
        thread.start()

    def _shutdown(self) -> None:
        for sock in self._listeners:
            sock.close()
        self.runner.stop_all()
        with self._lock:
            active = list(self._active.items())
        for _thread, conn in active:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread, _conn in active:
            thread.join(timeout=10.0)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- one connection -----------------------------------------------------------------------------

    def _connection(self, conn: socket.socket, cutter: socket.socket, address: object) -> None:
        started = time.monotonic()
        fields: dict[str, object] = {"id": self.audit.next_id(), "peer": _peer(address)}
        timed_out = threading.Event()

        def hang_up() -> None:
            timed_out.set()
            with contextlib.suppress(OSError):
                cutter.shutdown(socket.SHUT_RDWR)

        watchdog = threading.Timer(self.config.request_timeout, hang_up)
        watchdog.daemon = True
        watchdog.start()
        tls: ssl.SSLSocket | None = None
        reply = False  # whether a response can still be sent on this connection
        event, response = "refused", None
        try:
            conn.settimeout(self.config.request_timeout)
            tls = self._context.wrap_socket(conn, server_side=True)
            reply = True
            size = protocol.frame_length(self._read(tls, 4), self.config.max_compressed)
            if size == 0:
                watchdog.cancel()
                event, response = "hello", None
                self._send(tls, protocol.pack(self._hello().document()))
                return
            body = self._read(tls, size)
            watchdog.cancel()
            fields["bytes"] = size
            response = self._request(body, fields)
            event = "request"
        except _Closed:
            reply = False
            if timed_out.is_set():
                fields["reason"] = f"no complete request within {self.config.request_timeout:g} seconds"
            else:
                event, fields["reason"] = "closed", "the client closed the connection without a request"
        except (ProtocolError, OSError) as exc:
            if timed_out.is_set() or isinstance(exc, TimeoutError):
                fields["reason"] = f"no complete request within {self.config.request_timeout:g} seconds"
                reply = False  # the connection is cut: nothing more can be said on it
            elif isinstance(exc, ProtocolError):
                fields["reason"] = str(exc)
                response = Response(1, stderr=server_message(str(exc)))
            else:
                fields["reason"] = f"connection failed: {exc}"
                reply = False
        except Exception as exc:  # one request must never take the server down
            self.audit.logger.exception("internal error serving %s", fields["peer"])
            fields["reason"] = f"internal error ({type(exc).__name__})"
            response = Response(1, stderr=server_message("internal error"))
        finally:
            watchdog.cancel()
            if reply and tls is not None and response is not None:
                with contextlib.suppress(OSError, ssl.SSLError):
                    response = Response(response.rc, response.stdout, response.stderr, response.module_name,
                                        response.module, response.signature,
                                        self.config.identity.signing_certificate_der)
                    self._send(tls, protocol.pack(response.document()))
            for sock in (tls, conn, cutter):
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.close()
            fields["duration_ms"] = int((time.monotonic() - started) * 1000)
            if event == "request" and response is not None:
                fields.setdefault("rc", response.rc)
            self.audit.write(event, **fields)
            with self._lock:
                self._active.pop(threading.current_thread(), None)
                self._lock.notify_all()

    def _read(self, sock: ssl.SSLSocket, size: int) -> bytes:
        buffer = bytearray()
        while len(buffer) < size:
            chunk = sock.recv(min(size - len(buffer), 65536))
            if not chunk:
                if not buffer and size == 4:
                    raise _Closed()
                raise ProtocolError(f"Invalid request: the connection ended after {len(buffer)} of {size} "
                                    "bytes")
            buffer += chunk
        return bytes(buffer)

    def _send(self, sock: ssl.SSLSocket, payload: bytes) -> None:
        sock.settimeout(self.config.send_timeout)
        sock.sendall(protocol.frame(payload))

    def _hello(self) -> protocol.Hello:
        return protocol.Hello(self.version, tuple((r, self.config.arch) for r in self.config.releases),
                              self.config.identity.signing_certificate_der)

    # -- one request ----------------------------------------------------------------------------------

    def _request(self, body: bytes, fields: dict[str, object]) -> Response:
        with self._slots:
            with self._lock:
                self._translating += 1
                fields["concurrent"] = self._translating
            try:
                return self._translate(body, fields)
            finally:
                with self._lock:
                    self._translating -= 1

    def _translate(self, body: bytes, fields: dict[str, object]) -> Response:
        data = protocol.inflate(body, self.config.max_request)
        request = protocol.decode_request(data, max_files=self.config.max_files)
        script = request.files.get(request.script or "")
        inline = "".join(v or "" for n, v in request.options if n == "-e")
        fields.update(
            release=request.release, arch=request.arch,
            argv_sha256=_digest(protocol.canonical({"options": [list(o) for o in request.options],
                                                    "args": list(request.args)})),
            script_sha256=_digest(script if script is not None else inline.encode()),
            files=len(request.files),
        )
        if request.release not in self.config.releases or request.arch != self.config.arch:
            message = (f"Target kernel version {request.release} is not supported by this server"
                       if request.release not in self.config.releases
                       else f"Target architecture {request.arch} is not supported by this server")
            fields["reason"] = message
            return Response(1, stderr=server_message(message))
        wanted, _errors = parse_privilege(request.options)
        level = wanted or Level.STAPDEV
        fields["privilege"] = level.label
        shape = option_shape_problem(request)
        problems = [shape] if shape else check_options(request.options, level, client=True)
        if problems:
            fields["reason"] = "; ".join(problems)
            return Response(1, stderr="".join(p + "\n" for p in problems).encode())
        try:
            work = WorkDir(self.config.tmpdir)
        except OSError as exc:
            fields["reason"] = f"cannot create a request directory: {exc.strerror or exc}"
            return Response(1, stderr=server_message("cannot process the request now; try again later"))
        try:
            return self._run(request, level, work, fields)
        except OSError as exc:  # the server's own trouble (disk full, no processes left), not the client's
            self.audit.logger.warning("request %s: %s", fields["id"], exc)
            fields["reason"] = f"server error: {exc.strerror or exc}"
            return Response(1, stderr=server_message("cannot process the request now; try again later"))
        finally:
            work.remove()

    def _run(self, request: Request, level: Level, work: WorkDir, fields: dict[str, object]) -> Response:
        try:
            work.write_files(request.files, request.tapset_dirs())
        except WorkDirError as exc:
            raise ProtocolError(f"Invalid request: {exc}") from None
        env, locale_problems = translator_env(self.server_env, request.locale, work)
        argv = translator_argv(request, self.config.server_options, request.release, request.arch)
        result = self.runner.run(argv, env, work, self.config.child)
        limit = self.config.child.max_output
        out_fd, err_fd = work.outputs()
        stdout = work.read_output(out_fd, limit)
        stderr = b"".join(server_message(m) for m in locale_problems) + work.read_output(err_fd, limit)
        rc = result.rc
        if result.note is not None:
            stderr += server_message(f"the translator was stopped: {result.note}")
            rc = 1
        module_name = module = sgn = None
        if rc == 0 and requested_pass(request) >= 4:
            try:
                module_name, module, sgn = self._sign(work, request, level)
            except (WorkDirError, OSError, SigningError, modfile.ModuleFormatError) as exc:
                stderr += server_message(str(exc))
                rc = 1
            else:
                line = f"{work.request / module_name}\n".encode()
                stdout = stdout.replace(line, b"", 1)
                fields.update(module=module_name, module_sha256=_digest(module),
                              signer=self.config.identity.signing_key.keyid)
        return Response(rc, self._scrub(stdout, work), self._scrub(stderr, work), module_name, module, sgn)

    def _sign(self, work: WorkDir, request: Request, level: Level) -> tuple[str, bytes, bytes]:
        found = work.find_module()
        if found is None:
            raise WorkDirError("Unable to find a module in <server>")
        name, data = found
        module = modfile.load(data)
        if module.privilege != level.label:
            raise WorkDirError(f"the module's privilege level {module.privilege} differs from the requested "
                               f"{level.label}; it is not signed")
        if (module.release, module.arch) != (request.release, request.arch):
            raise WorkDirError(f"the module targets {module.release} {module.arch}, not the requested "
                               f"{request.release} {request.arch}; it is not signed")
        return name, data, sign_module(data, self.config.identity.signing_key)

    def _scrub(self, data: bytes, work: WorkDir) -> bytes:
        """Server paths in the translator's output read ``<server>`` (as SystemTap does)."""
        for path in (str(work.request), str(work.path), self._home):
            if len(path) > 1:
                data = data.replace(path.encode(), b"<server>")
        return data
