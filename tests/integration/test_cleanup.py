"""Nothing stays armed: a SIGKILLed client, a SIGKILLed or stopped pystapd, leftovers of the dead.

What is checked is the kernel's own state (tracefs instances and uprobe
definitions of the daemon's sessions, perf fds held by the daemon), not what
the daemon says about itself.
"""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from pystap.kernel import uprobes
from pystap.kernel.tracefs import Tracefs

from .conftest import Service, World, armed, first_line, perf_fds, start_service, stop_service, wait_for

SCRIPT = """
probe begin {{ println("ready") }}
probe process("{t}").function("add") {{ printf("add %d\\n", $b) }}
probe process("{t}").function("greet").return {{ printf("greet %d\\n", $return) }}
"""


def _start(svc: Service, caller: str, module, **kw) -> subprocess.Popen[str]:
    client = svc.spawn(caller, module, **kw)
    line = first_line(client)
    if line != "ready\n":
        client.kill()
        out, err = client.communicate()
        raise AssertionError(f"session did not start: {line!r} {out!r} {err!r}\n{svc.log()[-3000:]}")
    return client


def _module(world: World, level: str):
    return world.translate(SCRIPT.format(t=world.target), f"kill_{level}", level)


@pytest.mark.parametrize("caller", ["root", "stapdev"])
def test_sigkill_of_the_client_removes_its_tracefs_probes(world: World, pystapd: Service, caller: str) -> None:
    client = _start(pystapd, caller, _module(world, "stapdev"))
    try:
        live = armed(world.tracefs, pystapd.pid)
        assert len(live) == 2 and live[0].startswith("pystap-d") and live[1].startswith("stp_d"), live
        group = live[1]
        assert sorted(e for g, e in world.tracefs.uprobe_groups() if g == group) == ["p1", "r2"]  # probe 0 is the begin probe
    finally:
        client.kill()
        client.communicate()
    assert wait_for(lambda: armed(world.tracefs, pystapd.pid) == []), armed(world.tracefs, pystapd.pid)


def test_sigkill_of_a_stapusr_client_closes_its_perf_events(world: World, pystapd: Service) -> None:
    module = _module(world, "stapusr")
    warm = _start(pystapd, "stapusr", module)  # the daemon's shared gates live as long as it does
    os.kill(warm.pid, signal.SIGINT)
    assert warm.communicate(timeout=20)[1] == ""
    assert wait_for(lambda: armed(world.tracefs, pystapd.pid) == [])
    baseline = perf_fds(pystapd.pid)
    client = _start(pystapd, "stapusr", module)
    try:
        assert perf_fds(pystapd.pid) > baseline
        assert len(armed(world.tracefs, pystapd.pid)) == 2  # the liveness marker and the definitions
    finally:
        client.kill()
        client.communicate()
    assert wait_for(lambda: perf_fds(pystapd.pid) == baseline and armed(world.tracefs, pystapd.pid) == []), \
        (perf_fds(pystapd.pid), baseline, armed(world.tracefs, pystapd.pid))


def test_sigkill_of_the_root_client_without_pystapd(world: World, pystapd: Service) -> None:
    """Root's private service notices its client's death like pystapd does."""
    tfs = world.tracefs
    before = set(tfs.instances())
    client = _start(pystapd, "root", _module(world, "stapdev"), local=True)
    try:
        # the private service is a fork of this client: its command line names our module
        (instance,) = [i for i in set(tfs.instances()) - before if _cmdline(int(i.rsplit("-", 1)[1])).find(
            str(world.modules)) >= 0]
        sid = instance.removeprefix("pystap-").rsplit("-", 1)[0]
        assert sid.startswith("d") and f"stp_{sid}" in {g for g, _ in tfs.uprobe_groups()}
    finally:
        client.kill()
        client.communicate()
    assert wait_for(lambda: instance not in tfs.instances()
                    and f"stp_{sid}" not in {g for g, _ in tfs.uprobe_groups()})


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


@pytest.mark.parametrize("caller", ["stapdev", "stapusr"])
def test_sigkill_of_pystapd_is_reaped_by_the_next_one(world: World, caller: str) -> None:
    first = start_service(world, f"killed-{caller}")
    try:
        _start(first, caller, _module(world, "stapusr" if caller == "stapusr" else "stapdev"))
        assert len(armed(world.tracefs, first.pid)) == 2
        first.handle.proc.kill()
        first.handle.proc.wait()
        left = armed(world.tracefs, first.pid)
        assert len(left) == 2, left  # tracefs objects outlive their owner: the reaper's job
        second = start_service(world, f"reaper-{caller}")
        try:
            assert armed(world.tracefs, first.pid) == []  # reaped before the new daemon listens
        finally:
            stop_service(second)
    finally:
        first.handle.stop()  # (when an assertion came first) and the world's teardown reaps


def test_sigterm_of_pystapd_removes_every_session(world: World) -> None:
    svc = start_service(world, "terminated")
    client = _start(svc, "stapdev", _module(world, "stapdev"))
    try:
        assert len(armed(world.tracefs, svc.pid)) == 2
        assert svc.handle.stop() == 0
        assert armed(world.tracefs, svc.pid) == []
    finally:  # the client carries on without kernel events (it was warned); it is ours to end
        if client.poll() is None:
            client.kill()
            client.communicate()


def test_periodic_reaper_removes_a_dead_daemons_leftovers(world: World, pystapd: Service) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    tfs: Tracefs = world.tracefs
    sid = f"d{dead.pid}s1"
    tfs.mkdir(f"instances/pystap-{sid}-{dead.pid}")
    uprobes.define(tfs, uprobes.UprobeDef(f"stp_{sid}", "p0", str(world.target), 0x1000))
    # generous bounds: the reaper's period is short, but a loaded CI machine may be slow to log
    assert wait_for(lambda: armed(tfs, dead.pid) == [], timeout=15), armed(tfs, dead.pid)
    assert wait_for(lambda: f"pystap-{sid}-{dead.pid}" in pystapd.log(), timeout=10), pystapd.log()[-2000:]
