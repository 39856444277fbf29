"""``-t``: per-probe handler timing and SystemTap's probe hit report.

A module built with ``-t`` carries ``options["timing"]``: for each probe (by
manifest id) its ``[location, derivation]`` (see
:mod:`pystap.translate.hitreport`).  The session then wraps each handler to
time it, and prints after the end and error probes, on the script's output
(where SystemTap's module exit prints it), exactly in SystemTap's layout (the
first line ends in a space)::

    ----- probe hit report:
    begin, (<input>:1:1), hits: 1, cycles: 1520min/1520avg/1520max, variance: 0, from: begin, index: 0
    ----- refresh report:

Only probes that ran are listed.  SystemTap counts CPU cycles of the kernel
handler; here "cycles" are nanoseconds of the handler's run (the user-side
handler, measured with a monotonic clock), which is the cost this runtime
has.  ``variance`` is the sample variance of those times (integer, 0 for a
single hit).  The refresh report stays empty: this runtime never refreshes
module probes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

HEADER = "----- probe hit report: \n"
REFRESH = "----- refresh report:\n"


class ProbeTiming:
    """Counters per probe id: hits, sum, sum of squares, min, max (nanoseconds)."""

    def __init__(self, labels: list[tuple[str, str]]) -> None:
        self.labels = labels
        self.stats: dict[int, list[int]] = {}

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> ProbeTiming | None:
        """The timing a module asks for, or ``None``; malformed labels read as empty ones."""
        raw = options.get("timing")
        if not isinstance(raw, list):
            return None
        labels = [(str(x[0]), str(x[1])) if isinstance(x, list) and len(x) == 2 else ("", "") for x in raw]
        return cls(labels)

    def wrap(self, probe_id: int, handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """``handler`` timed: every run counts, also one that ends in an error (as SystemTap's)."""
        stat = self.stats.setdefault(probe_id, [0, 0, 0, 0, 0])
        clock = time.perf_counter_ns

        def timed(c: Any) -> Any:
            start = clock()
            try:
                return handler(c)
            finally:
                elapsed = clock() - start
                if stat[0] == 0:
                    stat[3] = stat[4] = elapsed
                elif elapsed < stat[3]:
                    stat[3] = elapsed
                elif elapsed > stat[4]:
                    stat[4] = elapsed
                stat[0] += 1
                stat[1] += elapsed
                stat[2] += elapsed * elapsed

        return timed

    def report(self, probes: Iterable[Any]) -> str:
        """The report text for ``probes`` (objects with ``id`` and ``point``), in id order."""
        lines = [HEADER]
        for probe in sorted(probes, key=lambda p: p.id):
            stat = self.stats.get(probe.id)
            if not stat or not stat[0]:
                continue
            count, total, squares, low, high = stat
            variance = (count * squares - total * total) // (count * (count - 1)) if count > 1 else 0
            location, derivation = self.labels[probe.id] if probe.id < len(self.labels) else ("", "")
            lines.append(f"{probe.point}, ({location}), hits: {count}, cycles: {low}min/{total // count}avg/"
                         f"{high}max, variance: {variance},{derivation}, index: {probe.id}\n")
        lines.append(REFRESH)
        return "".join(lines)
