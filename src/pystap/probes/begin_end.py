"""``begin``, ``end``, ``error`` (each with an optional sequence number) and ``never``.

These need nothing from the kernel, so every privilege level may use them.
The sequence number orders begin/end/error probes (ties in script order).
"""

from __future__ import annotations

from typing import Any

from pystap.lang.ast import ProbePoint
from pystap.probes.registry import NUM, BuildContext, Built, shape


def _session(kind: str):
    def build(pp: ProbePoint, args: dict[str, Any], ctx: BuildContext) -> list[Built]:
        seq = args.get(kind)
        point = kind if seq is None else f"{kind}({seq})"
        return [Built(point=point, family=kind, params={"sequence": seq or 0}, sequence=seq or 0)]

    return build


def _never(pp: ProbePoint, args: dict[str, Any], ctx: BuildContext) -> list[Built]:
    return [Built(point="never", family="never")]


SHAPES = [
    shape("begin", "begin", _session("begin")),
    shape(f"begin({NUM})", "begin", _session("begin")),
    shape("end", "end", _session("end")),
    shape(f"end({NUM})", "end", _session("end")),
    shape("error", "error", _session("error")),
    shape(f"error({NUM})", "error", _session("error")),
    shape("never", "never", _never),
]
