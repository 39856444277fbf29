"""Where values are at a uprobe hit: SysV x86-64 argument registers as uprobe fetch arguments.

pystap does not evaluate DWARF location expressions; a function's
parameters are read where the ABI puts them *at the function's entry*
(``%di %si %dx %cx %r8 %r9``, then the stack), which is exact there and
meaningless anywhere else.  So only a probe at a real function entry (not a
statement, a label or an inlined instance) offers ``$parameters``, and the
callers say why when it cannot.
"""

from __future__ import annotations

import re

from pystap.probes.dwarfinfo import Param

ARG_REGISTERS = ("di", "si", "dx", "cx", "r8", "r9")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,29}")


def entry_fetch(is_return: bool) -> list[str]:
    """The fetch arguments every function probe captures (registers or the return value)."""
    fetch = ["comm=$comm:string"]
    if is_return:
        fetch.append("retval=$retval:s64")
    else:
        fetch.extend(f"arg{i + 1}=%{reg}:u64" for i, reg in enumerate(ARG_REGISTERS))
    return fetch


def param_fetches(params: list[Param] | tuple[Param, ...]) -> tuple[dict[str, str], dict[str, str]]:
    """Where each parameter is at function entry (SysV x86-64), as fetch arguments.

    Integer and pointer parameters take the next of the six argument
    registers, then the next stack slot; floating-point ones travel in SSE
    registers (no integer register used).  After an aggregate passed by
    value the assignment is not tracked, so later parameters are refused.
    Returns (``$name`` -> ``v_name=VALUE:TYPE``, ``$name`` -> why it is
    unavailable).
    """
    fetch: dict[str, str] = {}
    refused: dict[str, str] = {}
    reg = 0
    slot = 1
    lost = ""
    for p in params:
        var = "$" + p.name
        if not _NAME.fullmatch(p.name):
            continue
        if lost:
            refused[var] = f"its location follows {lost} passed by value, which pystap does not track"
            continue
        if p.kind == "float":
            refused[var] = "floating-point parameters are passed in SSE registers, which uprobes cannot fetch"
            continue
        if p.kind in ("aggregate", "unknown"):
            refused[var] = "only integer and pointer parameters can be captured"
            lost = f"parameter '{p.name}'"
            continue
        if p.kind in ("pointer", "text"):
            kind = "u64"
        else:
            size = p.size if p.size in (1, 2, 4, 8) else 8
            kind = f"{'s' if p.signed else 'u'}{size * 8}"
        if reg < len(ARG_REGISTERS):
            value = f"%{ARG_REGISTERS[reg]}"
            reg += 1
        else:
            value = f"$stack{slot}"
            slot += 1
        fetch[var] = f"v_{p.name}={value}:{kind}"
    return fetch, refused
