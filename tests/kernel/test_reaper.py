"""The reaper: a SIGKILLed session leaves its probes armed until the reaper removes them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import leftovers, run_target

from pystap.kernel import KernelSession, reaper, uprobes
from pystap.kernel.tracefs import Tracefs
from pystap.privilege import Level
from pystap.probes import elfsyms

CHILD = textwrap.dedent("""
    import sys, time
    from pystap.kernel import KernelSession, Tracefs
    from pystap.probes import elfsyms
    root, sid, target = sys.argv[1:4]
    params = {"target": "path", "path": target}
    e = elfsyms.resolve_probe(family="process.function", prefix="p", params=params,
                              args={"function": "add", "_names": ["process", "function"]})[0]
    ks = KernelSession(sid, 8, 0, Tracefs(root))
    ks.install([{"id": 1, "family": "process.function", "params": e["params"]},
                {"id": 2, "family": "process.begin", "params": {**params, "event": "begin"}}])
    print("ready", flush=True)
    time.sleep(60)
""")


def test_sigkill_leaks_and_reaper_removes(tfs: Tracefs, sid: str, target: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD, tfs.root, sid, str(target)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        instance = f"pystap-{sid}-{child.pid}"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        # The kernel does not clean up after a killed session: the probe is still armed.
        assert sorted(leftovers(tfs, sid)) == sorted([instance, f"stp_{sid}"])
        assert tfs.read(f"instances/{instance}/events/stp_{sid}/p1/enable").strip() == "1"
        report = reaper.reap(tfs, live_sids=())
        assert instance in report.instances and f"stp_{sid}" in report.groups
        assert report.failures == []
        assert leftovers(tfs, sid) == []
        run_target(target, "2")  # nothing left to fire
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_reaper_spares_live_sessions_and_foreign_objects(tfs: Tracefs, sid: str, target: Path) -> None:
    params = {"target": "path", "path": str(target)}
    e = elfsyms.resolve_probe(family="process.function", prefix="p", params=params,
                              args={"function": "add", "_names": ["process", "function"]})[0]
    ks = KernelSession(sid, Level.STAPDEV, 0, tfs)
    foreign_instance = f"other{sid}"
    foreign_group = f"mine{sid}"
    fd = os.open(target, os.O_RDONLY)
    try:
        ks.install([{"id": 1, "family": "process.function", "params": e["params"]}])
        tfs.mkdir(f"instances/{foreign_instance}")
        uprobes.define(tfs, uprobes.UprobeDef(foreign_group, "x", f"/proc/self/fd/{fd}", 0x10))
        report = reaper.reap(tfs, live_sids={sid})
        assert ks.instance not in report.instances and f"stp_{sid}" not in report.groups
        assert ks.instance in tfs.instances() and foreign_instance in tfs.instances()
        assert foreign_group in {g for g, _ in tfs.uprobe_groups()}
        # The same daemon no longer knowing the session: reaped, but its readers are still
        # open, so the kernel refuses (EBUSY); that is reported, never raised.
        report = reaper.reap(tfs, live_sids=(), own_pid=os.getpid())
        assert any("Device or resource busy" in f for f in report.failures)
    finally:
        os.close(fd)
        ks.close()
        tfs.rmdir(f"instances/{foreign_instance}")
        uprobes.delete_group(tfs, foreign_group)


def test_reaper_consults_the_live_view_when_it_looks(tfs: Tracefs, sid: str, target: Path) -> None:
    """A session that becomes live while the reaper runs (its group defined after the instance
    listing) is spared: membership is asked per object, never copied up front."""
    fd = os.open(target, os.O_RDONLY)
    uprobes.define(tfs, uprobes.UprobeDef(f"stp_{sid}", "p1", f"/proc/self/fd/{fd}", 0x10))
    asked: list[str] = []

    class Live(frozenset):
        def __contains__(self, item: object) -> bool:
            asked.append(str(item))
            return item == sid

    try:
        report = reaper.reap(tfs, live_sids=Live())
        assert f"stp_{sid}" not in report.groups and sid in asked
        assert f"stp_{sid}" in {g for g, _ in tfs.uprobe_groups()}
        report = reaper.reap(tfs, live_sids=())  # no instance, nobody live: an orphan group
        assert f"stp_{sid}" in report.groups
    finally:
        os.close(fd)
        uprobes.delete_group(tfs, f"stp_{sid}")
