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

from pystap.lang.tokens import Token, TokenKind


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
    """A pass-1 error.  ``skip`` says whether the parser resynchronises by
    skipping to the next top-level keyword (SystemTap does not for the
    embedded-code refusals, so the refused token is looked at again)."""

    def __init__(self, message: str, tok: Token | None = None, skip: bool = True) -> None:
        if tok is not None and tok.kind is TokenKind.JUNK and tok.junk:
            message = tok.junk  # SystemTap reports what is wrong with the token instead
        super().__init__(message, tok, "parse")
        self.skip = skip


class InputError(StapError):
    """A whole-file complaint printed without a location, e.g. ``Input file
    'x.stp' is empty after preprocessing.``"""

    def __init__(self, message: str) -> None:
        super().__init__(message, None, "input")


class ParseErrors(StapError):
    """Every error found in one file (pass 1 reports them all, then fails).

    ``errors`` holds them in the order SystemTap prints them; :meth:`render`
    gives the full stderr text including the ``N parse errors.`` summary.
    """

    def __init__(self, errors: list[StapError]) -> None:
        first = errors[0] if errors else InputError("parse failed")
        super().__init__(first.message, first.tok, first.kind)
        self.errors = list(errors)

    @property
    def count(self) -> int:
        """Errors SystemTap counts in its summary (input-file notes are not)."""
        return sum(1 for e in self.errors if e.kind != "input")

    def render(self, sources: Mapping[str, str] | None = None) -> str:
        parts: list[str] = []
        for e in self.errors:
            text = format_error(e, sources)
            parts.append(text if e.kind == "input" else text + "\n")
        n = self.count
        if n and not any(e.kind == "input" for e in self.errors):
            parts.append(f"{n} parse error." if n == 1 else f"{n} parse errors.")
        return "\n".join(parts)

    def __str__(self) -> str:
        return self.render()


class SemanticError(StapError):
    def __init__(self, message: str, tok: Token | None = None, chain: list[StapError] | None = None) -> None:
        super().__init__(message, tok, "semantic", chain or [])


def _source_line(sources: Mapping[str, str] | None, tok: Token) -> str | None:
    if not sources or tok.loc.file not in sources or tok.kind is TokenKind.EOF:
        return None
    lines = sources[tok.loc.file].split("\n")
    if 1 <= tok.loc.line <= len(lines):
        return lines[tok.loc.line - 1]
    return None


def _caret(prefix: str, line: str, col: int) -> str:
    """The caret line under ``line``: tabs before the column are kept, so the
    caret lines up however the terminal expands them (as stap does)."""
    lead = "".join("\t" if c == "\t" else " " for c in line[: max(col - 1, 0)])
    return " " * len(prefix) + lead + "^"


def format_error(err: StapError, sources: Mapping[str, str] | None = None) -> str:
    """Render one error (and its chain) as SystemTap prints it.

    Parse errors name the offending token on a ``saw:`` line (``at:`` for a
    junk token, whose lexer explanation replaces the message); semantic
    errors append it to the message.  Both end with the source line and a
    caret when the source is known.
    """
    out: list[str] = []
    if err.kind == "input":
        out.append(err.message)
    elif err.tok is None:
        out.append(f"{err.kind} error: {err.message}")
    elif err.kind == "parse":
        out.append(f"{err.kind} error: {err.message}")
        if err.tok.kind is TokenKind.JUNK and err.tok.junk:
            out.append(f"         at: {err.tok.describe()}")
        else:
            out.append(f"        saw: {err.tok.describe()}")
    else:
        out.append(f"{err.kind} error: {err.message}: {err.tok.describe()}")
    if err.tok is not None and err.kind != "input":
        line = _source_line(sources, err.tok)
        if line is not None:
            # stap indents the source line of semantic errors further than parse errors'
            prefix = "        source: " if err.kind == "semantic" else "     source: "
            out.append(prefix + line)
            out.append(_caret(prefix, line, err.tok.loc.col))
        chain_tok = err.tok.chain
        while chain_tok is not None:
            out.append(f"        in expansion of: {chain_tok.describe()}")
            chain_tok = chain_tok.chain
    for sub in err.chain:
        # stap ends every message of a chain with a blank line, not just the last one
        out.append("")
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
