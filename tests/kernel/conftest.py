"""Fixtures for the kernel probe tests: a private tracefs mount, gcc-built targets, clean-up checks.

tracefs is mounted on a temporary directory (every tracefs mount shares the
kernel state, so this exercises the real thing) and unmounted afterwards.
Every test that touches tracefs gets a fresh session id, and the ``tfs``
fixture asserts afterwards that no instance or uprobe group of that id is
left, so a test that leaks fails even when its own assertions passed.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pystap.kernel import reaper
from pystap.kernel.tracefs import Tracefs, mount_tracefs, unmount

HERE = Path(__file__).resolve().parent
_ids = itertools.count(1)


def _tracefs_supported() -> bool:
    try:
        with open("/proc/filesystems", encoding="utf-8") as f:
            return any(line.split()[-1] == "tracefs" for line in f if line.strip())
    except OSError:
        return False


@pytest.fixture(scope="session")
def tracefs_root(tmp_path_factory: pytest.TempPathFactory):
    if os.geteuid() != 0:
        pytest.skip("needs root (tracefs)")
    if not _tracefs_supported():
        pytest.skip("kernel has no tracefs")
    mnt = tmp_path_factory.mktemp("tracefs")
    mount_tracefs(str(mnt))
    try:
        yield Tracefs(str(mnt))
    finally:
        unmount(str(mnt))


@pytest.fixture
def sid() -> str:
    return f"t{os.getpid()}x{next(_ids)}"


def leftovers(tfs: Tracefs, sid: str) -> list[str]:
    found = [i for i in tfs.instances() if i.startswith(f"pystap-{sid}-")]
    found += sorted({g for g, _ in tfs.uprobe_groups() if g == f"stp_{sid}"})
    return found


@pytest.fixture
def tfs(tracefs_root: Tracefs, sid: str):
    """The tracefs mount; after the test, nothing of this session may remain."""
    yield tracefs_root
    left = leftovers(tracefs_root, sid)
    if left:  # clean up for the next test, then fail this one
        reaper.reap(tracefs_root, live_sids=())
        pytest.fail(f"tracefs objects left behind: {left}")


@pytest.fixture(scope="session")
def target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test program, built with gcc -O2 -g (entry nops, one SDT marker with a semaphore)."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    out = tmp_path_factory.mktemp("bin") / "target"
    subprocess.run(["gcc", "-O2", "-g", "-pthread", "-o", str(out), str(HERE / "target.c")], check=True)
    return out


@pytest.fixture(scope="session")
def target_nodebug(target: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bin") / "target-nodebug"
    subprocess.run(["gcc", "-O2", "-pthread", "-o", str(out), str(HERE / "target.c")], check=True)
    return out


def run_target(path: Path, *args: str, stdin: str | None = None) -> str:
    return subprocess.run([str(path), *args], capture_output=True, text=True, check=True,
                          input=stdin, timeout=20).stdout
