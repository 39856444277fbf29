"""Real kernel probes end to end: pystap -p4, a signed module, pystaprun through pystapd, exact output.

Each caller (root, a stapdev user, a stapusr user) runs the same script on a
gcc-built program started with ``-c``: the probes are armed on the command
before it execs, and the end probe runs after every event it caused.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from .conftest import USER_UID, Service, World, armed, first_line, setpriv, track, wait_for

# target.c with "N p": add(sum, i) for i < N, the demo:tick SDT marker after each add (its
# semaphore is set by the kernel when the mark is probed), greet(), one getppid(), prints the sum.
PROCESS_SCRIPT = """
probe process("{t}").begin {{ printf("begin %s target=%d\\n", execname(), pid() == target()) }}
probe process("{t}").function("add") {{ printf("add a=%d b=%d\\n", $a, $b) }}
probe process("{t}").function("add").return {{ printf("add returns %d\\n", $return) }}
probe process("{t}").mark("tick") {{ printf("tick %d %d\\n", $arg1, $arg2) }}
probe process("{t}").syscall {{ if ($syscall == 110) printf("getppid by %s\\n", execname()) }}
probe process("{t}").end {{ printf("end %s\\n", execname()) }}
probe end {{ println("session end") }}
"""

EXPECTED = """\
begin target target=1
add a=0 b=0
add returns 0
tick 0 0
add a=0 b=1
add returns 1
tick -1 1
add a=1 b=2
add returns 3
tick -2 3
getppid by target
end target
session end
"""


def _run_checked(svc: Service, caller: str, module, *args: str, **kw) -> str:
    result = svc.run(caller, module, *args, **kw)
    assert (result.returncode, result.stderr) == (0, ""), svc.log()[-3000:]
    return result.stdout


@pytest.mark.parametrize("caller", ["root", "stapdev", "stapusr"])
def test_process_probes_exact_output(world: World, pystapd: Service, caller: str) -> None:
    level = "stapusr" if caller == "stapusr" else "stapdev"
    module = world.translate(PROCESS_SCRIPT.format(t=world.target), f"proc_{level}", level)
    out = _run_checked(pystapd, caller, module, "-c", f"{world.target} 3 p")
    assert _without_line(out, "3") == EXPECTED, out
    assert wait_for(lambda: armed(world.tracefs, pystapd.pid) == []), armed(world.tracefs, pystapd.pid)


def _without_line(text: str, line: str) -> str:
    """The command's own output ("3") interleaves with the handlers' at an unspecified place."""
    lines = text.splitlines(keepends=True)
    lines.remove(line + "\n")
    return "".join(lines)


TRACE_SCRIPT = """
probe kernel.trace("sched:sched_process_exec") {{
    if (pid() == target()) printf("exec %s by %s\\n", $filename, execname())
}}
probe kernel.trace("sched:sched_process_exit") {{
    if (pid() == target() && $group_dead) printf("exit %s\\n", $comm)
}}
probe end {{ println("session end") }}
"""


@pytest.mark.parametrize("caller", ["root", "stapdev"])
def test_kernel_trace_exact_output(world: World, pystapd: Service, caller: str) -> None:
    module = world.translate(TRACE_SCRIPT.format(), "trace", "stapdev")
    out = _run_checked(pystapd, caller, module, "-c", f"{world.target} 1")
    assert _without_line(out, "0") == f"exec {world.target} by target\nexit target\nsession end\n"


def test_kernel_trace_refused_for_stapusr(world: World, pystapd: Service) -> None:
    """The stapdev module is refused to a stapusr user (the ladder); a stapusr manifest that
    declares a tracepoint anyway is refused by the daemon's second barrier (tests/loader)."""
    module = world.translate(TRACE_SCRIPT.format(), "trace", "stapdev")
    result = pystapd.run("stapusr", module, "-c", f"{world.target} 1")
    assert result.returncode == 1 and result.stdout == ""
    assert "insufficient" in result.stderr or "privilege" in result.stderr, result.stderr


X_SCRIPT = """
probe begin {{ println("ready") }}
probe process("{t}").function("add") {{ if (pid() == target()) printf("add %d euid=%d\\n", $b, euid()) }}
probe process("{t}").end {{ if (pid() == target()) exit() }}
probe end {{ println("session end") }}
"""


def _as(caller: str, *argv: str) -> subprocess.Popen[str]:
    return track(subprocess.Popen([*setpriv(caller), *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True))


def test_stapusr_x_pid_follows_its_own_process(world: World, pystapd: Service) -> None:
    module = world.translate(X_SCRIPT.format(t=world.target), "xpid", "stapusr")
    mine = _as("stapusr", str(world.target), "2", "w")  # waits for a line before calling add()
    try:
        client = pystapd.spawn("stapusr", module, "-x", str(mine.pid))
        assert first_line(client) == "ready\n"
        assert mine.communicate("go\n", timeout=20)[0] == "1\n"
        out, err = client.communicate(timeout=20)
    finally:
        mine.kill() if mine.poll() is None else None
        mine.wait()
    assert (client.returncode, err) == (0, "")
    assert out == f"add 0 euid={USER_UID}\nadd 1 euid={USER_UID}\nsession end\n"


@pytest.mark.parametrize("whose", ["other", "suid"])
def test_stapusr_x_pid_of_someone_else_is_refused(world: World, pystapd: Service, whose: str) -> None:
    """Another user's process, or the user's own setuid-root program: the daemon refuses to attach."""
    module = world.translate(X_SCRIPT.format(t=world.target), "xpid", "stapusr")
    program = world.suid if whose == "suid" else world.target
    victim = _as("other" if whose == "other" else "stapusr", str(program), "2", "w")
    try:
        time.sleep(0.2)  # past its exec
        result = pystapd.run("stapusr", module, "-x", str(victim.pid))
    finally:
        victim.kill()
        victim.wait()
    assert result.returncode == 1 and result.stdout == ""
    assert f"process {victim.pid} does not belong to uid {USER_UID}" in result.stderr, result.stderr
    assert wait_for(lambda: armed(world.tracefs, pystapd.pid) == [])  # earlier sessions' teardown


ISOLATION_SCRIPT = """
probe begin {{ println("ready") }}
probe process("{t}").function("add") {{ printf("add %d uid=%d euid=%d\\n", $b, uid(), euid()) }}
probe process("{s}").function("add") {{ printf("suid add %d uid=%d euid=%d\\n", $b, uid(), euid()) }}
probe process.begin {{ if (execname() == "target" || execname() == "suid") printf("exec %s\\n", execname()) }}
"""


def test_stapusr_session_sees_only_its_users_processes(world: World, pystapd: Service) -> None:
    """No -c/-x: the session follows what the user starts, and nothing of another user's or of a
    setuid-root program, although all three run the probed binaries while it is armed."""
    module = world.translate(ISOLATION_SCRIPT.format(t=world.target, s=world.suid), "isolation", "stapusr")
    client = pystapd.spawn("stapusr", module)
    try:
        assert first_line(client) == "ready\n"
        for caller, program in (("other", world.target), ("stapusr", world.suid), ("other", world.suid)):
            run = subprocess.run([*setpriv(caller), str(program), "3"], capture_output=True, text=True,
                                 timeout=20)
            assert run.stdout == "3\n"
        mine = _as("stapusr", str(world.target), "2", "w")
        time.sleep(0.5)  # the daemon attaches to the user's new process when it sees its exec
        assert mine.communicate("go\n", timeout=20)[0] == "1\n"
        time.sleep(0.5)
    finally:
        os.kill(client.pid, signal.SIGINT)
        out, err = client.communicate(timeout=20)
    assert (client.returncode, err) == (0, "")
    assert out == f"exec target\nadd 0 uid={USER_UID} euid={USER_UID}\nadd 1 uid={USER_UID} euid={USER_UID}\n", \
        pystapd.log()[-6000:]


def test_root_without_pystapd(world: World, pystapd: Service) -> None:
    """pystaprun as root with no service: a private one, same output, nothing left armed."""
    module = world.translate(PROCESS_SCRIPT.format(t=world.target), "proc_stapdev", "stapdev")
    proc = pystapd.spawn("root", module, "-c", f"{world.target} 3 p", local=True)
    out, err = proc.communicate(timeout=30)
    assert (proc.returncode, err) == (0, "")
    assert _without_line(out, "3") == EXPECTED
    assert wait_for(lambda: not [i for i in world.tracefs.instances() if i.startswith("pystap-d")]
                    and not [g for g, _ in world.tracefs.uprobe_groups() if g.startswith("stp_d")]), \
        world.tracefs.instances()


def test_pystap_pass5_as_root_runs_kernel_probes(world: World) -> None:
    """``pystap -c CMD -e SCRIPT`` as root, no pystapd: translated, then run through the private
    service (``driver.run_pass5``'s root branch)."""
    script = PROCESS_SCRIPT.format(t=world.target)
    env = {**world.env(None), "HOME": str(world.base), "XDG_CACHE_HOME": str(world.base / "cache-p5"),
           "XDG_CONFIG_HOME": str(world.base / "config-p5")}
    result = subprocess.run([sys.executable, "-m", "pystap.cli.stap", "-c", f"{world.target} 3 p", "-e", script],
                            env=env, cwd=world.base, capture_output=True, text=True, timeout=60)
    # pass 4 may announce the signing key it created for this (fresh) user; nothing else
    noise = [line for line in result.stderr.splitlines() if not line.startswith("Created a module-signing key")]
    assert (result.returncode, noise) == (0, [])
    assert _without_line(result.stdout, "3") == EXPECTED


@pytest.mark.parametrize("caller", ["root", "stapusr"])
def test_c_command_without_kernel_probes_runs_after_begin_and_ends_the_session(
        world: World, pystapd: Service, caller: str) -> None:
    """-c with a module whose probes all run in the client: the command starts after the begin
    probes, the session ends when it exits (end probes run), and the client returns."""
    module = world.translate('probe begin { printf("begin %d\\n", target() > 0) } probe end { println("end") }',
                             "cmd_only", "stapusr")
    result = pystapd.run(caller, module, "-c", f"{world.target} 1", timeout=20)
    assert (result.returncode, result.stdout, result.stderr) == (0, "begin 1\n0\nend\n", "")
