"""int64 semantics: wrapping, C division and remainder, masked shifts."""

import pytest

from pystap.runtime import arith
from pystap.runtime.errors import StapRuntimeError

MIN, MAX = arith.INT64_MIN, arith.INT64_MAX


@pytest.mark.parametrize(
    ("fn", "a", "b", "want"),
    [
        (arith.add, MAX, 1, MIN),
        (arith.sub, MIN, 1, MAX),
        (arith.mul, 1 << 62, 4, 0),
        (arith.mul, MAX, 2, -2),
        (arith.div, 7, 2, 3),
        (arith.div, -7, 2, -3),
        (arith.div, 7, -2, -3),
        (arith.div, MIN, -1, MIN),
        (arith.mod, -7, 2, -1),
        (arith.mod, 7, -2, 1),
        (arith.mod, MIN, -1, 0),
        (arith.shl, 1, 64, 1),
        (arith.shl, 1, 63, MIN),
        (arith.shr, -16, 2, -4),
        (arith.shr, 1, 65, 1),  # clamped to 64, then masked: no shift
        (arith.shl, 120, -2, 120),  # systemtap.base/arith: negative counts clamp to 0
        (arith.lshr, -1, -1, -1),
        (arith.lshr, -1, 60, 15),
        (arith.lshr, -1, 0, -1),
    ],
)
def test_operations(fn, a, b, want):
    assert fn(a, b) == want


def test_wrap_and_literals():
    assert arith.wrap(1 << 64) == 0
    assert arith.literal(18446744073709551615) == -1
    assert arith.neg(MIN) == MIN
    assert arith.to_unsigned(-1) == (1 << 64) - 1


@pytest.mark.parametrize("fn", [arith.div, arith.mod])
def test_division_by_zero(fn):
    with pytest.raises(StapRuntimeError) as exc:
        fn(1, 0, "operator '/' at <input>:1:2")
    assert exc.value.message == "division by 0"
    assert exc.value.render() == "division by 0 near operator '/' at <input>:1:2"
