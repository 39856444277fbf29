"""``make demo`` end to end: the story must hold on this host, step by step."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the demo plays the administrator: needs root")

GIDS = ["--gid", "stapusr=41201", "--gid", "stapsys=41202", "--gid", "stapdev=41203"]


def test_demo_story_holds():
    proc = subprocess.run([sys.executable, "-m", "pystap.demo", *GIDS], capture_output=True, text=True,
                          timeout=300, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "demo passed: every step behaved as expected." in out
    assert "hello from a signed module, uid 40100" in out
    assert out.count("=> exit 1: as expected") == 4, out  # tampered, unsigned, stapdev, unsafe script
    assert "UNEXPECTED" not in out


def test_demo_refuses_a_bad_gid_argument():
    proc = subprocess.run([sys.executable, "-m", "pystap.demo", "--gid", "wheel=10"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "expected NAME=GID" in proc.stderr
