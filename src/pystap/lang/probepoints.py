"""Probe-point resolution: from what the user wrote to concrete derived probes.

Each probe point is walked down the match tree (:mod:`pystap.probes.registry`)
component by component.  Wildcards (``timer.*``, ``ti*``) expand against the
tree's children; a node holding aliases expands them (with suffixes);
a terminal node holding a family shape is checked against the session's
privilege *before* its builder runs (privilege.md §3.1), then built.

Where the walk stops decides the message, as in SystemTap: an unknown name is
"probe point mismatch" (with similar names), extra components after a
complete family are "invalid suffix for probe", a refused family is "probe
point is not allowed for --privilege=…" at the last component.  Every
failure is wrapped in "while resolving probe point" at the first component.
``?`` makes a point optional (its failure is silent), ``!`` also makes it
sufficient (later points of the same probe are skipped once it resolves),
``if (…)`` conditions stack through alias levels.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pystap.lang import ast
from pystap.lang.aliases import AliasEntry, alias_text, merge_body, point_text
from pystap.lang.diagnostics import SemanticError, StapError
from pystap.lang.treecopy import clone
from pystap.policy.probes import family_allowed
from pystap.privilege import name as level_name
from pystap.probes.registry import ANY, NONE, BuildContext, Built, MatchNode, arg_kind

MAX_ALIAS_DEPTH = 64


@dataclass
class Derived:
    """A probe produced by resolution, before it becomes an ast.DerivedProbe."""

    built: Built
    body: ast.Block
    condition: ast.Expr | None
    derivation: list[str]
    alias_files: list[ast.StapFile] = field(default_factory=list)
    mark: str = ""  # "?" / "!" of the resolving point, for the -p2 listing


class _Mismatch(Exception):
    pass


def _similar(word: str, candidates: list[str], limit: int = 5) -> list[str]:
    """Names close to ``word`` (edit distance), for "(similar: …)" hints."""

    def dist(a: str, b: str) -> int:
        prev = list(range(len(b) + 1))
        for i, ca in enumerate(a, 1):
            cur = [i]
            for j, cb in enumerate(b, 1):
                cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
            prev = cur
        return prev[-1]

    scored = sorted((dist(word, c), c) for c in set(candidates) if c != ANY)
    limit_d = max(3, len(word) // 2)
    return [c for d, c in scored if d <= limit_d][:limit]


def _mismatch_message(node: MatchNode, name: str, wildcard: bool) -> str:
    base = "probe point mismatch"
    if wildcard:
        base += ": didn't find any wildcard matches"
    sim = _similar(name, node.names())
    if sim:
        base += f" (similar: {', '.join(sim)})"
    return base


#: The words of a family's "cannot exist on this host" refusal (probes/unavailable.py).
_UNAVAILABLE = "not available on this kernel"


def _has_wildcard(name: str) -> bool:
    return "*" in name or "?" in name or "[" in name


class Resolver:
    """Resolves probe points for one elaboration session."""

    def __init__(
        self,
        root: MatchNode,
        ctx: BuildContext,
        include_file: Callable[[ast.StapFile], None],
    ) -> None:
        self.root = root
        self.ctx = ctx
        self.include_file = include_file

    # -- public -------------------------------------------------------------------------

    def derive_probe(self, probe: ast.Probe, errors: list[StapError]) -> list[Derived]:
        """Every derived probe of ``probe``; errors are appended to ``errors``."""
        out: list[Derived] = []
        origin = ",".join(_with_condition(pp) for pp in probe.points)
        for pp in probe.points:
            local: list[StapError] = []
            try:
                found = self.derive_point(pp, probe.body, None, [origin], 0)
            except StapError as err:
                local.append(err)
                found = []
            if pp.optional or pp.sufficient:
                local = []
            elif not found and not local:
                local.append(
                    SemanticError(
                        "while resolving probe point",
                        pp.components[0].tok if pp.components else pp.tok,
                        [SemanticError("no match", None)],
                    )
                )
            errors.extend(local)
            out.extend(found)
            if pp.sufficient and found:
                break
        return out

    def derive_point(
        self,
        pp: ast.ProbePoint,
        body: ast.Block,
        condition: ast.Expr | None,
        derivation: list[str],
        depth: int,
        chain: tuple[tuple[int, str], ...] = (),
    ) -> list[Derived]:
        if depth > MAX_ALIAS_DEPTH:
            raise SemanticError(
                "while resolving probe point", pp.tok, [SemanticError("alias expansion too deep", pp.tok)]
            )
        cond = _and(clone(pp.condition) if pp.condition is not None else None, condition)
        results: list[Derived] = []
        try:
            self._walk(self.root, pp, list(pp.components), 0, body, cond, derivation, depth, chain, results)
        except _Passthrough as p:
            # an alias of this point failed: after the alias's own errors stap names the point
            # written here and concludes "no match" (so --semantic-keep-going lists this line)
            first = pp.components[0].tok if pp.components else pp.tok
            here = SemanticError("while resolving probe point", first, [SemanticError("no match")])
            err = p.error
            raise SemanticError(err.message, err.tok, [*err.chain, here]) from None
        except _Wrapped as w:
            first = pp.components[0].tok if pp.components else pp.tok
            raise SemanticError("while resolving probe point", first, [w.error]) from None
        return results

    # -- the walk -----------------------------------------------------------------------

    def _walk(
        self,
        node: MatchNode,
        pp: ast.ProbePoint,
        comps: list[ast.PPComponent],
        pos: int,
        body: ast.Block,
        cond: ast.Expr | None,
        derivation: list[str],
        depth: int,
        chain: tuple[tuple[int, str], ...],
        out: list[Derived],
    ) -> None:
        if pos == len(comps):
            if node.shape is not None:
                self._build(node, pp, comps, body, cond, derivation, out)
                return
            if node.aliases:
                self._expand_aliases(node, pp, comps, pos, body, cond, derivation, depth, chain, out)
                return
            last = comps[-1]
            if node.children:
                follow = ", ".join(node.names())
                raise _Wrapped(SemanticError(f"probe point truncated (follow:  {follow})", last.tok))
            raise _Wrapped(SemanticError(_mismatch_message(node, last.name, False), last.tok))
        comp = comps[pos]
        value = comp.arg.value if comp.arg is not None else None
        kind = arg_kind(value)
        if "**" in comp.name:
            self._double_glob(node, pp, comps, pos, body, cond, derivation, depth, chain, out)
            return
        if _has_wildcard(comp.name):
            matched = False
            unavailable: StapError | None = None
            pattern = comp.name
            for (name, ckind), child in sorted(node.children.items()):
                names = [name]
                if name == ANY:
                    names = node.any_names() if node.any_names is not None else []
                for concrete in names:
                    if ckind != kind or not fnmatch.fnmatchcase(concrete, pattern):
                        continue
                    new_comp = ast.PPComponent(tok=comp.tok, name=concrete, arg=comp.arg)
                    new_comps = [*comps[:pos], new_comp, *comps[pos + 1 :]]
                    try:
                        before = len(out)
                        self._walk(child, pp, new_comps, pos + 1, body, cond, derivation, depth, chain, out)
                        matched = matched or len(out) > before
                    except _Wrapped as w:
                        # privilege refusals of a concrete expansion are real errors
                        if "not allowed" in w.error.message:
                            raise
                        if unavailable is None and _UNAVAILABLE in w.error.message:
                            unavailable = w.error
                    except (StapError, _Passthrough):
                        continue
            if not matched:
                # a family that matched but cannot exist on this host explains more than "no match"
                if unavailable is not None:
                    raise _Wrapped(unavailable)
                raise _Wrapped(SemanticError(_mismatch_message(node, comp.name, True), comp.tok))
            return
        child = node.children.get((comp.name, kind))
        if child is None and (ANY, kind) in node.children and _is_identifier(comp.name):
            child = node.children[(ANY, kind)]
        if child is not None:
            self._walk(child, pp, comps, pos + 1, body, cond, derivation, depth, chain, out)
            return
        if node.aliases:
            # alias suffix: the rest of the point is appended to each alias target
            self._expand_aliases(node, pp, comps, pos, body, cond, derivation, depth, chain, out)
            return
        if node.shape is not None and pos > 0:
            raise _Wrapped(SemanticError("invalid suffix for probe", comp.tok))
        raise _Wrapped(SemanticError(_mismatch_message(node, comp.name, False), comp.tok))

    def _double_glob(
        self,
        node: MatchNode,
        pp: ast.ProbePoint,
        comps: list[ast.PPComponent],
        pos: int,
        body: ast.Block,
        cond: ast.Expr | None,
        derivation: list[str],
        depth: int,
        chain: tuple[tuple[int, str], ...],
        out: list[Derived],
    ) -> None:
        """``a**b`` matches across dots: as SystemTap expands it, either the ``**``
        stays inside this component (``a*b``), or the component splits into ``a*``
        here and ``**b`` (keeping the argument) in the next one, recursively.  So
        ``t**es(1)`` finds ``timer.jiffies(1)`` and ``*sys**pen`` finds
        ``syscall.open``; a pattern that matches nowhere is a mismatch."""
        comp = comps[pos]
        i = comp.name.index("**")
        single = ast.PPComponent(tok=comp.tok, name=comp.name[:i] + "*" + comp.name[i + 2 :], arg=comp.arg)
        head = ast.PPComponent(tok=comp.tok, name=comp.name[:i] + "*", arg=None)
        tail = ast.PPComponent(tok=comp.tok, name="**" + comp.name[i + 2 :], arg=comp.arg)
        alternatives = [
            [*comps[:pos], single, *comps[pos + 1 :]],
            [*comps[:pos], head, tail, *comps[pos + 1 :]],
        ]
        before = len(out)
        unavailable: StapError | None = None
        for alt in alternatives:
            try:
                self._walk(node, pp, alt, pos, body, cond, derivation, depth, chain, out)
            except _Wrapped as w:
                if "not allowed" in w.error.message:
                    raise
                if unavailable is None and _UNAVAILABLE in w.error.message:
                    unavailable = w.error
            except (StapError, _Passthrough):
                continue
        if len(out) == before:
            if unavailable is not None:
                raise _Wrapped(unavailable)
            raise _Wrapped(SemanticError(_mismatch_message(node, comp.name, True), comp.tok))

    def _build(
        self,
        node: MatchNode,
        pp: ast.ProbePoint,
        comps: list[ast.PPComponent],
        body: ast.Block,
        cond: ast.Expr | None,
        derivation: list[str],
        out: list[Derived],
    ) -> None:
        shape = node.shape
        assert shape is not None
        # The single privilege hook: before the family builds anything.
        if not family_allowed(shape.family, self.ctx.privilege):
            raise _Wrapped(
                SemanticError(
                    f"probe point is not allowed for --privilege={level_name(self.ctx.privilege)}",
                    comps[-1].tok,
                )
            )
        args: dict[str, Any] = {"_names": [c.name for c in comps]}
        for c in comps:
            if c.arg is not None:
                args[c.name] = c.arg.value
        concrete = ast.ProbePoint(
            tok=pp.tok,
            components=comps,
            optional=pp.optional,
            sufficient=pp.sufficient,
            condition=pp.condition,
        )
        try:
            built = shape.build(concrete, args, self.ctx)
        except StapError as err:
            raise _Wrapped(err) from None
        except (OSError, ValueError) as err:
            raise _Wrapped(SemanticError(f"cannot resolve probe point: {err}", comps[-1].tok)) from None
        mark = "!" if pp.sufficient else ("?" if pp.optional else "")
        for b in built:
            handler = clone(body)
            if b.prologue:  # statements the family runs first (a .callee probe's caller check)
                handler.statements[:0] = [clone(stmt) for stmt in b.prologue]
            out.append(
                Derived(b, handler, clone(cond) if cond is not None else None, list(derivation), mark=mark)
            )

    def _expand_aliases(
        self,
        node: MatchNode,
        pp: ast.ProbePoint,
        comps: list[ast.PPComponent],
        pos: int,
        body: ast.Block,
        cond: ast.Expr | None,
        derivation: list[str],
        depth: int,
        chain: tuple[tuple[int, str], ...],
        out: list[Derived],
    ) -> None:
        suffix = comps[pos:]
        for entry in node.aliases:
            self._expand_one(entry, pp, suffix, body, cond, derivation, depth, chain, out)

    def _expand_one(
        self,
        entry: AliasEntry,
        pp: ast.ProbePoint,
        suffix: list[ast.PPComponent],
        body: ast.Block,
        cond: ast.Expr | None,
        derivation: list[str],
        depth: int,
        chain: tuple[tuple[int, str], ...],
        out: list[Derived],
    ) -> None:
        alias = entry.alias
        self.include_file(entry.file)
        merged = merge_body(alias, body)
        for target in alias.points:
            comps = [*target.components, *suffix]
            key = (id(entry), "")
            new_pp = ast.ProbePoint(
                tok=target.tok,
                components=comps,
                optional=target.optional,
                sufficient=target.sufficient,
                condition=target.condition,
            )
            step = alias_text(entry)
            if key in chain:
                tok = target.components[-1].tok if suffix and target.components else None
                err = SemanticError(
                    f"recursive loop in alias expansion of {point_text(new_pp)} at {target.tok.loc}", tok
                )
                raise _Passthrough(SemanticError("while resolving probe point", target.tok, [err]))
            try:
                found = self.derive_point(new_pp, merged, cond, [step, *derivation], depth + 1, (*chain, key))
            except StapError as err:
                if target.optional or target.sufficient:
                    continue
                if suffix and err.message == "while resolving probe point" and len(err.chain) == 1:
                    # with an alias suffix stap names the point the user wrote
                    raise _Wrapped(err.chain[0]) from None
                raise _Passthrough(err) from None
            out.extend(found)
            if target.sufficient and found:
                break


class _Wrapped(Exception):
    """An error of the innermost walk, wrapped once by ``derive_point``."""

    def __init__(self, error: StapError) -> None:
        super().__init__(error.message)
        self.error = error


class _Passthrough(Exception):
    """An error already wrapped by an inner alias level: reported as is."""

    def __init__(self, error: StapError) -> None:
        super().__init__(error.message)
        self.error = error


def _is_identifier(name: str) -> bool:
    return bool(name) and (name[0].isalpha() or name[0] == "_") and all(c.isalnum() or c == "_" for c in name)


def _and(a: ast.Expr | None, b: ast.Expr | None) -> ast.Expr | None:
    if a is None:
        return b
    if b is None:
        return a
    return ast.Logical(tok=b.tok, op="&&", left=a, right=b)


def _with_condition(pp: ast.ProbePoint) -> str:
    from pystap.lang.aliases import condition_text

    return point_text(pp) + condition_text(pp)


__all__ = ["NONE", "Derived", "Resolver"]
