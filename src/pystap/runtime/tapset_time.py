"""Time tapset functions: wall clock, monotonic clocks, jiffies, date strings."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pystap.runtime.errors import StapRuntimeError

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def gettimeofday_s(c: Any) -> int:
    return time.time_ns() // 1_000_000_000


def gettimeofday_ms(c: Any) -> int:
    return time.time_ns() // 1_000_000


def gettimeofday_us(c: Any) -> int:
    return time.time_ns() // 1_000


def gettimeofday_ns(c: Any) -> int:
    return time.time_ns()


def get_cycles(c: Any) -> int:
    return time.perf_counter_ns()


def local_clock_ns(c: Any, *_cpu: int) -> int:
    return time.monotonic_ns()


def local_clock_us(c: Any, *_cpu: int) -> int:
    return time.monotonic_ns() // 1_000


def local_clock_ms(c: Any, *_cpu: int) -> int:
    return time.monotonic_ns() // 1_000_000


def local_clock_s(c: Any, *_cpu: int) -> int:
    return time.monotonic_ns() // 1_000_000_000


def hz(c: Any) -> int:
    return c.session.hz


def jiffies(c: Any) -> int:
    return time.monotonic_ns() * c.session.hz // 1_000_000_000


def _fmt_tm(tm: time.struct_time) -> str:
    return (f"{_DAYS[tm.tm_wday]} {_MONTHS[tm.tm_mon - 1]} {tm.tm_mday:2d} "
            f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d} {tm.tm_year}")


def ctime(c: Any, *args: int) -> str:
    """``ctime([secs])``: UTC, like C ``ctime`` without the newline."""
    secs = args[0] if args else gettimeofday_s(c)
    try:
        return _fmt_tm(time.gmtime(secs))
    except (OverflowError, OSError, ValueError):
        return "<invalid time>"


def tz_ctime(c: Any, secs: int) -> str:
    try:
        tm = time.localtime(secs)
    except (OverflowError, OSError, ValueError):
        return "<invalid time>"
    return _fmt_tm(tm) + " " + (tm.tm_zone or "UTC")


def tz_gmtoff(c: Any) -> int:
    """Seconds *west* of UTC, as SystemTap's tapset documents it."""
    return -(time.localtime().tm_gmtoff or 0)


def tz_name(c: Any) -> str:
    return time.localtime().tm_zone or "UTC"


def _cdivmod(a: int, b: int) -> tuple[int, int]:
    q = abs(a) // b
    q = -q if a < 0 else q
    return q, a - q * b


def _to_string(value: int, per_sec: int, digits: int) -> str:
    secs, frac = _cdivmod(value, per_sec)
    mins, secs = _cdivmod(secs, 60)
    return f"{mins}m{secs}.{frac:0{digits}d}s"


def msecs_to_string(c: Any, v: int) -> str:
    return _to_string(v, 1000, 3)


def usecs_to_string(c: Any, v: int) -> str:
    return _to_string(v, 1_000_000, 6)


def nsecs_to_string(c: Any, v: int) -> str:
    return _to_string(v, 1_000_000_000, 9)


def _stopwatch_read(c: Any, name: str, div: int) -> int:
    sw = c.session.stopwatches.get(name)
    if sw is None:
        raise StapRuntimeError(f"stopwatch {name} does not exist")
    total, started = sw
    if started is not None:
        total += time.monotonic_ns() - started
    return total // div


def start_stopwatch(c: Any, name: str) -> None:
    sws = c.session.stopwatches
    total, started = sws.get(name, (0, None))
    if started is None:
        sws[name] = (total, time.monotonic_ns())


def stop_stopwatch(c: Any, name: str) -> None:
    sws = c.session.stopwatches
    total, started = sws.get(name, (0, None))
    if started is not None:
        sws[name] = (total + time.monotonic_ns() - started, None)


def delete_stopwatch(c: Any, name: str) -> None:
    c.session.stopwatches.pop(name, None)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "gettimeofday_s": gettimeofday_s, "gettimeofday_ms": gettimeofday_ms,
    "gettimeofday_us": gettimeofday_us, "gettimeofday_ns": gettimeofday_ns, "get_cycles": get_cycles,
    "local_clock_s": local_clock_s, "local_clock_ms": local_clock_ms, "local_clock_us": local_clock_us,
    "local_clock_ns": local_clock_ns, "cpu_clock_s": local_clock_s, "cpu_clock_ms": local_clock_ms,
    "cpu_clock_us": local_clock_us, "cpu_clock_ns": local_clock_ns, "ktime_get_ns": local_clock_ns,
    "HZ": hz, "jiffies": jiffies, "ctime": ctime, "tz_ctime": tz_ctime, "tz_gmtoff": tz_gmtoff,
    "tz_name": tz_name, "msecs_to_string": msecs_to_string, "usecs_to_string": usecs_to_string,
    "nsecs_to_string": nsecs_to_string, "start_stopwatch": start_stopwatch,
    "stop_stopwatch": stop_stopwatch, "delete_stopwatch": delete_stopwatch,
    "read_stopwatch_s": lambda c, n: _stopwatch_read(c, n, 1_000_000_000),
    "read_stopwatch_ms": lambda c, n: _stopwatch_read(c, n, 1_000_000),
    "read_stopwatch_us": lambda c, n: _stopwatch_read(c, n, 1_000),
    "read_stopwatch_ns": lambda c, n: _stopwatch_read(c, n, 1),
}
