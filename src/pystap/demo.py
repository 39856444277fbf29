"""``make demo``: SystemTap's signed-module story (its bug 9973), end to end, on this host.

An administrator creates a module signer and trusts it, starts a private
``pystapd``, and builds signed modules; a user who is not root and belongs to
``stapusr`` only (an uid with no account, given to ``setpriv``) runs one
through the service and traces a real program with it.  The same module with
one byte changed, an unsigned copy outside the blessed directory and a
stapdev-level module are refused, and an unsafe script is refused by the
translator.  Every step states what it expects; the demo exits non-zero if any
outcome differs, so it is also a smoke test of an installation.

Everything lives under one temporary directory (configuration, keys, socket,
modules, the user's home) that is removed at the end; the only lasting change
is the three privilege groups, created as system groups when they are missing,
as SystemTap's package does.
"""

from __future__ import annotations

import argparse
import grp
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pystap.loader import foreground

DEMO_UID = 40100
DEMO_GID = 40100
GROUPS = ("stapusr", "stapsys", "stapdev")
BIN = Path(sys.executable).parent

HELLO = 'probe begin { printf("hello from a signed module, uid %d\\n", uid()); exit() }'
TRACE = textwrap.dedent("""\
    global loads
    probe process(@1).mark("import__find__load__start") {
        name = user_string($arg1)
        loads++
        if (name =~ "^(json|csv|decimal|fractions|statistics)$")
            printf("%s[%d] imports %s\\n", execname(), pid(), name)
    }
    probe end { printf("%d modules loaded in all\\n", loads) }
""")
PROGRAM = "import json, csv, decimal, fractions, statistics\nprint('traced program done')\n"
UNSAFE = 'probe kernel.function("vfs_read") { println(pid()) }'


@dataclass
class Step:
    """One command of the story and the outcome it must have."""

    who: str
    what: str
    argv: list[str]
    expect_rc: int
    expect_text: str


class Demo:
    def __init__(self, base: Path, gids: dict[str, int]) -> None:
        self.base = base
        self.etc = base / "etc"
        self.signer = base / "site-signer"
        self.home = base / "home"
        self.modules = base / "modules"
        self.blessed = base / "blessed"
        self.socket = base / "pystapd.sock"
        self.failures: list[str] = []
        self.gids = gids

    # ---- environment of each actor -------------------------------------------------

    def admin_env(self) -> dict[str, str]:
        return {"PATH": f"{BIN}:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
                "PYSTAP_SYSCONFDIR": str(self.etc), "HOME": str(self.base / "admin"),
                "XDG_CONFIG_HOME": str(self.base / "admin" / ".config"),
                "XDG_CACHE_HOME": str(self.base / "admin" / ".cache"),
                "PYSTAP_SOCKET": str(self.socket)}

    def user_env(self) -> dict[str, str]:
        return {"PATH": f"{BIN}:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(self.home),
                "XDG_CONFIG_HOME": str(self.home / ".config"),
                "XDG_CACHE_HOME": str(self.home / ".cache"),
                "PYSTAP_SOCKET": str(self.socket), "PYSTAP_SYSCONFDIR": str(self.etc)}

    def as_user(self, argv: Sequence[str]) -> list[str]:
        return ["setpriv", f"--reuid={DEMO_UID}", f"--regid={DEMO_GID}",
                f"--groups={self.gids['stapusr']}", "--inh-caps=-all", *argv]

    # ---- running and checking --------------------------------------------------------

    def run(self, step: Step) -> subprocess.CompletedProcess[str]:
        user = step.who == "user"
        print(f"\n--- {step.what}")
        shown = " ".join(_quote(a) for a in step.argv)
        print(f"{'user$' if user else 'root#'} {shown}")
        argv = self.as_user(step.argv) if user else step.argv
        proc = subprocess.run(argv, env=self.user_env() if user else self.admin_env(),
                              cwd=self.home if user else self.base, capture_output=True, text=True,
                              timeout=120, check=False)
        for line in (proc.stdout + proc.stderr).splitlines():
            print(f"    {line}")
        ok = proc.returncode == step.expect_rc and step.expect_text in proc.stdout + proc.stderr
        verdict = "as expected" if ok else f"UNEXPECTED (exit {proc.returncode}, wanted {step.expect_rc}" \
            f" and {step.expect_text!r})"
        print(f"    => exit {proc.returncode}: {verdict}")
        if not ok:
            self.failures.append(step.what)
        return proc

    # ---- the story -----------------------------------------------------------------

    def prepare(self) -> None:
        for d in (self.etc, self.base / "admin", self.blessed):
            d.mkdir(mode=0o755)
        for d in (self.home, self.modules):
            d.mkdir(mode=0o755)
            os.chown(d, DEMO_UID, DEMO_GID)
        # a private copy of the interpreter: probes never touch the system's python
        self.python = self.modules / "python3"
        shutil.copy2(os.path.realpath("/usr/bin/python3"), self.python)
        (self.home / "program.py").write_text(PROGRAM, encoding="utf-8")
        (self.base / "trace_imports.stp").write_text(TRACE, encoding="utf-8")

    def admin_builds(self, name: str, level: str, script: list[str]) -> Path:
        """``pystap -p4`` as the administrator, signed with the site signer."""
        self.run(Step("admin", f"the administrator builds and signs '{name}' for {level}",
                      [str(BIN / "pystap"), "-p4", f"--privilege={level}", f"--sign-key={self.signer}",
                       "-m", name, *script], 0, ".stapmod"))
        return self.base / f"{name}.stapmod"

    def publish(self, module: Path, name: str | None = None, *, tamper: bool = False,
                signed: bool = True) -> Path:
        """Copy a module (and its signature) where the user reads it, as ``name``."""
        target = self.modules / (name or module.name)
        data = bytearray(module.read_bytes())
        if tamper:
            at = data.index(b"hello from")
            data[at] = ord("j")
        target.write_bytes(bytes(data))
        sgn = Path(f"{module}.sgn")
        if signed and sgn.exists():
            shutil.copyfile(sgn, f"{target}.sgn")
        return target

    def story(self) -> None:
        self.prepare()
        self.run(Step("admin", "the administrator creates a module signer (key + certificate)",
                      [str(BIN / "pystap-gen-cert"), str(self.signer)], 0, ""))
        self.run(Step("admin", "and trusts it as a signer for all users",
                      [str(BIN / "pystap-authorize-cert"), "--signer", str(self.signer / "signing-cert.pem")],
                      0, ""))
        hello = self.admin_builds("hello", "stapusr", ["-e", HELLO])
        danger = self.admin_builds("dangerous", "stapdev", ["-e", HELLO])
        trace = self.admin_builds("trace_imports", "stapusr",
                                  [str(self.base / "trace_imports.stp"), str(self.python)])
        if self.failures:
            return
        print("\n--- the administrator starts pystapd (private socket; groups stapusr/stapsys/stapdev"
              f" = {self.gids['stapusr']}/{self.gids['stapsys']}/{self.gids['stapdev']})")
        with foreground.running(self.base, socket=self.socket, blessed_dir=self.blessed,
                                signer_store=self.etc / "staprun", groups=self.gids):
            ok = self.publish(hello)
            self.run(Step("user", f"uid {DEMO_UID}, member of stapusr only, runs the signed module",
                          ["pystaprun", str(ok)], 0, f"hello from a signed module, uid {DEMO_UID}"))
            bad = self.publish(hello, "tampered.stapmod", tamper=True)
            self.run(Step("user", "the same module with one byte changed is refused for everyone",
                          ["pystaprun", str(bad)], 1, "altered"))
            unsigned = self.publish(hello, "unsigned.stapmod", signed=False)
            self.run(Step("user", "an unsigned module outside the blessed directory is refused",
                          ["pystaprun", str(unsigned)], 1, "ERROR"))
            self.run(Step("user", "a stapdev module is refused for a stapusr user, trusted signer or not",
                          ["pystaprun", str(self.publish(danger))], 1, "ERROR"))
            self.run(Step("user", "an unsafe script is refused by the translator (privilege chosen"
                          " automatically from the user's groups)",
                          ["pystap", "-e", UNSAFE], 1, "not allowed for --privilege=stapusr"))
            self.run(Step("user", "the user traces a real program: CPython's import markers, as the user",
                          ["pystaprun", "-c", f"{self.python} {self.home / 'program.py'}",
                           str(self.publish(trace))], 0, "imports statistics"))
        print()
        if self.failures:
            print(f"demo FAILED: {len(self.failures)} step(s) did not behave as expected:")
            for what in self.failures:
                print(f"  - {what}")
        else:
            print("demo passed: every step behaved as expected.")


def ensure_group(name: str) -> int:
    """The gid of a privilege group, created as a system group (as SystemTap's package does)."""
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        subprocess.run(["groupadd", "--system", name], check=True)
        return grp.getgrnam(name).gr_gid


def _quote(arg: str) -> str:
    if arg and all(c.isalnum() or c in "-_./=:,@%+" for c in arg):
        return arg
    return "'" + arg.replace("'", "'\\''") + "'"


def _gid_arg(text: str) -> tuple[str, int]:
    name, _, gid = text.partition("=")
    if name not in GROUPS or not gid.isdigit():
        raise argparse.ArgumentTypeError(f"expected NAME=GID with NAME one of {', '.join(GROUPS)}")
    return name, int(gid)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pystap.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--gid", type=_gid_arg, action="append", default=[], metavar="NAME=GID",
                        help="use this gid for a privilege group instead of the system group "
                        "(tests use gids no account has; nothing is created then)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("the demo plays the administrator too: run it as root (make demo)", file=sys.stderr)
        return 2
    base = Path(tempfile.mkdtemp(prefix="pystap-demo-"))
    os.chmod(base, 0o711)  # noqa: S103 - the demo user must reach its home and the modules
    try:
        given = dict(args.gid)
        gids = {name: given[name] if name in given else ensure_group(name) for name in GROUPS}
        demo = Demo(base, gids)
        demo.story()
        return 1 if demo.failures else 0
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
