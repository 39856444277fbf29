"""The daemon's installer: a granted session's kernel probes, streamed to its client.

pystapd calls an *installer* with each granted session (``loader.session``'s
``Installer`` contract: install, register every teardown with
``session.own``, raise to refuse).  This one picks the mechanism by the
module's privilege: a tracefs instance (:class:`KernelSession`) for
stapsys/stapdev, per-process perf events behind the euid gates
(:class:`UserSession`) for stapusr, attached to the client process (so a
``-c CMD`` it starts is followed by inheritance) and following the user's
new processes.  A reader thread turns events into the wire records
``(probe_id, timestamp_ns, JSON fields)`` the client's runtime expects:
context as ``pid tid cpu comm`` (and ``uid euid`` where the gate proves
them), the probe's values as ``$name`` target variables.

Duck-typed on the session (``id``, ``module``, ``peer.pid``, ``peer.uid``,
``send_events``, ``own``) so that the root-side kernel library does not
import the loader.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from pystap.kernel.session import KernelError, KernelSession
from pystap.kernel.tracefs import Tracefs
from pystap.kernel.usersession import SharedGates, UserSession
from pystap.privilege import Level

USER_SIDE_FAMILIES = frozenset({"begin", "end", "error", "never", "timer"})
MAX_BATCH = 4096
log = logging.getLogger("pystapd")


def sid_for(session_id: int) -> str:
    """The kernel-side session id of a daemon session: pass the live ones to ``reaper.reap``."""
    return f"s{session_id}"


def wire_fields(fields: dict[str, Any], *, uid: int | None = None) -> dict[str, Any]:
    """One event as the client's runtime reads it (see the module docstring)."""
    out: dict[str, Any] = {"pid": fields.get("_pid", 0), "tid": fields.get("_tid", 0)}
    if "_cpu" in fields:
        out["cpu"] = fields["_cpu"]
    if uid is not None:
        out["uid"] = out["euid"] = uid
    for key, value in fields.items():
        if key.startswith("_"):
            continue
        if isinstance(value, bytes):
            value = value.hex()
        if key == "comm":
            out["comm"] = value
        elif key == "retval":
            out["$return"] = value
        elif key.startswith("v_"):
            out["$" + key[2:]] = value
        else:
            out["$" + key] = value
    return out


class KernelInstaller:
    """``installer(session)`` for pystapd; one per daemon (it owns the shared gates)."""

    def __init__(self, tfs: Tracefs, *, poll_s: float = 0.05) -> None:
        self.tfs = tfs
        self.poll_s = poll_s
        self._gates: SharedGates | None = None
        self._lock = threading.Lock()
        self._closing: list[KernelSession | UserSession] = []

    def _shared_gates(self) -> SharedGates:
        with self._lock:
            if self._gates is None:
                self._gates = SharedGates(self.tfs)
            return self._gates

    def __call__(self, session: Any) -> None:
        module = session.module
        entries = [p for p in module.probes if p.family not in USER_SIDE_FAMILIES]
        if not entries:
            return
        level = Level.from_name(module.privilege)
        sid = sid_for(session.id)
        kernel: KernelSession | UserSession
        uid: int | None = None
        if level == Level.STAPUSR:
            uid = session.peer.uid
            kernel = UserSession(sid, uid, self.tfs, [session.peer.pid], gates=self._shared_gates(),
                                 follow=True)
        else:
            kernel = KernelSession(sid, level, session.peer.uid, self.tfs)
        reader = kernel.install(entries)  # raises KernelError: the session is refused
        for problem in kernel.problems:
            log.warning("session %s: %s", session.id, problem)
        stop = threading.Event()

        def pump() -> None:
            while not stop.is_set():
                try:
                    events = reader.read(self.poll_s)
                except (OSError, ValueError) as exc:
                    log.error("session %s: reading kernel events failed: %s", session.id, exc)
                    return
                for i in range(0, len(events), MAX_BATCH):
                    records = [(pid, f.get("_time", 0), json.dumps(wire_fields(f, uid=uid),
                                                                  separators=(",", ":")).encode())
                               for pid, f in events[i:i + MAX_BATCH]]
                    if session.send_events is not None:
                        try:
                            session.send_events(records)
                        except OSError:
                            return

        thread = threading.Thread(target=pump, name=f"events-{sid}", daemon=True)

        def teardown() -> None:
            stop.set()
            thread.join(5)
            lost = reader.lost()
            if lost:
                log.warning("session %s: %d kernel events were lost (buffers full)", session.id, lost)
            kernel.close(wait=False)  # slow kernel-side removal must not hold the client
            with self._lock:
                self._closing = [k for k in self._closing if not k.join(0)] + [kernel]

        session.own(f"kernel probes ({len(entries)})", teardown)
        thread.start()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for background teardowns (at daemon exit, or in tests); True when all are done."""
        with self._lock:
            closing = list(self._closing)
        return all(k.join(timeout) for k in closing)

    def close(self) -> None:
        self.join()
        with self._lock:
            if self._gates is not None:
                self._gates.close()
                self._gates = None


__all__ = ["KernelError", "KernelInstaller", "sid_for", "wire_fields"]
