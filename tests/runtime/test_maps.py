"""Global maps: capacity, wrap arrays, slices, sorting for foreach."""

import pytest

from pystap.runtime.errors import StapRuntimeError
from pystap.runtime.maps import GlobalMap, sorted_keys
from pystap.runtime.stats import HistSpec


def test_missing_reads_do_not_create():
    m = GlobalMap("a", 1, "long")
    assert m.get(5) == 0
    assert len(m) == 0
    assert GlobalMap("s", 1, "string").get("x") == ""


def test_overflow_messages():
    m = GlobalMap("a", 1, "long", maxmapentries=2)
    m.set(1, 1)
    m.set(2, 2)
    m.set(2, 3)  # existing key: fine
    with pytest.raises(StapRuntimeError, match=r"^Array overflow, check MAXMAPENTRIES$"):
        m.set(3, 3)
    sized = GlobalMap("b", 1, "long", size=1)
    sized.set(1, 1)
    with pytest.raises(StapRuntimeError, match=r"check size limit \(1\)"):
        sized.set(2, 1)


def test_wrap_array_drops_oldest():
    m = GlobalMap("a", 1, "long", size=2, wrap=True)
    for k in (1, 2, 3):
        m.set(k, k * 10)
    assert list(m.d) == [2, 3]


def test_insertion_order_and_reinsert():
    m = GlobalMap("a", 1, "long")
    for k in (3, 1, 2):
        m.set(k, 0)
    m.delete(3)
    m.set(3, 0)
    assert sorted_keys(m, None, 0, None) == [1, 2, 3]


def test_slices():
    m = GlobalMap("a", 2, "long")
    for k in ((1, "a"), (2, "a"), (1, "b")):
        m.set(k, 1)
    assert list(m.matching((1, None))) == [(1, "a"), (1, "b")]
    assert m.exists_slice((None, "b")) == 1
    assert m.exists_slice((3, None)) == 0
    m.delete_slice((None, "a"))
    assert list(m.d) == [(1, "b")]


def test_sorting_is_stable_with_limit():
    m = GlobalMap("a", 2, "long")
    for k, v in (((1, "x"), 5), ((2, "y"), 7), ((3, "z"), 5), ((4, "w"), 1)):
        m.set(k, v)
    assert sorted_keys(m, 0, -1, None) == [(2, "y"), (1, "x"), (3, "z"), (4, "w")]
    assert sorted_keys(m, 0, 1, None, limit=2) == [(4, "w"), (1, "x")]
    assert sorted_keys(m, 2, 1, None) == [(4, "w"), (1, "x"), (2, "y"), (3, "z")]
    assert sorted_keys(m, 1, -1, None, pattern=(None, "x")) == [(1, "x")]


def test_stats_arrays_sort_by_aggregate():
    m = GlobalMap("s", 1, "stats", hist=HistSpec("log"))
    for k, v in (("a", 10), ("a", 10), ("b", 100)):
        m.add(k, v)
    assert sorted_keys(m, 0, -1, None) == ["a", "b"]  # @count by default
    assert sorted_keys(m, 0, -1, "@sum") == ["b", "a"]
    assert m.stat("b").hist[val_bucket(100)] == 1


def val_bucket(v):
    from pystap.runtime.stats import val_to_bucket

    return val_to_bucket(v)
