"""Tables the translator and the other sides keep in two places must agree."""

from __future__ import annotations

from pystap.lang.ast import Type
from pystap.policy.functions import FunctionPrivilege
from pystap.probes import captures
from pystap.probes.syscall import SYSCALL_LOCALS
from pystap.runtime import FUNCTIONS, tapset_syscall, tapset_uprobe
from pystap.tapset import builtins


def test_syscall_locals_match_the_runtime() -> None:
    translator = {call: {k: ("string" if t is Type.STRING else "long") for k, t in table.items()}
                  for call, table in SYSCALL_LOCALS.items()}
    runtime = {call: {k: v for k, v in table.items() if k != "argstr"}
               for call, table in tapset_syscall.LOCAL_TYPES.items()}
    assert translator == runtime


def test_register_tables_agree() -> None:
    assert {k: (v[0], v[1]) for k, v in tapset_uprobe.REGISTERS.items()} == captures.REGISTERS
    assert tapset_uprobe.UNCAPTURABLE_REGISTERS == captures.UNCAPTURABLE_REGISTERS


def test_every_reader_the_planner_knows_is_declared_and_implemented() -> None:
    for name in captures.READERS:
        assert builtins.arities(name), name
        assert name in FUNCTIONS, name
        assert all(builtins.lookup(name, a).privilege is FunctionPrivilege.MYPROC for a in builtins.arities(name))


def test_context_functions_are_usable_by_stapusr() -> None:
    for name in ("register", "u_register", "int_arg", "pointer_arg", "returnval", "user_string", "uaddr"):
        assert builtins.lookup(name, len(builtins.lookup(name, builtins.arities(name)[0]).params)).privilege \
            is FunctionPrivilege.MYPROC
    for name in ("pid", "execname", "probefunc", "probemod", "pp"):
        assert builtins.lookup(name, 0).privilege is FunctionPrivilege.UNPRIVILEGED
