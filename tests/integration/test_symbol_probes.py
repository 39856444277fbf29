"""Symbol forms of process probes end to end: the uprobes pass 2 resolved fire, with exact output.

tests/probes/sym_target.c with "2": main calls atoi (strtol through the PLT), work(2) runs the
inlined ``twice`` and calls ``leaf`` twice, then the static ``hidden``; other(2) calls ``leaf``
once more (which a ``work``-callee probe must not see: the caller check); printf prints "15".
Built -O2 -g for inline instances and call sites, -O0 -g for labels and plain line tables.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import Service, World, armed, wait_for

SRC = Path(__file__).resolve().parent.parent / "probes" / "sym_target.c"

O2_SCRIPT = """
probe process("{t}").plt("strtol") {{ printf("plt %s\\n", $$name) }}
probe process("{t}").function("work") {{ printf("work n=%d %s\\n", $n, pp()) }}
probe process("{t}").function("work").return {{ printf("work returns %d\\n", $return) }}
probe process("{t}").function("twice").inline {{ printf("inline %s %s\\n", probefunc(), ppfunc()) }}
probe process("{t}").function("work").callee("leaf") {{ printf("callee x=%d %s\\n", $x, probefunc()) }}
probe process("{t}").function("work").callee("leaf").return {{ printf("callee returns %d\\n", $return) }}
probe process("{t}").function("hidden").call {{ printf("hidden.call %d\\n", $x) }}
probe process("{t}").function("other").exported {{ printf("other.exported %d\\n", $x) }}
probe process("{t}").plt("printf").return {{ printf("printf returned %d\\n", $return) }}
"""

O2_EXPECTED = """\
plt strtol
work n=2 process("{t}").function("work@{src}:31")
inline twice twice
callee x=0 leaf
callee returns 1
inline twice twice
callee x=1 leaf
callee returns 2
hidden.call 2
work returns 6
other.exported 2
printf returned 3
"""

O0_SCRIPT = """
probe process("{t}").statement("work@sym_target.c:36") {{ printf("line 36 %s\\n", probefunc()) }}
probe process("{t}").statement("work@sym_target.c:37").nearest {{ printf("nearest %s\\n", pp()) }}
probe process("{t}").function("work").label("out") {{ printf("label %s\\n", pp()) }}
probe process("{t}").statement({hidden:#x}) {{ printf("statement %s\\n", probefunc()) }}
"""

# pp() is SystemTap's run-time text: the statement .nearest resolved to, the label's function
O0_EXPECTED = """\
line 36 work
line 36 work
nearest process("{t}").statement("work@{src}:38")
label process("{t}").function("work@{src}:40")
statement hidden
"""


@pytest.fixture(scope="module")
def programs(world: World) -> dict[str, Path]:
    out = {}
    for name, opt in (("sym_o2", "-O2"), ("sym_o0", "-O0")):
        out[name] = world.bin / name
        subprocess.run(["gcc", opt, "-g", "-o", str(out[name]), str(SRC)], check=True, timeout=60)
        out[name].chmod(0o755)
    return out


def _nm(path: Path, name: str) -> int:
    for line in subprocess.run(["nm", str(path)], capture_output=True, text=True, check=True).stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == name:
            return int(parts[0], 16)
    raise AssertionError(name)


def _as_root(world: World, script: str, command: str) -> str:
    """``pystap -c COMMAND -e SCRIPT`` as root (translated, then run through the private service)."""
    env = {**world.env(None), "HOME": str(world.base), "XDG_CACHE_HOME": str(world.base / "cache-sym"),
           "XDG_CONFIG_HOME": str(world.base / "config-sym")}
    result = subprocess.run([sys.executable, "-m", "pystap.cli.stap", "-c", command, "-e", script], env=env,
                            cwd=world.base, capture_output=True, text=True, timeout=60)
    noise = [line for line in result.stderr.splitlines() if not line.startswith("Created a module-signing key")]
    assert (result.returncode, noise) == (0, []), result.stderr
    assert wait_for(lambda: not [g for g, _ in world.tracefs.uprobe_groups() if g.startswith("stp_d")])
    return result.stdout


def _without(text: str, line: str) -> str:
    """The program's own output interleaves with the handlers' at an unspecified place."""
    lines = text.splitlines(keepends=True)
    lines.remove(line + "\n")
    return "".join(lines)


def test_function_inline_callee_exported_plt_fire(world: World, programs: dict[str, Path]) -> None:
    t = programs["sym_o2"]
    out = _as_root(world, O2_SCRIPT.format(t=t), f"{t} 2")
    assert _without(out, "15") == O2_EXPECTED.format(t=t, src=SRC)


def test_statement_nearest_label_fire(world: World, programs: dict[str, Path]) -> None:
    t = programs["sym_o0"]
    script = O0_SCRIPT.format(t=t, hidden=_nm(t, "hidden"))
    out = _as_root(world, script, f"{t} 2")
    assert _without(out, "15") == O0_EXPECTED.format(t=t, src=SRC)


def test_callee_caller_check_as_stapusr(world: World, pystapd: Service, programs: dict[str, Path]) -> None:
    """A stapusr session: the callee probe's caller check runs in the user's handler; its return
    probe reads the check's values captured at the entry."""
    t = programs["sym_o2"]
    script = (f'probe process("{t}").function("work").callee("leaf") {{ printf("callee x=%d\\n", $x) }}'
              f' probe process("{t}").function("work").callee("leaf").return {{ printf("returns %d\\n", $return) }}')
    module = world.translate(script, "sym_callee_usr", "stapusr")
    result = pystapd.run("stapusr", module, "-c", f"{t} 2")
    assert (result.returncode, result.stderr) == (0, ""), pystapd.log()[-3000:]
    assert _without(result.stdout, "15") == "callee x=0\nreturns 1\ncallee x=1\nreturns 2\n"
    assert wait_for(lambda: armed(world.tracefs, pystapd.pid) == []), armed(world.tracefs, pystapd.pid)
