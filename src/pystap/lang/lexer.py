"""The SystemTap lexer: script text → tokens, with ``$N``/``@N`` pasting.

One compiled regular expression recognises "whitespace and comments, then one
token" per call, so the loop runs once per token rather than once per
character (a per-character loop measured several times slower).  The rules are
SystemTap's ``lexer::scan``:

* identifiers ``[A-Za-z_$][A-Za-z0-9_$]*``; ``@word`` is an *operator* token;
* numbers are a digit followed by any letters/digits (validated later);
* strings keep their escapes in source form (``\\n`` stays two characters,
  ``\\q`` becomes ``q``), as SystemTap shows them in messages;
* ``%{ … %}`` is one embedded-code token;
* operators by longest match; anything else is a *junk* token carrying the
  reason, which the parser reports instead of its own message.

Command-line arguments are pasted into the text where ``$N``/``@N``/``$#``/
``@#`` start a token and re-lexed; every token that starts inside pasted text
gets the location of the ``$N`` that produced it, and pasted text may not
paste again ("invalid nested substitution").
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pystap.lang.tokens import SourceLoc, Token, TokenKind

BASE_KEYWORDS = frozenset(
    "probe global function if else for foreach in limit return delete while break continue next "
    "string long try catch".split()
)

_IDENT, _KEYWORD, _OPERATOR = TokenKind.IDENTIFIER, TokenKind.KEYWORD, TokenKind.OPERATOR
_STRING, _NUMBER, _EMBEDDED, _JUNK = TokenKind.STRING, TokenKind.NUMBER, TokenKind.EMBEDDED, TokenKind.JUNK

# Whitespace is C isspace (not Unicode \s); comments count as whitespace.
_WS = r"(?P<ws>(?:[ \t\n\r\f\v]+|\#[^\n]*\n?|//[^\n]*\n?|/\*(?:.*?\*/|.*\Z))*)"
_TOKEN = re.compile(
    _WS
    + r"""(?:
     (?P<argc>[$@]\#)
    |(?P<arg>[$@][0-9])
    |(?P<ident>[A-Za-z_$@][A-Za-z0-9_$]*)
    |(?P<num>[0-9][A-Za-z0-9]*)
    |(?P<str>"(?:[^"\\\n]|\\[\s\S])*")
    |(?P<emb>%\{.*?%\})
    |(?P<other>"|%\{)
    |(?P<op><<<|>>>|<<=|>>=|==|!=|<=|>=|=~|!~|\+=|-=|\*=|/=|%=|&=|\^=|\|=|\.=|&&|\|\||\+\+|--|->|<<|>>
          |%\(|%\?|%:|%\)|[!-/:-@\[-`{-~])
    |(?P<junk>.)
    )?""",
    re.S | re.X,
)
_NESTED = "invalid nested substitution of command line arguments"
_STR_ESCAPE = re.compile(r"\\(.)", re.S)
_PASSED_ESCAPES = frozenset("abtnvfr01234567\\x")


def _quote_arg(text: str) -> str:
    """``@N``: the argument as a string literal (SystemTap's ``lex_cast_qstring``)."""
    out = ['"']
    for c in text:
        if c == "\\":
            out.append("\\\\")
        elif c == '"':
            out.append('\\"')
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif c == "\r":
            out.append("\\r")
        elif c < " " or c == "\x7f":
            out.append(f"\\{ord(c):03o}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


class Lexer:
    """Tokenises one file.  :meth:`tokens` returns the token list and a
    parallel list saying whether whitespace or a comment preceded each token
    (the parser needs that to glue wildcard probe-point pieces)."""

    def __init__(
        self,
        text: str,
        name: str,
        args: Iterable[str] = (),
        keywords: frozenset[str] = BASE_KEYWORDS | {"private"},
        hex_escapes: bool = True,
        glue_across_comments: bool = True,
    ) -> None:
        self.text = text
        self.name = name
        self.args = list(args)
        self.keywords = keywords
        self.passed_escapes = _PASSED_ESCAPES if hex_escapes else _PASSED_ESCAPES - {"x"}
        self.warnings: list[tuple[str, Token]] = []
        self.used_args: set[int] = set()
        self.saw_tokens = False
        # Before 2.0 (PR 14360) a comment between two string literals kept them
        # apart; the parser glues adjacent strings unless the second one is here.
        self.glue_across_comments = glue_across_comments
        self.unglued: set[int] = set()

    # ----------------------------------------------------------------------------------------

    def _string_content(self, body: str) -> str:
        if "\\" not in body:
            return body
        passed = self.passed_escapes
        return _STR_ESCAPE.sub(lambda m: m.group(0) if m.group(1) in passed else m.group(1), body)

    def tokens(self) -> tuple[list[Token], list[bool]]:
        text = self.text
        name = self.name
        keywords = self.keywords
        match = _TOKEN.match
        out: list[Token] = []
        spaced: list[bool] = []
        append = out.append
        sappend = spaced.append
        pos = 0
        # Line accounting is lazy: newlines are counted only when a token
        # starts past the next newline (one integer compare per token).
        line = 1
        line_start = 0
        counted = 0  # text before this offset is accounted for
        next_nl = text.find("\n")
        if next_nl < 0:
            next_nl = len(text)
        # Pasted argument text: tokens starting before freeze_end keep the location of the $N.
        freeze_end = -1
        freeze_loc: SourceLoc | None = None
        end = len(text)
        while pos < end:
            m = match(text, pos)
            kind = m.lastgroup
            start = m.end(1)
            if kind == "ws" or kind is None:
                break
            tend = m.end()
            if start < freeze_end:
                loc = freeze_loc
                suspended = True
            else:
                suspended = False
                if start > next_nl:
                    line += text.count("\n", counted, start)
                    line_start = text.rindex("\n", counted, start) + 1
                    next_nl = text.find("\n", start)
                    if next_nl < 0:
                        next_nl = end
                counted = start
                loc = SourceLoc(name, line, start - line_start + 1)
            assert loc is not None
            tok: Token | None = None
            if kind == "ident":
                word = text[start:tend]
                if word[0] == "@":
                    tok = Token(_OPERATOR, word, loc)
                elif word in keywords:
                    tok = Token(_KEYWORD, word, loc)
                else:
                    tok = Token(_IDENT, word, loc)
            elif kind == "op":
                tok = Token(_OPERATOR, text[start:tend], loc)
            elif kind == "num":
                tok = Token(_NUMBER, text[start:tend], loc)
            elif kind == "str":
                tok = Token(_STRING, self._string_content(text[start + 1 : tend - 1]), loc)
                if (
                    not self.glue_across_comments
                    and out
                    and out[-1].kind is _STRING
                    and text[pos:start].strip(" \t\n\r\f\v")
                ):
                    self.unglued.add(id(tok))
            elif kind in ("arg", "argc"):
                sigil = text[start]
                if kind == "argc":
                    tend = start + 2
                    if suspended:
                        tok = Token(_JUNK, "", loc, junk=_NESTED)
                    else:
                        count = str(len(self.args))
                        paste = count if sigil == "$" else f'"{count}"'
                else:
                    idx = 0
                    tend = start + 1
                    nargs = len(self.args)
                    while True:
                        idx = idx * 10 + ord(text[tend]) - 48
                        tend += 1
                        if not (tend < end and "0" <= text[tend] <= "9" and idx <= nargs):
                            break
                    if suspended:
                        tok = Token(_JUNK, "", loc, junk=_NESTED)
                    elif idx == 0 or idx > nargs:
                        tok = Token(_JUNK, "", loc, junk=f"command line argument out of range [1-{nargs}]")
                    else:
                        self.used_args.add(idx)
                        arg = self.args[idx - 1]
                        paste = arg if sigil == "$" else _quote_arg(arg)
                if tok is None:
                    # Splice the argument text in and lex it in place; its own
                    # newlines do not count, and columns after it stay those of
                    # the original text.
                    text = text[:tend] + paste + text[tend:]
                    end = len(text)
                    freeze_end = tend + len(paste)
                    freeze_loc = loc
                    line_start += len(paste)
                    counted = freeze_end
                    next_nl = text.find("\n", freeze_end)
                    if next_nl < 0:
                        next_nl = end
                    self.saw_tokens = True
                    pos = tend
                    continue
            elif kind == "emb":
                body = text[start + 2 : tend - 2]
                tok = Token(_EMBEDDED, body, loc)
                if "}%" in body:
                    self.warnings.append(("possible erroneous closing '}%', use '%}'?", tok))
            else:  # unclosed string or embedded code, or a byte no token starts with
                c = text[start]
                if kind == "other" and c == '"':
                    nl = text.find("\n", start + 1)
                    stop = end if nl < 0 else nl
                    tok = Token(
                        _JUNK,
                        '"' + self._string_content(text[start + 1 : stop]),
                        loc,
                        junk="Could not find matching closing quote",
                    )
                    tend = end if nl < 0 else nl + 1
                elif kind == "other":
                    tok = Token(
                        _JUNK,
                        text[start:end],
                        loc,
                        junk="Could not find matching '%}' to close embedded function block",
                    )
                    tend = end
                else:
                    # no explanation: the parser's own message stands, as in SystemTap
                    tok = Token(_JUNK, f"\\x{ord(c) & 0xFF:02x}", loc)
            append(tok)
            sappend(start > pos)
            self.saw_tokens = True
            pos = tend
        self.text = text
        return out, spaced

    def eof_token(self) -> Token:
        """A token standing for the end of input (``saw: FILE EOF`` in messages)."""
        return Token(TokenKind.EOF, "", SourceLoc(self.name, 0, 0))


def tokenize(text: str, name: str = "<input>", args: Iterable[str] = ()) -> list[Token]:
    """Convenience: the raw tokens of ``text`` (no preprocessing)."""
    return Lexer(text, name, args).tokens()[0]
