"""Global associative arrays, with SystemTap's capacity rules and iteration order.

A map is a Python ``dict`` (insertion-ordered, like the runtime's entry
list) wrapped with the rules the language adds: a capacity (declared size,
else MAXMAPENTRIES) whose overflow is a run-time error, ``%`` wrap-around
arrays that drop their oldest entry instead, reads of missing keys that
return the value type's zero without creating the key, and ``*`` slices.
One-key maps use the bare key; multi-key maps use tuples.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pystap.runtime.errors import StapRuntimeError
from pystap.runtime.stats import HistSpec, MapStat, Stat


class GlobalMap:
    """A global array.  ``kind`` is ``"long"``, ``"string"`` or ``"stats"``."""

    __slots__ = ("arity", "capacity", "d", "default", "hist", "kind", "name", "shift", "size", "wrap")

    def __init__(self, name: str, arity: int, kind: str, *, size: int | None = None,
                 wrap: bool = False, maxmapentries: int = 2048, hist: HistSpec | None = None,
                 shift: int = -1) -> None:
        self.name = name
        self.arity = arity
        self.kind = kind
        self.size = size
        self.wrap = wrap
        self.capacity = size if size is not None else maxmapentries
        self.d: dict[Any, Any] = {}
        self.default: Any = "" if kind == "string" else 0
        self.hist = hist
        self.shift = shift

    def __len__(self) -> int:
        return len(self.d)

    def _overflow(self) -> StapRuntimeError:
        if self.size is not None:
            return StapRuntimeError(f"Array overflow, check size limit ({self.size})")
        return StapRuntimeError("Array overflow, check MAXMAPENTRIES")

    def _make_room(self) -> None:
        if self.wrap:
            del self.d[next(iter(self.d))]
        else:
            raise self._overflow()

    def get(self, key: Any) -> Any:
        return self.d.get(key, self.default)

    def set(self, key: Any, value: Any) -> Any:
        d = self.d
        if key not in d and len(d) >= self.capacity:
            self._make_room()
        d[key] = value
        return value

    def opset(self, key: Any, op: Any, value: Any, *extra: Any) -> Any:
        """``a[k] op= value`` evaluating the key once; returns the new value."""
        return self.set(key, op(self.d.get(key, self.default), value, *extra))

    def concat(self, key: Any, value: str, limit: int) -> str:
        """``a[k] .= value``, truncated to ``limit`` characters."""
        return self.set(key, (self.d.get(key, self.default) + value)[:limit])

    def bitop(self, key: Any, op: str, value: int) -> int:
        cur = self.d.get(key, self.default)
        new = cur & value if op == "&" else cur | value if op == "|" else cur ^ value
        return self.set(key, new)

    def incr(self, key: Any, delta: int, post: bool) -> int:
        """``a[k]++`` / ``++a[k]`` (``delta`` +1/-1); returns the old or new value."""
        from pystap.runtime.arith import add

        old = self.d.get(key, self.default)
        new = self.set(key, add(old, delta))
        return old if post else new

    def add(self, key: Any, value: int) -> int:
        """``a[k] <<< value``."""
        d = self.d
        s = d.get(key)
        if s is None:
            if len(d) >= self.capacity:
                self._make_room()
            s = d[key] = MapStat(self.hist, self.shift)
        s.add(value)
        return value

    def stat(self, key: Any) -> Stat | None:
        return self.d.get(key)

    def exists(self, key: Any) -> int:
        return 1 if key in self.d else 0

    def delete(self, key: Any) -> None:
        self.d.pop(key, None)

    def clear(self) -> None:
        self.d.clear()

    def matching(self, pattern: tuple) -> Iterator[Any]:
        """Keys matching a slice pattern (``None`` = ``*``), in insertion order."""
        if self.arity == 1:
            want = pattern[0]
            for key in list(self.d):
                if want is None or key == want:
                    yield key
            return
        for key in list(self.d):
            if all(p is None or p == k for p, k in zip(pattern, key, strict=True)):
                yield key

    def exists_slice(self, pattern: tuple) -> int:
        for _ in self.matching(pattern):
            return 1
        return 0

    def delete_slice(self, pattern: tuple) -> None:
        for key in list(self.matching(pattern)):
            del self.d[key]


def sorted_keys(m: GlobalMap, column: int | None, direction: int, aggr: str | None,
                limit: int | None = None, pattern: tuple | None = None) -> list[Any]:
    """The keys a ``foreach`` visits: insertion order, or a stable sort.

    ``column`` 0 sorts by value (stats arrays by ``aggr``, ``@count`` by
    default), ``i >= 1`` by the i-th key column; ``direction`` +1/-1.
    ``limit`` is applied after sorting, ``pattern`` is a slice filter.
    """
    from pystap.runtime.stats import sort_value

    keys = list(m.d) if pattern is None else list(m.matching(pattern))
    if column is not None and direction:
        d = m.d
        if column == 0:
            if m.kind == "stats":
                op = aggr or "@count"
                keys.sort(key=lambda k: sort_value(d[k], op), reverse=direction < 0)
            else:
                keys.sort(key=d.__getitem__, reverse=direction < 0)
        elif m.arity == 1:
            keys.sort(reverse=direction < 0)
        else:
            idx = column - 1
            keys.sort(key=lambda k: k[idx], reverse=direction < 0)
    if limit is not None:
        keys = keys[: max(limit, 0)]
    return keys
