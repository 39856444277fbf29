"""The names generated handler code may use: the module ABI of the runtime.

Code generation (pass 3) emits Python that refers only to the names built
here, plus its own ``G_*`` (globals), ``probe_*``/``fn_*`` (handlers and
script functions) and ``_F*``/``_R*`` (compiled formats and regexes).  The
runtime execs that code in a fresh namespace from :func:`build_namespace`
and nothing else, so a module cannot reach anything the runtime does not
hand it on purpose (no ``__builtins__`` beyond a short allowlist).

Calling conventions: tapset functions are ``_b_<name>(c, *args)``;
arithmetic helpers take int64 operands and return int64; ``where`` strings
name the token of an error (``operator '/' at <input>:1:22``).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

from pystap.runtime import (
    arith,
    printf,
    regex,
    stats,
    tapset_context,
    tapset_misc,
    tapset_strings,
    tapset_syscall,
    tapset_time,
    tapset_unavailable,
    tapset_uprobe,
)
from pystap.runtime.errors import AbortRequest, MaxActionError, ModuleInitError, NextProbe, StapRuntimeError
from pystap.runtime.maps import GlobalMap, sorted_keys

TAPSET_FUNCTIONS: dict[str, Callable[..., Any]] = {
    **tapset_strings.FUNCTIONS,
    **tapset_context.FUNCTIONS,
    **tapset_time.FUNCTIONS,
    **tapset_misc.FUNCTIONS,
    **tapset_uprobe.FUNCTIONS,
    **tapset_unavailable.FUNCTIONS,
    **regex.FUNCTIONS,
}

# The only Python builtins generated code may call.
_SAFE_BUILTINS = ("len", "str", "int", "list", "tuple", "range", "min", "max", "abs", "chr", "ord",
                  "isinstance", "Exception", "RecursionError")


def _maxact() -> None:
    raise MaxActionError()


def _nest_error() -> None:
    raise StapRuntimeError("MAXNESTING exceeded")


def _callx(fn: Callable[..., Any], where: str | None, c: Any, *args: Any) -> Any:
    """A call to a function that may run ``next``: past the last overload that is the
    catchable error "all functions exhausted", located at the call as stap reports it."""
    try:
        return fn(c, *args)
    except NextProbe:
        raise StapRuntimeError("all functions exhausted", where) from None


def _hist_bucket(stat: stats.Stat | None, spec: stats.HistSpec, index: int, where: str | None = None) -> int:
    """``@hist_*(s)[i]``; its errors are reported near the histogram operator, as stap does."""
    if stat is None or stat.count == 0:
        raise StapRuntimeError("empty aggregate", where)
    try:
        return stat.bucket(index)
    except StapRuntimeError as exc:
        exc.where = where
        raise


def _hist_keys(stat: stats.Stat | None) -> range:
    """Bucket numbers a ``foreach`` over a histogram visits: every bucket, as SystemTap does."""
    if stat is None or stat.hist is None:
        return range(0)
    return range(len(stat.hist))


def _fmt_long(v: int) -> str:
    return str(v)


def build_namespace(session: Any) -> dict[str, Any]:
    """A fresh namespace for one module's code, bound to ``session``'s limits."""
    limits = session.limits
    maxmap = limits["MAXMAPENTRIES"]

    def new_map(name: str, arity: int, kind: str, size: int | None = None, wrap: bool = False,
                hist: stats.HistSpec | None = None, shift: int = -1) -> GlobalMap:
        return GlobalMap(name, arity, kind, size=size, wrap=wrap, maxmapentries=maxmap, hist=hist,
                         shift=shift)

    def new_hist(kind: str, start: int = 0, stop: int = 0, interval: int = 0, owner: str | None = None
                 ) -> stats.HistSpec:
        spec = stats.HistSpec(kind, start, stop, interval)
        if kind == "linear":
            warning = stats.linear_warning(start, stop, interval)
            if warning:
                session.warn(warning)
                if owner is not None:
                    # SystemTap cannot allocate the global: module initialisation fails, no probe runs
                    raise ModuleInitError(f"global variable '__global_{owner}' allocation failed")
        return spec

    hist_width, hist_elision = limits["HIST_WIDTH"], limits["HIST_ELISION"]

    def hist_render(stat: stats.Stat | None, spec: stats.HistSpec) -> str:
        return stats.render_histogram(stat, spec, hist_width, hist_elision)

    safe = {name: getattr(builtins, name) for name in _SAFE_BUILTINS}
    ns: dict[str, Any] = {
        "__builtins__": safe,
        "__name__": "pystap_module",
        "_SL": limits["MAXSTRINGLEN"] - 1,
        "_MAXNEST": limits["MAXNESTING"],
        "_add": arith.add, "_sub": arith.sub, "_mul": arith.mul, "_div": arith.div, "_mod": arith.mod,
        "_shl": arith.shl, "_shr": arith.shr, "_lshr": arith.lshr, "_neg": arith.neg, "_wrap": arith.wrap,
        "_Err": StapRuntimeError, "_Next": NextProbe, "_Abort": AbortRequest, "_MaxAct": MaxActionError,
        "_maxact": _maxact, "_nest_error": _nest_error, "_callx": _callx,
        "_Map": new_map, "_Stat": stats.Stat, "_Hist": new_hist, "_agg": stats.aggregate,
        "_hist_render": hist_render, "_hist_bucket": _hist_bucket, "_hist_keys": _hist_keys,
        "_keys": sorted_keys, "_fmt": printf.compile_format, "_re": regex.compile_ere,
        "_rmatch": regex.match, "_lstr": _fmt_long,
        "_ctxvar": tapset_syscall.context_variable, "_parms": tapset_uprobe.format_parms,
        "_entry_push": tapset_uprobe.entry_push, "_entry_pop": tapset_uprobe.entry_pop,
    }
    for name, fn in TAPSET_FUNCTIONS.items():
        ns["_b_" + name] = fn
    return ns


def provided_functions() -> frozenset[str]:
    return frozenset(TAPSET_FUNCTIONS)
