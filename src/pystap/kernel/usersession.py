"""stapusr sessions: probes reach only the user's own processes, checked twice.

tracefs has no uid filtering, and a tracefs-enabled uprobe puts its
breakpoint into every process that maps the file (a machine-wide tax and a
confidentiality hole).  A stapusr session therefore never enables anything
in tracefs.  It defines its uprobes (definitions cost nothing while unused)
and consumes them through perf events:

1. **Placement**: one perf event per (probe, target process, CPU), bound to
   the target with ``inherit=1``, so breakpoints go only into the target's
   address space and into the children it forks afterwards.  A target is
   accepted only while its effective uid is the user's.
2. **Every hit**: the euid gate (:mod:`pystap.kernel.bpf`) runs in the
   kernel before a sample is recorded and drops it unless
   ``current->cred->euid`` is the user's, so a child that exec'd a setuid
   program, or that changed its uid, drops out at once.

Static tracepoints (``process.begin/end``, ``thread.*``, ``process.syscall``)
are one kernel object shared by every session, and the kernel ANDs the
results of all programs attached to one event, so they carry a single
daemon-owned gate (:class:`SharedGates`) that keeps hits whose euid is any
uid with a live stapusr session; each session's perf events, bound to its
own processes, select its part.  Note that a gate on ``raw_syscalls`` runs
for every system call of the machine while a stapusr session uses
``process.syscall`` (~0.2 us each, measured in the substrate study).

Everything but the definitions is fd-scoped; the session's empty tracefs
instance exists only to mark its group as live for the reaper.
"""

from __future__ import annotations

import os
import select
import struct
import threading
from collections.abc import Callable, Iterable
from typing import Any

from pystap import eventwire
from pystap.kernel import bpf, btf, perf, tracepoints
from pystap.kernel.session import (
    TRACEPOINT_FAMILIES,
    UPROBE_FAMILIES,
    Event,
    KernelError,
    KernelSession,
    RowPlan,
    _Dispatch,
    _entry_parts,
    add_follow_events,
    deliver,
    load_event_format,
    packable,
    pid_test,
    remove_session_objects,
    row_plan,
    string_index,
)
from pystap.kernel.tracefs import Tracefs
from pystap.privilege import Level

MAX_TARGETS = 64
MAX_PERF_FDS = 8192
MAX_GATED_UIDS = 4096
STAPUSR_TRACEPOINT_FAMILIES = frozenset(("process.begin", "process.end", "process.thread.begin",
                                         "process.thread.end", "process.syscall", "process.syscall.return"))


def effective_uid(pid: int) -> int | None:
    """The effective uid of ``pid`` (None when it is gone or unreadable)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Uid:"):
                    return int(line.split()[2])
    except (OSError, ValueError, IndexError):
        return None
    return None


def debuggable_by(pid: int, uid: int) -> bool:
    """True when ``uid`` could debug ``pid`` as far as its dumpable flag goes.

    The kernel makes the files of ``/proc/PID`` belong to root while a process is not
    dumpable (it changed credentials, ran a program its user may not read
    where the kernel enforces that, or opted out with
    ``prctl(PR_SET_DUMPABLE, 0)`` as key agents do); a stapusr session
    follows the debugger's rule (SystemTap only compared uids) and never
    attaches to such a process.
    """
    try:
        # the files, not the directory: the directory inode keeps its owner
        return os.stat(f"/proc/{pid}/status").st_uid == uid
    except OSError:
        return False


class SharedGates:
    """The daemon's gates on static tracepoints: one program per event, one uid set for all.

    The daemon creates one instance at start and passes it to every
    :class:`UserSession`.  A gate is attached through a perf event bound to
    the daemon itself (so it never samples anything) and stays attached for
    the daemon's lifetime: detaching it while another session's perf events
    remain would leave them ungated.  Everything is fd-scoped.
    """

    def __init__(self, tfs: Tracefs, offsets: btf.CredOffsets | None = None) -> None:
        self.tfs = tfs
        self.offsets = offsets or btf.cred_offsets()
        self.map_fd = bpf.map_create_hash(4, 4, MAX_GATED_UIDS)
        self._uids: dict[int, int] = {}
        self._events: dict[int, tuple[int, int]] = {}  # event id -> (prog fd, holder perf fd)
        self._lock = threading.Lock()

    def ensure(self, event_id: int) -> None:
        """Attach the gate to ``event_id`` (once)."""
        with self._lock:
            if event_id in self._events:
                return
            prog = bpf.prog_load(bpf.euid_set_gate(self.offsets, self.map_fd), bpf.PROG_TYPE_TRACEPOINT)
            try:
                holder = perf.open_tracepoint(event_id, os.getpid(), -1, inherit=False)
            except perf.PerfError:
                os.close(prog)
                raise
            try:
                perf.ioctl(holder, perf.IOC_SET_BPF, prog)
            except perf.PerfError:
                os.close(holder)
                os.close(prog)
                raise
            self._events[event_id] = (prog, holder)

    def add_uid(self, uid: int) -> None:
        with self._lock:
            if self._uids.get(uid, 0) == 0:
                bpf.map_update(self.map_fd, struct.pack("<I", uid), struct.pack("<I", 1))
            self._uids[uid] = self._uids.get(uid, 0) + 1

    def remove_uid(self, uid: int) -> None:
        """Drop one session's uid; with the last one, detach every gate.

        The kernel ANDs all programs attached to a tracepoint for *every* perf
        user of it, so an attached gate with an empty set would silently drop
        the samples of anyone else on the machine (perf, bpftrace, another
        daemon).  Sessions attach their perf events after :meth:`ensure`, so
        re-attaching on demand is safe.
        """
        with self._lock:
            count = self._uids.get(uid, 0) - 1
            if count <= 0:
                self._uids.pop(uid, None)
                bpf.map_delete(self.map_fd, struct.pack("<I", uid))
            else:
                self._uids[uid] = count
            if not self._uids:
                self._detach()

    def _detach(self) -> None:
        for prog, holder in self._events.values():
            os.close(holder)
            os.close(prog)
        self._events = {}

    def close(self) -> None:
        with self._lock:
            self._detach()
            os.close(self.map_fd)


class UserEventReader:
    """Decoded events of a stapusr session, same shape as :class:`~pystap.kernel.session.EventReader`."""

    def __init__(self, group: perf.PerfGroup, dispatch: dict[int, _Dispatch],
                 tracker: tracepoints.ProcessTracker, watch: perf.PerfGroup | None = None,
                 on_exec: Callable[[int], bool] | None = None, uid: int | None = None) -> None:
        self.uid = uid  # the user the gates admit: every event's uid and euid
        self._rows: tuple[eventwire.Encoder, dict[int, Callable[[Any], bool]]] | None = None
        self._group = group
        self._dispatch = dispatch
        self._tracker = tracker
        self._watch = watch
        self._on_exec = on_exec
        self._tgids: dict[int, int] = {}
        self.delivered = 0
        self.unknown = 0

    def _samples(self, timeout: float) -> list[tuple[int, int, int, bytes, int]]:
        """The perf samples available now, in time order across CPUs: (ts, pid, tid, raw, cpu)."""
        if timeout > 0:
            try:
                self._group.epoll.poll(timeout)
            except (OSError, ValueError):
                return []
        samples: list[tuple[int, int, int, bytes, int]] = []
        add = samples.append

        def sink(pid: int, tid: int, ts: int, cpu: int, raw: memoryview) -> None:
            add((ts, pid, tid, bytes(raw), cpu))

        if self._watch is not None and self._on_exec is not None:
            # New processes first: attaching them now catches their probes from here on;
            # the exec itself is delivered when it is one of ours.
            execs: list[tuple[int, int, int, bytes, int]] = []

            def watched(pid: int, tid: int, ts: int, cpu: int, raw: memoryview) -> None:
                execs.append((ts, pid, tid, bytes(raw), cpu))

            for ring in self._watch.rings:
                ring.drain(watched)
            for sample in execs:
                if self._on_exec(sample[1]):
                    add(sample)
        for ring in self._group.rings:
            ring.drain(sink)
        samples.sort(key=_sample_time)
        return samples

    def _deliver(self, sample: tuple[int, int, int, bytes, int], append: Callable[[Event], None]) -> None:
        ts, pid, tid, raw, cpu = sample
        d = self._dispatch.get(int.from_bytes(raw[:2], "little")) if len(raw) >= 2 else None
        fields = d.fmt.decode(raw) if d is not None else None
        if d is None or fields is None:
            self.unknown += 1
            return
        fields["_pid"], fields["_tid"], fields["_time"], fields["_cpu"] = pid, tid, ts, cpu
        deliver(d, fields, append, self._tracker, self._tgids)

    def read(self, timeout: float = 0.0) -> list[Event]:
        """Events available now, in time order across CPUs (waiting up to ``timeout`` for the first)."""
        out: list[Event] = []
        for sample in self._samples(timeout):
            self._deliver(sample, out.append)
        self.delivered += len(out)
        return out

    def read_encoded(self, encoder: eventwire.Encoder, generic: Callable[[Event], None],
                     timeout: float = 0.0) -> int:
        """Like :meth:`read`, straight into ``encoder`` (see :meth:`EventReader.read_encoded`):
        records of a :func:`packable` event become schema rows, with the gated ``uid``/``euid``."""
        if self._rows is None or self._rows[0] is not encoder:
            self._rows = (encoder, self._row_encoders(encoder))
        rows = self._rows[1]
        before = len(encoder)
        for sample in self._samples(timeout):
            raw = sample[3]
            row = rows.get(int.from_bytes(raw[:2], "little")) if len(raw) >= 2 else None
            if row is None:
                self._deliver(sample, generic)
            elif not row(sample):
                self.unknown += 1
        added = len(encoder) - before
        self.delivered += added
        return added

    def _row_encoders(self, encoder: eventwire.Encoder) -> dict[int, Callable[[Any], bool]]:
        out: dict[int, Callable[[Any], bool]] = {}
        for type_id, d in sorted(self._dispatch.items()):
            probe_id = packable(d)
            if probe_id is None:
                continue
            plan = row_plan(d.fmt)
            extra: tuple[int, ...] = ()
            fields = list(plan.fields)
            if self.uid is not None:  # proved by the euid gate at every hit
                fields += [("uid", "I"), ("euid", "I")]
                extra = (self.uid, self.uid)
            sid = len(out) + 1
            try:
                encoder.define(sid, probe_id, fields)
            except ValueError:
                continue
            out[type_id] = _sample_row(encoder, sid, plan, extra, pid_test(d))
        return out

    def fileno(self) -> int:
        return self._group.epoll.fileno()

    def lost(self) -> int:
        return self._group.lost() + (self._watch.lost() if self._watch is not None else 0)

    def close(self) -> None:
        pass  # the session owns the fds


def _sample_time(sample: tuple[int, int, int, bytes, int]) -> int:
    return sample[0]


def _sample_row(encoder: eventwire.Encoder, sid: int, plan: RowPlan, extra: tuple[int, ...],
                test: Callable[[int], bool] | None) -> Callable[[tuple[int, int, int, bytes, int]], bool]:
    """``row(sample)``: one perf sample as a schema row (False: too short for its format)."""
    pack = struct.Struct(eventwire.row_format(code for _, code in plan.fields) + "I" * len(extra)).pack
    unpack, min_size, offsets, add = plan.unpack, plan.min_size, plan.strings, encoder.add

    def row(sample: tuple[int, int, int, bytes, int]) -> bool:
        ts, pid, tid, raw, cpu = sample
        if len(raw) < min_size:
            return False
        if test is not None and not test(pid):
            return True  # not an event of this probe's target
        v = unpack(raw, 0)
        indexes = [string_index(encoder, raw, 0, len(raw), off) for off in offsets]
        add((ts, sid, pack(ts, pid, cpu, tid, *v[1:], *indexes, *extra)))
        return True

    return row


class UserSession:
    """The kernel side of a stapusr session (see the module docstring)."""

    def __init__(self, sid: str, uid: int, tracefs: Tracefs, targets: Iterable[int], *,
                 daemon_pid: int | None = None, offsets: btf.CredOffsets | None = None,
                 gates: SharedGates | None = None, follow: bool = False) -> None:
        if uid == 0:
            raise KernelError("a stapusr session cannot belong to root")
        self._ks = KernelSession(sid, Level.STAPUSR, uid, tracefs, daemon_pid=daemon_pid)
        self.sid, self.uid, self.tracefs = sid, uid, tracefs
        self.instance, self.group = self._ks.instance, self._ks.group
        self.targets = list(dict.fromkeys(targets))
        self.follow = follow
        if not self.targets and not follow:
            raise KernelError("a stapusr session needs target processes (-c CMD or -x PID) or follow=True")
        if len(self.targets) > MAX_TARGETS:
            raise KernelError(f"too many target processes ({len(self.targets)}, limit {MAX_TARGETS})")
        self._offsets = offsets
        self._gates = gates
        self._own_gates = False
        self._uid_added = False
        self.problems: list[str] = []
        self._group = perf.PerfGroup()
        self._progs: list[int] = []
        self._reader: UserEventReader | None = None
        self._lock = threading.Lock()
        self._teardown: threading.Thread | None = None
        self._have_objects = False
        self._watch: perf.PerfGroup | None = None
        self._attached: set[int] = set()
        self._event_gates: dict[int, int] = {}  # own uprobe event id -> its gate (attached once)
        self._dispatch: dict[int, _Dispatch] = {}
        self._cpus: list[int] = []

    def _check_target(self, pid: int) -> None:
        if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
            raise KernelError(f"invalid target pid {pid!r}")
        euid = effective_uid(pid)
        if euid is None:
            raise KernelError(f"target process {pid} does not exist")
        if euid != self.uid:
            raise KernelError(f"process {pid} does not belong to uid {self.uid}; stapusr may only probe "
                              "its own processes")
        if not debuggable_by(pid, self.uid):
            raise KernelError(f"process {pid} is not dumpable; stapusr may only probe processes its user "
                              "could debug")

    def install(self, entries: Iterable[Any]) -> UserEventReader:
        """Define the uprobes, attach per target and CPU with the gates; return the reader."""
        if self._reader is not None:
            raise KernelError("session already installed")
        parsed = [_entry_parts(e) for e in entries]
        try:
            return self._install(parsed)
        except BaseException:
            self.close(wait=True)
            raise

    def _shared_gates(self) -> SharedGates:
        if self._gates is None:
            self._gates = SharedGates(self.tracefs, self._offsets)
            self._own_gates = True
        if not self._uid_added:
            self._gates.add_uid(self.uid)
            self._uid_added = True
        return self._gates

    def _install(self, parsed: list[tuple[int, str, dict[str, Any]]]) -> UserEventReader:
        for pid in self.targets:
            self._check_target(pid)
        offsets = self._offsets or btf.cred_offsets()
        tfs = self.tracefs
        tfs.mkdir(f"instances/{self.instance}")  # the liveness marker for the reaper
        self._have_objects = True
        tracker = tracepoints.ProcessTracker()
        by_event: dict[tuple[str, str], list[tuple[int, tracepoints.TracepointUse | None]]] = {}
        for probe_id, family, params in parsed:
            try:
                if family in UPROBE_FAMILIES:
                    event = self._ks._define_uprobe(probe_id, params)
                    by_event.setdefault((self.group, event), []).append((probe_id, None))
                elif family in STAPUSR_TRACEPOINT_FAMILIES:
                    use = tracepoints.use_for(family, params, tracker)
                    by_event.setdefault((use.system, use.event), []).append((probe_id, use))
                else:
                    why = "needs stapsys or stapdev" if family in TRACEPOINT_FAMILIES else "is not available"
                    raise KernelError(f"'{family[:60]}' {why} for stapusr sessions")
            except (OSError, ValueError, KernelError) as exc:
                self.problems.append(f"probe #{probe_id}: {exc}")
        follow = add_follow_events(tracker, by_event)
        dispatch: dict[int, _Dispatch] = {}
        for (system, event), uses in by_event.items():
            fmt = load_event_format(tfs, system, event, uses, self.problems, "event")
            if fmt is None:
                continue
            dispatch[fmt.id] = _Dispatch(fmt, uses, follow.get((system, event), ""))
        if not any(d.uses for d in dispatch.values()):
            reasons = "; ".join(self.problems or ["empty manifest"])
            raise KernelError(f"no probe could be installed: {reasons}")
        self._cpus = tfs.cpus()
        self._dispatch = dispatch
        if len(dispatch) * max(len(self.targets), 1) * len(self._cpus) > MAX_PERF_FDS:
            raise KernelError("too many probes x processes x CPUs for one stapusr session")
        for event_id, d in dispatch.items():
            if d.uses and d.uses[0][1] is None:  # a uprobe of this session's own group
                gate = bpf.load_euid_gate(offsets, self.uid)
                self._progs.append(gate)
                self._event_gates[event_id] = gate
            else:
                self._shared_gates().ensure(event_id)
        for pid in self.targets:
            self._attach(pid)
        # Re-check after attaching: a pid that changed owner meanwhile is refused.
        for pid in self.targets:
            self._check_target(pid)
        self._group.enable()
        on_exec = None
        if self.follow:
            self._start_watch()
            on_exec = self._on_exec
        self._reader = UserEventReader(self._group, dispatch, tracker, self._watch, on_exec, uid=self.uid)
        return self._reader

    def _attach(self, pid: int) -> list[int]:
        """Per-CPU perf events on every event of the session, bound to ``pid``; returns the new fds."""
        fds = []
        for event_id in self._dispatch:
            for cpu in self._cpus:
                fd = perf.open_tracepoint(event_id, pid, cpu)
                self._group.add(fd)
                fds.append(fd)
                gate = self._event_gates.get(event_id)
                if gate is not None:  # the program belongs to the event: attach it through one fd
                    perf.ioctl(fd, perf.IOC_SET_BPF, gate)
                    del self._event_gates[event_id]
        self._attached.add(pid)
        return fds

    def _start_watch(self) -> None:
        """Machine-wide exec events behind the shared gate: how new processes of the user are found."""
        exec_id = self.tracefs.event_id("sched", "sched_process_exec")
        self._shared_gates().ensure(exec_id)
        self._watch = perf.PerfGroup()
        for cpu in self._cpus:
            fd = perf.open_tracepoint(exec_id, -1, cpu, inherit=False)
            self._watch.add(fd)
            self._group.epoll.register(fd, select.EPOLLIN)
        self._watch.enable()

    def _covered(self, pid: int) -> bool:
        """True when ``pid`` descends from an attached process (its perf events are inherited)."""
        current = pid
        for _ in range(64):
            if current in self._attached:
                return True
            try:
                with open(f"/proc/{current}/stat", "rb") as f:
                    stat = f.read(4096)
                current = int(stat[stat.rindex(b")") + 2:].split()[1])
            except (OSError, ValueError, IndexError):
                return False
            if current <= 1:
                return False
        return False

    def _on_exec(self, pid: int) -> bool:
        """An exec passed the shared gate: attach when it is the user's and not yet followed.

        The gate admits every uid with a live stapusr session, so the euid is
        checked again here; a process that is already gone is skipped (fail
        closed).  Returns True when the exec record belongs to this session.
        """
        if pid in self._attached or self._covered(pid) or effective_uid(pid) != self.uid:
            return False
        if not debuggable_by(pid, self.uid):
            self.problems.append(f"not following process {pid}: it is not dumpable")
            return False
        if len(self._attached) >= MAX_TARGETS * 16:
            self.problems.append(f"not following process {pid}: too many processes")
            return False
        try:
            fds = self._attach(pid)
            for fd in fds:
                perf.ioctl(fd, perf.IOC_ENABLE)
        except OSError as exc:
            self.problems.append(f"cannot follow process {pid}: {exc}")
            return False
        return effective_uid(pid) == self.uid

    def close(self, wait: bool = True) -> None:
        """Disable and close every perf fd (slow in the kernel: ~90 ms per uprobe fd), then delete."""
        with self._lock:
            if wait:
                self._remove()
            else:
                self._teardown = threading.Thread(target=self._remove, name=f"teardown-{self.sid}",
                                                  daemon=True)
                self._teardown.start()

    def join(self, timeout: float | None = None) -> bool:
        if self._teardown is not None:
            self._teardown.join(timeout)
            return not self._teardown.is_alive()
        return True

    def _remove(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        for fd in self._group.fds:
            try:
                perf.ioctl(fd, perf.IOC_DISABLE)
            except perf.PerfError:
                pass
        self._group.close()
        for prog in self._progs:
            os.close(prog)
        self._progs = []
        self._reader = None
        if self._gates is not None and self._uid_added:
            self._gates.remove_uid(self.uid)
            self._uid_added = False
        if self._own_gates and self._gates is not None:
            self._gates.close()
            self._gates = None
            self._own_gates = False
        if self._have_objects:
            remove_session_objects(self.tracefs, self.instance, self.group)
            self._have_objects = False
