"""Aggregates and histograms, rendered as SystemTap's runtime prints them."""

import pytest

from pystap.runtime.errors import StapRuntimeError
from pystap.runtime.stats import (
    HistSpec,
    MapStat,
    Stat,
    aggregate,
    bucket_to_val,
    linear_warning,
    render_histogram,
    val_to_bucket,
)

DASHES = "-" * 50


def filled(values, spec=None, shift=-1):
    s = Stat(spec, shift)
    for v in values:
        s.add(v)
    return s


def test_basic_aggregates():
    s = filled([5, 1, 9, -3])
    assert [aggregate(s, op) for op in ("@count", "@sum", "@min", "@max", "@avg")] == [4, 12, -3, 9, 3]


def test_avg_truncates_toward_zero():
    assert aggregate(filled([-1, -2]), "@avg") == -1


def test_empty_aggregates():
    s = Stat()
    assert aggregate(s, "@count") == 0
    assert aggregate(None, "@sum") == 0
    for op in ("@min", "@max", "@avg", "@variance"):
        with pytest.raises(StapRuntimeError, match="empty aggregate"):
            aggregate(s, op)


def test_variance():
    # Integer Welford without a shift truncates heavily (worked by hand through
    # __stp_stat_add and _stp_stat_get: M2=30, var_s=7, S1=20, S2=28 -> 48/4).
    assert aggregate(filled([1, 2, 3, 4, 5], shift=0), "@variance") == 12
    # A bit shift restores precision: the true sample variance is 2.5.
    assert aggregate(filled([1, 2, 3, 4, 5], shift=8), "@variance") == 2
    assert aggregate(filled([7], shift=0), "@variance") == 0
    assert aggregate(filled([10, 20, 30, 40], shift=4), "@variance") == 166


def test_log_buckets():
    assert val_to_bucket(0) == 64
    assert val_to_bucket(1) == 65
    assert val_to_bucket(2) == 66
    assert val_to_bucket(3) == 66
    assert val_to_bucket(4) == 67
    assert val_to_bucket(-1) == 63
    assert val_to_bucket(-(1 << 63)) == 0
    assert bucket_to_val(64) == 0
    assert bucket_to_val(67) == 4
    assert bucket_to_val(63) == -1
    assert bucket_to_val(62) == -2


def test_render_log_histogram():
    s = filled([1, 2, 2, 4, 4, 4, 4], HistSpec("log"))
    want = (
        f"value |{DASHES} count\n"
        "    0 |                                                   0\n"
        "    1 |@                                                  1\n"
        "    2 |@@                                                 2\n"
        "    4 |@@@@                                               4\n"
        "    8 |                                                   0\n"
        "   16 |                                                   0\n"
        "\n"
    )
    assert render_histogram(s, s.spec) == want


def test_render_linear_histogram_with_elision_and_overflow():
    spec = HistSpec("linear", 0, 100, 10)
    s = filled([5, 5, 95, 150, -3], spec)
    want = (
        f"value |{DASHES} count\n"
        "   <0 |@                                                  1\n"
        "    0 |@@                                                 2\n"
        "   10 |                                                   0\n"
        "   20 |                                                   0\n"
        "      ~\n"
        "   70 |                                                   0\n"
        "   80 |                                                   0\n"
        "   90 |@                                                  1\n"
        "  100 |                                                   0\n"
        " >100 |@                                                  1\n"
        "\n"
    )
    assert render_histogram(s, spec) == want


def test_render_scales_large_counts():
    s = filled([3] * 120, HistSpec("log"))
    text = render_histogram(s, s.spec)
    line = next(ln for ln in text.splitlines() if ln.startswith("    2 |"))
    assert line == "    2 |" + "@" * 40 + " " * 11 + "120"  # scale 3, width 50-40+1+3


def test_render_empty_is_an_error():
    spec = HistSpec("log")
    with pytest.raises(StapRuntimeError, match="empty aggregate"):
        render_histogram(Stat(spec), spec)


def test_bucket_index():
    s = filled([1], HistSpec("log"))
    assert s.bucket(65) == 1
    with pytest.raises(StapRuntimeError, match="histogram index out of range"):
        s.bucket(128)


def test_bad_linear_parameters():
    assert linear_warning(0, 10, 0) == "histogram: interval cannot be zero."
    assert "Number of buckets must be between 1 and 126" in linear_warning(0, 1000, 1)
    assert not HistSpec("linear", 0, 10, 0).usable()
    assert render_histogram(filled([1]), HistSpec("linear", 0, 10, 0)) == ""


def test_render_width_and_elision_parameters():
    # the HIST_WIDTH / HIST_ELISION macros a script may set with -D
    spec = HistSpec("linear", 0, 100, 10)
    s = filled([5, 45], spec)
    assert render_histogram(s, spec, width=5, elision=0) == (
        "value |----- count\n    0 |@     1\n      ~\n   40 |@     1\n\n")
    lines = render_histogram(s, spec, elision=-1).splitlines()
    assert [ln[:5] for ln in lines[1:-1]] == ["    0", "   10", "   20", "   30", "   40", "   50", "   60"]


def test_array_element_variance_is_not_recentred():
    # _new_map_copy_stat copies the CPU's Welford variance; _stp_stat_get re-centres a scalar's
    values = [1, 2, 3, 4, 100]
    assert filled(values, shift=0).variance() == 1988
    m = MapStat(None, 0)
    for v in values:
        m.add(v)
    assert m.variance() == 1983


def test_welford_delta_is_a_32_bit_int():
    # __stp_stat_add keeps ``delta`` in a C int: a 2**40 step wraps to 0
    m = MapStat(None, 0)
    m.add(1 << 40)
    m.add(0)
    assert m.variance() == 0
