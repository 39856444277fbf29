"""Context functions end to end: real uprobes on a gcc-built program, captured values, exact output.

``pystap -p4`` plans what each probe captures in the kernel at the hit
(registers, arguments, user strings); pystapd installs the fetch arguments;
the handler, run by pystaprun as the caller, reads them.  Run as root, as a
stapdev user and as a stapusr user (setpriv), like test_probes.py.

target.c with "3": add(sum, i) for i < 3, then greet("hello", 7), which returns 12.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import Service, World, armed, setpriv, wait_for

CONTEXT_SCRIPT = """
probe process("{t}").function("greet") {{
  printf("greet %s|%s|%s|%d %d|%d|%s %s\\n", user_string($who), user_string(pointer_arg(1)),
         user_string_n($who + 1, 3), $n, int_arg(2), register("esi"), probefunc(), execname())
  printf("fault [%s] [%d]\\n", user_string($who - 0x7fff0000, "<fault>"), user_int(0))
}}
probe process("{t}").function("greet").return {{
  printf("greet returns %d %s (%s)\\n", returnval(), returnstr(1), $$parms$)
}}
probe process("{t}").function("add") {{
  if ($b == 2) printf("add %d %d %d %d\\n", long_arg(1), u_register("rsi"), uid() == euid(), is_return())
}}
probe process("{t}").mark("tick") {{ if ($arg2 == 3) printf("tick %d %s\\n", $arg1, probefunc()) }}
"""

EXPECTED = """\
add 1 2 1 0
tick -2 main
greet hello|hello|ell|7 7|7|greet target
fault [<fault>] [0]
greet returns 12 12 (who="hello" n=7)
"""

ERROR_SCRIPT = """
probe process("{t}").function("greet") {{ println(user_string($who - 0x7fff0000)) }}
"""


@pytest.mark.parametrize("caller", ["root", "stapdev", "stapusr"])
def test_context_functions_exact_output(world: World, pystapd: Service, caller: str) -> None:
    level = "stapusr" if caller == "stapusr" else "stapdev"
    module = world.translate(CONTEXT_SCRIPT.format(t=world.target), f"ctx_{level}", level)
    result = pystapd.run(caller, module, "-c", f"{world.target} 3")
    assert (result.returncode, result.stderr) == (0, ""), pystapd.log()[-3000:]
    lines = result.stdout.splitlines(keepends=True)
    lines.remove("3\n")  # the program's own output interleaves anywhere
    assert "".join(lines) == EXPECTED
    assert wait_for(lambda: armed(world.tracefs, pystapd.pid) == []), armed(world.tracefs, pystapd.pid)


def test_user_string_fault_is_systemtaps_error(world: World, pystapd: Service) -> None:
    script = ERROR_SCRIPT.format(t=world.target)
    col = script.splitlines()[1].index("println") + 1
    module = world.translate(script, "ctx_fault", "stapdev")
    result = pystapd.run("root", module, "-c", f"{world.target} 1")
    assert result.returncode == 1
    first = result.stderr.splitlines()[0]
    assert first.startswith("ERROR: user string copy fault -14 at 0x"), result.stderr
    assert first.endswith(f"[man error::fault] near identifier 'println' at <input>:2:{col}"), result.stderr


def test_exec_tracepoint_fields(world: World, pystapd: Service) -> None:
    script = (f'probe kernel.trace("sched:sched_process_exec") {{ if ($filename == "{world.target}")'
              ' printf("exec %s %s %d\\n", $filename, execname(), $pid == pid()) }')
    module = world.translate(script, "ctx_exec", "stapdev")
    result = pystapd.run("root", module, "-c", f"{world.target} 1")
    assert (result.returncode, result.stderr) == (0, ""), pystapd.log()[-3000:]
    assert f"exec {world.target} target 1\n" in result.stdout


def test_syscall_tapset_argstr(world: World, pystapd: Service) -> None:
    """syscall.openat with the path captured in the kernel at the call (BPF template) and argstr."""
    script = ('probe syscall.openat { if (pid() == target()) printf("%s(%s) = ", name, argstr) }'
              ' probe syscall.openat.return { if (pid() == target()) printf("%s %s\\n", name, retstr) }')
    module = world.translate(script, "ctx_sys", "stapdev")
    result = pystapd.run("root", module, "-c", f"{world.target} 1")
    assert (result.returncode, result.stderr) == (0, ""), pystapd.log()[-3000:]
    assert 'openat(AT_FDCWD, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = openat 3\n' in result.stdout, result.stdout


def test_tracepoint_fields_resolve_for_a_user_without_tracefs(world: World) -> None:
    """The translator runs as the user, who cannot read tracefs: the fields come from BTF."""
    script = 'probe kernel.trace("sched:sched_process_exec") { println($filename, $old_pid) }'
    cmd = [*setpriv("stapdev"), sys.executable, "-m", "pystap.cli.stap", "--privilege=stapdev", "-p3", "-e",
           script]
    out = subprocess.run(cmd, env=world.env(None), cwd=world.home, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    module = json.loads(out.stdout)
    assert module["probes"][0]["params"] == {"event": "sched_process_exec", "system": "sched"}
    assert "(c.fields.get('$filename') or '')" in module["code"]
