"""Tokens and source locations, shared by the lexer, the parser and diagnostics.

Every AST node keeps the token that SystemTap would name in an error message
(``identifier 'x' at file:1:5``), so the error texts can be reproduced exactly.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class TokenKind(enum.Enum):
    """Token classes; ``value`` is the word SystemTap prints for the class."""

    IDENTIFIER = "identifier"
    KEYWORD = "keyword"
    OPERATOR = "operator"
    STRING = "string"
    NUMBER = "number"
    EMBEDDED = "embedded-code"
    JUNK = "junk"
    EOF = "end-of-file"


@dataclass(frozen=True, slots=True)
class SourceLoc:
    """1-based line and column in ``file`` (the name as shown to the user)."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True, slots=True)
class Token:
    """A lexed token.  ``text`` is the token as SystemTap shows it (string
    tokens without their quotes, with escapes still in source form).

    ``chain`` is the token this one was expanded from (macro invocation or
    ``$N`` argument), so errors inside expansions can name the invocation.
    ``junk`` is, for :attr:`TokenKind.JUNK` tokens, the lexer's explanation
    (SystemTap prints it instead of the parser's message).
    """

    kind: TokenKind
    text: str
    loc: SourceLoc
    chain: Token | None = field(default=None, compare=False)
    junk: str = field(default="", compare=False)

    def describe(self) -> str:
        """``identifier 'x' at file:1:5``, as in SystemTap's messages.

        As in SystemTap, keywords and embedded code are named by class only,
        non-printable characters show as ``?``, and the end of input reads
        ``file EOF``.
        """
        if self.kind is TokenKind.EOF:
            return f"{self.loc.file} EOF"
        if self.kind is TokenKind.KEYWORD or self.kind is TokenKind.EMBEDDED:
            return f"{self.kind.value} at {self.loc}"
        text = "".join(c if " " <= c <= "~" else "?" for c in self.text)
        return f"{self.kind.value} '{text}' at {self.loc}"


def synthetic(text: str, kind: TokenKind = TokenKind.IDENTIFIER, file: str = "<synthetic>") -> Token:
    """A token for nodes the translator makes up (unread-global display, aliases)."""
    return Token(kind, text, SourceLoc(file, 0, 0))
