"""Errors and warnings in SystemTap's format.

Parse and semantic errors are exceptions (:class:`StapError`) carrying the
token SystemTap would name; :func:`format_error` renders them exactly as
``stap`` does (message, token, location, source line and caret), and
:func:`format_keep_going` renders the ``--semantic-keep-going`` catalogue.
Keeping the rendering here means every pass reports errors the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pystap.lang.tokens import Token


@dataclass
class StapError(Exception):
    """A parse or semantic error.

    ``kind`` is ``"parse"`` or ``"semantic"``; ``tok`` the token named in the
    message (``None`` for errors about no particular place); ``chain`` more
    errors that explain this one (SystemTap prints them after it).
    """

    message: str
    tok: Token | None = None
    kind: str = "semantic"
    chain: list[StapError] = field(default_factory=list)

    def __post_init__(self) -> None:
        Exception.__init__(self, self.message)

    def __str__(self) -> str:
        return format_error(self)


class ParseError(StapError):
    def __init__(self, message: str, tok: Token | None = None) -> None:
        super().__init__(message, tok, "parse")


class SemanticError(StapError):
    def __init__(self, message: str, tok: Token | None = None, chain: list[StapError] | None = None) -> None:
        super().__init__(message, tok, "semantic", chain or [])


def _source_line(sources: Mapping[str, str] | None, tok: Token) -> str | None:
    if not sources or tok.loc.file not in sources:
        return None
    lines = sources[tok.loc.file].split("\n")
    if 1 <= tok.loc.line <= len(lines):
        return lines[tok.loc.line - 1]
    return None


def format_error(err: StapError, sources: Mapping[str, str] | None = None) -> str:
    """Render one error (and its chain) as SystemTap prints it."""
    out: list[str] = []
    if err.tok is None:
        out.append(f"{err.kind} error: {err.message}")
    elif err.kind == "parse":
        out.append(f"{err.kind} error: {err.message}")
        out.append(f"        at: {err.tok.describe()}")
    else:
        out.append(f"{err.kind} error: {err.message}: {err.tok.describe()}")
    if err.tok is not None:
        line = _source_line(sources, err.tok)
        if line is not None:
            prefix = "     source: "
            out.append(prefix + line.replace("\t", " "))
            out.append(" " * (len(prefix) + err.tok.loc.col - 1) + "^")
        chain_tok = err.tok.chain
        while chain_tok is not None:
            out.append(f"        in expansion of: {chain_tok.describe()}")
            chain_tok = chain_tok.chain
    for sub in err.chain:
        out.append(format_error(sub, sources))
    return "\n".join(out)


def _flat(text: str) -> str:
    return text.replace("\t", " ").replace("\n", " ")


def format_keep_going(errors: Iterable[StapError]) -> str:
    """The tab-separated catalogue printed with ``--semantic-keep-going``."""
    rows: list[str] = []

    def add(err: StapError) -> None:
        if err.tok is None:
            rows.append(f"SEMANTIC_ERROR\t-\t-\t-\t-\t{_flat(err.message)}")
        else:
            loc = err.tok.loc
            rows.append(
                f"SEMANTIC_ERROR\t{_flat(loc.file)}\t{loc.line}\t{loc.col}\t{_flat(err.tok.text) or '-'}"
                f"\t{_flat(err.message)}"
            )
        for sub in err.chain:
            add(sub)

    for err in errors:
        add(err)
    return "\n".join([f"SEMANTIC_ERRORS: {len(rows)}", *rows, "SEMANTIC_ERRORS_END"])


@dataclass(frozen=True)
class Warning_:
    """A translator warning (``WARNING: …``); ``-w`` hides, ``-W`` makes it an error."""

    message: str
    tok: Token | None = None

    def render(self) -> str:
        if self.tok is None:
            return f"WARNING: {self.message}"
        return f"WARNING: {self.message}: {self.tok.describe()}"
