"""The session engine: begin/end/error ordering, the event loop, shutdown.

States follow SystemTap's ``session_state()``: STARTING while begin probes
run, RUNNING while timers and events fire, STOPPING after ``exit()`` (end
probes run), ERROR once more than MAXERRORS run-time errors happened (end
probes are skipped, error probes run).  A probe only fires in the state its
kind expects, which is what makes ``exit()`` in a begin probe skip the later
begin probes, and an error in an end probe skip the remaining ones.
"""

from __future__ import annotations

import io
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pystap import privilege
from pystap.modfile import Module
from pystap.runtime.command import HeldCommand
from pystap.runtime.context import Context
from pystap.runtime.errors import AbortRequest, MaxActionError, ModuleLoadError, NextProbe, StapRuntimeError
from pystap.runtime.hitreport import ProbeTiming
from pystap.runtime.options import EventSource, RunOptions
from pystap.runtime.prelude import build_namespace, provided_functions
from pystap.runtime.timers import IntervalTimer

STARTING, RUNNING, STOPPING, ERROR = "starting", "running", "stopping", "error"

DEFAULT_LIMITS: dict[str, int] = {
    "MAXACTION": 1000,
    "MAXNESTING": 10,
    "MAXSTRINGLEN": 512,
    "MAXMAPENTRIES": 2048,
    "MAXERRORS": 0,
    "MAXSKIPPED": 100,
    "HIST_WIDTH": 50,
    "HIST_ELISION": 2,
}
_LIMIT_RANGE = {"MAXSTRINGLEN": (2, 1 << 20), "MAXNESTING": (1, 100_000), "MAXMAPENTRIES": (1, 1 << 26),
                "HIST_WIDTH": (1, 1 << 16)}
CODE_FILENAME = "<pystap module>"


@dataclass
class RtProbe:
    """One manifest probe bound to its generated handler."""

    id: int
    family: str
    point: str
    handler: Any
    params: dict[str, Any]
    order: int

    @property
    def sequence(self) -> int:
        seq = self.params.get("sequence", 0)
        return seq if isinstance(seq, int) else 0


class _Output:
    """Encodes handler output (latin-1 code points = script bytes) to a binary sink."""

    def __init__(self, stream: Any, close: bool = False) -> None:
        self.stream = stream
        if hasattr(stream, "buffer"):
            self.binary: Any = stream.buffer
        elif isinstance(stream, io.TextIOBase):
            self.binary = None
        else:
            self.binary = stream
        self.close_it = close

    def write(self, text: str) -> None:
        if self.binary is not None:
            self.binary.write(text.encode("latin-1"))
        else:
            self.stream.write(text)

    def flush(self) -> None:
        (self.binary or self.stream).flush()

    def close(self) -> None:
        self.flush()
        if self.close_it:
            self.stream.close()


def _open_output(path: str) -> Any:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    return os.fdopen(fd, "wb")


class Session:
    """One run of one module."""

    def __init__(self, module: Module, options: RunOptions, events: EventSource | None = None) -> None:
        self.module = module
        self.options = options
        self.events = events
        self.module_name = module.name
        self.limits = dict(DEFAULT_LIMITS)
        mod_limits = module.options.get("limits", {})
        if isinstance(mod_limits, dict):
            self.limits.update({k: v for k, v in mod_limits.items() if isinstance(v, int)})
        self.limits.update(options.limits)
        for name, (lo, hi) in _LIMIT_RANGE.items():
            self.limits[name] = min(max(self.limits[name], lo), hi)
        self.maxaction = self.limits.get("MAXACTION_INTERRUPTIBLE", 10 * self.limits["MAXACTION"])
        self.maxerrors = self.limits["MAXERRORS"]
        # compiled-in switches (SystemTap puts them in the module too): -t, --suppress-handler-errors
        self.timing = ProbeTiming.from_options(module.options)
        self.suppress_errors = module.options.get("suppress_handler_errors") is True
        self.maxstr = self.limits["MAXSTRINGLEN"] - 1
        hz = module.options.get("hz", 250)
        self.hz = hz if isinstance(hz, int) and hz > 0 else 250
        self.state = STARTING
        self.errors = 0
        self.skipped = 0
        self.skipped_ticks = 0
        self.target_pid = options.target_pid or 0
        self.stopwatches: dict[str, tuple[int, int | None]] = {}
        self.indent_counters: dict[Any, int] = {}
        self.indent_timestamps: dict[Any, int] = {}
        self.speculations: dict[int, list[str]] = {}
        self.spec_next = 0
        self.commands: list[str] = []
        self.exit_requested = False
        self.signalled = False
        self.output_index = 0
        self.err = _Output(options.stderr)
        self.out = _Output(options.stdout)
        self.outbuf: list[str] = []
        self.ctx = Context(self, self.outbuf.append)
        self.ns: dict[str, Any] = {}
        self.locations: dict[int, str] = {}
        self.probes: list[RtProbe] = []
        self.child_pid: int | None = None
        self._held: HeldCommand | None = None

    # ---------------------------------------------------------------- messages

    def flush(self) -> None:
        if self.outbuf:
            text = "".join(self.outbuf)
            self.outbuf.clear()
            self.out.write(text)
        self.out.flush()

    def stderr_line(self, text: str) -> None:
        self.flush()
        self.err.write(text + "\n")
        self.err.flush()

    def warn(self, msg: str) -> None:
        self.stderr_line(f"WARNING: {msg}")

    def request_exit(self) -> None:
        self.exit_requested = True
        if self.state in (STARTING, RUNNING):
            self.state = STOPPING

    def queue_command(self, cmd: str) -> None:
        self.commands.append(cmd)

    def switch_file(self) -> None:
        """``switch_file()``: continue the ``-o`` output in ``FILE.<n>``."""
        if not self.options.output:
            return
        self.flush()
        self.out.close()
        self.output_index += 1
        base = os.fspath(self.options.output)
        self.out = _Output(_open_output(f"{base}.{self.output_index}"), close=True)

    # ---------------------------------------------------------------- loading

    def load(self) -> None:
        """Compile and exec the module code, bind handlers, apply ``-G``."""
        try:
            code = compile(self.module.code, CODE_FILENAME, "exec")
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            raise ModuleLoadError(f"module code does not compile: {exc}") from None
        missing = sorted(_called_functions(code) - provided_functions())
        if missing:
            raise ModuleLoadError(
                f"this runtime does not provide function '{missing[0]}' used by the module")
        self.ns = build_namespace(self)
        sys.setrecursionlimit(max(sys.getrecursionlimit(), self.limits["MAXNESTING"] * 4 + 1000))
        try:
            exec(code, self.ns)  # noqa: S102 - the module's own generated code, after its checks
        except ModuleLoadError:
            raise
        except Exception as exc:
            raise ModuleLoadError(f"module code failed to initialise: {exc}") from None
        declared = self.ns.get("_PRIVILEGE")
        if declared is not None and declared != int(privilege.Level.from_name(self.module.privilege)):
            raise ModuleLoadError("the module's code was generated for another privilege level than its"
                                  " header declares")
        locs = self.ns.get("_LOC", {})
        self.locations = locs if isinstance(locs, dict) else {}
        for order, entry in enumerate(self.module.probes):
            handler = self.ns.get(entry.handler)
            if not callable(handler) or not entry.handler.startswith("probe_"):
                raise ModuleLoadError(f"probe {entry.id} names a missing handler '{entry.handler}'")
            if self.timing is not None:
                handler = self.timing.wrap(entry.id, handler)
            # pp() is the manifest's run-time text where it differs from the listed point
            # (library, label, callee, PLT and .nearest probes: params["pp"], as stap's pp() shows)
            point = entry.params.get("pp") if isinstance(entry.params.get("pp"), str) else entry.point
            self.probes.append(RtProbe(entry.id, entry.family, point, handler, entry.params, order))
        self._apply_global_assignments()

    def _apply_global_assignments(self) -> None:
        table = self.ns.get("_GLOBALS", {})
        for name, text in self.options.globals.items():
            info = table.get(name)
            if info is None:
                raise ModuleLoadError(f"no global variable '{name}' in this module (-G {name}={text})")
            pyname, kind, arity = info
            if arity:
                raise ModuleLoadError(f"global '{name}' is an array and cannot be set with -G")
            if kind == "long":
                try:
                    value = int(text, 0)
                except ValueError:
                    raise ModuleLoadError(f"-G {name}: '{text}' is not a number") from None
                from pystap.runtime.arith import wrap

                self.ns[pyname] = wrap(value)
            elif kind == "string":
                self.ns[pyname] = text[: self.maxstr]
            else:
                raise ModuleLoadError(f"global '{name}' is a statistic and cannot be set with -G")

    # ---------------------------------------------------------------- dispatch

    def fire(self, probe: RtProbe, fields: dict[str, Any] | None = None) -> None:
        c = self.ctx
        c.act = self.maxaction
        c.nest = 0
        c.pp = probe.point
        c.pn = probe.point
        c.probe_type = probe.family
        c.params = probe.params
        c.fields = fields
        if fields is not None:
            c.pid = fields.get("pid", self.mypid)
            c.tid = fields.get("tid", c.pid)
            c.cpu = fields.get("cpu", 0)
        else:
            c.pid = c.tid = self.mypid
            c.cpu = 0
        try:
            probe.handler(c)
        except NextProbe:
            pass
        except Exception as exc:
            self._handler_failed(exc)
        if self.commands:
            self._run_commands()

    def _fire_rows(self, block: Any, probe: RtProbe) -> None:
        """``fire`` for each row of a packed block (``eventwire.Rows``), the hot path of kernel
        probes: the probe's constants are set once, each row costs a few stores, and the
        handler's ``fields`` are built only if it reads them (see :class:`Context`)."""
        c = self.ctx
        c.pp = c.pn = probe.point
        c.probe_type = probe.family
        c.params = probe.params
        c._rows = block
        handler = probe.handler
        maxaction = self.maxaction
        try:
            for row in block.rows:
                if self.state != RUNNING:
                    break
                c.act = maxaction
                c.nest = 0
                c._fields = None
                c._row = row
                c.pid = row[1]
                c.cpu = row[2]
                c.tid = row[3]
                try:
                    handler(c)
                except NextProbe:
                    pass
                except Exception as exc:
                    self._handler_failed(exc)
                if self.commands:
                    self._run_commands()
        finally:
            c._rows = c._row = None

    def _handler_failed(self, exc: Exception) -> None:
        if isinstance(exc, (StapRuntimeError, MaxActionError)):
            self._runtime_error(exc)
        elif isinstance(exc, AbortRequest):
            self.request_exit()
        elif isinstance(exc, RecursionError):
            self._runtime_error(StapRuntimeError("MAXNESTING exceeded"))
        else:  # a defect of the module code itself: report it, never a traceback
            self._runtime_error(StapRuntimeError(f"internal error in handler: {type(exc).__name__}: {exc}"))

    def _where(self, exc: BaseException) -> str | None:
        line = None
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == CODE_FILENAME:
                line = tb.tb_lineno
            tb = tb.tb_next
        return self.locations.get(line) if line is not None else None

    def _runtime_error(self, exc: StapRuntimeError | MaxActionError) -> None:
        if self.suppress_errors:  # counted, never printed, never ends the session (SystemTap's)
            self.errors += 1
            return
        if exc.where is None:
            exc.where = self._where(exc)
        self.stderr_line(f"ERROR: {exc.render()}")
        self.errors += 1
        if self.errors > self.maxerrors:
            self.state = ERROR

    def _skip(self) -> None:
        """A probe hit that could not run; too many stop the session, as MAXSKIPPED does."""
        self.skipped += 1
        if self.skipped > self.limits["MAXSKIPPED"] and self.state != ERROR and not self.suppress_errors:
            self.stderr_line("ERROR: Skipped too many probes, check MAXSKIPPED or try again with stap -t for"
                             " more details.")
            self.errors += 1
            self.state = ERROR

    def _run_commands(self) -> None:
        cmds, self.commands = self.commands, []
        self.flush()
        for cmd in cmds:
            try:
                subprocess.run(["/bin/sh", "-c", cmd], check=False, stdin=subprocess.DEVNULL)
            except OSError as exc:
                self.warn(f"system({cmd!r}) failed: {exc.strerror}")

    # ---------------------------------------------------------------- the run

    def run(self) -> int:
        self.mypid = os.getpid()
        self.ctx.pid = self.ctx.tid = self.mypid
        if self.options.output:
            try:
                self.out = _Output(_open_output(os.fspath(self.options.output)), close=True)
            except OSError as exc:
                self.stderr_line(f"ERROR: cannot open output file {self.options.output}: {exc.strerror}")
                return 1
        try:
            return self._run()
        finally:
            self.flush()
            self.out.close()

    def _by_kind(self, family: str) -> list[RtProbe]:
        return sorted((p for p in self.probes if p.family == family), key=lambda p: (p.sequence, p.order))

    def _run(self) -> int:
        if self.options.held_command is not None:
            self._adopt_command(self.options.held_command)
        elif self.options.command:
            try:
                self._spawn_command(self.options.command)
            except OSError as exc:
                self.stderr_line(f"ERROR: cannot run command '{self.options.command}': {exc.strerror}")
                return 1
        old_handlers = self._install_signals()
        timers: list[tuple[IntervalTimer, RtProbe]] = []
        try:
            self.state = STARTING
            for probe in self._by_kind("begin"):
                if self.state != STARTING:
                    break
                self.fire(probe)
            if self.state == STARTING:
                self.state = RUNNING
            self.flush()
            self._release_command(go=self.state == RUNNING)
            if self.state == RUNNING:
                for probe in self.probes:
                    if probe.family == "timer":
                        t = IntervalTimer(int(probe.params.get("interval_ns", 0)),
                                          int(probe.params.get("randomize_ns", 0)))
                        timers.append((t, probe))
                for t, _ in timers:
                    t.start()
                self._loop(timers)
        finally:
            for t, _ in timers:
                t.close()
            self._restore_signals(old_handlers)
        if self.state == RUNNING:
            self.state = STOPPING
        if self.state == STOPPING:
            for probe in self._by_kind("end"):
                if self.state != STOPPING:
                    break
                self.fire(probe)
        if self.state == ERROR:
            for probe in self._by_kind("error"):
                self.fire(probe)
        if self.timing is not None:  # -t: after the end and error probes, on the script's output
            self.outbuf.append(self.timing.report(self.probes))
        self.flush()
        self._stop_command()
        if self.skipped_ticks:
            self.warn(f"Number of skipped timer ticks: {self.skipped_ticks} (handlers ran late)")
        if self.errors or self.skipped:
            self.warn(f"Number of errors: {self.errors}, skipped probes: {self.skipped}")
        return 1 if self.errors and not self.suppress_errors else 0

    def _loop(self, timers: list[tuple[IntervalTimer, RtProbe]]) -> None:
        sel = selectors.DefaultSelector()
        try:
            for t, probe in timers:
                sel.register(t.fd, selectors.EVENT_READ, ("timer", t, probe))
            by_id = {p.id: p for p in self.probes}
            if self.events is not None:
                sel.register(self.events.fileno(), selectors.EVENT_READ, ("events", None, None))
            if self._wakeup_r is not None:
                sel.register(self._wakeup_r, selectors.EVENT_READ, ("signal", None, None))
            if self._pidfd is not None:
                sel.register(self._pidfd, selectors.EVENT_READ, ("child", None, None))
            limit = self.options.effective_timeout()
            deadline = None if limit is None else time.monotonic() + limit
            while self.state == RUNNING:
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                if deadline is not None and timeout == 0.0:
                    self.request_exit()
                    break
                ready = sel.select(timeout) if sel.get_map() else (time.sleep(timeout or 3600) or [])
                for key, _ in ready:
                    kind, t, probe = key.data
                    if self.state != RUNNING:
                        break
                    if kind == "timer":
                        n = t.expirations()
                        if n:
                            self.skipped_ticks += n - 1
                            self.fire(probe)
                    elif kind == "events":
                        batch = self.events.read_batch()  # type: ignore[union-attr]
                        if not batch:
                            sel.unregister(key.fd)
                        self._fire_batch(batch, by_id)
                    elif kind == "signal":
                        try:
                            os.read(self._wakeup_r, 512)
                        except BlockingIOError:
                            pass
                        if self.signalled:
                            self.request_exit()
                    elif kind == "child":
                        sel.unregister(key.fd)
                        self._drain_events(by_id)
                        self.request_exit()
                self.flush()
        finally:
            sel.close()

    def _drain_events(self, by_id: dict[int, RtProbe]) -> None:
        """The -c command exited: handle every kernel event it caused before the end probes run
        (SystemTap runs handlers at the hit, so none of them can be late there)."""
        drain = getattr(self.events, "drain", None)
        if drain is None:
            return
        self._fire_batch(drain(), by_id)

    def _fire_batch(self, batch: Iterable[Any], by_id: dict[int, RtProbe]) -> None:
        """Run the handler of each record until the session stops running; a record for no
        probe of this module counts as skipped.  A record is a ``(probe_id, fields)`` pair or
        a block of packed rows of one probe (``probe_id``, ``rows``, ``fields(row)``)."""
        for item in batch:
            if self.state != RUNNING:
                break
            if type(item) is tuple:
                probe_id, fields = item
                target = by_id.get(probe_id)
                if target is None:
                    self._skip()
                else:
                    self.fire(target, fields)
                continue
            target = by_id.get(item.probe_id)
            if target is not None:
                self._fire_rows(item, target)
                continue
            for _ in item.rows:
                if self.state != RUNNING:
                    break
                self._skip()

    # ---------------------------------------------------------------- signals

    _wakeup_r: int | None = None
    _wakeup_w: int | None = None
    _pidfd: int | None = None
    mypid: int = 0

    def _install_signals(self) -> dict[int, Any] | None:
        if not self.options.handle_signals:
            return None
        try:
            r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            old_fd = signal.set_wakeup_fd(w)
        except ValueError:  # not the main thread: the caller handles signals
            os.close(r)
            os.close(w)
            return None
        self._wakeup_r, self._wakeup_w = r, w

        def on_signal(signum: int, frame: Any) -> None:
            self.signalled = True

        old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        old[-1] = old_fd
        return old

    def _restore_signals(self, old: dict[int, Any] | None) -> None:
        if old is None:
            return
        signal.set_wakeup_fd(old.pop(-1))
        for sig, handler in old.items():
            signal.signal(sig, handler)
        for fd in (self._wakeup_r, self._wakeup_w):
            if fd is not None:
                os.close(fd)
        self._wakeup_r = self._wakeup_w = None

    # ---------------------------------------------------------------- -c CMD

    def _spawn_command(self, command: str) -> None:
        """Start ``-c CMD`` held at a gate, so ``target()`` is known to begin probes.

        The child is forked and waits for one byte on a pipe before it execs;
        the byte is sent after the begin probes ran (``_release_command``).
        """
        self.flush()
        self._adopt_command(HeldCommand(command))

    def _adopt_command(self, held: HeldCommand) -> None:
        self._held = held
        self.child_pid = held.pid
        self.target_pid = held.pid
        self._pidfd = held.pidfd

    def _release_command(self, go: bool = True) -> None:
        if self._held is not None:
            self._held.release(go)

    def _stop_command(self) -> None:
        """Reap ``-c CMD``; terminate it first when the session ended before it did."""
        if self._held is None:
            return
        self._held.stop()
        self._held = None
        self.child_pid = None
        self._pidfd = None


def _called_functions(code: Any) -> set[str]:
    """Tapset functions a module's compiled code refers to (every ``_b_<name>`` global it loads)."""
    found: set[str] = set()
    stack = [code]
    while stack:
        co = stack.pop()
        found.update(n[3:] for n in co.co_names if n.startswith("_b_"))
        stack.extend(c for c in co.co_consts if hasattr(c, "co_names"))
    return found
