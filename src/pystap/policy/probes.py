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

from dataclasses import dataclass, replace

from pystap.privilege import PR_ALL, PR_PRIVILEGED, contains


@dataclass(frozen=True)
class FamilyPolicy:
    """One probe family: who may use it, and the shapes it covers.

    ``types`` are the exact probe-point types in ``--dump-probe-types``
    syntax (``process(string).function(string).return``), generated from the
    SystemTap registration code's shapes; ``needs_guru`` marks families that
    also need ``-g`` whatever the level (absolute kernel addresses).
    """

    family: str
    allowed: int
    patterns: tuple[str, ...]
    available: bool = True
    unavailable_reason: str = ""
    types: tuple[str, ...] = ()
    needs_guru: bool = False
    why: str = ""
    myproc: bool = False  # handlers confined to the loading user's own processes (stapusr)


# Probe-point roots, as SystemTap registers them.
_P = ("process", "process(number)", "process(string)")  # P
_PL = ("process.library(string)", "process(string).library(string)")  # PL (no process(PID).library)
_FN_SUFFIXES = ("", ".call", ".exported", ".return")
_FN_STRING_SUFFIXES = (
    ".callee(string)", ".callee(string).call", ".callee(string).return", ".callees", ".callees(number)",
    ".inline", ".label(string)",
)
_KERNEL_ROOTS = ("kernel", "module(string)")


def _types(roots: tuple[str, ...], suffixes: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{root}{suffix}" for root in roots for suffix in suffixes)


def _function_types(roots: tuple[str, ...], *, maxactive: bool = False) -> tuple[str, ...]:
    num = [f".function(number){s}" for s in _FN_SUFFIXES]
    text = [f".function(string){s}" for s in (*_FN_SUFFIXES, *_FN_STRING_SUFFIXES)]
    if maxactive:
        num.append(".function(number).return.maxactive(number)")
        text.append(".function(string).return.maxactive(number)")
    return _types(roots, (*num, *text))


def _statement_types(roots: tuple[str, ...]) -> tuple[str, ...]:
    return _types(roots, (".statement(number)", ".statement(number).nearest", ".statement(string)",
                          ".statement(string).nearest"))


_TIMER_UNITS = ("s", "sec", "ms", "msec", "us", "usec", "ns", "nsec", "jiffies")
_KPROBE_FN = ("", ".call", ".return", ".return.maxactive(number)")
_PERF = (
    "", ".counter(string)", ".hz(number)", ".process", ".process(string)", ".process(string).counter(string)",
    ".sample(number)",
)
_PROCFS = (".read", ".read.maxsize(number)", ".umask(number).read", ".umask(number).read.maxsize(number)",
           ".umask(number).write", ".write")
_DATA = (".length(number).rw", ".length(number).write", ".rw", ".write")

_NO_KPROBES = "this kernel has no kprobes and refuses fentry under lockdown"
_OWN = "runs only for the user's own processes (checked again at run time)"
_KERNEL = "kernel-wide: sees every user's activity"

_ROWS: tuple[FamilyPolicy, ...] = (
    FamilyPolicy("begin", PR_ALL, ("begin", "begin(N)"), types=("begin", "begin(number)"),
                 why="runs once, in the user's own session"),
    FamilyPolicy("end", PR_ALL, ("end", "end(N)"), types=("end", "end(number)"),
                 why="runs once, in the user's own session"),
    FamilyPolicy("error", PR_ALL, ("error", "error(N)"), types=("error", "error(number)"),
                 why="runs when the user's own session fails"),
    FamilyPolicy("never", PR_ALL, ("never",), types=("never",), why="never runs"),
    FamilyPolicy(
        "timer",
        PR_ALL,
        (
            "timer.s(N)", "timer.sec(N)", "timer.ms(N)", "timer.msec(N)", "timer.us(N)",
            "timer.usec(N)", "timer.ns(N)", "timer.nsec(N)", "timer.jiffies(N)", "timer.hz(N)",
            "timer.s(N).randomize(N)", "timer.ms(N).randomize(N)", "timer.jiffies(N).randomize(N)",
        ),
        types=("timer.hz(number)", *_types(tuple(f"timer.{u}(number)" for u in _TIMER_UNITS),
                                           ("", ".randomize(number)"))),
        why="interval timers of the user's own session (100 us .. 1 day)",
    ),
    FamilyPolicy("timer.profile", PR_PRIVILEGED, ("timer.profile.tick", "timer.profile"),
                 types=("timer.profile.tick",), why="samples every CPU, whoever runs there"),
    FamilyPolicy("process.begin", PR_ALL, ("P.begin",), types=_types(_P, (".begin",)), why=_OWN),
    FamilyPolicy("process.end", PR_ALL, ("P.end",), types=_types(_P, (".end",)),
                 why="own processes; also fires after a setuid exec, so check is_myproc()"),
    FamilyPolicy("process.thread.begin", PR_ALL, ("P.thread.begin",), types=_types(_P, (".thread.begin",)),
                 why=_OWN),
    FamilyPolicy("process.thread.end", PR_ALL, ("P.thread.end",), types=_types(_P, (".thread.end",)),
                 why=_OWN),
    FamilyPolicy("process.syscall", PR_ALL, ("P.syscall",), types=_types(_P, (".syscall",)), why=_OWN),
    FamilyPolicy("process.syscall.return", PR_ALL, ("P.syscall.return",),
                 types=_types(_P, (".syscall.return",)), why=_OWN),
    FamilyPolicy(
        "process.function",
        PR_ALL,
        (
            'P.function("F")', "P.function(ADDR)", 'P.function("F").call', 'P.function("F").return',
            'P.library("L").function("F")', 'P.library("L").function("F").return',
        ),
        types=_function_types((*_P, *_PL)),
        why=_OWN,
    ),
    FamilyPolicy(
        "process.statement", PR_ALL,
        ('P.statement("S")', "P.statement(ADDR)", "process(PID).statement(ADDR).absolute"),
        types=(*_statement_types((*_P, *_PL)), "process(number).statement(number).absolute",
               "process(number).statement(number).absolute.return"),
        why=_OWN,
    ),
    FamilyPolicy("process.mark", PR_ALL, ('P.mark("M")', 'P.provider("P").mark("M")'),
                 types=_types((*_P, *_PL), (".mark(string)", ".provider(string).mark(string)")), why=_OWN),
    FamilyPolicy("process.plt", PR_ALL, ("P.plt", 'P.plt("GLOB")', "P.plt.return"),
                 types=_types((*_P, *_PL), (".plt", ".plt.return", ".plt(string)", ".plt(string).return")),
                 why=_OWN),
    FamilyPolicy(
        "process.insn", PR_PRIVILEGED, ("process(PID).insn", 'process("PATH").insn.block'),
        types=_types(("process(number)", "process(string)"), (".insn", ".insn.block")),
        available=False, unavailable_reason="single-stepping probes are not supported by pystap",
        why="single-steps a process through the kernel's user-space stepping hooks",
    ),
    FamilyPolicy(
        "process.data", PR_PRIVILEGED, ("process.data(ADDR).write", 'process.data("NAME").rw'),
        types=_types(("process.data(number)", "process.data(string)"), _DATA),
        available=False, unavailable_reason="hardware watchpoints are not supported by pystap",
        why="hardware watchpoints are a machine-wide resource (SystemTap refuses them at pass 4)",
    ),
    FamilyPolicy("kernel.trace", PR_PRIVILEGED,
                 ('kernel.trace("TP")', 'kernel.tracepoint("TP")', 'module("M").tracepoint("TP")'),
                 types=("kernel.trace(string)", "kernel.tracepoint(string)"), why=_KERNEL),
    FamilyPolicy("syscall", PR_PRIVILEGED,
                 ("syscall.NAME", "syscall.NAME.return", "syscall_any", "nd_syscall.NAME"),
                 why="tapset aliases over kernel probes: every process's system calls"),
    FamilyPolicy(
        "kernel.function",
        PR_PRIVILEGED,
        ('kernel.function("F")', 'kernel.statement("S")', 'module("M").function("F")',
         'module("M").statement("S")'),
        available=False,
        unavailable_reason=_NO_KPROBES,
        types=(*_function_types(_KERNEL_ROOTS, maxactive=True), *_statement_types(_KERNEL_ROOTS)),
        why=_KERNEL,
    ),
    FamilyPolicy(
        "kernel.statement.absolute", PR_PRIVILEGED,
        ("kernel.statement(ADDR).absolute", "kprobe.statement(ADDR).absolute"),
        available=False, unavailable_reason=_NO_KPROBES,
        types=("kernel.statement(number).absolute", "kprobe.statement(number).absolute"),
        needs_guru=True, why="a raw kernel address; also needs -g",
    ),
    FamilyPolicy(
        "kprobe", PR_PRIVILEGED, ('kprobe.function("F")', 'kprobe.module("M").function("F")'),
        available=False, unavailable_reason=_NO_KPROBES,
        types=_types(("kprobe.function(string)", "kprobe.module(string).function(string)"), _KPROBE_FN),
        why=_KERNEL,
    ),
    FamilyPolicy("kernel.mark", PR_PRIVILEGED, ('kernel.mark("M")',), available=False,
                 unavailable_reason="kernel markers no longer exist",
                 types=("kernel.mark(string)", "kernel.mark(string).format(string)"), why=_KERNEL),
    FamilyPolicy("kernel.data", PR_PRIVILEGED, ("kernel.data(ADDR).write", 'kernel.data("SYM").rw'),
                 available=False, unavailable_reason="hardware watchpoints are not supported by pystap",
                 types=_types(("kernel.data(number)",), _DATA) + _types(("kernel.data(string)",), _DATA[2:]),
                 why="kernel memory watchpoints"),
    FamilyPolicy("perf", PR_PRIVILEGED, ("perf.type(N).config(N)",), available=False,
                 unavailable_reason="perf counter probes are not supported by pystap yet",
                 types=_types(("perf.type(number).config(number)",), _PERF),
                 why="hardware counters of the whole machine"),
    FamilyPolicy("procfs", PR_PRIVILEGED, ('procfs("PATH").read', 'procfs("PATH").write'), available=False,
                 unavailable_reason="procfs probes need a kernel module",
                 types=_types(("procfs", "procfs(string)"), _PROCFS),
                 why="creates files in /proc for everybody"),
    FamilyPolicy("netfilter", PR_PRIVILEGED, ('netfilter.hook("H").pf("PF")',), available=False,
                 unavailable_reason="netfilter probes need a kernel module",
                 types=_types(("netfilter.hook(string).pf(string)", "netfilter.pf(string).hook(string)"),
                              ("", ".priority(string)")),
                 why="sees every packet of the machine"),
    FamilyPolicy("kernel.lsm", PR_PRIVILEGED, ('kernel.lsm("HOOK")',), available=False,
                 types=("kernel.lsm(string)",),
                 unavailable_reason="LSM probes need the BPF runtime", why=_KERNEL),
    FamilyPolicy("python", PR_PRIVILEGED, ('python3.module("M").function("F")',), available=False,
                 types=_types(("python3.module(string).function(string)",), ("", ".call", ".return")),
                 unavailable_reason="python probes are not supported by pystap",
                 why="SystemTap implements them with a procfs probe"),
    FamilyPolicy("java", PR_PRIVILEGED, ('java("NAME").class("C").method("M")',), available=False,
                 types=_types(("java(string)", "java(number)"),
                              (".class(string).method(string)", ".class(string).method(string).return")),
                 unavailable_reason="java probes are not supported by pystap",
                 why="not supported; refused below stapdev until classified"),
    FamilyPolicy("debuginfod", PR_PRIVILEGED, ('debuginfod.process("P")',), available=False,
                 types=("debuginfod.process(string)", "debuginfod.archive(string).process(string)"),
                 unavailable_reason="debuginfod probes are not supported by pystap",
                 why="downloads arbitrary debuginfo"),
)

# Families whose handlers run in the context of a user process: at stapusr the
# loader and runtime confine them to the loading user's own processes
# (SystemTap's is_myproc assertion).  process.end is included: SystemTap leaves
# it unchecked (a process may end after exec'ing a setuid binary); pystap
# fails closed and lets such ends go unseen rather than report another user's.
_MYPROC_FAMILIES = frozenset({
    "process.begin", "process.end", "process.thread.begin", "process.thread.end", "process.syscall",
    "process.syscall.return", "process.function", "process.statement", "process.mark", "process.plt",
    "process.insn", "process.data",
})

FAMILIES: tuple[FamilyPolicy, ...] = tuple(
    replace(row, myproc=row.family in _MYPROC_FAMILIES) for row in _ROWS
)

_BY_FAMILY = {row.family: row for row in FAMILIES}
_BY_TYPE = {t: row for row in FAMILIES for t in row.types}
assert len(_BY_TYPE) == sum(len(row.types) for row in FAMILIES), "a probe type in two families"
assert len(_BY_FAMILY) == len(FAMILIES), "a family listed twice"


def lookup(family: str) -> FamilyPolicy | None:
    return _BY_FAMILY.get(family)


def family_allowed(family: str, level: int) -> bool:
    """True when a session at ``level`` may use ``family``; unknown families are refused."""
    row = _BY_FAMILY.get(family)
    return row is not None and contains(row.allowed, level)


def _type_key(text: str) -> tuple[tuple[str, str], ...]:
    """Sort key of a probe type as SystemTap's match tree orders it: per component,
    by name, then argument kind ('' < number < string)."""
    key = []
    for piece in text.split("."):
        name, _, kind = piece.partition("(")
        key.append((name, kind.rstrip(")")))
    return tuple(key)


def probe_types(level: int) -> list[str]:
    """``--dump-probe-types`` at ``level``: only the types the level may use."""
    found = {t for row in FAMILIES if contains(row.allowed, level) for t in row.types}
    return sorted(found, key=_type_key)


def family_of_type(probe_type: str) -> FamilyPolicy | None:
    """The row covering an exact probe type (``kernel.function(string).return``)."""
    return _BY_TYPE.get(probe_type)
