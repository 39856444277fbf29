"""kernel.trace fields for a translator that cannot read tracefs: the kernel's BTF."""

from __future__ import annotations

import os

import pytest
from tests.probes.conftest import build, build_error

from pystap.probes import btf_events, kernel_trace

pytestmark = pytest.mark.skipif(not os.access(btf_events.VMLINUX, os.R_OK), reason="no kernel BTF")


@pytest.fixture(autouse=True)
def no_tracefs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernel_trace, "EVENT_DIRS", ("/nonexistent/tracing/events",))


def test_btf_describes_event_records() -> None:
    assert btf_events.event_fields("sched_process_exec") == {"filename": "string", "pid": "long",
                                                             "old_pid": "long"}
    assert btf_events.event_fields("sched_process_exit") == {"comm": "string", "pid": "long", "prio": "long",
                                                             "group_dead": "long"}
    assert btf_events.event_fields("no_such_event_anywhere") is None


def test_fields_resolve_without_tracefs() -> None:
    m = build('probe kernel.trace("sched:sched_process_exec") { println($filename, $pid) }')
    (probe,) = m.probes
    assert (probe.family, probe.params) == ("kernel.trace", {"event": "sched_process_exec", "system": "sched"})
    assert "(c.fields.get('$filename') or '')" in m.code
    err = build_error('probe kernel.trace("sched:sched_process_exec") { println($nosuch) }')
    assert "semantic error: unable to find tracepoint variable '$nosuch'" in err


def test_unresolvable_events_say_why() -> None:
    err = build_error('probe kernel.trace("sched:sched_wakeup") { println($pid) }')
    assert ("cannot find tracepoint 'sched:sched_wakeup': tracefs is not readable and the kernel's BTF has no"
            " record type 'trace_event_raw_sched_wakeup'") in err
    err = build_error('probe kernel.trace("sched:*") { println(1) }')
    assert "cannot list kernel tracepoints (tracefs is not readable) for 'sched:*'" in err


def test_malformed_btf_is_an_error(tmp_path) -> None:
    bad = tmp_path / "vmlinux"
    bad.write_bytes(b"\x00" * 64)
    btf_events._CACHE.pop(str(bad), None)
    with pytest.raises(btf_events.BtfEventError, match="bad magic"):
        btf_events.event_fields("x", str(bad))
