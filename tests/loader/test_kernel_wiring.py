"""The daemon's side of kernel probes, with a stand-in installer: targets, warnings, sync, lost events.

The real installer is exercised end to end in tests/integration; here the
daemon runs in this process with an installer that records what it is given
and produces events on demand, so every protocol step can be asserted
exactly (and a daemon without kernel access refuses kernel probes).
"""

from __future__ import annotations

import io
import os
import tempfile
import threading
from pathlib import Path

import pytest

from pystap import modfile
from pystap.loader import client, config, protocol
from pystap.loader.daemon import Daemon, RequestError, parse_targets, refuse_kernel_probes

from .conftest import make_module

KERNEL_PROBE = modfile.ProbeEntry(id=1, family="process.function", point="process.function", handler="probe_0",
                                  params={})


def test_parse_targets() -> None:
    assert parse_targets(None) == ()
    assert parse_targets([5, 7, 5]) == (5, 7)
    for bad in ([True], [0], [-1], [1 << 22], ["1"], "1", list(range(1, 66)), {"a": 1}):
        with pytest.raises(RequestError, match="targets"):
            parse_targets(bad)


def test_reap_interval_is_validated(tmp_path: Path) -> None:
    where = tmp_path / "c.toml"
    assert config.parse("reap_interval = 2\n", where).reap_interval == 2.0
    assert config.DaemonConfig().reap_interval == 30.0
    for bad in ("0", "-1", "true", '"30"', "100000"):
        with pytest.raises(config.ConfigError, match="reap_interval"):
            config.parse(f"reap_interval = {bad}\n", where)


def test_without_kernel_access_kernel_probes_are_refused() -> None:
    refuse = refuse_kernel_probes("no tracefs")
    begin_only = modfile.load(make_module("stapusr"))
    refuse(type("S", (), {"module": begin_only})())  # nothing for the kernel: fine
    kernel = modfile.load(make_module("stapusr", probes=(KERNEL_PROBE,)))
    with pytest.raises(RuntimeError, match=r"kernel probes are not available from this pystapd \(no tracefs\)"):
        refuse(type("S", (), {"module": kernel})())


class FakeInstaller:
    """Records each session; answers a sync with two events, reports 3 lost events."""

    def __init__(self) -> None:
        self.sessions: list = []

    def __call__(self, session) -> None:
        self.sessions.append(session)
        session.warnings.append("probe #1: the kernel cannot probe the instruction at this address (ENOTSUPP)")

        def sync() -> None:
            session.send_events(protocol.encode_events([(1, 10, b'{"pid":4,"$b":1}'),
                                                        (1, 11, b'{"pid":4,"$b":2}')]))
            session.send_synced()

        def teardown() -> None:
            session.lost = 3

        session.sync = sync
        session.own("fake probes", teardown)


@pytest.fixture
def service():
    if os.geteuid() != 0:
        pytest.skip("the in-process daemon authorizes root's unsigned module")
    base = Path(tempfile.mkdtemp(prefix="pystapd-wiring-"))
    installer = FakeInstaller()
    d = Daemon(config.DaemonConfig(socket=base / "s.sock", blessed_dir=base / "blessed",
                                   signer_store=base / "signers"), installer=installer)
    d.listen()
    thread = threading.Thread(target=d.serve, daemon=True)
    thread.start()
    try:
        yield d, installer, base
    finally:
        d.stop()
        thread.join(10)
        for p in base.iterdir():
            p.unlink()
        base.rmdir()


def test_targets_warnings_sync_and_lost_events(service) -> None:
    d, installer, base = service
    path = base / "k.stapmod"
    path.write_bytes(make_module("stapdev", probes=(KERNEL_PROBE,)))
    grant = client.request_grant(str(path), d.config.socket, targets=[os.getpid()])
    try:
        assert installer.sessions[0].targets == (os.getpid(),)
        assert grant.warnings == ("WARNING: probe #1: the kernel cannot probe the instruction at this address "
                                  "(ENOTSUPP)",)
        events = client.DaemonEvents(grant.conn, io.StringIO())
        assert events.drain() == [(1, {"pid": 4, "$b": 1, "timestamp_ns": 10}),
                                  (1, {"pid": 4, "$b": 2, "timestamp_ns": 11})]
    finally:
        err = io.StringIO()
        grant.close(0, err)
    assert err.getvalue() == "WARNING: 3 kernel events were lost (buffers full); the output is incomplete\n"


def test_sync_without_kernel_probes_answers_at_once(service) -> None:
    d, _installer, base = service
    d.installer = None
    path = base / "b.stapmod"
    path.write_bytes(make_module("stapdev"))
    grant = client.request_grant(str(path), d.config.socket)
    try:
        assert client.DaemonEvents(grant.conn, io.StringIO()).drain(timeout=2) == []
    finally:
        err = io.StringIO()
        grant.close(0, err)
    assert err.getvalue() == ""  # no loss to report


def test_events_streamed_during_install_follow_the_grant(service) -> None:
    """An installer's reader may stream as soon as the probes are armed, before the daemon has
    sent the grant: the grant still comes first on the wire."""
    d, _installer, base = service

    def eager(session) -> None:
        sender = threading.Thread(target=session.send_events, args=(protocol.encode_events([(1, 5, b'{"pid":9}')]),))
        sender.start()
        sender.join(0.2)  # it would have been sent by now, were it not for the daemon's ordering

    d.installer = eager
    path = base / "e.stapmod"
    path.write_bytes(make_module("stapdev", probes=(KERNEL_PROBE,)))
    grant = client.request_grant(str(path), d.config.socket)
    try:
        assert client.DaemonEvents(grant.conn, io.StringIO()).read_batch() == [(1, {"pid": 9, "timestamp_ns": 5})]
    finally:
        grant.close(0, io.StringIO())
