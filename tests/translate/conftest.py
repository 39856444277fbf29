"""Helpers: run ``pystap`` in-process (fast) or as a real command (signals, -c)."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from pystap.cli.stap import main


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Every test gets its own module cache and working directory."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "cache"


class Result:
    def __init__(self, rc: int, out: str, err: str) -> None:
        self.rc, self.out, self.err = rc, out, err

    def __repr__(self) -> str:
        return f"Result(rc={self.rc}, out={self.out!r}, err={self.err!r})"


def stap(*args: str) -> Result:
    out, err = io.StringIO(), io.StringIO()
    rc = main(list(args), stdin=io.StringIO(""), stdout=out, stderr=err)
    return Result(rc, out.getvalue(), err.getvalue())


def stap_process(*args: str, timeout: float = 20, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-m", "pystap.cli.stap", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, check=False, **kw)
