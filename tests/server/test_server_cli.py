"""``pystap-server`` itself: who may run it, what it imports, the translator child it spawns."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pystap.server import translator
from pystap.server.protocol import Request
from pystap.server.translator import translator_argv, translator_env
from pystap.server.workdir import WorkDir, WorkDirError

from .conftest import (
    SERVER_GID,
    SERVER_UID,
    make_base,
    needs_root,
    request,
    send_request,
    start_server,
    stop_server,
    wait_for,
)

BIG = ("global a\n" + "probe begin { a = a + 1 }\n" * 6000).encode()  # seconds of CPU, 500 bytes sent


def big_request() -> Request:
    return Request(os.uname().release, os.uname().machine, (("-p", "4"),), "script/big.stp", (),
                   {"script/big.stp": BIG}, {})


@needs_root
def test_root_is_refused() -> None:
    r = subprocess.run([sys.executable, "-m", "pystap.cli.server", "--port", "0"], capture_output=True,
                       text=True, timeout=30, check=False)
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == "For security reasons, invocation of pystap-server as root is not supported.\n"


def _as_server_user(base: Path, *args: str) -> subprocess.CompletedProcess[str]:
    home = base / "home"
    home.mkdir(mode=0o700, exist_ok=True)
    os.chown(home, SERVER_UID, SERVER_GID)
    cmd = ["setpriv", f"--reuid={SERVER_UID}", f"--regid={SERVER_GID}", "--clear-groups", sys.executable, "-m",
           "pystap.cli.server", "--listen", "127.0.0.1", *args]
    return subprocess.run(cmd, env={"PATH": "/usr/bin:/bin", "HOME": str(home)}, capture_output=True, text=True,
                          timeout=30, check=False)


@needs_root
def test_bad_configurations_are_refused_at_start() -> None:
    base = make_base()
    try:
        r = _as_server_user(base, "-R", "/tmp")
        assert r.returncode == 1 and "-B and -R are not supported" in r.stderr
        r = _as_server_user(base, "-I", "relative/dir")
        assert r.returncode == 1 and "-I relative/dir: an existing absolute directory is expected" in r.stderr
        r = _as_server_user(base, "-D", "A=$(id)")
        assert r.returncode == 1 and "Safety pattern mismatch for -D parameter" in r.stderr
        half = base / "home" / "half"
        half.mkdir(mode=0o700)
        (half / "tls-key.pem").write_text("x")
        for path in (half, half / "tls-key.pem"):
            os.chown(path, SERVER_UID, SERVER_GID)
        r = _as_server_user(base, "--ssl", str(half))
        assert r.returncode == 1 and "holds tls-key.pem without its pair" in r.stderr
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_the_server_process_never_imports_a_pass() -> None:
    code = ("import json, sys, pystap.cli.server, pystap.server.service, pystap.server.translator;"
            "print(json.dumps(sorted(sys.modules)))")
    modules = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                        check=True).stdout)
    forbidden = ("pystap.lang", "pystap.translate", "pystap.probes", "pystap.runtime", "pystap.tapset",
                 "pystap.loader", "pystap.kernel", "pystap.cli.stap")
    assert [m for m in modules if m.startswith(forbidden)] == []


def test_translator_argv_puts_the_clients_options_after_client_options(tmp_path: Path) -> None:
    req = request([("-p", "4"), ("--privilege", "stapusr")], script=None, args=("-x", "--"))
    argv = translator_argv(req, (("-I", "/srv/tapsets"), ("-D", "A=1")), "6.1.0", "x86_64")
    assert argv[:4] == [sys.executable, "-I", "-m", "pystap.cli.stap"]
    assert argv[4:] == ["--disable-cache", "--no-sign", "-r", "6.1.0", "-a", "x86_64", "-I", "/srv/tapsets",
                        "-D", "A=1", "--client-options", "-p", "4", "--privilege=stapusr", "--", "-x", "--"]


def test_translator_environment_is_an_allowlist(tmp_path: Path) -> None:
    work = WorkDir(tmp_path)
    try:
        server_env = {"PATH": "/usr/bin", "PYSTAP_TAPSET": "/evil", "LD_PRELOAD": "/evil.so", "HOME": "/srv",
                      "PYTHONPATH": "/evil", "SECRET": "x"}
        env, problems = translator_env(server_env, {"LANG": "C.UTF-8", "LC_ALL": "$(id)", "EVIL": "1"}, work)
        assert env == {"PATH": "/usr/bin", "HOME": str(work.home), "XDG_CONFIG_HOME": str(work.home / ".config"),
                       "XDG_CACHE_HOME": str(work.home / ".cache"), "TMPDIR": str(work.tmp), "LANG": "C.UTF-8"}
        assert problems == ["Localization key 'EVIL' not found in global list",
                            "Localization value '$(id)' contains illegal characters"]
    finally:
        work.remove()
    assert list(tmp_path.iterdir()) == []


def test_workdir_refuses_to_write_outside(tmp_path: Path) -> None:
    work = WorkDir(tmp_path)
    try:
        for name in ("../escape", "script/../../escape", "/tmp/escape"):
            try:
                work.write_files({name: b"x"}, [])
            except Exception as exc:  # WorkDirError
                assert "invalid file name" in str(exc)
            else:
                raise AssertionError(name)
        os.symlink("/etc", work.request / "script")  # even a planted link is not followed
        with pytest.raises(WorkDirError):
            work.write_files({"script/passwd": b"x"}, [])
        assert Path("/etc/passwd").read_bytes() != b"x"
        assert not (tmp_path / "escape").exists()
    finally:
        work.remove()


@needs_root
def test_cpu_limit_and_shutdown_during_a_translation() -> None:
    base = make_base()
    srv = None
    try:
        srv = start_server(base, "--cpu-limit", "1", "--max-threads", "2")
        response = send_request(srv.port, big_request())
        assert response.rc == 1 and response.module is None
        assert response.stderr.endswith(b"Server: the translator was stopped: the CPU time limit (1 s) was "
                                        b"exceeded\n")
        assert srv.leftovers() == []

        # SIGTERM while a translation runs: the child is killed and its directory removed.
        answers: list[object] = []
        worker = threading.Thread(target=lambda: answers.append(
            send_request(srv.port, big_request())))
        worker.start()
        assert wait_for(lambda: srv.leftovers() != [] and (Path(srv.tmp) / srv.leftovers()[0] / "stderr")
                        .exists())
        os.killpg(srv.proc.pid, signal.SIGTERM)
        assert srv.proc.wait(timeout=20) == 0
        worker.join(timeout=20)
        assert srv.leftovers() == []
        assert answers and (answers[0] is None or b"shutting down" in answers[0].stderr)
    finally:
        if srv is not None:
            stop_server(srv)
        shutil.rmtree(base, ignore_errors=True)


def test_limits_defaults_are_documented_values() -> None:
    limits = translator.ChildLimits()
    assert (limits.cpu_seconds, limits.wall_seconds, limits.memory_bytes) == (60, 120.0, 1024 * 1024 * 1024)
