"""Sessions own what is installed for them: torn down once, last first, whatever ends them."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pystap import eventwire, modfile
from pystap.loader import protocol
from pystap.loader.client import request_grant
from pystap.loader.config import DaemonConfig
from pystap.loader.daemon import Daemon
from pystap.loader.peercred import Peer
from pystap.loader.protocol import FrameType
from pystap.loader.session import Session

from .conftest import make_module


def _session() -> Session:
    return Session(Peer(1, 2, 3, ()), modfile.load(make_module()), "d", 2)


def test_teardown_is_lifo_once_and_survives_failures():
    s = _session()
    calls = []
    s.own("a", lambda: calls.append("a"))
    s.own("b", lambda: (_ for _ in ()).throw(OSError("busy")))
    s.own("c", lambda: calls.append("c"))
    assert s.resources == 3
    assert s.close() == ["b: busy"]
    assert calls == ["c", "a"]
    assert s.close() == []
    with pytest.raises(RuntimeError):
        s.own("late", lambda: None)


@pytest.fixture
def in_process(tmp_path):
    """A Daemon object in this process, with a fake kernel installer."""
    if os.geteuid() != 0:
        pytest.skip("needs root for SO_PEERCRED-based root rule")
    events: dict[str, object] = {"torn_down": threading.Event(), "fail": False, "emit": None}

    def installer(session: Session) -> None:
        if events["fail"]:
            raise OSError("tracefs is not mounted")
        session.own("fake uprobe", events["torn_down"].set)
        assert session.send_events is not None
        events["send"] = session.send_events
        if events["emit"] is not None:  # a fake kernel: one record a little after the grant
            threading.Timer(0.2, session.send_events, args=(events["emit"],)).start()

    cfg = DaemonConfig(socket=tmp_path / "d.sock", blessed_dir=tmp_path, signer_store=tmp_path / "none")
    daemon = Daemon(cfg, installer=installer)
    daemon.listen()
    thread = threading.Thread(target=daemon.serve)
    thread.start()
    module = tmp_path / "m.stapmod"
    module.write_bytes(make_module("stapusr"))
    try:
        yield daemon, module, events
    finally:
        daemon.stop()
        thread.join(timeout=10)
        assert not (tmp_path / "d.sock").exists()


def test_installed_objects_are_torn_down_when_the_client_leaves(in_process):
    daemon, module, events = in_process
    grant = request_grant(str(module), daemon.config.socket)
    assert grant.rule == "root"
    events["send"](protocol.encode_events([(0, 123, b'{"x":1}')]))
    frame = protocol.recv_frame(grant.conn, {FrameType.EVENTS: 1 << 20})
    assert eventwire.decode_events([frame.payload]) == [(0, {"x": 1, "timestamp_ns": 123})]
    assert not events["torn_down"].is_set()
    grant.close(0)
    assert events["torn_down"].wait(5)


def test_failed_installation_refuses_the_session(in_process):
    daemon, module, events = in_process
    events["fail"] = True
    from pystap.loader.client import LoadError

    with pytest.raises(LoadError) as info:
        request_grant(str(module), Path(daemon.config.socket))
    assert info.value.messages == (f"ERROR: Couldn't install the probes of {module}: tracefs is not mounted",)
    deadline = time.monotonic() + 5
    while len(daemon.sessions) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(daemon.sessions) == 0


def test_kernel_events_reach_the_handlers_in_the_client(in_process, tmp_path):
    daemon, _module, events = in_process
    probe = modfile.ProbeEntry(id=7, family="process.function", point='process("/bin/true").function("main")',
                               handler="probe_7", params={})
    code = ('def probe_7(c):\n    _b_log(c, "event n=" + str(c.fields["n"]) + " pid=" + str(c.pid))\n'
            "    _b_exit(c)\n")
    module = tmp_path / "k.stapmod"
    module.write_bytes(make_module("stapusr", probes=(probe,), code=code))
    events["emit"] = protocol.encode_events([(7, 99, b'{"n": 5, "pid": 4242}')])
    result = subprocess.run([sys.executable, "-m", "pystap.cli.staprun", "--socket", str(daemon.config.socket),
                             str(module)], capture_output=True, text=True, check=False, timeout=30)
    assert (result.returncode, result.stdout, result.stderr) == (0, "event n=5 pid=4242\n", "")
    assert events["torn_down"].wait(5)
