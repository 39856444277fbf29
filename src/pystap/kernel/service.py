"""The daemon's kernel side for its whole life: private tracefs, installer, reaper.

pystapd calls :meth:`KernelService.start` once, before it starts any
thread (entering a mount namespace needs a single-threaded process), and
:meth:`KernelService.close` when it stops.  In between:

* tracefs is mounted in the daemon's own mount namespace, so the host's
  mount table never changes and nothing else depends on the mount;
* the reaper runs at start (removing what a SIGKILLed daemon or session
  left armed), every ``interval`` seconds, and once more at exit; it spares
  exactly the sessions the installer reports live at the moment it looks;
* at exit, the background teardowns are joined, so a SIGTERM leaves no
  probe armed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading

from pystap.kernel import reaper
from pystap.kernel.installer import KernelInstaller
from pystap.kernel.tracefs import STANDARD_MOUNT, Tracefs, enter_private_namespace
from pystap.kernel.tracepoints import DAEMON_COMM

PR_SET_NAME = 15

log = logging.getLogger("pystapd")


def set_comm(name: str) -> None:
    """Set the calling thread's command name (threads created later inherit it)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_NAME): {os.strerror(err)}")


class KernelService:
    """Owns the tracefs mount, the :class:`KernelInstaller` and the periodic reaper."""

    def __init__(self, tfs: Tracefs, installer: KernelInstaller) -> None:
        self.tfs = tfs
        self.installer = installer
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def start(cls, mountpoint: str = STANDARD_MOUNT) -> KernelService:
        """Enter a private mount namespace with tracefs, reap leftovers; raises ``OSError``.

        Also names the process ``pystapd`` (``PR_SET_NAME``) while it has one
        thread, so that every thread it starts carries the name the syscall
        probes' kernel filter excludes (:func:`tracepoints.not_ours`).
        """
        tfs = Tracefs(enter_private_namespace(mountpoint))
        set_comm(DAEMON_COMM)
        service = cls(tfs, KernelInstaller(tfs))
        service.reap("start")
        return service

    def reap(self, when: str = "periodic") -> reaper.ReapReport:
        report = reaper.reap(self.tfs, self.installer.live_sids())
        if report.instances or report.groups:
            log.info("reaper (%s): removed instances %s, uprobe groups %s", when,
                     report.instances or "-", report.groups or "-")
        for failure in report.failures:
            log.warning("reaper (%s): could not remove %s", when, failure)
        return report

    def start_reaper(self, interval: float) -> None:
        """Reap every ``interval`` seconds in a background thread until :meth:`close`."""

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.reap()
                except OSError as exc:  # tracefs trouble must not end the service
                    log.error("reaper failed: %s", exc)

        self._thread = threading.Thread(target=loop, name="reaper", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Join the teardowns, close the shared gates, reap whatever is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.installer.close()
        try:
            self.reap("exit")
        except OSError as exc:
            log.error("final reap failed: %s", exc)
