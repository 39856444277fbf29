"""Which privilege levels may use each probe family: one table, read by both sides.

The translator consults it in pass 2 before a family builds anything (so a
privilege error wins over "unsupported"), and the root service consults it
again for every manifest entry of a module it is asked to load (a stapusr
module may only declare stapusr families).  Adding a probe family is one row.

Family ids are the ``family`` strings of manifest entries.  ``patterns`` are
the probe-point shapes (SystemTap syntax, ``P`` = ``process``,
``process("PATH")`` or ``process(PID)``) the family covers; they are used for
documentation and ``--dump-probe-types``.  Families this host cannot provide
(no kprobes here) still have a row, so that the privilege answer is right.
"""

from __future__ import annotations

from dataclasses import dataclass

from pystap.privilege import PR_ALL, PR_PRIVILEGED, contains


@dataclass(frozen=True)
class FamilyPolicy:
    family: str
    allowed: int
    patterns: tuple[str, ...]
    available: bool = True
    unavailable_reason: str = ""


_NO_KPROBES = "this kernel has no kprobes and refuses fentry under lockdown"

FAMILIES: tuple[FamilyPolicy, ...] = (
    FamilyPolicy("begin", PR_ALL, ("begin", "begin(N)")),
    FamilyPolicy("end", PR_ALL, ("end", "end(N)")),
    FamilyPolicy("error", PR_ALL, ("error", "error(N)")),
    FamilyPolicy("never", PR_ALL, ("never",)),
    FamilyPolicy(
        "timer",
        PR_ALL,
        (
            "timer.s(N)", "timer.sec(N)", "timer.ms(N)", "timer.msec(N)", "timer.us(N)",
            "timer.usec(N)", "timer.ns(N)", "timer.nsec(N)", "timer.jiffies(N)", "timer.hz(N)",
            "timer.s(N).randomize(N)", "timer.ms(N).randomize(N)", "timer.jiffies(N).randomize(N)",
        ),
    ),
    FamilyPolicy("timer.profile", PR_PRIVILEGED, ("timer.profile.tick", "timer.profile")),
    FamilyPolicy("process.begin", PR_ALL, ("P.begin",)),
    FamilyPolicy("process.end", PR_ALL, ("P.end",)),
    FamilyPolicy("process.thread.begin", PR_ALL, ("P.thread.begin",)),
    FamilyPolicy("process.thread.end", PR_ALL, ("P.thread.end",)),
    FamilyPolicy("process.syscall", PR_ALL, ("P.syscall",)),
    FamilyPolicy("process.syscall.return", PR_ALL, ("P.syscall.return",)),
    FamilyPolicy(
        "process.function",
        PR_ALL,
        (
            'P.function("F")', "P.function(ADDR)", 'P.function("F").call', 'P.function("F").return',
            'P.library("L").function("F")', 'P.library("L").function("F").return',
        ),
    ),
    FamilyPolicy("process.statement", PR_ALL, ('P.statement("S")', "P.statement(ADDR)")),
    FamilyPolicy("process.mark", PR_ALL, ('P.mark("M")', 'P.provider("P").mark("M")')),
    FamilyPolicy("process.plt", PR_ALL, ("P.plt", 'P.plt("GLOB")', "P.plt.return")),
    FamilyPolicy("kernel.trace", PR_PRIVILEGED, ('kernel.trace("TP")', 'kernel.tracepoint("TP")')),
    FamilyPolicy("syscall", PR_PRIVILEGED, ("syscall.NAME", "syscall.NAME.return", "syscall_any")),
    FamilyPolicy(
        "kernel.function",
        PR_PRIVILEGED,
        ('kernel.function("F")', 'kernel.statement("S")', 'module("M").function("F")'),
        available=False,
        unavailable_reason=_NO_KPROBES,
    ),
    FamilyPolicy(
        "kprobe", PR_PRIVILEGED, ('kprobe.function("F")', 'kprobe.module("M").function("F")'),
        available=False, unavailable_reason=_NO_KPROBES,
    ),
    FamilyPolicy("kernel.data", PR_PRIVILEGED, ("kernel.data(ADDR).write",), available=False,
                 unavailable_reason="hardware watchpoints are not supported by pystap"),
    FamilyPolicy("perf", PR_PRIVILEGED, ("perf.type(N).config(N)",), available=False,
                 unavailable_reason="perf counter probes are not supported by pystap yet"),
    FamilyPolicy("procfs", PR_PRIVILEGED, ('procfs("PATH").read', 'procfs("PATH").write'), available=False,
                 unavailable_reason="procfs probes need a kernel module"),
    FamilyPolicy("netfilter", PR_PRIVILEGED, ('netfilter.hook("H").pf("PF")',), available=False,
                 unavailable_reason="netfilter probes need a kernel module"),
)

_BY_FAMILY = {row.family: row for row in FAMILIES}


def lookup(family: str) -> FamilyPolicy | None:
    return _BY_FAMILY.get(family)


def family_allowed(family: str, level: int) -> bool:
    """True when a session at ``level`` may use ``family``; unknown families are refused."""
    row = _BY_FAMILY.get(family)
    return row is not None and contains(row.allowed, level)
