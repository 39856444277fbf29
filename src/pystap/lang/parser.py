"""The SystemTap parser: preprocessed tokens → :mod:`pystap.lang.ast`.

A hand-written recursive-descent parser following SystemTap's ``parse.cxx``
rule for rule, because scripts depend on its exact behaviour: the
precedence levels *as the code has them* (``a & b == c`` is ``a & (b == c)``,
``.`` binds looser than ``+``), literal-only positions, which statements
swallow a following ``;``, the error texts and the token each error names.

Error reporting mirrors SystemTap's too: an error names the token it was
raised at, or else the token most recently looked at; after an error the
parser skips to the next ``probe``/``global``/``function``/``private``/``%{``
and carries on, so one run reports every error of the file.  All errors of a
file are raised together as one :class:`ParseErrors`.

Nesting is bounded (:data:`MAX_NESTING`), so hostile input gets a parse
error rather than exhausting Python's stack.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from pystap.lang import ast
from pystap.lang.context import ParseContext
from pystap.lang.diagnostics import InputError, ParseError, ParseErrors, StapError, Warning_
from pystap.lang.preprocess import Item, c_number, preprocess
from pystap.lang.printf_format import FormatError, parse_format
from pystap.lang.tokens import Token, TokenKind

#: Deepest nesting of statements/expressions (including chains of binary
#: operators) accepted; deeper input is a parse error, not a crash.
MAX_NESTING = 300

_RECURSION_NEEDED = MAX_NESTING * 16 + 2000

_OP = TokenKind.OPERATOR
_IDENT = TokenKind.IDENTIFIER
_KW = TokenKind.KEYWORD
_STRING = TokenKind.STRING
_NUMBER = TokenKind.NUMBER
_EMBEDDED = TokenKind.EMBEDDED
_JUNK = TokenKind.JUNK

_ASSIGN_OPS = frozenset("= <<< += -= *= /= %= <<= >>= &= ^= |= .=".split())
# loose group (operands are `in` expressions): level per operator
_LOGIC_LEVELS = {"||": 1, "&&": 2, "|": 3, "^": 4, "&": 5}
# tight group (operands are unary expressions)
_ARITH_LEVELS = {"<<": 1, ">>": 1, ">>>": 1, ".": 2, "+": 3, "-": 3, "*": 4, "/": 4, "%": 4}
_COMPARISONS = frozenset(("<", ">", "<=", ">=", "==", "!="))
_UNARY = frozenset("+-!~")
_STAT_OPS = {"@avg": 0, "@variance": 1, "@count": 0, "@sum": 0, "@min": 0, "@max": 0}
_SORT_AGGRS = frozenset(("@avg", "@min", "@max", "@count", "@sum", "@variance"))
PRINT_FUNCTIONS = frozenset(
    "print println printd printdln printf sprint sprintln sprintd sprintdln sprintf print_char".split()
)
_TOP_KEYWORDS = frozenset(("probe", "private", "global", "function"))
_INT_MAX = 2**31 - 1


def _wrap64(value: int) -> int:
    value &= 0xFFFFFFFFFFFFFFFF
    return value - (1 << 64) if value >= 1 << 63 else value


def decode_string(raw: str) -> str:
    """Apply the escapes the lexer kept (``\\n``, ``\\ooo``, ``\\xHH``, ``\\\\``…):
    SystemTap leaves them to the C compiler; we resolve them once here."""
    if "\\" not in raw:
        return raw
    out: list[str] = []
    i = 0
    n = len(raw)
    simple = {"a": "\a", "b": "\b", "t": "\t", "n": "\n", "v": "\v", "f": "\f", "r": "\r", "\\": "\\"}
    while i < n:
        c = raw[i]
        if c != "\\" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        e = raw[i + 1]
        if e in simple:
            out.append(simple[e])
            i += 2
        elif "0" <= e <= "7":
            j = i + 1
            while j < n and j < i + 4 and "0" <= raw[j] <= "7":
                j += 1
            out.append(chr(int(raw[i + 1 : j], 8) & 0xFF))
            i = j
        elif e == "x":
            j = i + 2
            while j < n and j < i + 4 and raw[j] in "0123456789abcdefABCDEF":
                j += 1
            out.append(chr(int(raw[i + 2 : j], 16)) if j > i + 2 else "x")
            i = j
        else:
            out.append(e)
            i += 2
    return "".join(out)


class Parser:
    """Parses one file; use :func:`parse_file`."""

    def __init__(
        self,
        text: str,
        name: str,
        ctx: ParseContext,
        *,
        privileged: bool = False,
        user_file: bool = True,
    ) -> None:
        self.name = name
        self.text = text
        self.ctx = ctx
        self.privileged = privileged
        self.user_file = user_file
        items, spaced, lexer, pre = preprocess(text, name, ctx)
        self.items: list[Item] = items
        self.spaced = spaced
        self.lexer = lexer
        self.pre = pre
        self.eof = lexer.eof_token()
        self.pos = 0
        self.next_t: Token | None = None
        self.last: Token | None = None
        self.cur_spaced = False
        self.depth = 0
        self.ops = 0  # binary operators in the current declaration (see _check_height)
        self.context = "unknown"
        self.has_40 = ctx.has_version("4.0")
        self.has_55 = ctx.has_version("5.5")
        self.has_56 = ctx.has_version("5.6")
        self.has_26 = ctx.has_version("2.6")
        self.file: ast.StapFile | None = None

    # -- token access (SystemTap's peek/next/swallow) ------------------------------------------

    def _scan(self) -> Token | None:
        pos = self.pos
        if pos >= len(self.items):
            return None
        self.pos = pos + 1
        item = self.items[pos]
        if isinstance(item, ParseError):
            raise item
        self.cur_spaced = self.spaced[pos]
        return item

    def peek(self) -> Token | None:
        t = self.next_t
        if t is None:
            t = self.next_t = self._scan()
        self.last = t
        return t

    def next(self) -> Token:
        t = self.next_t
        if t is None:
            t = self.next_t = self._scan()
            if t is None:
                raise self.error("unexpected end-of-file")
        self.last = t
        self.next_t = None
        return t

    def swallow(self) -> None:
        self.last = None
        self.next_t = None

    def error(self, message: str, tok: Token | bool | None = True, skip: bool = True) -> ParseError:
        """A parse error at ``tok`` (default: the token last looked at)."""
        if tok is True:
            tok = self.last
        if tok is None or tok is False:
            tok = self.eof
        assert isinstance(tok, Token)
        if tok.kind is _JUNK and tok.junk:
            message = tok.junk
        return ParseError(message, tok, skip)

    def peek_op(self, text: str) -> bool:
        t = self.peek()
        return t is not None and t.kind is _OP and t.text == text

    def expect_op(self, text: str) -> None:
        t = self.next()
        if t.kind is not _OP or t.text != text:
            raise self.error(f"expected '{text}'")
        self.swallow()

    def expect_kw(self, text: str) -> Token:
        t = self.next()
        if t.kind is not _KW or t.text != text:
            raise self.error(f"expected '{text}'")
        return t

    def expect_op_any(self, options: tuple[str, ...]) -> str:
        t = self.next()
        if t.kind is _OP and t.text in options:
            self.swallow()
            return t.text
        raise self.error(f"expected one of '{' '.join(options)}'")

    def expect_string(self) -> str:
        t = self.next()
        if t.kind is not _STRING:
            raise self.error("expected string")
        return self.consume_string_literals(t).value

    def expect_number(self) -> int:
        neg = False
        t = self.next()
        if t.kind is _OP and t.text == "-":
            neg = True
            self.swallow()
            t = self.next()
        if t.kind is not _NUMBER:
            raise self.error("expected number")
        value = self._number_value(t.text, neg)
        self.swallow()
        return value

    def _number_value(self, text: str, neg: bool) -> int:
        value = c_number(text)
        if value is None or (neg and value > 1 << 63):
            raise self.error("number invalid or out of range")
        return _wrap64(-value if neg else value)

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(f"nesting too deep (more than {MAX_NESTING} levels)")

    # -- file level ------------------------------------------------------------------------------

    def parse(self) -> ast.StapFile:
        first = self.items[0] if self.items and isinstance(self.items[0], Token) else self.eof
        f = ast.StapFile(
            tok=first, name=self.name, privileged=self.privileged, tapset=not self.user_file, source=self.text
        )
        self.file = f
        errors: list[StapError] = []
        empty = True
        while True:
            try:
                self.depth = 0
                self.ops = 0
                t = self.peek()
                if t is None:
                    break
                empty = False
                counts = (len(f.probes), len(f.aliases), len(f.functions), len(f.globals))
                if t.kind is _KW and t.text == "probe":
                    self.context = "probe"
                    self.parse_probe(f)
                elif t.kind is _KW and t.text == "private":
                    self.context = "unknown"
                    self.parse_private(f)
                elif t.kind is _KW and t.text == "global":
                    self.context = "global"
                    self.next()
                    self.swallow()
                    self.do_parse_global(f, None, False)
                elif t.kind is _KW and t.text == "function":
                    self.context = "function"
                    self.next()
                    self.swallow()
                    self.do_parse_function(f, False)
                elif t.kind is _EMBEDDED:
                    self.context = "embedded"
                    tok = self.parse_embeddedcode()
                    f.embeds.append(ast.EmbeddedTopLevel(tok=tok, code=tok.text))
                else:
                    self.context = "unknown"
                    raise self.error("expected 'probe', 'global', 'private', 'function', or '%{'")
                if self.ops > MAX_NESTING:
                    self._check_height(f, counts, t)
            except ParseError as pe:
                errors.append(pe)
                if pe.skip:
                    self._resync(errors)
        for message, tok in self.lexer.warnings + self.pre.warnings:
            f.warnings.append(Warning_(message, tok))
        if empty and self.user_file:
            what = "is empty after preprocessing." if self.lexer.saw_tokens else "is empty."
            errors.append(InputError(f"Input file '{self.name}' {what}"))
        if errors:
            raise ParseErrors(errors)
        return f

    def _check_height(self, f: ast.StapFile, counts: tuple[int, ...], tok: Token) -> None:
        """Bound the height of what was just parsed.

        Nesting is checked while parsing, but chains of binary operators
        stack up *left*, so ``((a+…+a)+…+a)+…`` can be far deeper than any
        bracket nesting.  Only declarations with many operators can be that
        deep, so only those are measured; one too deep is removed again and
        reported, so later passes never recurse into it."""
        lists = (f.probes, f.aliases, f.functions, f.globals)
        limit = 2 * MAX_NESTING
        for lst, before in zip(lists, counts, strict=True):
            for decl in lst[before:]:
                stack: list[tuple[ast.Node, int]] = [(decl, 0)]
                while stack:
                    node, height = stack.pop()
                    if height > limit:
                        del lst[before:]
                        raise self.error(f"nesting too deep (more than {MAX_NESTING} levels)", tok)
                    stack.extend((child, height + 1) for child in ast.iter_children(node))

    def _resync(self, errors: list[StapError]) -> None:
        while True:
            try:
                t = self.peek()
                if t is None:
                    return
                if (t.kind is _KW and t.text in _TOP_KEYWORDS) or t.kind is _EMBEDDED:
                    return
                self.swallow()
            except ParseError as pe2:
                errors.append(pe2)

    def parse_embeddedcode(self) -> Token:
        t = self.next()
        if t.kind is not _EMBEDDED:
            raise self.error("expected '%{'")
        if not self.privileged:
            raise self.error("embedded code in unprivileged script; need stap -g", skip=False)
        return t

    def parse_private(self, f: ast.StapFile) -> None:
        self.next()
        self.swallow()
        t = self.next()
        if t.kind is _KW and t.text == "function":
            self.swallow()
            self.context = "function"
            self.do_parse_function(f, True)
        elif t.kind is _KW and t.text == "global":
            self.swallow()
            self.context = "global"
            t = self.next()
            if t.kind is not _IDENT:
                raise self.error("expected identifier")
            self.do_parse_global(f, t, True)
        elif t.kind is _IDENT:
            self.context = "global"
            self.do_parse_global(f, t, True)
        else:
            raise self.error("expected 'function' or identifier")

    def do_parse_global(self, f: ast.StapFile, t0: Token | None, private: bool) -> None:
        first = True
        while True:
            t = t0 if (first and t0 is not None) else self.next()
            first = False
            if t.kind is not _IDENT:
                raise self.error("expected identifier")
            name = t.text
            for g in f.globals:
                if g.name == name:
                    if g.private == private:
                        raise self.error("duplicate global name")
                    raise self.error("global versus private variable declaration conflict")
            d = ast.GlobalDecl(tok=t, name=name, private=private, file=self.name)
            f.globals.append(d)
            t2 = self.peek()
            if t2 is not None and t2.kind is _OP and t2.text == "%":
                d.wrap = True
                self.swallow()
                t2 = self.peek()
            if t2 is not None and t2.kind is _OP and t2.text == "[":
                self.swallow()
                size = self.expect_number()
                if size <= 0 or size > _INT_MAX:
                    raise self.error("array size out of range")
                d.size = size
                self.expect_op("]")
                t2 = self.peek()
            if t2 is not None and t2.kind is _OP and t2.text == "=":
                if d.size:
                    raise self.error("only scalar globals can be initialized")
                self.next()
                d.init = self.parse_literal()
                t2 = self.peek()
            if t2 is not None and t2.kind is _OP and t2.text == ";":
                self.swallow()
                return
            if t2 is not None and t2.kind is _OP and t2.text == ",":
                self.swallow()
                continue
            return

    def _type_name(self) -> ast.Type:
        t = self.next()
        if t.kind is _KW and t.text == "string":
            typ = ast.Type.STRING
        elif t.kind is _KW and t.text == "long":
            typ = ast.Type.LONG
        else:
            raise self.error("expected 'string' or 'long'")
        self.swallow()
        return typ

    def do_parse_function(self, f: ast.StapFile, private: bool) -> None:
        t = self.next()
        if not (t.kind is _IDENT or (t.kind is _KW and t.text in ("string", "long"))):
            raise self.error("expected identifier")
        name_tok = t
        return_type = ast.Type.UNKNOWN
        t = self.next()
        if t.kind is _OP and t.text == ":":
            self.swallow()
            return_type = self._type_name()
            t = self.next()
        if not (t.kind is _OP and t.text == "("):
            raise self.error("expected '('")
        self.swallow()
        params: list[ast.Param] = []
        while True:
            t = self.next()
            if t.kind is _OP and t.text == ")":
                self.swallow()
                break
            if t.kind is not _IDENT:
                raise self.error("expected identifier")
            if any(p.name == t.text for p in params):
                raise self.error("duplicate parameter names")
            param = ast.Param(tok=t, name=t.text)
            params.append(param)
            t = self.next()
            if t.kind is _OP and t.text == ":":
                self.swallow()
                param.declared_type = self._type_name()
                t = self.next()
            if t.kind is _OP and t.text == ")":
                self.swallow()
                break
            if t.kind is _OP and t.text == ",":
                self.swallow()
                continue
            raise self.error("expected ',' or ')'")
        t2 = self.peek()
        if t2 is None:
            raise self.error("expected '{'")
        priority = 0 if self.user_file else 1
        if t2.kind is _OP and t2.text == ":":
            self.swallow()
            lit = self.parse_literal()
            if not isinstance(lit, ast.NumberLit):
                raise self.error("expected literal number")
            priority = lit.value
            if priority < 1:
                raise self.error("specified priority must be > 0")
        t2 = self.peek()
        body: ast.Block | ast.EmbeddedCode
        if t2 is not None and t2.kind is _EMBEDDED:
            tok = self.parse_embeddedcode()
            body = ast.EmbeddedCode(tok=tok, code=tok.text)
        else:
            body = self.parse_stmt_block()
        f.functions.append(
            ast.FunctionDecl(
                tok=name_tok,
                name=name_tok.text,
                params=params,
                return_type=return_type,
                body=body,
                priority=priority,
                private=private,
                file=self.name,
                privileged=self.privileged,
            )
        )

    # -- probes ----------------------------------------------------------------------------------

    def parse_probe(self, f: ast.StapFile) -> None:
        t0 = self.next()
        aliases: list[ast.ProbePoint] = []
        locations: list[ast.ProbePoint] = []
        epilogue = False
        while True:
            pps = self.parse_probe_points()
            t = self.peek()
            if len(pps) == 1 and t is not None and t.kind is _OP and t.text in ("=", "+="):
                if pps[0].optional or pps[0].sufficient:
                    raise self.error(
                        "probe point alias name cannot be optional nor sufficient", pps[0].components[0].tok
                    )
                aliases.append(pps[0])
                if t.text == "+=":
                    epilogue = True
                self.swallow()
                continue
            if t is not None and t.kind is _OP and t.text == "{":
                locations.extend(pps)
                break
            raise self.error("expected probe point specifier")
        if not aliases:
            body = self.parse_stmt_block()
            f.probes.append(
                ast.Probe(tok=t0, points=locations, body=body, file=self.name, privileged=self.privileged)
            )
            return
        body = self.parse_stmt_block()
        body2: ast.Block | None = None
        t = self.peek()
        if t is not None and t.text == ",":
            if epilogue:
                raise self.error("Combined prologue and epilogue cannot be defined with '+='")
            self.swallow()
            body2 = self.parse_stmt_block()
        alias = ast.ProbeAlias(
            tok=t0,
            names=aliases,
            epilogue_style=epilogue,
            points=locations,
            prologue=None if epilogue else body,
            epilogue=body if epilogue else body2,
            file=self.name,
            privileged=self.privileged,
        )
        f.aliases.append(alias)

    def parse_probe_points(self) -> list[ast.ProbePoint]:
        pps: list[ast.ProbePoint] = []
        while True:
            pps.extend(self.parse_components())
            t = self.peek()
            if t is not None and t.kind is _OP:
                if t.text == ",":
                    self.swallow()
                    continue
                if t.text in ("{", "=", "+=", "}"):
                    return pps
            raise self.error("expected one of ', { } = +='")

    def parse_components(self) -> list[ast.ProbePoint]:
        pps: list[ast.ProbePoint] = []
        while True:
            suffix = self.parse_component()
            if not pps:
                pps = suffix
            else:
                product: list[ast.ProbePoint] = []
                for pp in pps:
                    if pp.optional or pp.sufficient or pp.condition is not None:
                        raise self.error(
                            "'?', '!' or condition must only be specified in suffix", pp.components[0].tok
                        )
                    for sp in suffix:
                        product.append(
                            ast.ProbePoint(
                                tok=pp.tok,
                                components=pp.components + sp.components,
                                optional=sp.optional,
                                sufficient=sp.sufficient,
                                condition=sp.condition,
                            )
                        )
                pps = product
            t = self.peek()
            if t is not None and t.kind is _OP and t.text == ".":
                self.swallow()
                continue
            if t is not None and t.kind is _OP and t.text in ("?", "!"):
                for pp in pps:
                    if pp.optional or pp.sufficient:
                        raise self.error("'?' or '!' respecified")
                    pp.optional = True
                    if t.text == "!":
                        pp.sufficient = True
                self.swallow()
                t = self.peek()
            if t is not None and t.kind is _KW and t.text == "if":
                self.swallow()
                t = self.peek()
                if not (t is not None and t.kind is _OP and t.text == "("):
                    raise self.error("expected '('")
                self.swallow()
                cond = self.parse_expression()
                for pp in pps:
                    if pp.condition is not None:
                        raise self.error("condition respecified")
                    pp.condition = cond
                t = self.peek()
                if not (t is not None and t.kind is _OP and t.text == ")"):
                    raise self.error("expected ')'")
                self.swallow()
            return pps

    def parse_component(self) -> list[ast.ProbePoint]:
        t = self.next()
        if not (t.kind is _IDENT or t.kind is _KW or (t.kind is _OP and t.text in ("*", "{"))):
            raise self.error("expected identifier or '*' or '{'")
        if t.kind is _OP and t.text == "{":
            self.swallow()
            self._enter()
            pps = self.parse_probe_points()
            self.depth -= 1
            t = self.peek()
            if not (t is not None and t.kind is _OP and t.text == "}"):
                raise self.error("expected '}'")
            self.swallow()
            return pps
        content = t.text
        changed = False
        while True:
            u = self.peek()
            if u is None or self.cur_spaced:
                break
            if not (u.kind is _IDENT or u.kind is _KW or (u.kind is _OP and u.text == "*")):
                break
            content += u.text
            changed = True
            self.swallow()
        if changed:
            t = Token(t.kind, content, t.loc, t.chain)
        comp = ast.PPComponent(tok=t, name=content)
        pp = ast.ProbePoint(tok=t, components=[comp])
        u = self.peek()
        if u is not None and u.kind is _OP and u.text == "(":
            self.swallow()
            comp.arg = self.parse_literal()
            u = self.next()
            if not (u.kind is _OP and u.text == ")"):
                raise self.error("expected ')'")
            self.swallow()
        return [pp]

    # -- literals --------------------------------------------------------------------------------

    def consume_string_literals(self, t: Token) -> ast.StringLit:
        raw = t.text
        n = self.peek()
        unglued = self.lexer.unglued
        if n is not None and n.kind is _STRING and id(n) not in unglued:
            parts = [raw]
            while n is not None and n.kind is _STRING and id(n) not in unglued:
                parts.append(n.text)
                self.next()
                n = self.peek()
            raw = "".join(parts)
        return ast.StringLit(tok=t, value=decode_string(raw))

    def parse_literal_string(self) -> ast.StringLit:
        t = self.next()
        if t.kind is not _STRING:
            raise self.error("expected literal string")
        return self.consume_string_literals(t)

    def parse_literal(self) -> ast.NumberLit | ast.StringLit:
        t = self.next()
        if t.kind is _STRING:
            return self.consume_string_literals(t)
        neg = False
        if t.kind is _OP and t.text == "-":
            neg = True
            self.swallow()
            t = self.next()
        if t.kind is _NUMBER:
            return ast.NumberLit(tok=t, value=self._number_value(t.text, neg))
        raise self.error("expected literal string or number")

    # -- statements ------------------------------------------------------------------------------

    def parse_stmt_block(self) -> ast.Block:
        t = self.next()
        if not (t.kind is _OP and t.text == "{"):
            raise self.error("expected '{'")
        block = ast.Block(tok=t)
        statements = block.statements
        while True:
            t2 = self.peek()
            if t2 is not None and t2.kind is _OP and t2.text == "}":
                self.swallow()
                return block
            statements.append(self.parse_statement())

    def parse_statement(self) -> ast.Stmt:
        self._enter()
        t = self.peek()
        ret: ast.Stmt
        if t is None:
            raise self.error("expected statement")
        kind = t.kind
        text = t.text
        if kind is _OP and text == ";":
            self.depth -= 1
            return ast.NullStatement(tok=self.next())
        if kind is _OP and text == "{":
            ret = self.parse_stmt_block()
            self.depth -= 1
            return ret
        if kind is _KW:
            if text == "if":
                ret = self.parse_if()
            elif text == "for":
                ret = self.parse_for()
            elif text == "foreach":
                ret = self.parse_foreach()
            elif text == "while":
                ret = self.parse_while()
            elif text == "try":
                ret = self.parse_try()
            else:
                if text == "return":
                    ret = self.parse_return()
                elif text == "delete":
                    tok = self.next()
                    ret = ast.Delete(tok=tok, target=self.parse_expression())
                elif text == "break":
                    ret = ast.Break(tok=self.next())
                elif text == "continue":
                    ret = ast.Continue(tok=self.next())
                elif text == "next":
                    ret = ast.Next(tok=self.next())
                else:
                    raise self.error("expected statement")
                t = self.peek()
                if t is not None and t.kind is _OP and t.text == ";":
                    self.swallow()
            self.depth -= 1
            return ret
        if kind is _JUNK or kind is _KW:
            raise self.error("expected statement")
        ret = ast.ExprStatement(tok=t, expr=self.parse_expression())
        t = self.peek()
        if t is not None and t.kind is _OP and t.text == ";":
            self.swallow()
        self.depth -= 1
        return ret

    def parse_try(self) -> ast.TryCatch:
        tok = self.expect_kw("try")
        try_block = self.parse_stmt_block()
        self.expect_kw("catch")
        self.swallow()
        var: ast.Symbol | None = None
        t = self.peek()
        if t is not None and t.kind is _OP and t.text == "(":
            self.swallow()
            t = self.next()
            if t.kind is not _IDENT:
                raise self.error("expected identifier")
            var = ast.Symbol(tok=t, name=t.text)
            self.expect_op(")")
        catch_block = self.parse_stmt_block()
        return ast.TryCatch(tok=tok, try_block=try_block, catch_var=var, catch_block=catch_block)

    def _open_paren(self) -> None:
        t = self.next()
        if not (t.kind is _OP and t.text == "("):
            raise self.error("expected '('")
        self.swallow()

    def _wildcard_list(self, item: Callable[[], ast.Expr]) -> list[ast.Expr | None]:
        """``e, *, e]`` after an opening ``[``: array slices and ``[…] in`` tests share it."""
        items: list[ast.Expr | None] = []
        while True:
            t = self.peek()
            if t is not None and t.kind is _OP and t.text == "*":
                self.swallow()
                items.append(None)
            else:
                items.append(item())
            t = self.peek()
            if t is not None and t.kind is _OP and t.text == ",":
                self.swallow()
                continue
            if t is not None and t.kind is _OP and t.text == "]":
                self.swallow()
                return items
            raise self.error("expected ',' or ']'")

    def _close(self, text: str) -> None:
        t = self.next()
        if not (t.kind is _OP and t.text == text):
            raise self.error(f"expected '{text}'")
        self.swallow()

    def parse_if(self) -> ast.If:
        tok = self.next()
        self._open_paren()
        cond = self.parse_expression()
        self._close(")")
        then = self.parse_statement()
        else_: ast.Stmt | None = None
        t = self.peek()
        if t is not None and t.kind is _KW and t.text == "else":
            self.swallow()
            else_ = self.parse_statement()
        return ast.If(tok=tok, cond=cond, then=then, else_=else_)

    def parse_return(self) -> ast.Return:
        tok = self.next()
        if self.context != "function":
            raise self.error("found 'return' not in function context")
        t = self.peek()
        if t is None:
            raise self.error("expected ';', '}' or an expression statement")
        if t.kind is _OP and t.text in (";", "}"):
            return ast.Return(tok=tok)
        return ast.Return(tok=tok, value=self.parse_expression())

    def _expr_statement(self) -> ast.Expr:
        t = self.peek()
        if t is None:
            raise self.error("expression statement expected")
        return self.parse_expression()

    def parse_for(self) -> ast.For:
        tok = self.next()
        self._open_paren()
        init: ast.Expr | None = None
        t = self.peek()
        if t is not None and t.kind is _OP and t.text == ";":
            self.swallow()
        else:
            init = self._expr_statement()
            self._close(";")
        t = self.peek()
        if t is not None and t.kind is _OP and t.text == ";":
            cond: ast.Expr = ast.NumberLit(tok=self.next(), value=1)
        else:
            cond = self.parse_expression()
            self._close(";")
        incr: ast.Expr | None = None
        t = self.peek()
        if t is not None and t.kind is _OP and t.text == ")":
            self.swallow()
        else:
            incr = self._expr_statement()
            self._close(")")
        body = self.parse_statement()
        return ast.For(tok=tok, init=init, cond=cond, incr=incr, body=body)

    def parse_while(self) -> ast.While:
        tok = self.next()
        self._open_paren()
        cond = self.parse_expression()
        self._close(")")
        return ast.While(tok=tok, cond=cond, body=self.parse_statement())

    def parse_foreach(self) -> ast.Foreach:
        tok = self.next()
        self._open_paren()
        value: ast.Symbol | None = None
        indexes: list[ast.Symbol] = []
        sort_column: int | None = None
        sort_direction = 0
        sort_aggr: str | None = None
        lookahead: ast.Symbol | None = None
        lookahead_sort = 0
        t = self.peek()
        if t is not None and t.kind is _IDENT:
            self.next()
            lookahead = ast.Symbol(tok=t, name=t.text)
            t = self.peek()
            if t is not None and t.kind is _OP and t.text in ("+", "-"):
                lookahead_sort = 1 if t.text == "+" else -1
                self.swallow()
            t = self.peek()
            if t is not None and t.kind is _OP and t.text == "=":
                self.swallow()
                value = lookahead
                if lookahead_sort:
                    sort_direction = lookahead_sort
                    sort_column = 0
                lookahead = None
        bracketed = False
        t = self.peek()
        if lookahead is None and t is not None and t.kind is _OP and t.text == "[":
            self.swallow()
            bracketed = True
        if lookahead is not None:
            indexes.append(lookahead)
            if lookahead_sort:
                sort_direction = lookahead_sort
                sort_column = 1
        else:
            while True:
                t = self.next()
                if t.kind is not _IDENT:
                    raise self.error("expected identifier")
                indexes.append(ast.Symbol(tok=t, name=t.text))
                t = self.peek()
                if t is not None and t.kind is _OP and t.text in ("+", "-"):
                    if sort_direction:
                        raise self.error("multiple sort directives")
                    sort_direction = 1 if t.text == "+" else -1
                    sort_column = len(indexes)
                    self.swallow()
                if not bracketed:
                    break
                t = self.peek()
                if t is not None and t.kind is _OP and t.text == ",":
                    self.swallow()
                    continue
                if t is not None and t.kind is _OP and t.text == "]":
                    self.swallow()
                    break
                raise self.error("expected ',' or ']'")
        t = self.next()
        if not (t.kind is _KW and t.text == "in"):
            raise self.error("expected 'in'")
        self.swallow()
        array = self.parse_indexable()
        slice_: list[ast.Expr | None] | None = None
        t = self.peek()
        if t is not None and t.kind is _OP and t.text == "[":
            self.swallow()
            slice_ = self._wildcard_list(self.parse_expression)
        t = self.peek()
        if t is not None and t.kind is _OP and t.text[0] == "@":
            if t.text not in _SORT_AGGRS:
                raise self.error("expected statistical operation")
            sort_aggr = t.text
            self.swallow()
            t = self.peek()
            if not (t is not None and t.kind is _OP and t.text in ("+", "-")):
                raise self.error("expected sort directive")
        t = self.peek()
        if t is not None and t.kind is _OP and t.text in ("+", "-"):
            if sort_direction:
                raise self.error("multiple sort directives")
            sort_direction = 1 if t.text == "+" else -1
            sort_column = 0
            self.swallow()
        limit: ast.Expr | None = None
        t = self.peek()
        if t is not None and t.kind is _KW and t.text == "limit":
            self.swallow()
            limit = self.parse_expression()
        self._close(")")
        body = self.parse_statement()
        return ast.Foreach(
            tok=tok,
            value=value,
            indexes=indexes,
            array=array,
            slice=slice_,
            sort_column=sort_column,
            sort_direction=sort_direction,
            sort_aggr=sort_aggr,
            limit=limit,
            body=body,
        )

    # -- expressions -----------------------------------------------------------------------------

    def parse_expression(self) -> ast.Expr:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(f"nesting too deep (more than {MAX_NESTING} levels)")
        op1 = self.parse_ternary()
        t = self.peek()
        if t is not None and t.kind is _OP and t.text in _ASSIGN_OPS:
            self.next()
            op1 = ast.Assign(tok=t, op=t.text, target=op1, value=self.parse_expression())
        self.depth -= 1
        return op1

    def parse_ternary(self) -> ast.Expr:
        op1 = self._logic(1)
        t = self.peek()
        if t is not None and t.kind is _OP and t.text == "?":
            self.next()
            true_expr = self.parse_expression()
            self._close(":")
            self._enter()
            false_expr = self.parse_ternary() if self.has_40 else self.parse_expression()
            self.depth -= 1
            return ast.Ternary(tok=t, cond=op1, true_expr=true_expr, false_expr=false_expr)
        return op1

    def _chained(self, chain: int) -> int:
        """Count one more operator of a left-associative chain: the tree it builds is as
        deep as the chain is long, so the chain counts against MAX_NESTING."""
        chain += 1
        self.ops += 1
        if self.depth + chain > MAX_NESTING:
            raise self.error(f"nesting too deep (more than {MAX_NESTING} levels)")
        return chain

    def _logic(self, minlevel: int) -> ast.Expr:
        left = self.parse_array_in()
        chain = 0
        while True:
            t = self.peek()
            if t is None or t.kind is not _OP:
                return left
            level = _LOGIC_LEVELS.get(t.text)
            if level is None or level < minlevel:
                return left
            self.next()
            right = self._logic(level + 1)
            chain = self._chained(chain)
            if level <= 2:
                left = ast.Logical(tok=t, op=t.text, left=left, right=right)
            else:
                left = ast.Binary(tok=t, op=t.text, left=left, right=right)

    def parse_array_in(self) -> ast.Expr:
        t = self.peek()
        if t is not None and t.kind is _OP and t.text == "[":
            self.swallow()
            indexes = self._wildcard_list(self.parse_comparison)
            t = self.peek()
            if t is not None and t.kind is _KW and t.text == "in":
                self.next()
                return ast.InArray(tok=t, indexes=indexes, array=self.parse_indexable())
            if len(indexes) == 1 and indexes[0] is not None:
                return indexes[0]
            if len(indexes) == 1:
                raise self.error("expected 'in'")
            raise self.error("unexpected comma-separated expression list")
        e = self.parse_comparison()
        t = self.peek()
        if t is not None and t.kind is _KW and t.text == "in":
            self.next()
            return ast.InArray(tok=t, indexes=[e], array=self.parse_indexable())
        return e

    def parse_comparison(self) -> ast.Expr:
        op1 = self._arith(1)
        t = self.peek()
        if t is None or t.kind is not _OP:
            return op1
        if t.text in ("=~", "!~"):
            self.next()
            pattern = self.parse_literal_string()
            return ast.RegexMatch(tok=t, op=t.text, left=op1, pattern=pattern.value, pattern_tok=pattern.tok)
        chain = 0
        while t is not None and t.kind is _OP and t.text in _COMPARISONS:
            self.next()
            right = self._arith(1)
            op1 = ast.Comparison(tok=t, op=t.text, left=op1, right=right)
            chain = self._chained(chain)
            t = self.peek()
        return op1

    def _arith(self, minlevel: int) -> ast.Expr:
        left = self.parse_unary()
        chain = 0
        while True:
            t = self.peek()
            if t is None or t.kind is not _OP:
                return left
            level = _ARITH_LEVELS.get(t.text)
            if level is None or level < minlevel:
                return left
            self.next()
            right = self._arith(level + 1) if level < 4 else self.parse_unary()
            chain = self._chained(chain)
            left = ast.Binary(tok=t, op=t.text, left=left, right=right)

    def parse_unary(self) -> ast.Expr:
        t = self.peek()
        if t is not None and t.kind is _OP and t.text in _UNARY:
            self.next()
            self._enter()
            operand = self.parse_unary()
            self.depth -= 1
            return ast.Unary(tok=t, op=t.text, operand=operand)
        if t is not None and t.kind is _OP and t.text in ("++", "--"):
            self.next()
            return ast.Crement(tok=t, op=t.text, operand=self.parse_dwarf_value(), prefix=True)
        op1 = self.parse_dwarf_value()
        t = self.peek()
        if t is not None and t.kind is _OP and t.text in ("++", "--"):
            self.next()
            return ast.Crement(tok=t, op=t.text, operand=op1, prefix=False)
        return op1

    _TARGETS = (ast.TargetSymbol, ast.CastOp, ast.AtVar, ast.Autocast)

    def parse_dwarf_value(self) -> ast.Expr:
        t = self.peek()
        addrtok: Token | None = None
        if t is not None and t.kind is _OP and t.text == "&":
            addrtok = self.next()
            t = self.peek()
        tsym: ast.Expr | None = None
        if t is not None and t.kind is _IDENT and t.text[0] == "$":
            self.next()
            expr: ast.Expr = ast.TargetSymbol(tok=t, name=t.text)
            tsym = expr
        elif t is not None and t.kind is _OP and t.text == "@cast":
            expr = tsym = self.parse_cast_op()
        elif t is not None and t.kind is _OP and t.text == "@var":
            expr = tsym = self.parse_atvar_op()
        elif addrtok is not None and not self.has_26:
            raise self.error("expected @cast, @var or $var")
        else:
            expr = self.parse_value()
            if addrtok is not None and isinstance(expr, self._TARGETS):
                if expr.addressof:
                    raise self.error("cannot take address more than once", addrtok)
                tsym = expr
        if tsym is None and self.has_26:
            t = self.peek()
            if addrtok is not None or (
                t is not None
                and (
                    (t.kind is _OP and t.text in ("->", "["))
                    or (t.kind is _IDENT and not t.text.strip("$"))
                )
            ):
                expr = tsym = ast.Autocast(tok=addrtok or t or self.eof, operand=expr)
        if tsym is not None:
            tsym.addressof = addrtok is not None  # type: ignore[attr-defined]
            self.parse_target_components(tsym)
        return expr

    def parse_target_components(self, e: ast.Expr) -> None:
        pretty = ""
        if isinstance(e, ast.TargetSymbol):
            base = e.name
            k = len(base.rstrip("$"))
            if 1 < k < len(base):
                pretty = base[k:]
                e.name = base[:k]
        components: list[ast.Component] = e.components  # type: ignore[attr-defined]
        while not pretty:
            t = self.peek()
            if t is None or t.kind is not _OP:
                break
            if t.text == "->":
                self.next()
                m = self.next()
                if m.kind is not _IDENT and m.kind is not _KW:
                    raise self.error("expected identifier or keyword")
                self.swallow()
                member = m.text
                k = len(member.rstrip("$"))
                if k < len(member):
                    pretty = member[k:]
                    member = member[:k]
                if member:
                    components.append(ast.Component(tok=t, kind="member", name=member))
            elif t.text == "[":
                self.next()
                index = self.parse_expression()
                components.append(ast.Component(tok=t, kind="index", index=index))
                self.expect_op("]")
            else:
                break
        if not pretty:
            t = self.peek()
            if t is not None and t.kind is _IDENT and not t.text.strip("$"):
                self.next()
                pretty = t.text
        if pretty:
            e.pretty = pretty  # type: ignore[attr-defined]
            if self.peek_op("->") or self.peek_op("["):
                raise self.error("-> and [ are not accepted for a pretty-printing variable")

    def parse_value(self) -> ast.Expr:
        t = self.peek()
        if t is None:
            raise self.error("expected value")
        if t.kind is _EMBEDDED:
            if not self.privileged:
                raise self.error("embedded expression code in unprivileged script; need stap -g", skip=False)
            self.next()
            return ast.EmbeddedExpr(tok=t, code=t.text)
        if t.kind is _OP and t.text == "(":
            self.swallow()
            e = self.parse_expression()
            self._close(")")
            return e
        if t.kind is _IDENT or (t.kind is _OP and t.text[0] == "@"):
            return self.parse_symbol()
        return self.parse_literal()

    def _hist_or_name(self) -> tuple[ast.HistogramOp | None, Token]:
        t = self.next()
        if not (t.kind is _IDENT or (t.kind is _OP and t.text[0] == "@")):
            raise self.error("expected identifier or statistical operation")
        if t.text in ("@hist_linear", "@hist_log"):
            self.expect_op("(")
            stat = self.parse_expression()
            params: list[int] = []
            if t.text == "@hist_linear":
                for _ in range(3):
                    self.expect_op(",")
                    params.append(self.expect_number())
            self.expect_op(")")
            kind = "linear" if t.text == "@hist_linear" else "log"
            return ast.HistogramOp(tok=t, kind=kind, stat=stat, params=params), t
        return None, t

    def parse_indexable(self) -> ast.Expr:
        hop, t = self._hist_or_name()
        if hop is not None:
            return hop
        return ast.Symbol(tok=t, name=t.text)

    def parse_symbol(self) -> ast.Expr:
        hop, t = self._hist_or_name()
        name = t.text
        sym: ast.Symbol | None = None
        if hop is None:
            if name[0] == "@":
                special = self._parse_at_operator(t, name)
                if special is not None:
                    return special
            elif name in PRINT_FUNCTIONS:
                return self.parse_print(t, name)
            if self.peek_op("("):
                self.swallow()
                call = ast.FunctionCall(tok=t, name=name, args=[])
                if self.peek_op(")"):
                    self.swallow()
                    return call
                while True:
                    call.args.append(self.parse_expression())
                    if self.expect_op_any((")", ",")) == ")":
                        return call
            sym = ast.Symbol(tok=t, name=name)
        if self.peek_op("["):
            self.swallow()
            base: ast.Expr = hop if hop is not None else sym  # type: ignore[assignment]
            ai = ast.ArrayIndex(tok=t, base=base, indexes=[])
            while True:
                if self.peek_op("*"):
                    self.swallow()
                    ai.indexes.append(None)
                else:
                    ai.indexes.append(self.parse_expression())
                if self.expect_op_any(("]", ",")) == "]":
                    return ai
        if hop is not None:
            raise self.error("base histogram operator where expression expected", t)
        assert sym is not None
        return sym

    def _parse_at_operator(self, t: Token, name: str) -> ast.Expr | None:
        if name == "@defined":
            self.expect_op("(")
            operand = self.parse_expression()
            self.expect_op(")")
            return ast.DefinedOp(tok=t, operand=operand)
        if name == "@probewrite":
            self.expect_op("(")
            v = self.next()
            if v.kind is not _IDENT:
                raise self.error("expected identifier")
            self.swallow()
            self.expect_op(")")
            return ast.ProbewriteOp(tok=t, name=v.text)
        if name == "@const":
            if not self.privileged:
                raise self.error("using @const operator not permitted; need stap -g", skip=False)
            self.expect_op("(")
            st = self.peek()
            value = self.expect_string()
            if not value:
                raise self.error("expected non-empty string")
            self.expect_op(")")
            assert st is not None
            return ast.AtOp(tok=t, name=name, args=[ast.StringLit(tok=st, value=value)])
        if name == "@entry":
            self.expect_op("(")
            operand = self.parse_expression()
            self.expect_op(")")
            return ast.EntryOp(tok=t, operand=operand)
        if name == "@perf":
            self.expect_op("(")
            lit = self.parse_literal_string()
            if lit.value == "":
                raise self.error("expected non-empty string")
            self.expect_op(")")
            return ast.PerfOp(tok=t, name=lit.value)
        if self.has_40 and name in ("@kregister", "@uregister"):
            if name == "@kregister" and not self.privileged:
                raise self.error("using @kregister operator not permitted; need stap -g", skip=False)
            self.expect_op("(")
            nt = self.peek()
            regno = self.expect_number()
            self.expect_op(")")
            return ast.AtOp(tok=t, name=name, args=[ast.NumberLit(tok=nt or t, value=regno)])
        if self.has_40 and name in ("@kderef", "@uderef"):
            if name == "@kderef" and not self.privileged:
                raise self.error("using @kderef operator not permitted; need stap -g", skip=False)
            self.expect_op("(")
            nt = self.peek()
            size = self.expect_number()
            self.expect_op(",")
            addr = self.parse_expression()
            self.expect_op(")")
            return ast.AtOp(tok=t, name=name, args=[ast.NumberLit(tok=nt or t, value=size), addr])
        if self.has_55 and name == "@enum":
            self.expect_op("(")
            lit = self.parse_literal_string()
            if lit.value == "":
                raise self.error("expected non-empty string")
            self.expect_op(")")
            return ast.AtOp(tok=t, name=name, args=[lit])
        if self.has_56 and name == "@enumname":
            self.expect_op("(")
            args: list[ast.Expr] = [self.parse_expression()]
            while len(args) < 3 and self.peek_op(","):
                self.swallow()
                args.append(self.parse_literal_string())
            self.expect_op(")")
            return ast.AtOp(tok=t, name=name, args=args)
        if name not in _STAT_OPS:
            raise self.error(f"unknown operator {name}")
        max_params = _STAT_OPS[name]
        self.expect_op("(")
        stat = self.parse_expression()
        params: list[int] = []
        while True:
            u = self.next()
            if u.kind is _OP and u.text == ")":
                self.swallow()
                break
            if u.kind is _OP and u.text == ",":
                if len(params) >= max_params:
                    n = max_params + 1
                    raise self.error(f"not more than {n} parameter{'' if n == 1 else 's'} allowed", u)
                self.swallow()
                params.append(self.expect_number())
        return ast.StatOp(tok=t, op=name, stat=stat, params=params)

    def parse_print(self, t: Token, name: str) -> ast.PrintFormat:
        self.expect_op("(")
        fmt = ast.PrintFormat(tok=t, name=name, args=[])
        if name in ("print", "println", "sprint", "sprintln") and (
            self.peek_op("@hist_linear") or self.peek_op("@hist_log")
        ):
            hop, ht = self._hist_or_name()
            assert hop is not None
            if not self.peek_op("["):
                fmt.histogram = hop
            else:
                self.expect_op("[")
                ai = ast.ArrayIndex(tok=ht, base=hop, indexes=[self.parse_expression()])
                self.expect_op("]")
                fmt.args.append(ai)
                while not self.peek_op(")"):
                    self.expect_op_any((",", ")"))
                    fmt.args.append(self.parse_expression())
        else:
            min_args = 0
            consumed = False
            if name in ("printf", "sprintf"):
                lit = self.parse_literal_string()
                fmt.format = lit.value
                try:
                    fmt.components = parse_format(lit.value)
                except FormatError as e:
                    raise self.error(str(e)) from None
                consumed = True
            elif name in ("printd", "printdln", "sprintd", "sprintdln"):
                fmt.delimiter = self.parse_literal_string().value
                consumed = True
                min_args = 2
            elif name not in ("println", "sprintln"):
                min_args = 1
            while min_args or not self.peek_op(")"):
                if consumed:
                    self.expect_op_any((",", ")"))
                fmt.args.append(self.parse_expression())
                consumed = True
                if min_args:
                    min_args -= 1
        self.expect_op(")")
        return fmt

    def parse_cast_op(self) -> ast.CastOp:
        t = self.next()
        self.expect_op("(")
        operand = self.parse_expression()
        self.expect_op(",")
        type_name = self.expect_string()
        if not type_name:
            raise self.error("expected non-empty string")
        module: str | None = None
        if self.peek_op(","):
            self.swallow()
            module = self.expect_string()
        self.expect_op(")")
        return ast.CastOp(tok=t, operand=operand, type_name=type_name, module=module)

    def parse_atvar_op(self) -> ast.AtVar:
        t = self.next()
        self.expect_op("(")
        name = self.expect_string()
        module: str | None = None
        if self.peek_op(","):
            self.swallow()
            module = self.expect_string()
        self.expect_op(")")
        return ast.AtVar(tok=t, name=name, module=module)


def _ensure_recursion_limit() -> None:
    if sys.getrecursionlimit() < _RECURSION_NEEDED:
        sys.setrecursionlimit(_RECURSION_NEEDED)


# Raised once, at import: MAX_NESTING bounds how deep parsing (and printing)
# can recurse, and this makes sure Python allows that much.
_ensure_recursion_limit()


def parse_file(
    text: str | bytes,
    name: str,
    ctx: ParseContext,
    *,
    privileged: bool = False,
    tapset: bool = False,
) -> ast.StapFile:
    """Parse one script or tapset file.

    ``text`` is the file's content (bytes are decoded as latin-1, so every
    byte maps to one character); ``name`` is how messages name the file
    (``<input>`` for ``-e``).  ``privileged`` allows embedded C (``-g``);
    tapset files are always privileged, get default function priority 1
    and may be empty.  Raises :class:`ParseErrors` holding every error.
    """
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    _ensure_recursion_limit()
    parser = Parser(text, name, ctx, privileged=privileged or tapset, user_file=not tapset)
    return parser.parse()


def parse_expression(text: str, ctx: ParseContext | None = None, name: str = "<expression>") -> ast.Expr:
    """Parse a lone expression (used for ``-G var=value`` style inputs and tests)."""
    _ensure_recursion_limit()
    parser = Parser(text, name, ctx or ParseContext(), privileged=False)
    parser.context = "function"
    try:
        expr = parser.parse_expression()
        t = parser.peek()
        if t is not None:
            raise parser.error("unexpected token after expression")
    except ParseError as e:
        raise ParseErrors([e]) from None
    return expr
