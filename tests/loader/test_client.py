"""pystaprun as a user meets it: options, output, Ctrl-C, no_new_privs, root without the service."""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pystap import eventwire, modfile, signing
from pystap.loader import client, protocol
from pystap.loader.ladder import MSG_ALTERED
from pystap.privilege import PR_ALL, PR_NONE, PR_STAPSYS, PR_STAPUSR

from .conftest import CALLERS, USER_GID, USER_UID, make_base, make_module

BEGIN_END = (
    modfile.ProbeEntry(id=0, family="begin", point="begin", handler="probe_0", params={}),
    modfile.ProbeEntry(id=1, family="end", point="end", handler="probe_1", params={}),
)


def _user_module(pystapd, name: str, data: bytes) -> Path:
    path = pystapd.home / f"{name}.stapmod"
    path.write_bytes(data)
    os.chown(path, USER_UID, USER_GID)
    return path


def _blessed_module(pystapd, name: str, data: bytes) -> Path:
    path = pystapd.blessed / f"{name}.stapmod"
    path.write_bytes(data)
    path.chmod(0o644)
    return path


def test_auto_privilege_messages():
    assert client.auto_privilege(PR_ALL) == ("stapdev", None)
    level, message = client.auto_privilege(PR_STAPSYS | PR_STAPUSR)
    assert level == "stapsys"
    assert message == ("--privilege=stapsys was automatically selected because you are a member of the groups "
                       "stapusr and stapsys.  [man stap]")
    level, message = client.auto_privilege(PR_STAPUSR)
    assert message == ("--privilege=stapusr was automatically selected because you are a member of the group "
                       "stapusr.  [man stap]")
    with pytest.raises(client.LoadError) as info:
        client.auto_privilege(PR_NONE)
    assert info.value.messages == (
        "You are trying to run systemtap as a normal user.",
        'You should either be root, or be part of the group "stapusr" and possibly one of the groups '
        '"stapsys" or "stapdev".  [man stap]',
    )


@pytest.mark.parametrize(("caller", "creds"), [("stapusr", 2), ("stapsys", 6), ("stapdev", 14), ("nogroup", 0)])
def test_whoami_uses_the_daemons_group_configuration(pystapd, caller, creds):
    uid, gid, groups = CALLERS[caller]
    code = "from pystap.loader.client import caller_credentials; print(caller_credentials())"
    result = subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--groups=" + ",".join(map(str, groups)),
         "--inh-caps=-all", sys.executable, "-c", code],
        env=pystapd.user_env(), capture_output=True, text=True, check=True, timeout=30,
    )
    assert int(result.stdout) == creds


def test_output_file_bare_name_and_exit_status(pystapd):
    _blessed_module(pystapd, "hello", make_module("stapusr"))
    out = pystapd.home / "out.txt"
    result = pystapd.run_as("stapusr", "-o", str(out), "hello")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert out.read_text() == "running stapusr\n"
    assert os.stat(out).st_uid == USER_UID  # written by the user's process, not by root


def test_handlers_run_as_the_user_with_no_new_privs(pystapd):
    code = ('def probe_0(c):\n    _b_system(c, "grep -E \'^(Uid|NoNewPrivs):\' /proc/self/status")\n'
            "    _b_exit(c)\n")
    _blessed_module(pystapd, "whoami", make_module("stapusr", probes=BEGIN_END[:1], code=code))
    result = pystapd.run_as("stapusr", "whoami")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    assert lines[0].split()[1:] == [str(USER_UID)] * 4
    assert lines[1].split() == ["NoNewPrivs:", "1"]


def test_ctrl_c_runs_end_probes_and_ends_the_session(pystapd):
    code = ('def probe_0(c):\n    _b_log(c, "started")\n'
            'def probe_1(c):\n    _b_log(c, "ended")\n')
    _blessed_module(pystapd, "forever", make_module("stapusr", probes=BEGIN_END, code=code))
    uid, gid, groups = CALLERS["stapusr"]
    proc = subprocess.Popen(
        ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--groups=" + ",".join(map(str, groups)),
         "--inh-caps=-all", sys.executable, "-m", "pystap.cli.staprun", "forever"],
        env=pystapd.user_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout.readline() == "started\n"
        deadline = time.monotonic() + 5
        while pystapd.status()["sessions"] < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert pystapd.status()["sessions"] == 1
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        assert (out, err, proc.returncode) == ("ended\n", "", 0)
        assert pystapd.wait_idle()["sessions"] == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_module_options_are_checked(pystapd):
    result = pystapd.run_as("stapusr", "-c", "true", "-x", "1", "m")
    assert (result.returncode, result.stderr) == (1, "ERROR: You can't specify the '-c' and '-x' options together.\n")
    result = pystapd.run_as("stapusr", "m", "not-an-assignment")
    assert (result.returncode, result.stderr) == (1, "ERROR: invalid module option 'not-an-assignment' "
                                                     "(expected var=value)\n")
    result = pystapd.run_as("stapusr", str(pystapd.home / "missing.stapmod"))
    assert result.returncode == 1
    assert result.stderr == f"ERROR: Couldn't open file '{pystapd.home / 'missing.stapmod'}': No such file or directory\n"


def test_unreachable_service(pystapd):
    env = pystapd.user_env() | {"PYSTAP_SOCKET": str(pystapd.base / "absent.sock")}
    uid, gid, groups = CALLERS["stapusr"]
    result = subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--groups=" + ",".join(map(str, groups)),
         "--inh-caps=-all", sys.executable, "-m", "pystap.cli.staprun", "m"],
        env=env, capture_output=True, text=True, check=False, timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr == (f"ERROR: Cannot reach pystapd at {pystapd.base / 'absent.sock'}: No such file or "
                             "directory. Is the pystapd service running?\n")


def test_root_without_the_service(pystapd, tmp_path):
    """Root decides in-process (same ladder) when no pystapd socket exists."""
    sysconf = tmp_path / "etc"
    sysconf.mkdir()
    (sysconf / "pystapd.toml").write_text(f'signer_store = "{pystapd.signers}"\nblessed_dir = "{pystapd.blessed}"\n')
    key = signing.generate_signing_key(tmp_path / "key", key_type="ed25519")
    from pystap.signing import trust_admin

    store = tmp_path / "signers"
    trust_admin.add_certificate(store, key.certificate, owner_uid=0, signer=True)
    (sysconf / "pystapd.toml").write_text(f'signer_store = "{store}"\nblessed_dir = "{pystapd.blessed}"\n')
    data = make_module("stapdev")
    good = tmp_path / "good.stapmod"
    good.write_bytes(data)
    bad = tmp_path / "bad.stapmod"
    bad.write_bytes(data.replace(b"running", b"tampered"))
    Path(str(bad) + ".sgn").write_bytes(signing.sign_module(data, key))
    env = {"PATH": "/usr/bin:/bin", "PYSTAP_SYSCONFDIR": str(sysconf),
           "PYSTAP_SOCKET": str(tmp_path / "no.sock"), "HOME": str(tmp_path)}
    run = [sys.executable, "-m", "pystap.cli.staprun", "-v"]
    result = subprocess.run([*run, str(good)], env=env, capture_output=True, text=True, check=False, timeout=30)
    assert (result.returncode, result.stdout) == (0, "running stapdev\n")
    assert "module started (session local)" in result.stderr
    result = subprocess.run([*run, str(bad)], env=env, capture_output=True, text=True, check=False, timeout=30)
    assert (result.returncode, result.stderr) == (1, MSG_ALTERED.format(path=bad) + "\n")


def test_global_assignments_reach_the_module(pystapd):
    code = ('G_greeting = ""\n_GLOBALS = {"greeting": ("G_greeting", "string", 0)}\n'
            "def probe_0(c):\n    _b_log(c, G_greeting)\n    _b_exit(c)\n")
    _blessed_module(pystapd, "greet", make_module("stapusr", probes=BEGIN_END[:1], code=code))
    result = pystapd.run_as("stapusr", "greet", "greeting=hi there")
    assert (result.returncode, result.stdout) == (0, "hi there\n"), result.stderr


def test_groups_by_name_and_the_foreground_helper():
    """Group names are looked up in the group database (here an existing system group)."""
    import grp

    from pystap.loader import foreground

    if os.geteuid() != 0:
        pytest.skip("pystapd needs root")
    group = grp.getgrgid(1).gr_name  # "daemon" on Debian
    base = make_base()  # reachable by the test uid (pytest's tmp_path is not)
    try:
        daemon = _check_group_by_name(foreground, base, group)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert daemon.proc.returncode == 0
    assert not daemon.socket.exists()


def _check_group_by_name(foreground, base, group):
    with foreground.running(base, blessed_dir=base, signer_store=base / "signers",
                            groups={"stapusr": group}) as daemon:
        code = "from pystap.loader.client import caller_credentials; print(caller_credentials())"
        result = subprocess.run(
            ["setpriv", "--reuid=40101", "--regid=1", "--clear-groups", "--inh-caps=-all", sys.executable, "-c",
             code], env={"PYSTAP_SOCKET": str(daemon.socket), "PATH": "/usr/bin:/bin"},
            capture_output=True, text=True, check=True, timeout=30,
        )
        assert int(result.stdout) == PR_STAPUSR
        assert "listening on" in daemon.log.read_text()
    return daemon


@pytest.mark.parametrize(("owner", "mode", "reason"), [
    (USER_UID, 0o755, "That directory should be owned by root."),
    (0, 0o777, "That directory should not be world writable."),
])
def test_blessed_directory_itself_must_be_root_owned_and_not_world_writable(owner, mode, reason):
    from pystap.loader import foreground

    if os.geteuid() != 0:
        pytest.skip("pystapd needs root")
    base = make_base()
    try:
        bad_dir = base / "blessed"
        bad_dir.mkdir()
        module = bad_dir / "m.stapmod"
        module.write_bytes(make_module("stapusr"))
        os.chown(bad_dir, owner, -1)
        bad_dir.chmod(mode)
        with foreground.running(base, blessed_dir=bad_dir, signer_store=base / "signers",
                                groups={"stapusr": 41001}) as daemon:
            result = subprocess.run(
                ["setpriv", "--reuid=40101", "--regid=40100", "--groups=41001", "--inh-caps=-all", sys.executable,
                 "-m", "pystap.cli.staprun", "m"],
                env={"PYSTAP_SOCKET": str(daemon.socket), "PATH": "/usr/bin:/bin"},
                capture_output=True, text=True, check=False, timeout=30,
            )
        assert result.returncode == 1
        assert result.stderr == (
            'ERROR: Members of the "stapusr" and "stapsys" groups can only use unsigned modules within\n'
            f'  the "{bad_dir}" directory.\n  {reason}\n'
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)



@pytest.mark.parametrize("payload", [
    b"\x02\x00\x07\x00\x00\x00\x01\x00\x00\x00\x00",  # rows of a schema never defined
    b"\x03\x00\x01\x00\x00\x00\x00\x00\x00\x00\x02[]",  # a schema that is not an object
    b"\x01\x00\x00\x00\x00\x00\x01\x00\x00\x00\x05abcde",  # a truncated JSON record
])
def test_a_malformed_event_stream_ends_with_a_warning(payload):
    """What pystapd sends is checked too: a bad EVENTS frame stops the stream, never the client."""
    ours, theirs = socket.socketpair()
    try:
        good = eventwire.Encoder()
        good.define(1, 3, [("$a", "q")])
        good.add((1, 1, struct.pack(eventwire.row_format(["q"]), 1, 2, 0, 2, 42)))
        for body in (*good.payloads(), payload):
            protocol.send_frame(theirs, protocol.FrameType.EVENTS, body)
        err = io.StringIO()
        events = client.DaemonEvents(ours, err)
        (rows,) = events.read_batch()
        assert [rows.fields(r) for r in rows.rows] == [{"$a": 42, "pid": 2, "cpu": 0, "tid": 2, "timestamp_ns": 1}]
        assert events.read_batch() == []
        assert "lost the event stream from pystapd" in err.getvalue()
    finally:
        ours.close()
        theirs.close()
