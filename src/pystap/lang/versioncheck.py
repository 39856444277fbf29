"""``--check-version``: SystemTap's warnings for constructs that depend on the language version.

SystemTap's parser remembers whether a ``%( systemtap_v … %)`` condition was
evaluated while it parsed each top-level construct (the flag is reset before
every construct and read when the construct is finished), and after symbol
resolution warns about every *used* one::

    WARNING: This probe uses tapset constructs that are dependent on systemtap version: keyword at …

with "global", "function", "probe" or "alias".  Where the flag is read
differs by construct, and the warnings copy that: a probe or an alias counts
a condition anywhere up to the end of its body; a global only one before its
own name; a function only one before its last parameter (so, as in
SystemTap, a condition inside a function body never warns).  A ``global``
statement looks one token past its end, so a condition that opens the next
construct is evaluated there and counts for neither (why, in SystemTap, only
the first of several ``@__private30 global`` lines of a tapset warns).

The parser keeps no such flag, so this pass preprocesses the files again
(only with ``--check-version``) with a recording preprocessor: each
evaluated ``systemtap_v`` condition marks the token the preprocessor hands
out next, which is the token the parser was reading when SystemTap set its
flag.  The marked tokens are then placed in the top-level construct that
holds them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pystap.lang import ast
from pystap.lang.aliases import AliasEntry, alias_text
from pystap.lang.context import ParseContext
from pystap.lang.diagnostics import Warning_
from pystap.lang.lexer import Lexer
from pystap.lang.preprocess import Preprocessor, keywords_for
from pystap.lang.tokens import Token, TokenKind

MSG = "This {what} uses tapset constructs that are dependent on systemtap version"
_STARTS = frozenset({"probe", "function", "global"})


class _Recorder(Preprocessor):
    """A preprocessor that marks the token following each evaluated ``systemtap_v`` condition."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.seen = False
        self.marked: set[int] = set()

    def evaluate(self, lhs: Token, op: Token, rhs: Token) -> bool:
        result = super().evaluate(lhs, op, rhs)
        if lhs.kind is TokenKind.IDENTIFIER and lhs.text == "systemtap_v":
            self.seen = True
        return result

    def scan_pp(self) -> Token | None:
        t = super().scan_pp()
        if self.seen and t is not None:
            self.marked.add(id(t))
            self.seen = False
        return t


def _segments(text: str, name: str, ctx: ParseContext) -> list[list[tuple[Token, bool]]]:
    """The file's preprocessed tokens, cut into top-level constructs; each token with its mark.

    Built as :func:`pystap.lang.preprocess.preprocess` builds its stream, so
    the tokens are the ones the parser saw.
    """
    lexer = Lexer(text, name, ctx.args, keywords_for(ctx), hex_escapes=ctx.has_version("2.3"),
                  glue_across_comments=ctx.has_version("2.0"))
    tokens, spaced = lexer.tokens()
    pre = _Recorder(tokens, spaced, ctx, lexer.eof_token())
    items, _ = pre.run()
    segments: list[list[tuple[Token, bool]]] = []
    depth = 0
    after_private = False
    for item in items:
        if not isinstance(item, Token):
            continue  # a preprocessor error: the parse already failed on it
        starts = depth == 0 and (
            (item.kind is TokenKind.KEYWORD and (item.text in _STARTS or item.text == "private"))
            or item.kind is TokenKind.EMBEDDED)
        if (starts and not after_private) or not segments:
            segments.append([])
        after_private = depth == 0 and item.kind is TokenKind.KEYWORD and item.text == "private"
        if item.kind is TokenKind.OPERATOR and item.text == "{":
            depth += 1
        elif item.kind is TokenKind.OPERATOR and item.text == "}" and depth:
            depth -= 1
        segments[-1].append((item, id(item) in pre.marked))
    return segments


def _is_global(segment: list[tuple[Token, bool]]) -> bool:
    first = next((t for t, _ in segment if not (t.kind is TokenKind.KEYWORD and t.text == "private")), None)
    return first is not None and first.kind is TokenKind.KEYWORD and first.text == "global"


def _flags(files: list[ast.StapFile], sources: Mapping[str, str], ctx: ParseContext) -> set[int]:
    """``id()`` of every probe, alias, global and function whose SystemTap flag would be set."""
    by_tok: dict[Token, Any] = {}
    for f in files:
        for node in (*f.probes, *f.aliases):
            by_tok[node.tok] = node
        for g in f.globals:
            by_tok[g.tok] = g
        for fn in f.functions:
            by_tok[fn.tok] = fn
    flagged: set[int] = set()
    for f in files:
        text = sources.get(f.name)
        if text is None:
            continue
        after_global = False
        for segment in _segments(text, f.name, ctx):
            marks = [i for i, (_, marked) in enumerate(segment) if marked]
            if after_global and marks and marks[0] == 0:
                marks.pop(0)  # scanned by the global's look-ahead: SystemTap's flag is lost
            after_global = _is_global(segment)
            if not marks:
                continue
            first = marks[0]
            for i, (tok, _) in enumerate(segment):
                node = by_tok.get(tok)
                if isinstance(node, (ast.Probe, ast.ProbeAlias)):
                    flagged.add(id(node))
                elif isinstance(node, ast.GlobalDecl) and first <= i:
                    flagged.add(id(node))
                elif isinstance(node, ast.FunctionDecl) and node.params:
                    last_param = node.params[-1].tok
                    last = max((j for j, (t, _) in enumerate(segment) if t == last_param), default=-1)
                    if first <= last:
                        flagged.add(id(node))
    return flagged


def version_warnings(script: ast.ElaboratedScript, sources: Mapping[str, str],
                     ctx: ParseContext) -> list[Warning_]:
    """The warnings, in SystemTap's order: used globals, used functions by name, then each
    probe's derivation (its aliases from the innermost out, then the user's probe).

    Duplicates are kept; the caller prints each text once unless ``-v`` (as stap does).
    """
    files = list(script.files)
    flagged = _flags(files, sources, ctx)
    out: list[Warning_] = []
    for g in script.globals:
        if id(g) in flagged:
            out.append(Warning_(MSG.format(what="global"), g.tok))
    for fn in sorted(script.functions, key=lambda fn: fn.name):
        if id(fn) in flagged:
            out.append(Warning_(MSG.format(what="function"), fn.tok))
    aliases: dict[str, ast.ProbeAlias] = {}
    probes: dict[Token, ast.Probe] = {}
    for f in files:
        for a in f.aliases:
            for name in a.names:
                aliases.setdefault(alias_text(AliasEntry(a, name, f)), a)
        for p in f.probes:
            probes.setdefault(p.tok, p)
    for derived in script.probes:
        for step in derived.derivation[:-1]:
            alias = aliases.get(step)
            if alias is not None and id(alias) in flagged:
                out.append(Warning_(MSG.format(what="alias"), alias.tok))
        user = probes.get(derived.tok)
        if user is not None and id(user) in flagged:
            out.append(Warning_(MSG.format(what="probe"), user.tok))
    return out
