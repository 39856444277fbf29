"""Families this host cannot provide: kernel functions and statements,
``module()``, ``kprobe.*``, hardware watchpoints, perf counters, procfs and
netfilter.  They are registered so that the privilege check runs first (a
stapusr script is told "not allowed", like SystemTap) and everyone else gets
a clear ``not available on this kernel (…)`` error instead of a mismatch.
"""

from __future__ import annotations

from typing import Any

from pystap.lang.ast import ProbePoint
from pystap.lang.diagnostics import SemanticError
from pystap.policy.probes import lookup
from pystap.probes.registry import NUM, STR, BuildContext, Built, Shape, shape


def _refuse(family: str):
    def build(pp: ProbePoint, args: dict[str, Any], ctx: BuildContext) -> list[Built]:
        row = lookup(family)
        reason = row.unavailable_reason if row is not None and row.unavailable_reason else "unsupported"
        raise SemanticError(f"probe point not available on this kernel ({reason})")

    return build


def _shapes() -> list[Shape]:
    out: list[Shape] = []
    kf = _refuse("kernel.function")
    for root in ("kernel", f"module({STR})"):
        for fn in (f"function({STR})", f"function({NUM})"):
            for suffix in ("", ".call", ".return", ".exported", ".inline", ".return.maxactive(N)"):
                if suffix == ".inline" and fn.endswith("(N)"):
                    continue
                out.append(shape(f"{root}.{fn}{suffix}", "kernel.function", kf))
        out.append(shape(f"{root}.function({STR}).label({STR})", "kernel.function", kf))
        for st in (f"statement({STR})", f"statement({NUM})"):
            out.append(shape(f"{root}.{st}", "kernel.function", kf))
            out.append(shape(f"{root}.{st}.nearest", "kernel.function", kf))
    out.append(shape(f"kernel.statement({NUM}).absolute", "kernel.function", kf))
    kp = _refuse("kprobe")
    for base in (f"kprobe.function({STR})", f"kprobe.module({STR}).function({STR})"):
        for suffix in ("", ".call", ".return", ".return.maxactive(N)"):
            out.append(shape(base + suffix, "kprobe", kp))
    out.append(shape(f"kprobe.statement({NUM}).absolute", "kprobe", kp))
    kd = _refuse("kernel.data")
    for arg in (NUM, STR):
        for suffix in (".write", ".rw", ".length(N).write", ".length(N).rw"):
            out.append(shape(f"kernel.data({arg}){suffix}", "kernel.data", kd))
    pf = _refuse("perf")
    for suffix in (
        "",
        ".sample(N)",
        ".hz(N)",
        ".process",
        f".process({STR})",
        f".counter({STR})",
        f".process({STR}).counter({STR})",
    ):
        out.append(shape(f"perf.type({NUM}).config({NUM}){suffix}", "perf", pf))
    pr = _refuse("procfs")
    for root in ("procfs", f"procfs({STR})"):
        for suffix in (
            ".read",
            ".write",
            ".read.maxsize(N)",
            ".umask(N).read",
            ".umask(N).write",
            ".umask(N).read.maxsize(N)",
        ):
            out.append(shape(root + suffix, "procfs", pr))
    nf = _refuse("netfilter")
    for base in (f"netfilter.hook({STR}).pf({STR})", f"netfilter.pf({STR}).hook({STR})"):
        out.append(shape(base, "netfilter", nf))
        out.append(shape(base + f".priority({STR})", "netfilter", nf))
    return out


SHAPES = _shapes()
