"""Helpers shared by the pass-2 tests (and a few tests of the helpers themselves).

``elab(src)`` parses a script the way ``pystap`` does (library macros and
the tapset files it can reach) and elaborates it; ``elab_errors(src)``
returns the error list of a failing elaboration.
"""

from __future__ import annotations

import pytest

from pystap.lang import ast
from pystap.lang.context import ParseContext
from pystap.lang.elaborate import ElabOptions, ElaborationError, elaborate
from pystap.lang.parser import parse_file
from pystap.tapset import loader


def parse(src: str, name: str = "<input>", **ctx_kw: object) -> tuple[ast.StapFile, list[ast.StapFile]]:
    ctx = ParseContext(**ctx_kw)  # type: ignore[arg-type]
    library = loader.load_library(ctx, (), None, use_cache=False)
    return parse_file(src, name, ctx), library


def elab(src: str, **opts: object) -> ast.ElaboratedScript:
    user, library = parse(src)
    return elaborate([user, *library], ElabOptions(**opts))  # type: ignore[arg-type]


def elab_errors(src: str, **opts: object) -> list[str]:
    """``message: token-text @line:col`` for each error (chained ones too)."""
    with pytest.raises(ElaborationError) as info:
        elab(src, **opts)
    out = []

    def add(e: object) -> None:
        tok = getattr(e, "tok", None)
        where = f"'{tok.text}'@{tok.loc.line}:{tok.loc.col}" if tok is not None else ""
        out.append(f"{e.message.strip()}{where}")  # type: ignore[attr-defined]
        for sub in getattr(e, "chain", []):
            add(sub)

    for e in info.value.errors:
        add(e)
    return out


def warnings(src: str, **opts: object) -> list[str]:
    return [w.message for w in elab(src, **opts).warnings]


def probe_points(script: ast.ElaboratedScript) -> list[str]:
    return [p.point for p in script.probes]


def test_helpers_elaborate_a_script() -> None:
    s = elab('probe begin { print("x") }')
    assert probe_points(s) == ["begin"]


def test_helpers_collect_errors() -> None:
    assert elab_errors("probe begin { print(x) }") == ["unresolved type'x'@1:21"]
