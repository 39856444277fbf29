"""The daemon's installer: a granted session's kernel probes, streamed to its client.

pystapd calls an *installer* with each granted session (``loader.session``'s
``Installer`` contract: install, register every teardown with
``session.own``, raise to refuse).  This one picks the mechanism by the
module's privilege: a tracefs instance (:class:`KernelSession`) for
stapsys/stapdev, per-process perf events behind the euid gates
(:class:`UserSession`) for stapusr, attached to the client process (so a
``-c CMD`` it starts is followed by inheritance) and following the user's
new processes.  A reader thread turns events into EVENTS payloads
(:mod:`pystap.eventwire`): a probe whose records all look alike (a uprobe,
a plain tracepoint) is described once by a schema and each hit is a packed
row; other records are JSON objects.  Either way the client's runtime gets
context as ``pid tid cpu`` (and ``uid euid`` where the gate proves them),
``comm`` and the probe's values as ``$name`` target variables.

Duck-typed on the session (``id``, ``module``, ``peer.pid``, ``peer.uid``,
``send_events(payload)``, ``own``; optional ``targets``, ``warnings``, ``lost``) so
that the root-side kernel library does not import the loader.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Iterator
from typing import Any

from pystap import eventwire
from pystap.kernel.session import KernelError, KernelSession
from pystap.kernel.tracefs import Tracefs
from pystap.kernel.usersession import SharedGates, UserSession
from pystap.privilege import Level

PAYLOAD_BYTES = 1 << 20  # one EVENTS frame (the client accepts up to 4 MiB)
BATCH_S = 0.005  # the reader's pause between reads that found the buffers empty (latency bound)
log = logging.getLogger("pystapd")


def sid_for(session_id: int, daemon_pid: int | None = None) -> str:
    """The kernel-side id of a daemon session, unique on the machine.

    Uprobe groups are one machine-wide namespace and every daemon numbers
    its sessions from 1, so the daemon's pid is part of the id (two daemons,
    e.g. a test's and the system's, never share a group).
    """
    return f"d{daemon_pid if daemon_pid is not None else os.getpid()}s{session_id}"


_WIRE_KEYS: dict[str, str | None] = {}
# One encoder, built once: json.dumps() rebuilds it on every call with non-default separators.
_encode = json.JSONEncoder(separators=(",", ":")).encode


def wire_fields(fields: dict[str, Any], *, uid: int | None = None) -> dict[str, Any]:
    """One event as the client's runtime reads it (see the module docstring)."""
    out: dict[str, Any] = {"pid": fields.get("_pid", 0), "tid": fields.get("_tid", 0)}
    if "_cpu" in fields:
        out["cpu"] = fields["_cpu"]
    if uid is not None:
        out["uid"] = out["euid"] = uid
    keys = _WIRE_KEYS
    for key, value in fields.items():
        wire = keys.get(key, "")
        if wire == "":
            wire = eventwire.field_name(key)
            if len(keys) < 4096:  # field names come from manifests: bounded, but not trusted
                keys[key] = wire
        if wire is None:
            continue
        out[wire] = value.hex() if isinstance(value, bytes) else value
    return out


def json_adder(encoder: eventwire.Encoder, uid: int | None) -> Callable[[tuple[int, dict[str, Any]]], None]:
    """``add((probe_id, fields))``: one decoded event as a self-describing (JSON) record."""
    def add(event: tuple[int, dict[str, Any]]) -> None:
        probe_id, fields = event
        encoder.json(probe_id, fields.get("_time", 0), _encode(wire_fields(fields, uid=uid)).encode())

    return add


class KernelInstaller:
    """``installer(session)`` for pystapd; one per daemon (it owns the shared gates).

    It knows which kernel-side session ids are *live* (installing, running or
    still being torn down): :meth:`live_sids` is the view the reaper must
    spare, consulted at the moment each object is examined.
    """

    def __init__(self, tfs: Tracefs, *, poll_s: float = 0.05, batch_s: float = BATCH_S) -> None:
        self.tfs = tfs
        self.poll_s = poll_s
        self.batch_s = batch_s
        self._gates: SharedGates | None = None
        self._lock = threading.Lock()
        self._live: set[str] = set()
        self._closing: list[threading.Thread] = []

    def _shared_gates(self) -> SharedGates:
        with self._lock:
            if self._gates is None:
                self._gates = SharedGates(self.tfs)
            return self._gates

    def is_live(self, sid: str) -> bool:
        with self._lock:
            return sid in self._live

    def live_sids(self) -> _LiveSids:
        return _LiveSids(self)

    def _forget(self, sid: str) -> None:
        with self._lock:
            self._live.discard(sid)

    def __call__(self, session: Any) -> None:
        module = session.module
        entries = module.kernel_probes
        if not entries:
            return
        level = Level.from_name(module.privilege)
        sid = sid_for(session.id)
        targets = [int(t) for t in getattr(session, "targets", ())]
        kernel: KernelSession | UserSession
        uid: int | None = None
        with self._lock:
            self._live.add(sid)  # before the first kernel object exists: the reaper spares it
        try:
            if level == Level.STAPUSR and session.peer.uid != 0:
                # Only the user's own processes: the -c/-x targets (checked: euid is the user's)
                # and the processes the user starts from now on; never the client itself, whose
                # own system calls would feed back into its event stream.
                uid = session.peer.uid
                kernel = UserSession(sid, uid, self.tfs, targets, gates=self._shared_gates(), follow=True)
            else:
                kernel = KernelSession(sid, max(level, Level.STAPSYS), session.peer.uid, self.tfs,
                                       exclude_pids=(session.peer.pid,))
            reader = kernel.install(entries)  # raises KernelError: the session is refused
        except BaseException:
            self._forget(sid)  # install() removed whatever it had created
            raise
        warnings = getattr(session, "warnings", None)
        for problem in kernel.problems:
            log.warning("session %s: %s", session.id, problem)
            if isinstance(warnings, list):
                warnings.append(problem)
        stop = threading.Event()
        syncs = {"wanted": 0, "done": 0}  # sync requests (the daemon's thread) and answers (the pump's)

        # Events travel as schema rows where the reader can (see pystap.eventwire), else as JSON.
        encoder = eventwire.Encoder(limit=PAYLOAD_BYTES)
        add_json = json_adder(encoder, uid)
        read_encoded = getattr(reader, "read_encoded", None)

        nudge = threading.Event()  # a sync request or the stop: end the pump's batching pause

        def request_sync() -> None:
            syncs["wanted"] += 1
            nudge.set()

        def read(timeout: float) -> bool:
            """Encode what the kernel holds now; True when a page limit stopped the read short."""
            if read_encoded is None:
                for event in reader.read(timeout):
                    add_json(event)
                return False
            read_encoded(encoder, add_json, timeout)
            return bool(getattr(reader, "more", False))

        def pump() -> None:
            more = False
            while not stop.is_set():
                nudge.clear()
                wanted = syncs["wanted"]  # a drain that starts after the request covers it
                syncing = wanted > syncs["done"]
                try:
                    more = read(0 if syncing or more else self.poll_s)
                except (OSError, ValueError) as exc:
                    log.error("session %s: reading kernel events failed: %s", session.id, exc)
                    return
                try:
                    for payload in encoder.payloads():
                        if session.send_events is not None:
                            session.send_events(payload)
                    if syncing and not more:
                        syncs["done"] = wanted
                        send_synced = getattr(session, "send_synced", None)
                        if send_synced is not None:
                            send_synced()
                except OSError:
                    return
                if not more:
                    # Let events gather for a moment: a batch costs about the same to read, frame
                    # and dispatch whether it holds 10 events or 2,000 (latency <= batch_s).
                    nudge.wait(self.batch_s)

        if hasattr(session, "sync"):
            session.sync = request_sync

        thread = threading.Thread(target=pump, name=f"events-{sid}", daemon=True)

        def remove() -> None:
            try:
                kernel.close(wait=True)
            except Exception as exc:  # the reaper retries what is left
                log.error("session %s: removing its kernel objects failed: %s", session.id, exc)
            finally:
                self._forget(sid)

        def teardown() -> None:
            stop.set()
            nudge.set()
            thread.join(5)
            lost = reader.lost()
            if hasattr(session, "lost"):
                session.lost = lost
            if lost:
                log.warning("session %s: %d kernel events were lost (buffers full)", session.id, lost)
            # Removing enabled probes costs the kernel ~60 ms each: never hold the client for it.
            remover = threading.Thread(target=remove, name=f"teardown-{sid}", daemon=True)
            with self._lock:
                self._closing = [t for t in self._closing if t.is_alive()] + [remover]
            remover.start()

        session.own(f"kernel probes ({len(entries)})", teardown)
        thread.start()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for background teardowns (at daemon exit, or in tests); True when all are done."""
        with self._lock:
            closing = list(self._closing)
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in closing:
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in closing)

    def close(self) -> None:
        self.join()
        with self._lock:
            if self._gates is not None:
                self._gates.close()
                self._gates = None


class _LiveSids(Collection[str]):
    """A live view of the installer's session ids (what ``reaper.reap`` must spare)."""

    def __init__(self, installer: KernelInstaller) -> None:
        self._installer = installer

    def __contains__(self, sid: object) -> bool:
        return isinstance(sid, str) and self._installer.is_live(sid)

    def __iter__(self) -> Iterator[str]:
        with self._installer._lock:
            return iter(sorted(self._installer._live))

    def __len__(self) -> int:
        with self._installer._lock:
            return len(self._installer._live)


__all__ = ["KernelError", "KernelInstaller", "json_adder", "sid_for", "wire_fields"]
