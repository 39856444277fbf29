"""``process[(PID|"PATH")].*``: user-space process probes.

Lifecycle and syscall forms (``begin end thread.begin thread.end syscall
syscall.return``) need no symbols and are built here.  The symbol forms
(``function``, ``statement``, ``mark``, ``provider().mark``, ``plt``, each
also under ``library("LIB")``, and ``process(PID).statement(ADDR).absolute``)
are resolved by :mod:`pystap.probes.process_query` into uprobes; this file
registers their shapes and turns the answers into derived probes.

A ``PATH`` without ``/`` is searched in ``$PATH`` and canonicalised (as
``stap`` does, ``process("ls")`` becomes ``process("/usr/bin/ls")``); a
``PID`` must name a running process.  A symbol form without a process
(``process.function("main")``) probes the program of ``-c COMMAND`` (or of
``-x PID``), as SystemTap does.  Every process probe is *myproc*: at
``--privilege=stapusr`` it only fires for the user's own processes.
"""

from __future__ import annotations

import os
import shlex
from typing import Any

from pystap.lang import ast
from pystap.lang.ast import ProbePoint, Type
from pystap.lang.diagnostics import SemanticError
from pystap.lang.tokens import Token
from pystap.probes import process_query
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


def _context_resolver(ctxvars: dict[str, Type], guru: bool, refused: dict[str, str] | None = None,
                      hidden: dict[str, Type] | None = None):
    """``$name`` in a symbol-based probe: what the ELF resolver found, read-only without -g.

    ``refused`` says why a known name cannot be captured (a float, after a
    struct passed by value, a .return probe) or, under ``"*"``, why there
    are no names at all (no debug information), so the error says what to do.
    ``hidden`` names resolve but are not listed (a callee probe's caller check).
    """
    why = refused or {}
    extra = hidden or {}

    def resolve(name: str, write: bool) -> Type:
        if name in extra and not write:
            return extra[name]
        if name not in ctxvars:
            reason = why.get(name) or why.get("*")
            if reason is not None and not name.startswith("$$"):
                raise SemanticError(f"target variable '{name}' is not available: {reason}")
            raise SemanticError(f"unable to find local '{name.lstrip('$')}' near this probe point")
        if write and not guru:
            raise SemanticError("write to target variable not permitted; need stap -g")
        return ctxvars[name]

    return resolve


UNSPECIFIED = "unspecified process probe is invalid without a -c COMMAND or -x PID [man stapprobes]"


def unspecified_program(ctx: BuildContext) -> str:
    """The program an unspecified ``process`` probe names: the first word of ``-c COMMAND``, else
    ``/proc/PID/exe`` of ``-x PID`` (SystemTap's ``cmd_file()``)."""
    if ctx.target_cmd:
        try:
            words = shlex.split(ctx.target_cmd)
        except ValueError:
            words = []
        if not words:
            raise SemanticError("invalid -c command for unspecified process probe [man stapprobes]")
        return words[0]
    if ctx.target_pid is not None:
        pid = ctx.target_pid
        if pid <= 0 or not os.path.exists(f"/proc/{pid}"):
            why = "Invalid pid" if pid <= 0 else "No such process"
            raise SemanticError("invalid -x pid for unspecified process probe [man stapprobes]", None,
                                [SemanticError(f"cannot probe pid {pid}: {why}")])
        return f"/proc/{pid}/exe"
    raise SemanticError(UNSPECIFIED)


def _symbolic_target(args: dict[str, Any], ctx: BuildContext) -> tuple[str, dict[str, Any]]:
    """The probe point prefix and target params of a symbol form: always the program's path
    (SystemTap shows ``process("/bin/ls")`` for ``process(PID)`` too), the target as given."""
    value = args.get("process")
    if isinstance(value, int):
        if value <= 0 or not os.path.exists(f"/proc/{value}"):
            raise SemanticError(f"cannot probe pid {value}: No such process")
        try:
            exe = os.path.realpath(f"/proc/{value}/exe", strict=True)
        except OSError as exc:
            raise SemanticError(f"cannot probe pid {value}: {exc.strerror}") from None
        return f"process({process_query.quote(exe)})", {"target": "pid", "pid": value}
    name = unspecified_program(ctx) if value is None else value
    if name == "":
        raise SemanticError("empty process path")
    path = resolve_path(name, ctx.path_env or None)
    if "/" not in path or not os.path.isfile(path):
        raise SemanticError(f"cannot find executable '{path}'")
    return f"process({process_query.quote(path)})", {"target": "path", "path": path}


def caller_check(tok: Token, caller: dict[str, Any]) -> ast.Stmt:
    """``if ($__caller_ra - $__callee_pc != DELTA) next;``: SystemTap's ``_caller_match`` for a
    callee reached through a call site (both values are run-time addresses in one file, so their
    difference is known at translation time whatever the load address)."""
    ra, pc = caller["vars"]
    diff = ast.Binary(tok=tok, op="-", left=ast.TargetSymbol(tok=tok, name=ra),
                      right=ast.TargetSymbol(tok=tok, name=pc))
    delta = ast.NumberLit(tok=tok, value=int(caller["delta"]))
    cond = ast.Comparison(tok=tok, op="!=", left=diff, right=delta)
    return ast.If(tok=tok, cond=cond, then=ast.Next(tok=tok))


def _symbolic(family: str):
    """Builders for the forms that need the binary's symbols (ELF/DWARF/SDT)."""

    def build(pp: ProbePoint, args: dict[str, Any], ctx: BuildContext) -> list[Built]:
        prefix, params = _symbolic_target(args, ctx)
        resolve = getattr(ctx.elf_resolver, "resolve_probe", None) or process_query.resolve_probe
        results = resolve(family=family, prefix=prefix, params=params, args=args, point=pp, ctx=ctx)
        out = []
        for r in results:
            if isinstance(r, Built):
                if r.target is None:
                    r.target = _context_resolver(r.context_vars, ctx.guru)
                out.append(r)
                continue
            ctxvars = dict(r.get("context_vars", {}))
            caller = r.get("caller")
            hidden = {name: Type.LONG for name in caller["vars"]} if caller else {}
            out.append(
                Built(
                    point=r["point"],
                    family=family,
                    params=r.get("params", {}),
                    myproc=True,
                    context_vars=ctxvars,
                    target=_context_resolver(ctxvars, ctx.guru, r.get("refused"), hidden),
                    prologue=[caller_check(pp.tok, caller)] if caller else [],
                )
            )
        return out

    return build


_FUNCTION_SUFFIXES = ("", ".call", ".return", ".exported")
_STRING_FUNCTION_SUFFIXES = (".inline", f".label({STR})", f".callee({STR})", f".callee({STR}).call",
                             f".callee({STR}).return", ".callees", f".callees({NUM})")


def _shapes() -> list[Shape]:
    out: list[Shape] = []
    fn = _symbolic("process.function")
    st = _symbolic("process.statement")
    mark = _symbolic("process.mark")
    plt = _symbolic("process.plt")
    for root in ("process", f"process({STR})", f"process({NUM})"):
        for kind in _LIFECYCLE:
            out.append(shape(f"{root}.{kind}", f"process.{kind}", _lifecycle(kind)))
        for kind in _SYSCALL:
            out.append(shape(f"{root}.{kind}", f"process.{kind}", _syscall(kind)))
        # SystemTap registers library probes for process and process("PATH"), not process(PID)
        libs = [root] if root.endswith(f"({NUM})") else [root, f"{root}.library({STR})"]
        for base in libs:
            for suffix in _FUNCTION_SUFFIXES:
                out.append(shape(f"{base}.function({STR}){suffix}", "process.function", fn))
                out.append(shape(f"{base}.function({NUM}){suffix}", "process.function", fn))
            for suffix in _STRING_FUNCTION_SUFFIXES:
                out.append(shape(f"{base}.function({STR}){suffix}", "process.function", fn))
            for arg in (STR, NUM):
                out.append(shape(f"{base}.statement({arg})", "process.statement", st))
                out.append(shape(f"{base}.statement({arg}).nearest", "process.statement", st))
            out.append(shape(f"{base}.mark({STR})", "process.mark", mark))
            out.append(shape(f"{base}.provider({STR}).mark({STR})", "process.mark", mark))
            for p in ("plt", f"plt({STR})"):
                out.append(shape(f"{base}.{p}", "process.plt", plt))
                out.append(shape(f"{base}.{p}.return", "process.plt", plt))
    out.append(shape(f"process({NUM}).statement({NUM}).absolute", "process.statement", st))
    out.append(shape(f"process({NUM}).statement({NUM}).absolute.return", "process.statement", st))
    return out


SHAPES = _shapes()
