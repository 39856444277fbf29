"""The daemon-facing installer, driven with a stand-in for the loader's Session object."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import leftovers, run_target

from pystap import modfile
from pystap.eventwire import decode_events
from pystap.kernel import KernelError
from pystap.kernel.installer import KernelInstaller, sid_for, wire_fields
from pystap.kernel.tracefs import Tracefs
from pystap.probes import elfsyms

_ids = iter(range(900_000, 1_000_000))


def fake_session(privilege: str, probes: list[modfile.ProbeEntry]) -> SimpleNamespace:
    records: list = []
    teardowns: list = []
    module = modfile.Module(name="t", translator="test", privilege=privilege, release="", arch="",
                            script_digest="0" * 64, probes=tuple(probes), code="")
    return SimpleNamespace(id=next(_ids), module=module, peer=SimpleNamespace(pid=os.getpid(), uid=0),
                           send_events=records.append, own=lambda what, fn: teardowns.append(fn),
                           records=records, teardowns=teardowns)


def function_entry(target: Path, probe_id: int, *names: str) -> modfile.ProbeEntry:
    (e,) = elfsyms.resolve_probe(family="process.function", prefix="p",
                                 params={"target": "path", "path": str(target)},
                                 args={"function": "add", "_names": ["process", "function", *names]})
    return modfile.ProbeEntry(id=probe_id, family="process.function", point=e["point"], handler="h",
                              params=e["params"])


def test_stapdev_session_streams_wire_records(tfs: Tracefs, target: Path) -> None:
    inst = KernelInstaller(tfs, poll_s=0.02)
    timer = modfile.ProbeEntry(id=9, family="timer", point="timer.ms(10)", handler="t")
    s = fake_session("stapdev", [function_entry(target, 1), function_entry(target, 2, "return"), timer])
    try:
        inst(s)
        assert len(s.teardowns) == 1
        run_target(target, "2")
        deadline = time.monotonic() + 3
        while len(decode_events(s.records)) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        for fn in s.teardowns:
            fn()
        inst.close()
    assert leftovers(tfs, sid_for(s.id)) == []
    decoded = decode_events(s.records)  # packed rows (one schema per probe), in time order
    assert [ts for _, ts in sorted((f["timestamp_ns"], i) for i, (_, f) in enumerate(decoded))] == list(
        range(len(decoded)))
    assert [(pid, f.get("$arg2"), f.get("$return")) for pid, f in decoded] == [
        (1, 0, None), (2, None, 0), (1, 1, None), (2, None, 1)]
    assert all(f["comm"] == "target" and f["pid"] > 0 and f["tid"] > 0 for _, f in decoded)


def test_refusal_leaves_nothing(tfs: Tracefs) -> None:
    inst = KernelInstaller(tfs)
    bad = modfile.ProbeEntry(id=1, family="kernel.trace", point="x", handler="h",
                             params={"system": "nosuch", "event": "x"})
    s = fake_session("stapdev", [bad])
    with pytest.raises(KernelError, match="no probe could be installed"):
        inst(s)
    assert s.teardowns == [] and leftovers(tfs, sid_for(s.id)) == []
    user_only = fake_session("stapusr", [modfile.ProbeEntry(id=1, family="begin", point="begin", handler="h")])
    inst(user_only)  # nothing for the kernel: no session at all
    assert user_only.teardowns == []


def test_wire_fields_mapping() -> None:
    f = {"_pid": 5, "_tid": 6, "_time": 7, "_cpu": 1, "comm": "x", "retval": -1, "v_who": 3, "arg1": 9,
         "args": b"\x01\x02", "__probe_ip": 4}
    assert wire_fields(f, uid=1000) == {"pid": 5, "tid": 6, "cpu": 1, "uid": 1000, "euid": 1000, "comm": "x",
                                        "$return": -1, "$who": 3, "$arg1": 9, "$args": "0102"}
