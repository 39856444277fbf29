"""What the caller of :func:`pystap.runtime.run_module` may choose about a run."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO


class EventSource(Protocol):
    """Kernel-probe records, delivered by whoever installed the probes.

    ``fileno()`` becomes readable when records are waiting; ``read_batch()``
    returns them as ``(probe_id, fields)`` pairs (``probe_id`` is a manifest
    probe id, ``fields`` JSON-like data such as ``pid``, ``tid``, ``uid``,
    ``comm``, ``cpu`` and the probe's own values).  An empty batch after
    readability means the source is finished.  A handler's target variables
    (``$arg1``, ``$return`` ...) read ``fields["$arg1"]`` etc.; a record whose
    ``probe_id`` is not in the manifest counts as a skipped probe.

    A batch may also hold blocks of packed rows of one probe (the client's
    ``pystap.eventwire.Rows``): ``probe_id``, ``rows`` (tuples starting
    ``timestamp_ns, pid, cpu, tid``) and ``fields(row)``, which builds the
    row's ``fields`` dict (called only when a handler reads them).
    """

    def fileno(self) -> int: ...

    def read_batch(self) -> list[Any]: ...


@dataclass
class RunOptions:
    """Pass-5 options (the module itself carries everything decided at translation).

    ``output``: a path (``-o FILE``) or ``None`` for ``stdout``;
    ``stdout``/``stderr``: the streams to use (binary streams or text streams
    with a ``buffer``); ``target_pid``: ``-x PID``; ``command``: ``-c CMD``
    (started after the begin probes, ``target()`` is its pid, the session ends
    when it exits); ``timeout``: ``-T SECONDS``; ``globals``: ``-G`` /
    ``name=value`` assignments; ``limits``: ``-D NAME=VALUE`` overrides of
    the limits recorded in the module; ``verbose``: ``-v`` count.
    """

    output: str | os.PathLike[str] | None = None
    stdout: TextIO | Any = field(default_factory=lambda: sys.stdout)
    stderr: TextIO | Any = field(default_factory=lambda: sys.stderr)
    target_pid: int | None = None
    command: str | None = None
    timeout: float | None = None
    timeout_ms: int | None = None  # pystaprun's form of -T; used when ``timeout`` is None
    globals: dict[str, str] = field(default_factory=dict)
    limits: dict[str, int] = field(default_factory=dict)
    verbose: int = 0
    handle_signals: bool = True
    # ``-c`` already forked and held at its gate (pystaprun forks it before asking pystapd to arm
    # the probes, so they attach to it before its exec); a ``pystap.runtime.command.HeldCommand``.
    held_command: Any = None

    def effective_timeout(self) -> float | None:
        if self.timeout is not None:
            return self.timeout
        if self.timeout_ms is not None:
            return self.timeout_ms / 1000.0
        return None
