"""``timer.*``: interval timers, with SystemTap's range checks and messages.

hrtimer forms (``s sec ms msec us usec ns nsec``) must lie within 100 µs ..
1 day once scaled to nanoseconds; the message names the bounds in the
probe's own unit.  ``timer.jiffies`` has its own bounds, ``timer.hz`` takes a
frequency and no ``.randomize``.  ``timer.profile`` samples every CPU and is
kept for privileged users (the policy table says so).
"""

from __future__ import annotations

from typing import Any

from pystap.lang.ast import ProbePoint
from pystap.lang.diagnostics import SemanticError
from pystap.probes.registry import NUM, BuildContext, Built, Shape, shape

MIN_NS = 100_000
MAX_NS = 86_400 * 1_000_000_000
MAX_JIFFIES = 1_000_000
HZ = 250

_UNITS = {
    "s": 10**9,
    "sec": 10**9,
    "ms": 10**6,
    "msec": 10**6,
    "us": 10**3,
    "usec": 10**3,
    "ns": 1,
    "nsec": 1,
}


def _hrtimer(unit: str):
    scale = _UNITS[unit]

    def build(pp: ProbePoint, args: dict[str, Any], ctx: BuildContext) -> list[Built]:
        n = args[unit]
        lo = -(-MIN_NS // scale)  # ceil: the smallest interval allowed, in this unit
        hi = MAX_NS // scale
        if n * scale < MIN_NS or n * scale > MAX_NS:
            raise SemanticError(f"interval value out of range ({lo}, {hi})")
        rnd = args.get("randomize")
        point = f"timer.{unit}({n})"
        if rnd is not None:
            if rnd < 0 or rnd > n:
                raise SemanticError("randomization value out of range")
            point += f".randomize({rnd})"
        params = {"interval_ns": n * scale, "randomize_ns": (rnd or 0) * scale}
        return [Built(point=point, family="timer", params=params)]

    return build


def _jiffies(pp: ProbePoint, args: dict[str, Any], ctx: BuildContext) -> list[Built]:
    n = args["jiffies"]
    if n < 1 or n > MAX_JIFFIES:
        raise SemanticError("invalid interval for jiffies timer")
    rnd = args.get("randomize")
    point = f"timer.jiffies({n})"
    if rnd is not None:
        if rnd < 0 or rnd > n:
            raise SemanticError("invalid randomize for jiffies timer")
        point += f".randomize({rnd})"
    ns = 10**9 // HZ
    return [
        Built(point=point, family="timer", params={"interval_ns": n * ns, "randomize_ns": (rnd or 0) * ns})
    ]


def _hz(pp: ProbePoint, args: dict[str, Any], ctx: BuildContext) -> list[Built]:
    n = args["hz"]
    if n <= 0:
        raise SemanticError("frequency must be greater than 0")
    period = -(-(10**9) // n)
    if period < MIN_NS or period > MAX_NS:
        raise SemanticError(f"interval value out of range ({MIN_NS}, {MAX_NS})")
    return [Built(point=f"timer.hz({n})", family="timer", params={"interval_ns": period, "randomize_ns": 0})]


def _profile(pp: ProbePoint, args: dict[str, Any], ctx: BuildContext) -> list[Built]:
    return [Built(point="timer.profile.tick", family="timer.profile", params={})]


def _shapes() -> list[Shape]:
    out = []
    for unit in _UNITS:
        out.append(shape(f"timer.{unit}({NUM})", "timer", _hrtimer(unit)))
        out.append(shape(f"timer.{unit}({NUM}).randomize({NUM})", "timer", _hrtimer(unit)))
    out.append(shape(f"timer.jiffies({NUM})", "timer", _jiffies))
    out.append(shape(f"timer.jiffies({NUM}).randomize({NUM})", "timer", _jiffies))
    out.append(shape(f"timer.hz({NUM})", "timer", _hz))
    out.append(shape("timer.profile.tick", "timer.profile", _profile))
    return out


SHAPES = _shapes()
