"""``timerfd`` interval timers through ctypes.

Each ``timer.*`` probe gets its own non-blocking timerfd on
CLOCK_MONOTONIC.  Reading it yields the number of expirations since the
last read, so a handler that ran late sees how many ticks it missed: the
session counts them (they are never silently lost).  ``.randomize(M)``
timers are one-shot and re-armed after each tick with a fresh interval
``N ± M``, as SystemTap's hrtimer probes do.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import secrets

CLOCK_MONOTONIC = 1
TFD_NONBLOCK = os.O_NONBLOCK
TFD_CLOEXEC = os.O_CLOEXEC


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_libc.timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.timerfd_create.restype = ctypes.c_int
_libc.timerfd_settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Itimerspec),
                                  ctypes.POINTER(_Itimerspec)]
_libc.timerfd_settime.restype = ctypes.c_int


def _spec(ns: int) -> _Timespec:
    return _Timespec(ns // 1_000_000_000, ns % 1_000_000_000)


class IntervalTimer:
    """One timer probe's timerfd."""

    def __init__(self, interval_ns: int, randomize_ns: int = 0) -> None:
        if interval_ns <= 0:
            raise ValueError("timer interval must be positive")
        self.interval_ns = interval_ns
        self.randomize_ns = max(0, randomize_ns)
        fd = _libc.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"timerfd_create: {os.strerror(err)}")
        self.fd = fd

    def _next_interval(self) -> int:
        if not self.randomize_ns:
            return self.interval_ns
        r = self.randomize_ns
        return max(1, self.interval_ns + secrets.randbelow(2 * r + 1) - r)

    def _settime(self, first_ns: int, period_ns: int) -> None:
        spec = _Itimerspec(_spec(period_ns), _spec(first_ns))
        if _libc.timerfd_settime(self.fd, 0, ctypes.byref(spec), None) < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"timerfd_settime: {os.strerror(err)}")

    def start(self) -> None:
        if self.randomize_ns:
            self._settime(self._next_interval(), 0)
        else:
            self._settime(self.interval_ns, self.interval_ns)

    def expirations(self) -> int:
        """Ticks since the last call (0 when the fd was not ready)."""
        try:
            data = os.read(self.fd, 8)
        except BlockingIOError:
            return 0
        count = int.from_bytes(data, "little") if len(data) == 8 else 0
        if self.randomize_ns and count:
            self._settime(self._next_interval(), 0)
        return count

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
