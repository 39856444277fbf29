"""``process[(PID|"PATH")].*``: user-space process probes.

Lifecycle and syscall forms (``begin end thread.begin thread.end syscall
syscall.return``) need no symbols and are built here.  The symbol forms
(``function statement mark provider().mark plt library()``) resolve through
the ELF resolver (:mod:`pystap.probes.elfsyms`) when it is available; until
then they are accepted syntactically and refused with a clear message.

A ``PATH`` without ``/`` is searched in ``$PATH`` and canonicalised (as
``stap`` does, ``process("ls")`` becomes ``process("/usr/bin/ls")``); a
``PID`` must name a running process.  Every process probe is *myproc*: at
``--privilege=stapusr`` it only fires for the user's own processes.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from pystap.lang.ast import ProbePoint, Type
from pystap.lang.diagnostics import SemanticError
from pystap.probes.registry import NUM, STR, BuildContext, Built, Shape, shape

_LIFECYCLE = ("begin", "end", "thread.begin", "thread.end")
_SYSCALL = ("syscall", "syscall.return")
_NO_TARGETS = (
    'only "process(PATH_OR_PID).syscall" and "process(PATH_OR_PID).syscall.return" probes support '
    "target symbols"
)


def resolve_path(path: str, path_env: str | None = None) -> str:
    """Where ``process("PATH")`` points: ``$PATH`` search when there is no
    slash, then the canonical path; the name as given when nothing is found."""
    candidate = path
    if "/" not in path:
        for d in (path_env if path_env is not None else os.environ.get("PATH", "")).split(":"):
            full = os.path.join(d or ".", path)
            if os.path.isfile(full) and os.access(full, os.X_OK):
                candidate = full
                break
        else:
            return path
    try:
        return os.path.realpath(candidate)
    except (OSError, ValueError):
        return candidate


def _target(args: dict[str, Any], ctx: BuildContext) -> tuple[str, dict[str, Any]]:
    """Canonical ``process…`` prefix and manifest params for the target."""
    value = args.get("process")
    if value is None:
        return "process", {"target": "any"}
    if isinstance(value, int):
        if value <= 0 or not os.path.exists(f"/proc/{value}"):
            raise SemanticError(f"cannot probe pid {value}: No such process")
        return f"process({value})", {"target": "pid", "pid": value}
    if value == "":
        raise SemanticError("empty process path")
    path = resolve_path(value, ctx.path_env or None)
    return f'process("{path}")', {"target": "path", "path": path}


def _syscall_target(is_return: bool):
    def resolve(name: str, write: bool) -> Type:
        if name == "$syscall" or (is_return and name == "$return"):
            if write:
                raise SemanticError(f"utrace '{name}' variable is read-only")
            return Type.LONG
        if name.startswith("$arg"):
            if is_return:
                raise SemanticError('only "process(PATH_OR_PID).syscall" support $argN or $$parms.')
            num = name[4:]
            if not num.isdigit() or not 1 <= int(num) <= 6:
                raise SemanticError("invalid syscall argument number (1-6)")
            if write:
                raise SemanticError("utrace '$argN' variable is read-only")
            return Type.LONG
        if name in ("$$parms", "$$parms$", "$$parms$$"):
            if is_return:
                raise SemanticError('only "process(PATH_OR_PID).syscall" support $argN or $$parms.')
            if write:
                raise SemanticError("utrace '$$parms' variable is read-only")
            return Type.STRING
        if name == "$return":
            raise SemanticError('only "process(PATH_OR_PID).syscall.return" probes support $return')
        raise SemanticError(f"unknown target variable '{name}'")

    return resolve


def _no_targets(name: str, write: bool) -> Type:
    raise SemanticError(_NO_TARGETS)


def _lifecycle(kind: str):
    def build(pp: ProbePoint, args: dict[str, Any], ctx: BuildContext) -> list[Built]:
        prefix, params = _target(args, ctx)
        params["event"] = kind
        return [
            Built(
                point=f"{prefix}.{kind}",
                family=f"process.{kind}",
                params=params,
                myproc=True,
                target=_no_targets,
            )
        ]

    return build


def _syscall(kind: str):
    is_return = kind.endswith(".return")

    def build(pp: ProbePoint, args: dict[str, Any], ctx: BuildContext) -> list[Built]:
        prefix, params = _target(args, ctx)
        params["event"] = kind
        ctxvars = {"$syscall": Type.LONG}
        if is_return:
            ctxvars["$return"] = Type.LONG
        else:
            ctxvars.update({f"$arg{i}": Type.LONG for i in range(1, 7)})
        return [
            Built(
                point=f"{prefix}.{kind}",
                family=f"process.{kind}",
                params=params,
                myproc=True,
                context_vars=ctxvars,
                target=_syscall_target(is_return),
            )
        ]

    return build


def _context_resolver(ctxvars: dict[str, Type], guru: bool, refused: dict[str, str] | None = None):
    """``$name`` in a symbol-based probe: what the ELF resolver found, read-only without -g.

    ``refused`` says why a known name cannot be captured (a float, after a
    struct passed by value, a .return probe) or, under ``"*"``, why there
    are no names at all (no debug information), so the error says what to do.
    """
    why = refused or {}

    def resolve(name: str, write: bool) -> Type:
        if name not in ctxvars:
            reason = why.get(name) or why.get("*")
            if reason is not None and not name.startswith("$$"):
                raise SemanticError(f"target variable '{name}' is not available: {reason}")
            raise SemanticError(f"unable to find local '{name.lstrip('$')}' near this probe point")
        if write and not guru:
            raise SemanticError("write to target variable not permitted; need stap -g")
        return ctxvars[name]

    return resolve


def _symbolic(family: str, form: str):
    """Builders for the forms that need the binary's symbols (ELF/SDT)."""

    def build(pp: ProbePoint, args: dict[str, Any], ctx: BuildContext) -> list[Built]:
        if args.get("process") is None:
            raise SemanticError(f"process{form} probes need a process path or pid")
        prefix, params = _target(args, ctx)
        resolver = ctx.elf_resolver
        if resolver is None:
            try:
                resolver = importlib.import_module("pystap.probes.elfsyms")
            except ImportError:
                resolver = None
        resolve = getattr(resolver, "resolve_probe", None) if resolver is not None else None
        if resolve is None:
            raise SemanticError(f"process{form} probes are not yet supported (no ELF symbol resolver)")
        results = resolve(family=family, prefix=prefix, params=params, args=args, point=pp)
        out = []
        for r in results:
            if isinstance(r, Built):
                if r.target is None:
                    r.target = _context_resolver(r.context_vars, ctx.guru)
                out.append(r)
            else:  # a mapping from the resolver: point, params, context_vars
                ctxvars = dict(r.get("context_vars", {}))
                out.append(
                    Built(
                        point=r["point"],
                        family=family,
                        params=r.get("params", {}),
                        myproc=True,
                        context_vars=ctxvars,
                        target=_context_resolver(ctxvars, ctx.guru, r.get("refused")),
                    )
                )
        return out

    return build


def _shapes() -> list[Shape]:
    out: list[Shape] = []
    for root in ("process", f"process({STR})", f"process({NUM})"):
        for kind in _LIFECYCLE:
            out.append(shape(f"{root}.{kind}", f"process.{kind}", _lifecycle(kind)))
        for kind in _SYSCALL:
            out.append(shape(f"{root}.{kind}", f"process.{kind}", _syscall(kind)))
        libs = [root] if root.endswith(f"({NUM})") else [root, f"{root}.library({STR})"]
        for base in libs:
            for fn in (f"function({STR})", f"function({NUM})"):
                for suffix in ("", ".call", ".return", ".exported"):
                    out.append(
                        shape(
                            f"{base}.{fn}{suffix}",
                            "process.function",
                            _symbolic("process.function", ".function"),
                        )
                    )
            out.append(
                shape(
                    f"{base}.function({STR}).inline",
                    "process.function",
                    _symbolic("process.function", ".function"),
                )
            )
            out.append(
                shape(
                    f"{base}.function({STR}).label({STR})",
                    "process.function",
                    _symbolic("process.function", ".function"),
                )
            )
            for st in (f"statement({STR})", f"statement({NUM})"):
                out.append(
                    shape(f"{base}.{st}", "process.statement", _symbolic("process.statement", ".statement"))
                )
                out.append(
                    shape(
                        f"{base}.{st}.nearest",
                        "process.statement",
                        _symbolic("process.statement", ".statement"),
                    )
                )
            out.append(shape(f"{base}.mark({STR})", "process.mark", _symbolic("process.mark", ".mark")))
            out.append(
                shape(
                    f"{base}.provider({STR}).mark({STR})", "process.mark", _symbolic("process.mark", ".mark")
                )
            )
            for plt in ("plt", f"plt({STR})"):
                out.append(shape(f"{base}.{plt}", "process.plt", _symbolic("process.plt", ".plt")))
                out.append(shape(f"{base}.{plt}.return", "process.plt", _symbolic("process.plt", ".plt")))
    return out


SHAPES = _shapes()
