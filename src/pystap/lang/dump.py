"""The ``-p2`` listing, as ``stap -p2`` prints it.

::

    # globals
    b[10]:long [long, string]
    # functions
    f:long (x:long, y:string)
    # probes
    timer.ms(100) /* <- timer.ms(100),end */
      # locals
      x:long

With ``-v`` each function and probe is followed by its body (rendered by the
pass-1 printer, so the listing re-parses).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pystap.lang import ast, printer


def _t(t: ast.Type) -> str:
    return t.value


def global_line(g: ast.GlobalDecl) -> str:
    text = g.name
    if g.wrap:
        text += "%"
    if g.size is not None:
        text += f"[{g.size}]"
    text += ":" + _t(g.type)
    if g.arity:
        keys = [_t(g.key_types[i]) if i < len(g.key_types) else "unknown" for i in range(g.arity)]
        text += " [" + ", ".join(keys) + "]"
    return text


def function_line(name: str, ret: ast.Type, params: list[tuple[str, ast.Type]]) -> str:
    ps = ", ".join(f"{n}:{_t(t)}" for n, t in params)
    return f"{name}:{_t(ret)} ({ps})"


def dump(script: ast.ElaboratedScript, verbose: bool = False) -> str:
    render: Callable[[Any], str] | None = None
    if verbose:
        def render(node: Any) -> str:
            return printer.print_stmt(node, listing=True)
    out: list[str] = []
    if script.embeds:
        out.append("# global embedded code")
        for e in script.embeds:
            out.append("%{" + e.code + "%}")
    if script.globals:
        out.append("# globals")
        out.extend(global_line(g) for g in script.globals)
    entries: list[tuple[str, str, Any]] = []
    for fn in script.functions:
        ret = fn.inferred_type if fn.inferred_type is not ast.Type.UNKNOWN else fn.return_type
        entries.append((fn.name, function_line(fn.name, ret, [(p.name, p.type) for p in fn.params]), fn))
    for b in script.builtins:
        entries.append((b.name, function_line(b.name, b.returns, list(b.params)), None))
    if entries:
        out.append("# functions")
        for _, line, fn in sorted(entries, key=lambda e: (e[0], e[1])):
            out.append(line)
            if fn is not None and fn.locals:
                out.append("  # locals")
                out.extend(f"  {v.name}:{_t(v.type)}" for v in fn.locals)
            if render is not None and fn is not None:
                out.append(_safe(render, fn.body))
    if script.probes:
        out.append("# probes")
        for p in script.probes:
            cond = ""
            if p.condition is not None:
                cond = f" if ({printer.print_expr(p.condition, listing=True)})"
            out.append(f"{p.point}{p.point_mark}{cond} /* <- {' <- '.join(p.derivation)} */")
            if p.locals:
                out.append("  # locals")
                out.extend(f"  {v.name}:{_t(v.type)}" for v in p.locals)
            if render is not None:
                out.append(_safe(render, p.body))
    return "\n".join(out) + ("\n" if out else "")


def _children(n: ast.Node) -> list[ast.Node]:
    """Children in the order SystemTap's symbol resolution visits them: an array's
    indexes before the array; a foreach's indexes, then the array, then its value."""
    if isinstance(n, ast.ArrayIndex):
        return [*(i for i in n.indexes if i is not None), n.base]
    if isinstance(n, ast.Foreach):
        head: list[ast.Node] = [*n.indexes, n.array]
        if n.value is not None:
            head.append(n.value)
        return head + [c for c in ast.iter_children(n) if all(c is not h for h in head)]
    return list(ast.iter_children(n))


def resolution_order(probes: list[ast.DerivedProbe], functions: list[ast.FunctionDecl],
                     globals_: list[ast.GlobalDecl]) -> list[ast.GlobalDecl]:
    """The globals in SystemTap's order: the order symbol resolution first meets them
    (probes in file order, then functions), not declaration order.  ``stap -p2`` lists
    them so and the unread-global display prints them so; globals never met keep
    declaration order at the end."""
    wanted = {id(g): g for g in globals_}
    seen: dict[int, ast.GlobalDecl] = {}
    roots: list[ast.Node] = []
    for p in probes:
        if p.condition is not None:
            roots.append(p.condition)
        roots.append(p.body)
    roots.extend(fn.body for fn in functions)
    for root in roots:
        stack = [root]
        while stack:
            cur = stack.pop()
            if isinstance(cur, ast.Symbol):
                ref = cur.referent
                if ref is not None and id(ref) in wanted and id(ref) not in seen:
                    seen[id(ref)] = wanted[id(ref)]
            stack.extend(reversed(_children(cur)))
    rest = [g for g in globals_ if id(g) not in seen]
    return [*seen.values(), *rest]


def _safe(render: Callable[[Any], str], node: Any) -> str:
    try:
        return render(node)
    except Exception as err:  # the listing must never fail because of the printer
        return f"/* cannot print body: {type(err).__name__} */"
