"""Statistics aggregates (``<<<``) and their histograms, as SystemTap computes them.

A :class:`Stat` accumulates count, sum, min, max and (when the script uses
``@variance``) Welford's running mean and M2 with the script's bit shift,
exactly as the runtime's ``__stp_stat_add`` does, and finalises variance the
way ``_stp_stat_get`` aggregates one CPU.  Histograms keep SystemTap's bucket
layout so ``@hist_*(s)[i]`` and ``foreach`` see the same bucket numbers, and
:func:`render_histogram` reproduces the runtime's ASCII chart byte for byte.
"""

from __future__ import annotations

from pystap.runtime.arith import wrap
from pystap.runtime.errors import StapRuntimeError

HIST_LOG_BUCKETS = 128
HIST_LOG_BUCKET0 = 64
STP_MAX_BUCKETS = 128
HIST_WIDTH = 50
HIST_ELISION = 2


class HistSpec:
    """The histogram kind of one stats variable: ``log``, ``linear`` or none."""

    __slots__ = ("buckets", "interval", "kind", "start", "stop")

    def __init__(self, kind: str = "", start: int = 0, stop: int = 0, interval: int = 0) -> None:
        self.kind = kind
        self.start = start
        self.stop = stop
        self.interval = interval
        if kind == "log":
            self.buckets = HIST_LOG_BUCKETS
        elif kind == "linear":
            self.buckets = linear_buckets(start, stop, interval)
        else:
            self.buckets = 0

    def usable(self) -> bool:
        return self.buckets > 0


def linear_buckets(start: int, stop: int, interval: int) -> int:
    """Bucket count incl. under/overflow; 0 when the parameters are unusable."""
    if interval == 0:
        return 0
    q = abs(stop - start) // abs(interval)
    if (stop - start < 0) != (interval < 0):
        q = -q
    buckets = q + 3
    if buckets > STP_MAX_BUCKETS or buckets < 3:
        return 0
    return buckets


def linear_warning(start: int, stop: int, interval: int) -> str | None:
    """The warning the runtime prints at start for an unusable linear histogram."""
    if interval == 0:
        return "histogram: interval cannot be zero."
    if linear_buckets(start, stop, interval) == 0:
        return (
            f"histogram: Number of buckets must be between 1 and {STP_MAX_BUCKETS - 2}\n"
            "Number_of_buckets = (stop - start) / interval.\n"
            "Please adjust your start, stop, and interval values."
        )
    return None


def val_to_bucket(val: int) -> int:
    """Log-histogram bucket of a value (bucket 64 holds 0)."""
    if val == 0:
        return HIST_LOG_BUCKET0
    if val < 0:
        mag = (-val) & ((1 << 64) - 1)
        return HIST_LOG_BUCKETS - (HIST_LOG_BUCKET0 + mag.bit_length())
    return HIST_LOG_BUCKET0 + val.bit_length()


def bucket_to_val(num: int) -> int:
    """Lower bound printed for a log-histogram bucket."""
    if num == HIST_LOG_BUCKET0:
        return 0
    if num < HIST_LOG_BUCKET0:
        return wrap(-(1 << 63) >> num)
    return wrap(1 << (num - HIST_LOG_BUCKET0 - 1))


class Stat:
    """One aggregate (a stats scalar, or one element of a stats array)."""

    __slots__ = ("_m2", "avg_s", "count", "hist", "max", "min", "shift", "spec", "sum", "variance_s")

    def __init__(self, spec: HistSpec | None = None, shift: int = -1) -> None:
        self.count = 0
        self.sum = 0
        self.min = 0
        self.max = 0
        self.spec = spec
        self.hist = [0] * spec.buckets if spec is not None and spec.buckets else None
        # shift < 0: @variance is never used, skip Welford (as the runtime does)
        self.shift = shift
        self.avg_s = 0
        self._m2 = 0
        self.variance_s = 0

    def add(self, val: int) -> None:
        if self.count == 0:
            self.count = 1
            self.sum = self.min = self.max = val
            if self.shift >= 0:
                self.avg_s = wrap(val << self.shift)
                self._m2 = 0
        else:
            self.count += 1
            s = self.sum + val
            self.sum = s if -(1 << 63) <= s < (1 << 63) else wrap(s)
            if val > self.max:
                self.max = val
            if val < self.min:
                self.min = val
            if self.shift >= 0:
                scaled = wrap(val << self.shift)
                # the runtime keeps Welford's delta in a C ``int``: 32 bits, wrapped
                delta = ((scaled - self.avg_s + 0x80000000) & 0xFFFFFFFF) - 0x80000000
                self.avg_s = wrap(self.avg_s + _cdiv(delta, self.count))
                self._m2 = wrap(self._m2 + wrap(delta * wrap(scaled - self.avg_s)))
                self.variance_s = -1 if self.count < 2 else _cdiv(self._m2, self.count - 1)
        if self.hist is not None:
            spec = self.spec
            if spec.kind == "log":  # type: ignore[union-attr]
                self.hist[val_to_bucket(val)] += 1
            else:
                v = val - spec.start  # type: ignore[union-attr]
                if v < 0:
                    b = 0
                else:
                    b = ((v & ((1 << 64) - 1)) // spec.interval) + 1  # type: ignore[union-attr]
                last = spec.buckets - 1  # type: ignore[union-attr]
                self.hist[b if b < last else last] += 1

    # -- readers (each raises "empty aggregate" where SystemTap does)

    def avg(self) -> int:
        if self.count == 0:
            raise StapRuntimeError("empty aggregate")
        return _cdiv(self.sum, self.count)

    def get_min(self) -> int:
        if self.count == 0:
            raise StapRuntimeError("empty aggregate")
        return self.min

    def get_max(self) -> int:
        if self.count == 0:
            raise StapRuntimeError("empty aggregate")
        return self.max

    def variance(self) -> int:
        if self.count == 0:
            raise StapRuntimeError("empty aggregate")
        shift = max(self.shift, 0)
        agg_avg_s = _cdiv(wrap(self.sum << shift), self.count)
        d = wrap(self.avg_s - agg_avg_s)
        s1 = wrap(self.count * wrap(d * d))
        s2 = wrap((self.count - 1) * self.variance_s)
        if self.count - 1 == 0:
            return 0
        return _cdiv(wrap(s1 + s2), self.count - 1) >> (2 * shift)

    def bucket(self, index: int) -> int:
        if self.hist is None:
            raise StapRuntimeError("histogram index out of range")
        if index < 0 or index >= len(self.hist):
            raise StapRuntimeError("histogram index out of range")
        return self.hist[index]

    def clear(self) -> None:
        self.__init__(self.spec, self.shift)  # type: ignore[misc]


class MapStat(Stat):
    """One element of a statistics array.

    SystemTap aggregates an element by copying the one CPU's data into the
    aggregate map (``_new_map_copy_stat``), so ``@variance`` is Welford's own
    ``variance_s >> 2*shift``; only scalars (``_stp_stat_get``) re-centre it on
    ``sum / count``.  The two differ by rounding, and scripts see the difference.
    """

    __slots__ = ()

    def variance(self) -> int:
        if self.count == 0:
            raise StapRuntimeError("empty aggregate")
        return self.variance_s >> (2 * max(self.shift, 0))


def _cdiv(a: int, b: int) -> int:
    if b == 0:
        return 0
    q = abs(a) // abs(b)
    return wrap(-q if (a < 0) != (b < 0) else q)


def aggregate(stat: Stat | None, op: str, where: str | None = None) -> int:
    """``@count @sum @min @max @avg @variance`` of a (possibly missing) aggregate.

    ``where`` is the operator's location: SystemTap reports an empty aggregate
    near the ``@min``/``@max``/... operator rather than near the statement.
    """
    if stat is None or stat.count == 0:
        if op in ("@count", "@sum"):
            return 0
        raise StapRuntimeError("empty aggregate", where)
    if op == "@count":
        return stat.count
    if op == "@sum":
        return stat.sum
    if op == "@min":
        return stat.min
    if op == "@max":
        return stat.max
    if op == "@avg":
        return stat.avg()
    if op == "@variance":
        return stat.variance()
    raise StapRuntimeError(f"unknown aggregate {op}")


def sort_value(stat: Stat | None, op: str) -> int:
    """Aggregate used to sort a stats array (empty aggregates sort as 0)."""
    if stat is None or stat.count == 0:
        return 0
    return aggregate(stat, op)


def _needed_space(v: int) -> int:
    if v == 0:
        return 1
    return len(str(v))


def render_histogram(stat: Stat | None, spec: HistSpec, width: int = HIST_WIDTH,
                     elision: int = HIST_ELISION) -> str:
    """The ASCII chart of ``print(@hist_*(s))``, as ``_stp_stat_print_histogram`` prints it.

    ``width`` and ``elision`` are the runtime's ``HIST_WIDTH`` and ``HIST_ELISION``
    macros, which a script's ``-D`` may change (a negative elision shows every zero
    bucket between the data's margins).
    """
    if not spec.usable():
        return ""
    if stat is None or stat.count == 0 or stat.hist is None:
        raise StapRuntimeError("empty aggregate")
    hist = stat.hist
    buckets = spec.buckets
    low, high, valmax = -1, 0, 0
    for i, n in enumerate(hist):
        if n > 0 and low == -1:
            low = i
        if n > 0:
            high = i
        if n > valmax:
            valmax = n
    for _ in range(2):
        if spec.kind == "log":
            if low != HIST_LOG_BUCKET0 and low > 0:
                low -= 1
        elif low > 0:
            low -= 1
        if high < buckets - 1:
            high += 1
    under = over = 0
    if spec.kind == "linear":
        if low == 0 and hist[0] == 0:
            low += 1
        if high == buckets - 1 and hist[high] == 0:
            high -= 1
        if low == 0:
            under = 1
        if high == buckets - 1:
            over = 1
    scale = 1 if valmax <= width else -(-valmax // width)
    cnt_space = _needed_space(valmax)
    if spec.kind == "linear":
        val_space = max(_needed_space(spec.start) + under,
                        _needed_space(spec.start + spec.interval * high) + over)
    else:
        val_space = max(_needed_space(bucket_to_val(high)), _needed_space(bucket_to_val(low)))
    val_space = max(val_space, 5)
    out = ["value".rjust(val_space) + " |" + "-" * width + " count\n"]
    eliding = False
    max_elide = min(elision, buckets)
    for i in range(low, high + 1):
        if elision >= 0:
            lo_k = max(low, i - max_elide)
            hi_k = min(high, i + max_elide)
            if all(hist[k] == 0 for k in range(lo_k, hi_k + 1)):
                eliding = True
                continue
            if eliding:
                out.append(" " * val_space + " ~\n")
                eliding = False
        prefix = ""
        if spec.kind == "linear":
            if i == 0:
                val = spec.start
                prefix = "<"
            elif i == buckets - 1:
                val = spec.start + (i - 2) * spec.interval
                prefix = ">"
            else:
                val = spec.start + (i - 1) * spec.interval
        else:
            val = bucket_to_val(i)
        out.append(prefix.rjust(val_space - _needed_space(val)) + f"{val} |")
        v = hist[i] // scale
        out.append("@" * v)
        out.append(str(hist[i]).rjust(width - v + 1 + cnt_space) + "\n")
    out.append("\n")
    return "".join(out)
