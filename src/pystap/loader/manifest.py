"""The loader's second barrier: re-check a module's probe manifest against its own level.

The translator already refused probe points the session's privilege does
not allow; the loader checks again on the bytes it is about to act on,
because the manifest is the only part of a module the root side executes
(it installs what the manifest declares).  A stapusr module may declare
only stapusr families, every family must be a row of the policy table, and
every entry must be well-formed data of bounded size.
"""

from __future__ import annotations

import re
from typing import Any

from pystap import modfile
from pystap.policy.probes import family_allowed, lookup
from pystap.privilege import Level

MAX_POINT_CHARS = 4096
MAX_PARAM_STRING = 4096
MAX_PARAM_LIST = 4096
MAX_PARAMS = 64
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def _param_problem(value: Any) -> str | None:
    if isinstance(value, str) and len(value) > MAX_PARAM_STRING:
        return "string parameter too long"
    if isinstance(value, list):
        if len(value) > MAX_PARAM_LIST:
            return "list parameter too long"
        for item in value:
            if isinstance(item, list):
                return "nested list parameter"
            problem = _param_problem(item)
            if problem:
                return problem
    return None


def check(module: modfile.Module) -> list[str]:
    """Problems with ``module``'s manifest (empty when it may be installed)."""
    level = Level.from_name(module.privilege)
    problems: list[str] = []
    for entry in module.probes:
        where = f"probe point '{entry.point[:200]}' (probe #{entry.id})"
        if lookup(entry.family) is None:
            problems.append(f"ERROR: {where} has unknown probe family '{entry.family[:100]}'")
            continue
        if not family_allowed(entry.family, level):
            problems.append(f"ERROR: {where}: probe point is not allowed for --privilege={level.label}")
            continue
        if not entry.point or len(entry.point) > MAX_POINT_CHARS:
            problems.append(f"ERROR: {where} has an empty or oversized probe point")
        if not _IDENT.fullmatch(entry.handler):
            problems.append(f"ERROR: {where} names an invalid handler '{entry.handler[:100]}'")
        if len(entry.params) > MAX_PARAMS:
            problems.append(f"ERROR: {where} has too many parameters")
        for key, value in entry.params.items():
            if not _IDENT.fullmatch(key):
                problems.append(f"ERROR: {where} has an invalid parameter name '{key[:100]}'")
                break
            problem = _param_problem(value)
            if problem:
                problems.append(f"ERROR: {where} has a malformed parameter '{key}': {problem}")
                break
    return problems
