"""The probe-point match tree: every probe family registers its shapes here.

SystemTap resolves a probe point by walking a tree keyed by component name
and argument kind (none, string, number).  A terminal node carries a
*builder*: the family code that turns the matched point into derived probes.
We keep exactly that structure, because the error texts the test corpus
expects ("probe point mismatch", "invalid suffix for probe", the privilege
refusal at the last component) fall out of where the walk stops.

A family module describes its shapes as data (:class:`Shape`) and provides
one builder per shape; :func:`default_registry` collects every family file,
so adding a family is one file plus one line in ``_FAMILY_MODULES``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pystap.lang.ast import ProbePoint, Type
from pystap.lang.diagnostics import SemanticError
from pystap.lang.tokens import Token

# Argument kinds of a component: no argument, a number, a string.
NONE = ""
NUM = "N"
STR = "S"
# A component name that matches any identifier (``syscall.NAME``); the
# concrete names for wildcard expansion come from the shape's ``names``.
ANY = "$NAME"


@dataclass
class BuildContext:
    """What a builder may consult: session facts, never the script itself."""

    privilege: int = 0x8
    guru: bool = False
    target_pid: int | None = None  # -x PID
    target_cmd: str | None = None  # -c COMMAND (an unspecified ``process`` probe names its program)
    path_env: str = ""
    # process("PATH").function/... need symbols; the ELF resolver is optional
    elf_resolver: Any = None
    # (message, token) warnings a builder gives (SystemTap prints them at pass 2, e.g. "cannot
    # probe .return of 1 inlined function"); elaboration reports them like its own
    warnings: list[tuple[str, Token | None]] = field(default_factory=list)


@dataclass
class Built:
    """One concrete probe produced by a builder (becomes a DerivedProbe)."""

    point: str  # canonical probe point text, e.g. ``timer.ms(100)``
    family: str
    params: dict[str, Any] = field(default_factory=dict)
    sequence: int = 0
    myproc: bool = False
    context_vars: dict[str, Type] = field(default_factory=dict)
    # How ``$name`` resolves in this probe: returns its type or raises a
    # SemanticError (without token; the caller adds it).  None: no target
    # variables at all ("unresolved target-symbol expression").
    target: Callable[[str, bool], Type] | None = None
    # locals the runtime fills before the handler runs (``name``, ``argstr`` …)
    provides: dict[str, Type] = field(default_factory=dict)
    # statements run before the handler's own (ast.Stmt): SystemTap's dwarf probes prefix a
    # .callee probe's handler with a caller check that ends it (``next``) for other callers
    prologue: list[Any] = field(default_factory=list)


Builder = Callable[[ProbePoint, dict[str, Any], BuildContext], list[Built]]


@dataclass(frozen=True)
class Shape:
    """One registered probe-point shape: components as ``(name, kind)``."""

    path: tuple[tuple[str, str], ...]
    family: str
    build: Builder
    names: Callable[[], list[str]] | None = None  # for an ANY component


def shape(spec: str, family: str, build: Builder, names: Callable[[], list[str]] | None = None) -> Shape:
    """Parse a shape written like ``timer.ms(N).randomize(N)`` or ``process(S).begin``."""
    parts: list[tuple[str, str]] = []
    for piece in spec.split("."):
        if piece.endswith(")") and "(" in piece:
            name, kind = piece[:-1].split("(", 1)
            parts.append((name, kind))
        else:
            parts.append((piece, NONE))
    return Shape(tuple(parts), family, build, names)


@dataclass
class MatchNode:
    """A node of the match tree; ``shape`` is set on terminal nodes."""

    children: dict[tuple[str, str], MatchNode] = field(default_factory=dict)
    shape: Shape | None = None
    any_names: Callable[[], list[str]] | None = None
    # user/tapset aliases ending here (filled per elaboration, see aliases.py)
    aliases: list[Any] = field(default_factory=list)

    def child(self, key: tuple[str, str]) -> MatchNode:
        node = self.children.get(key)
        if node is None:
            node = self.children[key] = MatchNode()
        return node

    def names(self) -> list[str]:
        return sorted({name for name, _ in self.children})


class Registry:
    """The match tree of built-in families; aliases are overlaid per session."""

    def __init__(self, shapes: Iterable[Shape] = ()) -> None:
        self.root = MatchNode()
        self.shapes: list[Shape] = []
        for s in shapes:
            self.add(s)

    def add(self, s: Shape) -> None:
        node = self.root
        for key in s.path:
            if key[0] == ANY and s.names is not None:
                node.any_names = s.names
            node = node.child(key)
        if node.shape is not None:
            raise ValueError(f"duplicate probe shape {s.path}")
        node.shape = s
        self.shapes.append(s)

    def overlay(self) -> MatchNode:
        """A copy of the tree that aliases can be added to without touching the registry."""
        return _copy_tree(self.root)


def _copy_tree(node: MatchNode) -> MatchNode:
    new = MatchNode(shape=node.shape, any_names=node.any_names)
    for key, child in node.children.items():
        new.children[key] = _copy_tree(child)
    return new


def arg_kind(value: object) -> str:
    if value is None:
        return NONE
    if isinstance(value, int):
        return NUM
    return STR


def shape_text(s: Shape) -> str:
    """``timer.ms(number)`` as ``--dump-probe-types`` prints it."""
    out = []
    for name, kind in s.path:
        out.append(("NAME" if name == ANY else name) + {"": "", NUM: "(number)", STR: "(string)"}[kind])
    return ".".join(out)


def error_at(message: str, tok: Token | None) -> SemanticError:
    return SemanticError(message, tok)


_FAMILY_MODULES = (
    "begin_end",
    "timer",
    "process",
    "kernel_trace",
    "syscall",
    "unavailable",
)

_DEFAULT: Registry | None = None


def _shape_from_type(text: str) -> str:
    """``kernel.mark(string)`` (policy-table notation) → ``kernel.mark(S)`` (shape notation)."""
    return text.replace("(string)", f"({STR})").replace("(number)", f"({NUM})")


def _refusal(family: str, reason: str) -> Builder:
    def build(pp: ProbePoint, args: dict[str, Any], ctx: BuildContext) -> list[Built]:
        raise SemanticError(f"probe point not available on this kernel ({reason})")

    return build


def default_registry() -> Registry:
    """The registry of every family file (built once per process).

    Probe types the policy table lists for a family that no family file
    implements are registered too, with a builder that refuses clearly: the
    privilege check still runs first, so such a point is "not allowed" for a
    level the table excludes, and "not available" for the others -- never a
    mismatch.
    """
    global _DEFAULT
    if _DEFAULT is None:
        import importlib

        from pystap.policy.probes import FAMILIES

        shapes: list[Shape] = []
        for mod in _FAMILY_MODULES:
            shapes.extend(importlib.import_module(f"pystap.probes.{mod}").SHAPES)
        reg = Registry(shapes)
        known = {s.path for s in reg.shapes}
        for row in FAMILIES:
            reason = row.unavailable_reason or "not supported by pystap yet"
            for text in getattr(row, "types", ()):
                extra = shape(_shape_from_type(text), row.family, _refusal(row.family, reason))
                if extra.path not in known:
                    known.add(extra.path)
                    reg.add(extra)
        _DEFAULT = reg
    return _DEFAULT
