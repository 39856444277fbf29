"""Helpers: build scripts into modules in-process and drive their handlers with synthetic records."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pystap import modfile
from pystap.cli.stap import main
from pystap.runtime import RunOptions, run_module

HERE = Path(__file__).parent


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ctx_target.c built with debug information."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    out = tmp_path_factory.mktemp("ctx") / "ctx"
    subprocess.run(["gcc", "-O1", "-g", "-o", str(out), str(HERE / "ctx_target.c")], check=True)
    return out


@pytest.fixture(scope="session")
def target_nodebug(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    out = tmp_path_factory.mktemp("ctxnd") / "ctx_nodebug"
    subprocess.run(["gcc", "-O1", "-o", str(out), str(HERE / "ctx_target.c")], check=True)
    return out


def stap(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main(list(args), stdin=io.StringIO(""), stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def build(script: str, *options: str) -> modfile.Module:
    """Pass 1-3 of ``script``; the module (asserts success)."""
    rc, out, err = stap("-w", "-p3", "--disable-cache", *options, "-e", script)
    assert rc == 0, err
    return modfile.load(out.encode())


def build_error(script: str, *options: str) -> str:
    """The error text of a script that must fail in pass 2 or 3."""
    rc, out, err = stap("-w", "-p3", "--disable-cache", *options, "-e", script)
    assert rc == 1, out
    return err


class Records:
    """An EventSource that delivers one batch of ``(probe_id, fields)`` records, then ends."""

    def __init__(self, records: list[tuple[int, dict[str, Any]]]) -> None:
        self.records = records
        self.r, self.w = os.pipe()
        os.write(self.w, b"x")
        self.done = False

    def fileno(self) -> int:
        return self.r

    def read_batch(self) -> list[tuple[int, dict[str, Any]]]:
        if self.done:
            return []
        self.done = True
        return self.records

    def close(self) -> None:
        os.close(self.r)
        os.close(self.w)


def run(module: modfile.Module, records: list[tuple[int, dict[str, Any]]], credentials: int = 0xE,
        timeout: float = 0.3) -> tuple[int, str, str]:
    """Run ``module`` with ``records`` as the kernel's events; (status, stdout, stderr)."""
    out, err = io.BytesIO(), io.BytesIO()
    source = Records(records)
    try:
        rc = run_module(module, credentials=credentials, events=source,
                        options=RunOptions(stdout=out, stderr=err, timeout=timeout, handle_signals=False))
    finally:
        source.close()
    return rc, out.getvalue().decode("latin-1"), err.getvalue().decode("latin-1")


def probe_id(module: modfile.Module, point_part: str) -> int:
    (found,) = [p.id for p in module.probes if point_part in p.point]
    return found


def fetch_of(module: modfile.Module, point_part: str) -> list[str]:
    (found,) = [p.params["fetch"] for p in module.probes if point_part in p.point]
    return list(found)
