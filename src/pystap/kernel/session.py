"""One tracing session's kernel objects: install from the manifest, stream events, tear down.

Root/stapsys/stapdev sessions use a private tracefs instance
``pystap-<sid>-<daemonpid>`` (enables, filters and buffers are per
instance, so sessions never see each other's events) and one uprobe group
``stp_<sid>`` (definitions are machine-wide).  Events are read from the
instance's per-CPU ``trace_pipe_raw`` in binary.  Install order is
instance first, then definitions, so that the reaper can always tell a
live session's group (it has an instance) from a leftover one.

Teardown order is the kernel's: close the readers, ``rmdir`` the instance
(which disables its events), then delete the group.  Removing enabled
uprobes costs ~60 ms each in the kernel, so :meth:`KernelSession.close`
can run it in a background thread; the reaper finishes whatever a crash
leaves behind.
"""

from __future__ import annotations

import errno
import gc
import os
import re
import stat
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pystap import eventwire
from pystap.kernel import elfcheck, syscallstrings, tracepoints, uprobes
from pystap.kernel.ringbuffer import (
    COMMON_SKIP,
    CpuStats,
    EventFormat,
    FormatError,
    RawReader,
    parse_format,
    session_decoder,
)
from pystap.kernel.tracefs import Tracefs, TracefsError, check_name
from pystap.privilege import Level

UPROBE_FAMILIES = frozenset(("process.function", "process.statement", "process.mark", "process.plt"))
TRACEPOINT_FAMILIES = frozenset(("process.begin", "process.end", "process.thread.begin", "process.thread.end",
                                 "process.syscall", "process.syscall.return", "syscall", "kernel.trace"))
KERNEL_WIDE = frozenset(("syscall", "kernel.trace"))
INSTANCE_PREFIX = "pystap-"
GROUP_PREFIX = "stp_"
_SID = re.compile(r"[A-Za-z0-9]{1,32}")
_BUILD_ID = re.compile(r"(?:[0-9a-f]{2}){0,64}")

Event = tuple[int, dict[str, Any]]
# Pages one encoded read takes at most (1 MiB of records: a bounded EVENTS payload).
MAX_READ_PAGES = 256


class KernelError(RuntimeError):
    """The session cannot be installed; the message is for the user."""


def instance_name(sid: str, daemon_pid: int) -> str:
    return f"{INSTANCE_PREFIX}{sid}-{daemon_pid}"


def group_name(sid: str) -> str:
    return f"{GROUP_PREFIX}{sid}"


def _entry_parts(entry: Any) -> tuple[int, str, dict[str, Any]]:
    """(id, family, params) of a manifest entry; ids become event names, so they are bounded."""
    if isinstance(entry, dict):
        probe_id, family, params = entry.get("id"), entry.get("family"), entry.get("params", {})
    else:
        probe_id, family, params = entry.id, entry.family, entry.params
    if isinstance(probe_id, bool) or not isinstance(probe_id, int) or not 0 <= probe_id < 1 << 31:
        raise KernelError(f"invalid probe id {str(probe_id)[:40]!r}")
    if not isinstance(family, str) or not isinstance(params, dict):
        raise KernelError(f"malformed manifest entry for probe {probe_id}")
    return probe_id, family, dict(params)


@dataclass
class _Dispatch:
    """What to do with one kernel event type of this session."""

    fmt: EventFormat
    uses: list[tuple[int, tracepoints.TracepointUse | None]] = field(default_factory=list)
    tracker_kind: str = ""  # "exec", "fork", "exit" when the path tracker follows this event


# The scheduler events a path tracker needs to follow processes across exec, fork and exit.
_FOLLOW_EVENTS = {("sched", "sched_process_exec"): "exec", ("task", "task_newtask"): "fork",
                  ("sched", "sched_process_exit"): "exit"}


def add_follow_events(tracker: tracepoints.ProcessTracker,
                      by_event: dict[tuple[str, str], list[Any]]) -> dict[tuple[str, str], str]:
    """When probes name processes by path, seed the tracker from /proc and make sure the
    events that keep it current are read (with no probe of their own); returns which
    event feeds which tracker kind.  Shared by root and stapusr sessions."""
    if not tracker.paths:
        return {}
    tracker.seed_from_proc()
    for key in _FOLLOW_EVENTS:
        by_event.setdefault(key, [])
    return dict(_FOLLOW_EVENTS)


def load_event_format(tfs: Tracefs, system: str, event: str, uses: list[Any],
                      problems: list[str], what: str) -> EventFormat | None:
    """The decoder-ready format of ``system:event``, or None with the reason added to
    ``problems`` (naming the probes that needed it)."""
    try:
        return session_decoder(parse_format(tfs.event_format(system, event)))
    except (OSError, FormatError) as exc:
        ids = ", ".join(f"#{pid}" for pid, _ in uses) or "internal"
        problems.append(f"probe {ids}: {what} {system}:{event} is not available ({exc})")
        return None


def deliver(d: _Dispatch, fields: dict[str, Any], append: Callable[[Event], None],
            tracker: tracepoints.ProcessTracker, tgid_cache: dict[int, int]) -> None:
    """Hand one decoded record to every entry using its event, then update the path tracker.

    Shared by the tracefs reader and the stapusr perf reader; ``fields``
    already carries ``_pid``, ``_tid`` and ``_time``.
    """
    for probe_id, use in d.uses:
        if use is None:
            append((probe_id, fields))
            continue
        f = use.mapper(fields) if use.mapper is not None else fields
        if use.predicate is None or use.predicate(f):
            append((probe_id, f))
    kind = d.tracker_kind
    if kind == "exec":
        tracker.on_exec(fields["pid"], fields["filename"])
    elif kind == "fork":
        if fields["clone_flags"] & tracepoints.CLONE_THREAD:
            tgid_cache[fields["pid"]] = fields["_pid"]  # /proc may be gone when it exits
        tracker.on_fork(fields["_pid"], fields["pid"], fields["clone_flags"])
    elif kind == "exit":
        tgid_cache.pop(fields["_tid"], None)
        if fields.get("group_dead"):
            tracker.on_exit(fields["_pid"])


def _event_time(event: Event) -> int:
    return event[1]["_time"]


def packable(d: _Dispatch) -> int | None:
    """The probe id when the records of ``d``'s event go, unchanged, to that one probe (no
    Python mapper or process tracking, at most a test of the hitting pid: :func:`pid_test`):
    its records can travel as schema rows."""
    if len(d.uses) != 1 or d.tracker_kind:
        return None
    probe_id, use = d.uses[0]
    if use is not None and (use.mapper is not None or (use.predicate is not None
                                                       and use.pid_predicate is None)):
        return None
    return probe_id


def pid_test(d: _Dispatch) -> Callable[[int], bool] | None:
    """The test a :func:`packable` event's hitting process (tgid) must pass (None: all pass)."""
    use = d.uses[0][1]
    return use.pid_predicate if use is not None else None


@dataclass
class RowPlan:
    """How the records of one kernel event become schema rows (``eventwire``).

    ``unpack`` reads the thread id and the fixed-size fields the client gets
    (everything else in the record is skipped as padding, so no byte the
    schema does not name is ever copied); ``strings`` are the record offsets
    of its ``__data_loc`` strings, sent last, as string-table indexes.
    """

    fields: list[tuple[str, str]]
    unpack: Callable[[bytes, int], tuple[Any, ...]]
    min_size: int
    strings: tuple[int, ...]


def row_plan(fmt: EventFormat) -> RowPlan:
    """The :class:`RowPlan` of one event format (field names as the handler reads them)."""
    fixed: list[Any] = []
    strings: list[Any] = []
    skip = set(COMMON_SKIP)
    for f in sorted(fmt.fields, key=lambda x: x.offset):
        if f.name == "common_pid" or f.name in COMMON_SKIP:
            continue
        if eventwire.field_name(f.name) is None or f.kind == "data_loc":
            skip.add(f.name)
        (strings if f.kind == "data_loc" else fixed).append(f)
    fields: list[tuple[str, str]] = []
    for f in fixed:
        name = eventwire.field_name(f.name)
        if name is None:
            continue
        if f.kind == "int":
            code = {1: "b", 2: "h", 4: "i", 8: "q"}[f.size]
            fields.append((name, code if f.signed else code.upper()))
        else:
            fields.append((name, ("c" if f.kind == "chars" else "x") + str(f.size)))
    offsets = []
    for f in strings:
        name = eventwire.field_name(f.name)
        if name is not None:
            fields.append((name, "s"))
            offsets.append(f.offset)
    wire = EventFormat(fmt.id, fmt.name, fmt.fields, frozenset(skip), {"common_pid": "_tid"})
    min_size = max([wire.size, *(off + 4 for off in offsets)])
    return RowPlan(fields, wire.unpack_from, min_size, tuple(offsets))


class EventReader:
    """Decoded events of one session: ``read(timeout) -> [(probe_id, fields)]``.

    ``fields`` holds the probe's own values (fetch arguments or tracepoint
    fields, by name) plus context: ``_pid`` (thread-group id), ``_tid``,
    ``_cpu`` and ``_time`` (CLOCK_MONOTONIC ns, same clock as
    ``time.monotonic_ns()``).
    """

    def __init__(self, session: KernelSession, raw: RawReader, cpus: list[int],
                 dispatch: dict[int, _Dispatch], tracker: tracepoints.ProcessTracker,
                 strings: syscallstrings.SyscallStrings | None = None) -> None:
        self._strings = strings
        self._session = session
        self._raw = raw
        self._cpus = cpus
        self._dispatch = dispatch
        self._tracker = tracker
        self._tgids: dict[int, int] = {}
        self.delivered = 0
        self.unknown = 0
        self._wire: tuple[eventwire.Encoder, Callable[..., None]] | None = None
        self.more = False  # the last read_encoded stopped at its page limit: call again at once

    def _tgid(self, tid: int) -> int:
        tgid = self._tgids.get(tid)
        if tgid is None:
            tgid = tid
            try:
                with open(f"/proc/{tid}/status", "rb") as f:
                    for line in f:
                        if line.startswith(b"Tgid:"):
                            tgid = int(line.split()[1])
                            break
            except (OSError, ValueError, IndexError):
                pass
            if len(self._tgids) > 65536:
                self._tgids.clear()
            self._tgids[tid] = tgid
        return tgid

    def read(self, timeout: float = 0.0) -> list[Event]:
        """Events available now (waiting up to ``timeout`` seconds for the first)."""
        out: list[Event] = []
        if timeout > 0:
            self._raw.poll(timeout)
        ordered = bool(self._tracker.paths)
        # The records are acyclic: pausing the cyclic GC while building
        # thousands of dicts saves about a third of the per-event cost.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            busy = self._raw.drain(self._make_sink(out.append), ordered=ordered)
            if self._strings is not None and self._strings.drain(out.append):
                busy += 2
            if busy > 1 and not ordered:
                out.sort(key=_event_time)
        finally:
            if gc_was_enabled:
                gc.enable()
        self.delivered += len(out)
        return out

    def read_encoded(self, encoder: eventwire.Encoder, generic: Callable[[Event], None],
                     timeout: float = 0.0, max_pages: int = MAX_READ_PAGES) -> int:
        """Like :meth:`read`, straight into ``encoder``: returns how many events were added.

        Events of a :func:`packable` kind become schema rows without any
        per-event dict; the others are decoded as :meth:`read` does and
        handed to ``generic`` (which adds them to the encoder, e.g. as JSON),
        in time order with the rows.  ``encoder`` must be the same on every
        call (its schemas are defined on the first).
        """
        if timeout > 0:
            self._raw.poll(timeout)
        if self._wire is None or self._wire[0] is not encoder:
            self._wire = (encoder, self._wire_sink(encoder, generic))
        sink = self._wire[1]
        before = len(encoder)
        ordered = bool(self._tracker.paths)
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            busy = self._raw.drain(sink, ordered=ordered, max_pages=max_pages)
            self.more = self._raw.last_pages >= max_pages
            if self._strings is not None:
                strings: list[Event] = []
                if self._strings.drain(strings.append):
                    busy += 2
                    for event in strings:
                        generic(event)
            if busy > 1 and not ordered:
                encoder.sort()
        finally:
            if gc_was_enabled:
                gc.enable()
        added = len(encoder) - before
        self.delivered += added
        return added

    def _wire_sink(self, encoder: eventwire.Encoder,
                   generic: Callable[[Event], None]) -> Callable[[int, int, bytes, int, int], None]:
        """The page sink of :meth:`read_encoded`: one row encoder per packable event type."""
        generic_sink = self._make_sink(generic)
        tgid_cache = self._tgids
        tgid = self._tgid
        raw = self._raw
        u32 = eventwire.U32_LE.unpack_from
        rows: dict[int, Callable[[int, int, bytes, int, int], None]] = {}
        for type_id, d in sorted(self._dispatch.items()):
            probe_id = packable(d)
            if probe_id is None:
                continue
            plan = row_plan(d.fmt)
            sid = len(rows) + 1
            try:
                encoder.define(sid, probe_id, plan.fields)
            except ValueError:  # not expressible as a schema (e.g. a huge array): JSON records
                continue
            rows[type_id] = _row_encoder(type_id, sid, plan, pid_test(d), generic_sink, encoder, u32,
                                         tgid_cache, tgid, raw, self)
        if len(rows) == 1:  # the usual case: one call per event, straight into the encoder
            return next(iter(rows.values()))

        def sink(type_id: int, ts: int, buf: bytes, start: int, stop: int) -> None:
            (rows.get(type_id) or generic_sink)(type_id, ts, buf, start, stop)

        return sink

    def _make_sink(self, append: Callable[[Event], None]) -> Callable[[int, int, bytes, int, int], None]:
        dispatch = self._dispatch
        tgid_cache = self._tgids
        tgid = self._tgid
        tracker = self._tracker
        raw = self._raw

        # Per event type: (decoder, the only probe id when it is a plain uprobe, dispatch).
        fast = {tid: (d.fmt.decode_from, d.uses[0][0] if len(d.uses) == 1 and d.uses[0][1] is None
                      and not d.tracker_kind else None, d) for tid, d in dispatch.items()}

        def sink(type_id: int, ts: int, buf: bytes, start: int, stop: int) -> None:
            entry = fast.get(type_id)
            if entry is None:
                self.unknown += 1
                return
            fields = entry[0](buf, start, stop)
            if fields is None:
                self.unknown += 1
                return
            tid = fields["_tid"]
            fields["_pid"] = tgid_cache.get(tid) or tgid(tid)
            fields["_time"] = ts
            fields["_cpu"] = raw.current_cpu
            if entry[1] is not None:
                append((entry[1], fields))
                return
            deliver(entry[2], fields, append, tracker, tgid_cache)

        return sink

    def fileno(self) -> int:
        """An fd to wait on (epoll over every CPU buffer)."""
        return self._raw._epoll.fileno()

    def lost(self) -> int:
        """Events the kernel dropped for this session (buffer full), so far."""
        total = self._raw.stats.missed_events + (self._strings.lost() if self._strings is not None else 0)
        for cpu in self._cpus:
            try:
                base = f"instances/{self._session.instance}"
                text = self._session.tracefs.read(f"{base}/per_cpu/cpu{cpu}/stats")
            except OSError:
                continue
            total += CpuStats.parse(text).lost
        return total

    def close(self) -> None:
        self._raw.close()


def string_index(encoder: eventwire.Encoder, buf: bytes, start: int, stop: int, offset: int) -> int:
    """The string-table index of the ``__data_loc`` string at ``offset`` of the record
    ``buf[start:stop]``: 0 (none) for a fetch that faulted, "" when it points outside."""
    loc = eventwire.U32_LE.unpack_from(buf, start + offset)[0]
    length = loc >> 16
    if length == 0:  # a fetch that faulted (a real string has its NUL): none
        return 0
    first = start + (loc & 0xFFFF)
    if first + length > stop:
        return encoder.intern(b"")
    return encoder.intern(buf[first:first + length])


def _row_encoder(type_id: int, sid: int, plan: RowPlan, test: Callable[[int], bool] | None,
                 other: Callable[[int, int, bytes, int, int], None],
                 encoder: eventwire.Encoder, u32: Callable[[bytes, int], tuple[int]],
                 tgid_cache: dict[int, int], tgid: Callable[[int], int], raw: RawReader, reader: EventReader
                 ) -> Callable[[int, int, bytes, int, int], None]:
    """The page sink for one event type (records of other types go to ``other``): unpack,
    pack, add.  This is the hot path of the daemon, hence three near-identical bodies."""
    my_type = type_id
    add, intern, interned = encoder.add, encoder.intern, encoder.interned
    pack = struct.Struct(eventwire.row_format(code for _, code in plan.fields)).pack
    unpack = plan.unpack
    min_size = plan.min_size

    if not plan.strings:
        def encode(type_id: int, ts: int, buf: bytes, start: int, stop: int) -> None:
            if type_id != my_type:
                other(type_id, ts, buf, start, stop)
                return
            if stop - start < min_size:
                reader.unknown += 1
                return
            v = unpack(buf, start)
            tid = v[0]
            pid = tgid_cache.get(tid) or tgid(tid)
            if test is not None and not test(pid):
                return
            add((ts, sid, pack(ts, pid, raw.current_cpu, *v)))
    elif len(plan.strings) == 1:
        (off,) = plan.strings

        def encode(type_id: int, ts: int, buf: bytes, start: int, stop: int) -> None:
            if type_id != my_type:
                other(type_id, ts, buf, start, stop)
                return
            if stop - start < min_size:
                reader.unknown += 1
                return
            v = unpack(buf, start)
            tid = v[0]
            pid = tgid_cache.get(tid) or tgid(tid)
            if test is not None and not test(pid):
                return
            loc = u32(buf, start + off)[0]
            length = loc >> 16
            if length == 0:
                index = 0
            else:
                first = start + (loc & 0xFFFF)
                if first + length > stop:
                    index = intern(b"")
                else:
                    text = buf[first:first + length]
                    index = interned(text) or intern(text)
            add((ts, sid, pack(ts, pid, raw.current_cpu, *v, index)))
    else:
        offsets = plan.strings

        def encode(type_id: int, ts: int, buf: bytes, start: int, stop: int) -> None:
            if type_id != my_type:
                other(type_id, ts, buf, start, stop)
                return
            if stop - start < min_size:
                reader.unknown += 1
                return
            v = unpack(buf, start)
            tid = v[0]
            pid = tgid_cache.get(tid) or tgid(tid)
            if test is not None and not test(pid):
                return
            indexes = [string_index(encoder, buf, start, stop, off) for off in offsets]
            add((ts, sid, pack(ts, pid, raw.current_cpu, *v, *indexes)))

    return encode


class KernelSession:
    """The kernel side of one session (see the module docstring)."""

    def __init__(self, sid: str, level: Level | int, uid: int, tracefs: Tracefs, *,
                 daemon_pid: int | None = None, buffer_kb: int = 2048,
                 exclude_pids: tuple[int, ...] = ()) -> None:
        if not _SID.fullmatch(sid):
            raise KernelError(f"invalid session id '{sid[:40]}' (letters and digits only)")
        self.sid = sid
        self.level = Level(level)
        self.uid = uid
        self.tracefs = tracefs
        self.daemon_pid = daemon_pid if daemon_pid is not None else os.getpid()
        self.instance = check_name(instance_name(sid, self.daemon_pid))
        self.group = check_name(group_name(sid))
        self.buffer_kb = buffer_kb
        self.exclude_pids = tuple(exclude_pids)  # the client: its system calls are never events here
        self.problems: list[str] = []
        self._reader: EventReader | None = None
        self._have_instance = False
        self._have_group = False
        self._teardown: threading.Thread | None = None
        self._strings: syscallstrings.SyscallStrings | None = None

    # -- install -------------------------------------------------------------------------------

    def install(self, entries: Iterable[Any]) -> EventReader:
        """Install every entry; return the reader.  Raises :class:`KernelError` when nothing works.

        Per-entry failures (an unprobeable instruction, a missing tracepoint)
        are collected in :attr:`problems` and the rest is installed, as
        SystemTap reports and skips a probe it cannot register.
        """
        if self._reader is not None:
            raise KernelError("session already installed")
        parsed = [_entry_parts(e) for e in entries]
        if self.level == Level.STAPUSR:
            raise KernelError(
                "stapusr sessions are installed through per-process perf events with the euid gate "
                "(pystap.kernel.perf), not through a tracefs instance"
            )
        try:
            return self._install(parsed)
        except BaseException:
            self.close(wait=True)
            raise

    def _install(self, parsed: list[tuple[int, str, dict[str, Any]]]) -> EventReader:
        tfs = self.tracefs
        base = f"instances/{self.instance}"
        tfs.mkdir(base)
        self._have_instance = True
        tfs.write(f"{base}/trace_clock", "mono\n")
        tfs.write(f"{base}/buffer_percent", "0\n")
        tfs.write(f"{base}/options/overwrite", "0\n")
        tfs.write(f"{base}/buffer_size_kb", f"{self.buffer_kb}\n")

        tracker = tracepoints.ProcessTracker()
        by_event: dict[tuple[str, str], list[tuple[int, tracepoints.TracepointUse | None]]] = {}
        for probe_id, family, params in parsed:
            try:
                if family in UPROBE_FAMILIES:
                    event = self._define_uprobe(probe_id, params)
                    use = tracepoints.uprobe_use(self.group, event, params, tracker)
                    by_event.setdefault((self.group, event), []).append((probe_id, use))
                elif family == "syscall" and self._string_syscall(probe_id, params):
                    continue
                elif family in TRACEPOINT_FAMILIES:
                    use = tracepoints.use_for(family, params, tracker, self.exclude_pids)
                    by_event.setdefault((use.system, use.event), []).append((probe_id, use))
                else:
                    raise KernelError(f"probe family '{family[:60]}' is not available on this kernel")
            except (uprobes.UprobeError, tracepoints.TracepointError, elfcheck.ElfCheckError, OSError,
                    KernelError) as exc:
                self.problems.append(f"probe #{probe_id}: {exc}")

        follow = add_follow_events(tracker, by_event)

        dispatch: dict[int, _Dispatch] = {}
        for (system, event), uses in by_event.items():
            fmt = load_event_format(tfs, system, event, uses, self.problems, "tracepoint")
            if fmt is None:
                continue
            kernel_filter = "" if (system, event) in follow else tracepoints.combined_filter(
                [u.kernel_filter if u is not None else "" for _, u in uses])
            evdir = f"{base}/events/{system}/{event}"
            try:
                if kernel_filter:
                    self._set_filter(evdir, kernel_filter)
                tfs.write(f"{evdir}/enable", "1\n")
            except OSError as exc:
                ids = ", ".join(f"#{pid}" for pid, _ in uses)
                why = uprobes.enable_error(exc)
                self.problems.append(f"probe {ids}: cannot enable {system}:{event}: {why}")
                continue
            dispatch[fmt.id] = _Dispatch(fmt, uses, follow.get((system, event), ""))
        if not any(d.uses for d in dispatch.values()) and self._strings is None:
            reasons = "; ".join(self.problems or ["empty manifest"])
            raise KernelError(f"no probe could be installed: {reasons}")

        cpus = tfs.cpus(base)
        fds = []
        try:
            for cpu in cpus:
                fds.append(os.open(tfs.path(f"{base}/per_cpu/cpu{cpu}/trace_pipe_raw"),
                                   os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW))
        except OSError:
            for fd in fds:
                os.close(fd)
            raise
        raw = RawReader(fds, cpus=cpus)
        if self._strings is not None:
            self._strings.register(raw._epoll)
            self._strings.enable()
        self._reader = EventReader(self, raw, cpus, dispatch, tracker, self._strings)
        return self._reader

    def _string_syscall(self, probe_id: int, params: dict[str, Any]) -> bool:
        """Install a named syscall entry probe through the BPF string template when it has path
        arguments; False (use the plain tracepoint) when it has none or BPF is unavailable."""
        name, nr = params.get("syscall"), params.get("nr")
        if params.get("return") or not isinstance(name, str) or name not in syscallstrings.STRING_ARGS:
            return False
        if isinstance(nr, bool) or not isinstance(nr, int) or not 0 <= nr < 4096:
            return False
        try:
            if self._strings is None:
                self._strings = syscallstrings.SyscallStrings(self.tracefs)
            self._strings.add(probe_id, name, nr)
        except OSError as exc:
            self.problems.append(f"probe #{probe_id}: string arguments of {name} unavailable ({exc}); "
                                 "recording pointers only")
            return False
        return True

    def _set_filter(self, evdir: str, text: str) -> None:
        try:
            self.tracefs.write(f"{evdir}/filter", text + "\n")
        except TracefsError as exc:
            detail = ""
            try:
                detail = " ".join(self.tracefs.read(f"{evdir}/filter").split())
            except OSError:
                pass
            raise TracefsError(exc.errno or errno.EINVAL, f"filter '{text}' refused: {detail}") from None

    def _define_uprobe(self, probe_id: int, params: dict[str, Any]) -> str:
        path = params.get("binary")
        if not isinstance(path, str) or not path.startswith("/"):
            raise uprobes.UprobeError("uprobe entry without an absolute 'binary' path")
        build_id = params.get("build_id", "")
        if not isinstance(build_id, str) or not _BUILD_ID.fullmatch(build_id):
            raise uprobes.UprobeError("uprobe entry with a malformed 'build_id'")
        fetch = params.get("fetch", [])
        if not isinstance(fetch, list) or not all(isinstance(f, str) for f in fetch):
            raise uprobes.UprobeError("uprobe entry 'fetch' must be a list of strings")
        is_return = params.get("return", False)
        if not isinstance(is_return, bool):
            raise uprobes.UprobeError("uprobe entry 'return' must be true or false")
        event = f"{'r' if is_return else 'p'}{probe_id}"
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise uprobes.UprobeError(f"{path} is not a regular file")
            elfcheck.check_build_id(fd, build_id, path)
            # The definition names the inode we just checked, not the path.
            definition = uprobes.UprobeDef(self.group, event, f"/proc/self/fd/{fd}", params.get("offset", -1),
                                           is_return, params.get("semaphore", 0), tuple(fetch))
            uprobes.define(self.tracefs, definition)
            self._have_group = True
        finally:
            os.close(fd)
        return event

    # -- teardown ------------------------------------------------------------------------------

    def close(self, wait: bool = True) -> None:
        """Remove everything this session created; ``wait=False`` finishes in the background."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._strings is not None:
            self._strings.close()
            self._strings = None
        if not (self._have_instance or self._have_group):
            return
        if wait:
            self._remove()
        else:
            self._teardown = threading.Thread(target=self._remove, name=f"teardown-{self.sid}", daemon=True)
            self._teardown.start()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for a background teardown; True when it is finished."""
        if self._teardown is not None:
            self._teardown.join(timeout)
            return not self._teardown.is_alive()
        return True

    def _remove(self) -> None:
        remove_session_objects(self.tracefs, self.instance if self._have_instance else None,
                               self.group if self._have_group or self._have_instance else None)
        self._have_instance = self._have_group = False


def remove_session_objects(tfs: Tracefs, instance: str | None, group: str | None, *,
                           retries: int = 50) -> list[str]:
    """Teardown in the kernel's order: rmdir the instance (disables its events), delete the group.

    ``EBUSY`` (a reader still closing, a perf user) is retried briefly.
    Returns what could not be removed.
    """
    left: list[str] = []
    if instance is not None and tfs.exists(f"instances/{instance}"):
        for attempt in range(retries):
            try:
                tfs.rmdir(f"instances/{instance}")
                break
            except TracefsError as exc:
                if exc.errno == errno.ENOENT:
                    break
                if exc.errno != errno.EBUSY or attempt == retries - 1:
                    left.append(f"instance {instance}: {exc}")
                    break
                time.sleep(0.02)
    if group is not None:
        for attempt in range(retries):
            try:
                uprobes.delete_group(tfs, group)
                break
            except TracefsError as exc:
                if exc.errno != errno.EBUSY or attempt == retries - 1:
                    left.append(f"group {group}: {exc}")
                    break
                time.sleep(0.02)
    return left
