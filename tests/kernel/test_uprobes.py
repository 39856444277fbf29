"""Uprobe definitions: the fetch-argument allowlist, definition text, and the kernel's refusals."""

from __future__ import annotations

import errno
import os

import pytest

from pystap.kernel import uprobes
from pystap.kernel.tracefs import Tracefs, TracefsError


@pytest.mark.parametrize("spec", [
    "a=%di:s64", "b=%si", "s=+0(%di):string", "u=+8(+0(%sp)):ustring", "r=$retval:u32", "c=$comm",
    "c2=$comm:string", "st=$stack3:x64", "g=@+0x4030:s64", "n=-16(%bp):s32", "k=\\42:u8", "x=%r15:x8",
])
def test_allowed_fetch(spec: str) -> None:
    name, _, _ = uprobes.check_fetch(spec, is_return=True)
    assert name == spec.split("=")[0]


@pytest.mark.parametrize(("spec", "why"), [
    ("a=$arg1", "not allowed"),
    ("a=@0x1234:u64", "not allowed"),
    ("a=@sym", "not allowed"),
    ("a=%rax", "unknown register"),
    ("a=%zz", "unknown register"),
    ("a=%di:s128", "invalid fetch type"),
    ("a=+0(+0(+0(+0(%di))))", "too deeply"),
    ("a=+0($comm)", "non-pointer"),
    ("a=%di b=%si", "malformed"),
    ("common_pid=%di", "invalid fetch argument name"),
    ("_x=%di", "invalid fetch argument name"),
    ("noequals", "malformed"),
    ("a=$stack99", "out of range"),
    ("a=$comm:u64", "only be fetched as a string"),
    ("a=%di\n-:stp_other/", "malformed"),
])
def test_refused_fetch(spec: str, why: str) -> None:
    with pytest.raises(uprobes.UprobeError, match=why):
        uprobes.check_fetch(spec, is_return=True)


def test_retval_only_in_return_probes() -> None:
    with pytest.raises(uprobes.UprobeError, match="only available in return probes"):
        uprobes.check_fetch("r=$retval", is_return=False)


def test_definition_text() -> None:
    d = uprobes.UprobeDef("stp_a", "p1", "/bin/x", 0x1320, False, 0x4050, ("a=%di:s64",))
    assert d.text() == "p:stp_a/p1 /bin/x:0x1320(0x4050) a=%di:s64\n"
    r = uprobes.UprobeDef("stp_a", "r1", "/bin/x", 0x1320, True)
    assert r.text() == "r:stp_a/r1 /bin/x:0x1320\n"


@pytest.mark.parametrize("kwargs", [
    {"target": "relative/path"}, {"target": "/a b"}, {"target": "/a:b"}, {"offset": -1}, {"offset": True},
    {"offset": 1 << 41}, {"semaphore": "1"}, {"group": "../x"}, {"event": "a/b"},
    {"fetch": ("a=%di", "a=%si")}, {"fetch": tuple(f"a{i}=%di" for i in range(40))},
])
def test_definition_refuses_bad_parts(kwargs: dict) -> None:
    base = {"group": "stp_a", "event": "p1", "target": "/bin/x", "offset": 0x10}
    with pytest.raises((uprobes.UprobeError, TracefsError)):
        uprobes.UprobeDef(**{**base, **kwargs})


def test_kernel_refusal_carries_error_log(tfs: Tracefs, sid: str, target) -> None:
    group = f"stp_{sid}"
    fd = os.open(target, os.O_RDONLY)
    try:
        good = uprobes.UprobeDef(group, "p1", f"/proc/self/fd/{fd}", 0x10)
        uprobes.define(tfs, good)
        other = uprobes.UprobeDef(group, "p2", f"/proc/self/fd/{fd}", 0x10)
        uprobes.define(tfs, other)
        # Appending never truncates: both definitions are there.
        assert {e for g, e in tfs.uprobe_groups() if g == group} == {"p1", "p2"}
        # A fetch the grammar lets through but the kernel refuses (a string straight from a
        # register): EINVAL with the error_log explanation in the message.
        with pytest.raises(TracefsError) as info:
            uprobes.define(tfs, uprobes.UprobeDef(group, "p1", f"/proc/self/fd/{fd}", 0x10))
        assert info.value.errno in (errno.EEXIST, errno.EINVAL, errno.EBUSY)
        assert f"cannot define uprobe {group}/p1" in str(info.value)
        with pytest.raises(TracefsError) as info:
            uprobes.define(tfs, uprobes.UprobeDef(group, "p3", f"/proc/self/fd/{fd}", 0x10, False, 0,
                                                  ("a=%di:string",)))
        assert info.value.errno == errno.EINVAL
        assert "kernel: [" in str(info.value) and "string" in str(info.value).lower()
    finally:
        os.close(fd)
        uprobes.delete_group(tfs, group)
    uprobes.delete_group(tfs, group)  # deleting an absent group is fine
    assert group not in {g for g, _ in tfs.uprobe_groups()}
