"""The one rule for function tags (used by the tapset table and the privilege pass)."""

import enum

import pytest

from pystap.policy.functions import FunctionPrivilege as F
from pystap.policy.functions import allowed_at_level, needs_guru, reads_user_memory
from pystap.privilege import PR_ALL, Level


@pytest.mark.parametrize(("tag", "usr", "sys", "dev"), [
    (F.UNPRIVILEGED, True, True, True), (F.MYPROC, True, True, True),
    (F.PRIVILEGED, False, True, True), (F.GURU, False, True, True),
])
def test_allowed_at_level(tag, usr, sys, dev):
    assert [allowed_at_level(tag, lv) for lv in Level] == [usr, sys, dev]
    assert allowed_at_level(tag, PR_ALL)
    assert allowed_at_level(tag, 0) is (tag in (F.UNPRIVILEGED, F.MYPROC))


def test_guru_and_user_memory_markers():
    assert [t for t in F if needs_guru(t)] == [F.GURU]
    assert [t for t in F if reads_user_memory(t)] == [F.MYPROC]


class Other(enum.Enum):
    X = "myproc-unprivileged"


@pytest.mark.parametrize(("value", "tag"), [
    ("unprivileged", F.UNPRIVILEGED), ("myproc-unprivileged", F.MYPROC), ("GURU", F.GURU), (F.GURU, F.GURU),
    (Other.X, F.MYPROC), (None, F.PRIVILEGED), ("/* unprivileged */", F.PRIVILEGED), (7, F.PRIVILEGED),
    ("", F.PRIVILEGED),
])
def test_parse_fails_closed(value, tag):
    assert F.parse(value) is tag
