"""tracefs access: a private mount namespace for the daemon, safe paths, append-only writes."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from pystap.kernel import tracefs
from pystap.kernel.tracefs import Tracefs, TracefsError

CHILD = textwrap.dedent("""
    import os, sys
    from pystap.kernel import tracefs
    root = tracefs.enter_private_namespace()
    assert tracefs.is_tracefs(root), root
    assert tracefs.find_tracefs() == root
    t = tracefs.Tracefs(root)
    assert "uprobe_events" in t.listdir(""), t.listdir("")
    print("ok", root)
""")


def _host_tracefs_mounts() -> list[str]:
    with open("/proc/self/mounts", encoding="utf-8") as f:
        return [line for line in f if line.split()[2:3] == ["tracefs"]]


def test_private_namespace_leaves_host_untouched(tracefs_root: Tracefs) -> None:
    before = _host_tracefs_mounts()
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"ok {tracefs.STANDARD_MOUNT}"
    assert _host_tracefs_mounts() == before


def test_namespace_refused_with_threads() -> None:
    code = ("import threading, time\nfrom pystap.kernel import tracefs\n"
            "threading.Thread(target=time.sleep, args=(1,), daemon=True).start()\n"
            "try:\n    tracefs.enter_private_namespace()\nexcept tracefs.TracefsError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert "before any thread is started" in out.stdout


@pytest.mark.parametrize("rel", ["../etc/passwd", "/etc/passwd", "instances/../../x"])
def test_paths_stay_inside(rel: str) -> None:
    with pytest.raises(TracefsError, match="bad tracefs path"):
        Tracefs("/nonexistent").path(rel)


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a b", "x" * 300, "a\nb"])
def test_names_are_allowlisted(name: str) -> None:
    with pytest.raises(TracefsError, match="invalid tracefs name"):
        tracefs.check_name(name)


def test_writes_append_and_report(tracefs_root: Tracefs) -> None:
    with pytest.raises(TracefsError, match="open nosuchfile"):
        tracefs_root.write("nosuchfile", "1\n")
    assert tracefs_root.cpus()  # per_cpu/cpuN exist
    assert tracefs_root.event_id("sched", "sched_process_exec") > 0
    with pytest.raises(TracefsError):
        tracefs_root.event_id("sched", "../../x")


def test_symlinked_tracefs_file_is_not_followed(tmp_path) -> None:
    (tmp_path / "target").write_text("secret")
    (tmp_path / "trace_clock").symlink_to(tmp_path / "target")
    t = Tracefs(str(tmp_path))
    with pytest.raises(OSError):
        t.read("trace_clock")
    with pytest.raises(TracefsError):
        t.write("trace_clock", "mono\n")
    assert (tmp_path / "target").read_text() == "secret"
