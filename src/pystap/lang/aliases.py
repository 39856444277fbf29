"""Probe aliases: putting them into the match tree and merging their bodies.

``probe A = B {P}`` makes ``A`` a node of the match tree whose expansion is
``B`` with ``P`` run before the user's body; ``probe A += B {E}`` runs ``E``
after it; ``probe A = B {P}, {E}`` does both.  A probe point that continues
past an alias name (``A.return``) appends the extra components to each of
the alias's targets (alias suffixes).  The alias body's locals and the
user's share one scope, which is how tapset aliases hand ``name`` or
``argstr`` to the user.

Expansion is recursive; a chain that comes back to an alias it is already
expanding (with the same point) is refused with SystemTap's "recursive loop
in alias expansion" message.
"""

from __future__ import annotations

from dataclasses import dataclass

from pystap.lang import ast
from pystap.lang.treecopy import clone
from pystap.probes.registry import MatchNode, arg_kind


@dataclass(eq=False)
class AliasEntry:
    """One alias name of one ``probe … = …`` declaration, as put in the tree."""

    alias: ast.ProbeAlias
    name: ast.ProbePoint
    file: ast.StapFile


def install(root: MatchNode, files: list[ast.StapFile]) -> list[str]:
    """Add every alias of ``files`` to the (copied) match tree ``root``.

    Returns nothing useful today besides the names (for ``--dump-probe-aliases``).
    """
    names: list[str] = []
    for f in files:
        for alias in f.aliases:
            for name in alias.names:
                node = root
                for comp in name.components:
                    lit = comp.arg.value if comp.arg is not None else None
                    node = node.child((comp.name, arg_kind(lit)))
                node.aliases.append(AliasEntry(alias, name, f))
                names.append(point_text(name))
    return names


def merge_body(alias: ast.ProbeAlias, body: ast.Block) -> ast.Block:
    """The handler after expanding one alias level: prologue, body, epilogue."""
    statements: list[ast.Stmt] = []
    if alias.prologue is not None and not alias.epilogue_style:
        statements.append(clone(alias.prologue))
    statements.append(body)
    if alias.epilogue is not None:
        statements.append(clone(alias.epilogue))
    elif alias.epilogue_style and alias.prologue is not None:
        # ``+=`` aliases keep their single block in ``prologue`` for some parsers
        statements.append(clone(alias.prologue))
    return ast.Block(tok=body.tok, statements=statements)


def component_text(c: ast.PPComponent) -> str:
    if c.arg is None:
        return c.name
    if isinstance(c.arg, ast.StringLit):
        return f'{c.name}("{_escape(c.arg.value)}")'
    return f"{c.name}({c.arg.value})"


def _escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")


def point_text(pp: ast.ProbePoint, components: list[ast.PPComponent] | None = None) -> str:
    """A probe point as ``stap`` prints it (without the condition)."""
    comps = pp.components if components is None else components
    text = ".".join(component_text(c) for c in comps)
    if pp.optional and not pp.sufficient:
        text += "?"
    if pp.sufficient:
        text += "!"
    return text


def condition_text(pp: ast.ProbePoint) -> str:
    """`` if (cond)`` as stap shows it after a probe point, or ``""``."""
    if pp.condition is None:
        return ""
    from pystap.lang.printer import print_expr

    return f" if ({print_expr(pp.condition)})"


def alias_text(entry: AliasEntry) -> str:
    """``oneshot += begin``: one step of a derivation chain (the alias as declared)."""
    op = "+=" if entry.alias.epilogue_style else "="
    targets = ", ".join(point_text(t) + condition_text(t) for t in entry.alias.points)
    return f"{point_text(entry.name)} {op} {targets}"
