"""64-bit integer semantics of the script language.

Python integers are unbounded; SystemTap's are C ``int64_t`` that wrap
silently.  Every operation that can leave the int64 range goes through
:func:`wrap`.  Division and modulo truncate toward zero as in C and raise
"division by 0"; shift counts are masked with 63 as the generated C does.
"""

from __future__ import annotations

from pystap.runtime.errors import StapRuntimeError

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
_MASK64 = (1 << 64) - 1
_SIGN = 1 << 63


def wrap(v: int) -> int:
    """Reduce an integer to int64 (two's complement wrap-around)."""
    if INT64_MIN <= v <= INT64_MAX:
        return v
    v &= _MASK64
    return v - (1 << 64) if v & _SIGN else v


def add(a: int, b: int) -> int:
    r = a + b
    return r if INT64_MIN <= r <= INT64_MAX else wrap(r)


def sub(a: int, b: int) -> int:
    r = a - b
    return r if INT64_MIN <= r <= INT64_MAX else wrap(r)


def mul(a: int, b: int) -> int:
    r = a * b
    return r if INT64_MIN <= r <= INT64_MAX else wrap(r)


def neg(a: int) -> int:
    return wrap(-a)


def div(a: int, b: int, where: str | None = None) -> int:
    """C division: truncation toward zero; ``INT64_MIN / -1`` wraps."""
    if b == 0:
        raise StapRuntimeError("division by 0", where)
    q = abs(a) // abs(b)
    if (a < 0) != (b < 0):
        q = -q
    return wrap(q)


def mod(a: int, b: int, where: str | None = None) -> int:
    """C remainder: the sign follows the dividend; ``x % ±1`` is 0."""
    if b == 0:
        raise StapRuntimeError("division by 0", where)
    r = abs(a) % abs(b)
    return -r if a < 0 else r


def _count(n: int) -> int:
    """SystemTap clamps a shift count to [0, 64] (``max(min(n, 64), 0)``) and
    x86 then masks it to 6 bits, so a count outside 0..63 shifts by nothing:
    ``120 << -2`` is 120 (systemtap.base/arith), not ``120 << 62``."""
    return n if 0 <= n < 64 else 0


def shl(a: int, n: int) -> int:
    return wrap(a << _count(n))


def shr(a: int, n: int) -> int:
    """Arithmetic shift right (sign-extending)."""
    return a >> _count(n)


def lshr(a: int, n: int) -> int:
    """``>>>``: logical shift right of the 64-bit pattern."""
    return wrap((a & _MASK64) >> _count(n))


def bnot(a: int) -> int:
    return ~a


def to_unsigned(a: int) -> int:
    return a & _MASK64


def literal(v: int) -> int:
    """A number literal as the lexer accepted it (values >= 2**63 wrap)."""
    return wrap(v)
