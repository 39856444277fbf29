"""One client's session inside pystapd: what it was granted and everything it holds.

A session starts when the ladder allows a module and ends when the client
says goodbye, closes the socket or dies (noticed through its pidfd).  Every
kernel object installed for the session (tracefs definitions, perf events,
BPF links) is registered here with its teardown, so ending the session frees
all of it, in reverse order, exactly once, whatever the reason.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pystap import modfile
from pystap.loader.peercred import Peer

_ids = itertools.count(1)
log = logging.getLogger("pystapd")


@dataclass
class Session:
    """``send_events(payload)`` streams kernel probe records to the client, one EVENTS
    frame per payload (:mod:`pystap.eventwire`; set by the daemon once the session is
    granted; installers call it from their reader threads).  ``targets`` are the pids the client asked to
    trace (``-c``/``-x``), validated as numbers only: the installer decides
    whether the caller may trace them."""

    peer: Peer
    module: modfile.Module
    digest: str
    credentials: int
    id: int = field(default_factory=lambda: next(_ids))
    started: float = field(default_factory=time.monotonic)
    send_events: Callable[[bytes], None] | None = None
    targets: tuple[int, ...] = ()  # -c/-x processes (pids); the installer checks the caller may trace them
    warnings: list[str] = field(default_factory=list)  # per-probe problems, sent with the grant
    lost: int = 0  # kernel events dropped (buffers full), set at teardown, reported at exit
    # The client asks for a *sync* when its -c command exits: every event recorded until then must
    # reach it before its end probes run.  The installer sets ``sync`` (drain the kernel buffers,
    # then call ``send_synced``); the daemon sets ``send_synced`` (an INFO frame after the events).
    sync: Callable[[], None] | None = None
    send_synced: Callable[[], None] | None = None
    _teardowns: list[tuple[str, Callable[[], None]]] = field(default_factory=list)
    _closed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def own(self, what: str, teardown: Callable[[], None]) -> None:
        """Register a resource's teardown; it runs when the session ends."""
        with self._lock:
            if self._closed:
                raise RuntimeError(f"session {self.id} is closed")
            self._teardowns.append((what, teardown))

    @property
    def resources(self) -> int:
        return len(self._teardowns)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> list[str]:
        """Tear everything down (last acquired first); returns what failed to tear down."""
        with self._lock:
            if self._closed:
                return []
            self._closed = True
            teardowns, self._teardowns = self._teardowns, []
        failures = []
        for what, teardown in reversed(teardowns):
            try:
                teardown()
            except Exception as exc:  # one failure must not stop the rest
                failures.append(f"{what}: {exc}")
                log.error("session %d: teardown of %s failed: %s", self.id, what, exc)
        return failures


# Installs a granted session's kernel probes (tracefs/perf/BPF, from the
# manifest), registering each object's teardown with ``session.own``; raises
# to refuse the session.  Provided by ``pystap.kernel``; None installs nothing
# (modules whose probes all run in the client: begin/end/error/never/timer).
Installer = Callable[[Session], None]


class SessionTable:
    """The live sessions, so the daemon can report and end them all at shutdown."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[int, Session] = {}

    def add(self, session: Session) -> None:
        with self._lock:
            self._sessions[session.id] = session

    def remove(self, session: Session) -> None:
        with self._lock:
            self._sessions.pop(session.id, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def all(self) -> list[Session]:
        with self._lock:
            return list(self._sessions.values())
