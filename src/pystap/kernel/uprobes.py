"""Manifest entries to tracefs uprobe definitions, and their lifecycle.

The manifest is data from a module the daemon was asked to load, so every
piece of a definition is rebuilt here from an allowlist rather than pasted:
fetch arguments must match a small grammar (registers, stack slots,
``$retval``, ``$comm``, bounded dereferences, ``@+OFF`` globals relative to
the probed file), names are identifiers, offsets are integers.  Absolute
addresses (``@ADDR``), symbols and anything else the kernel would accept are
refused, so a signed module can read nothing but the probed process's own
registers and memory.

Definitions are global in the kernel (one namespace for the machine), so a
session owns exactly one group ``stp_<sid>`` and deletes it as a whole.
"""

from __future__ import annotations

import errno
import re
from dataclasses import dataclass, field

from pystap.kernel.tracefs import Tracefs, TracefsError, check_name

REGISTERS = frozenset(
    ("ax", "bx", "cx", "dx", "si", "di", "bp", "sp", "ip",
     "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
)
TYPES = frozenset(
    ("u8", "u16", "u32", "u64", "s8", "s16", "s32", "s64", "x8", "x16", "x32", "x64", "string", "ustring")
)
RESERVED = frozenset(("common_type", "common_flags", "common_preempt_count", "common_pid"))
MAX_FETCH = 32
MAX_DEREF = 3
MAX_OFFSET = 1 << 40
NOT_SUPPORTED = 524  # ENOTSUPP: an instruction the kernel cannot probe

_FETCH_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")  # "_" starts the reader's context keys
_NUM = r"(?:0x[0-9a-fA-F]{1,12}|[0-9]{1,13})"
_BASE = re.compile(
    rf"%([a-z0-9]{{2,3}})|\$retval|\$stack(?:[0-9]{{1,2}})?|\$comm|@\+{_NUM}|\\-?[0-9]{{1,19}}"
)
_DEREF = re.compile(rf"([+-]{_NUM})\((.*)\)")


class UprobeError(ValueError):
    """A manifest entry cannot become a uprobe; the message says why."""


def _check_value(value: str, *, is_return: bool, depth: int = 0) -> None:
    m = _DEREF.fullmatch(value)
    if m:
        if depth >= MAX_DEREF:
            raise UprobeError(f"fetch argument '{value}' dereferences too deeply")
        inner = m.group(2)
        if inner == "$comm" or inner.startswith(("@", "\\")):
            raise UprobeError(f"fetch argument '{value}' dereferences a non-pointer")
        _check_value(inner, is_return=is_return, depth=depth + 1)
        return
    m = _BASE.fullmatch(value)
    if not m:
        raise UprobeError(f"fetch argument '{value}' is not allowed")
    if m.group(1) is not None and m.group(1) not in REGISTERS:
        raise UprobeError(f"unknown register '%{m.group(1)}'")
    if value == "$retval" and not is_return:
        raise UprobeError("$retval is only available in return probes")
    if value.startswith("$stack") and value != "$stack" and int(value[6:]) > 64:
        raise UprobeError(f"stack slot '{value}' is out of range")


def check_fetch(spec: str, *, is_return: bool) -> tuple[str, str, str]:
    """Validate one ``name=VALUE[:TYPE]`` fetch argument; return its parts."""
    if not isinstance(spec, str) or "=" not in spec or len(spec) > 256 or any(c.isspace() for c in spec):
        raise UprobeError(f"malformed fetch argument {str(spec)[:80]!r}")
    name, rest = spec.split("=", 1)
    if not _FETCH_NAME.fullmatch(name) or name in RESERVED:
        raise UprobeError(f"invalid fetch argument name '{name[:40]}'")
    value, _, kind = rest.rpartition(":") if ":" in rest else (rest, "", "")
    if kind and kind not in TYPES:
        raise UprobeError(f"invalid fetch type '{kind[:20]}' in '{spec[:80]}'")
    _check_value(value, is_return=is_return)
    if value == "$comm" and kind not in ("", "string"):
        raise UprobeError("$comm can only be fetched as a string")
    return name, value, kind


@dataclass(frozen=True)
class UprobeDef:
    """One uprobe definition, built only from validated parts."""

    group: str
    event: str
    target: str  # the path given to the kernel (``/proc/self/fd/N`` to pin an inode)
    offset: int
    is_return: bool = False
    semaphore: int = 0
    fetch: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        check_name(self.group)
        check_name(self.event)
        if not self.target.startswith("/") or any(c.isspace() for c in self.target) or ":" in self.target:
            shown = self.target[:200]
            raise UprobeError(f"binary path '{shown}' cannot be probed (absolute, no spaces or ':')")
        for value, what in ((self.offset, "offset"), (self.semaphore, "semaphore")):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_OFFSET:
                raise UprobeError(f"invalid {what} {value!r}")
        if len(self.fetch) > MAX_FETCH:
            raise UprobeError(f"too many fetch arguments ({len(self.fetch)}, limit {MAX_FETCH})")
        names = [check_fetch(f, is_return=self.is_return)[0] for f in self.fetch]
        if len(set(names)) != len(names):
            raise UprobeError("duplicate fetch argument names")

    def text(self) -> str:
        kind = "r" if self.is_return else "p"
        where = f"{self.target}:0x{self.offset:x}"
        if self.semaphore:
            where += f"(0x{self.semaphore:x})"
        return " ".join((f"{kind}:{self.group}/{self.event}", where, *self.fetch)) + "\n"


def define(tfs: Tracefs, probe: UprobeDef) -> None:
    """Append the definition to ``uprobe_events`` (never truncating it)."""
    with tfs.lock:
        try:
            tfs.write("uprobe_events", probe.text())
        except TracefsError as exc:
            reason = tfs.last_error() if exc.errno == errno.EINVAL else ""
            raise TracefsError(
                exc.errno, f"cannot define uprobe {probe.group}/{probe.event}: {exc.strerror}"
                + (f" (kernel: {reason})" if reason else "")
            ) from None


def delete_group(tfs: Tracefs, group: str) -> None:
    """Delete every definition of ``group`` (``-:GROUP/``); absent is fine."""
    check_name(group)
    with tfs.lock:
        try:
            tfs.write("uprobe_events", f"-:{group}/\n")
        except TracefsError as exc:
            if exc.errno != errno.ENOENT:
                raise


def enable_error(exc: OSError) -> str:
    """A user-facing reason for a failed per-event enable."""
    if exc.errno == NOT_SUPPORTED:
        return "the kernel cannot probe the instruction at this address (ENOTSUPP)"
    return exc.strerror or str(exc)
