"""The preprocessor: ``@define`` macros, then ``%( … %? … %: … %)`` conditionals.

SystemTap preprocesses inside the parser, pulling one token at a time; an
error raised while pulling is reported and the parser pulls again from where
the preprocessor stopped.  We run the same state machine eagerly over the
whole file and record each such error *in the token stream* (as a
:class:`ParseError` item), so the parser meets it at exactly the point
SystemTap would, and reports the same errors in the same order — while the
common case (no macros, no conditionals) stays a plain list copy.

Two layers, as in SystemTap's ``scan_pp1``/``scan_pp``:

1. macros: ``@define NAME[(params)] %( body %)`` (file scope, from the
   definition on), invocations ``@NAME``/``@NAME(args)`` with arguments split
   on top-level commas, parameters as closures over the invocation site;
   library macros (``*.stpm``) visible everywhere;
2. conditionals over ``kernel_v``, ``kernel_vr``, ``systemtap_v``, ``arch``,
   ``runtime``, ``systemtap_privilege``, ``guru_mode``, ``CONFIG_*``, string
   and number comparisons, joined by ``&&``/``||`` (no parentheses); tokens
   of an untaken branch are dropped, errors inside them ignored.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

from pystap.lang.context import ParseContext
from pystap.lang.diagnostics import ParseError
from pystap.lang.lexer import BASE_KEYWORDS, Lexer
from pystap.lang.tokens import Token, TokenKind

_OP = TokenKind.OPERATOR
_IDENT = TokenKind.IDENTIFIER
_STRING = TokenKind.STRING
_NUMBER = TokenKind.NUMBER

#: Built-in @-words (a macro of that name only warns).
ATWORDS = frozenset(
    "cast defined probewrite entry perf var avg count sum min max hist_linear hist_log const variance "
    "kregister uregister kderef uderef enum enumname".split()
)

_PP_OPS = frozenset(("%(", "%?", "%:", "%)"))

#: Bounds on macro expansion: nesting of active invocations (a macro that
#: invokes itself never ends) and tokens produced in total (a few doubling
#: macros produce billions).
MAX_MACRO_NESTING = 256
MAX_MACRO_TOKENS = 200_000

_NONE, _KEEP_THEN, _SKIP_THEN, _KEEP_ELSE, _SKIP_ELSE = range(5)

_BAD_LHS = (
    "expected 'arch', 'kernel_v', 'kernel_vr', 'systemtap_v',\n"
    "             'runtime', 'systemtap_privilege', 'CONFIG_...', or\n"
    "             comparison between strings or integers"
)


# ----------------------------------------------------------------------------------------------
# helpers shared with the parser


_S_N, _S_I, _S_F, _S_Z = 0, 3, 6, 9
_CMP, _LEN = 2, 3
_NEXT_STATE = (_S_N, _S_I, _S_Z, _S_N, _S_I, _S_I, _S_N, _S_F, _S_F, _S_N, _S_F, _S_Z)
_RESULT_TYPE = (
    _CMP, _CMP, _CMP, _CMP, _LEN, _CMP, _CMP, _CMP, _CMP,
    _CMP, -1, -1, +1, _LEN, _LEN, +1, _LEN, _LEN,
    _CMP, _CMP, _CMP, _CMP, _CMP, _CMP, _CMP, _CMP, _CMP,
    _CMP, +1, +1, -1, _CMP, _CMP, -1, _CMP, _CMP,
)  # fmt: skip


def _cls(c: str) -> int:
    return (c == "0") + ("0" <= c <= "9") if c else 0


def strverscmp(a: str, b: str) -> int:
    """glibc ``strverscmp`` (a direct port of its state machine): digit runs
    compare as numbers, leading zeros as fractional parts (``"2.10" > "2.9"``).
    Returns <0, 0 or >0."""
    p1 = a + "\0"
    p2 = b + "\0"
    i = 0
    c1, c2 = p1[0], p2[0]
    state = _S_N + _cls(c1)
    while ord(c1) - ord(c2) == 0:
        if c1 == "\0":
            return 0
        state = _NEXT_STATE[state]
        i += 1
        c1 = p1[i] if i < len(p1) else "\0"
        c2 = p2[i] if i < len(p2) else "\0"
        state += _cls(c1)
    diff = ord(c1) - ord(c2)
    result = _RESULT_TYPE[state * 3 + _cls(c2)]
    if result == _CMP:
        return diff
    if result == _LEN:
        j = i
        while True:
            x = p1[j] if j < len(p1) else "\0"
            j += 1
            if not ("0" <= x <= "9"):
                break
            y = p2[j - 1] if j - 1 < len(p2) else "\0"
            if not ("0" <= y <= "9"):
                return 1
        y = p2[j - 1] if j - 1 < len(p2) else "\0"
        return -1 if "0" <= y <= "9" else diff
    return result


_C_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")


def c_number(text: str) -> int | None:
    """C ``strtoull(text, &end, 0)`` requiring the whole text: decimal, ``0x``
    hex or leading-``0`` octal; ``None`` if malformed or above 2**64-1."""
    if not _C_NUMBER.fullmatch(text):
        return None
    if text[:2] in ("0x", "0X"):
        value = int(text[2:], 16)
    elif text[0] == "0":
        value = int(text, 8)
    elif len(text) > 20:  # above 2**64 anyway; and int() refuses very long decimal strings
        return None
    else:
        value = int(text)
    return value if value <= 0xFFFFFFFFFFFFFFFF else None


def _strtoll(text: str) -> int | None:
    """C ``strtoll(text, &end, 0)`` with the whole text consumed (``""`` → 0)."""
    s = text
    if s == "":
        return 0
    sign = 1
    body = s.lstrip(" \t\n\r\f\v")
    if body[:1] in "+-" and body:
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    value = c_number(body) if body else None
    if value is None:
        return None
    value *= sign
    if not -(2**63) <= value < 2**63:
        return None
    return value


def _fnmatch(pattern: str, name: str) -> bool:
    return fnmatch.fnmatchcase(name, pattern)


# ----------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Macro:
    """A ``@define``: ``body`` tokens with their preceded-by-whitespace flags.

    ``parent`` is set for macro *parameters*: the activation they were bound
    in, so ``@p`` inside the body expands in the invoking context.
    """

    name: str
    tok: Token
    params: list[str] = field(default_factory=list)
    body: list[tuple[Token, bool]] = field(default_factory=list)
    library: bool = False
    parent: _Activation | None = None


@dataclass(eq=False)
class _Activation:
    tok: Token
    macro: Macro
    cursor: int = 0
    params: dict[str, Macro] = field(default_factory=dict)


Item = Token | ParseError


class Preprocessor:
    """Runs both layers over one file's raw tokens (see the module docstring)."""

    def __init__(
        self,
        tokens: list[Token],
        spaced: list[bool],
        ctx: ParseContext,
        eof: Token,
    ) -> None:
        self.toks = tokens
        self.spaced = spaced
        self.ctx = ctx
        self.eof = eof
        self.i = 0
        self.namespace: dict[str, Macro] = {}
        self.acts: list[_Activation] = []
        self.pp_state: list[list] = []  # [token, state]
        self.last_spaced = False
        self.warnings: list[tuple[str, Token]] = []
        self.expanded = 0

    # -- raw input ---------------------------------------------------------------------------

    def _raw(self) -> Token | None:
        i = self.i
        if i >= len(self.toks):
            return None
        self.i = i + 1
        self.last_spaced = self.spaced[i]
        return self.toks[i]

    def _next_pp1(self) -> Token | None:
        if not self.acts:
            return self._raw()
        act = self.acts[-1]
        body = act.macro.body
        if act.cursor < len(body):
            t, sp = body[act.cursor]
            act.cursor += 1
            self.expanded += 1
            self.last_spaced = sp
            return Token(t.kind, t.text, t.loc, act.tok, t.junk)
        return None

    def _err(self, message: str, tok: Token | None) -> ParseError:
        return ParseError(message, tok if tok is not None else self.eof)

    # -- layer 1: macros ---------------------------------------------------------------------

    def scan_pp1(self, ignore_macros: bool = False) -> Token | None:
        while True:
            t = self._next_pp1()
            if t is None:
                if not self.acts:
                    return None
                self.acts.pop()
                continue
            if t.kind is not _OP or t.text[0] != "@":
                return t
            if t.text == "@define" and not ignore_macros:
                self._define(t)
                continue
            name = t.text[1:]
            act = self.acts[-1] if self.acts else None
            decl: Macro | None = None
            if act is not None and name in act.params:
                decl = act.params[name]
            elif not (act is not None and act.macro.library) and name in self.namespace:
                decl = self.namespace[name]
            elif name in self.ctx.library_macros:
                decl = self.ctx.library_macros[name]
            if decl is None:
                return t
            self._invoke(t, name, decl, act)

    def _define(self, t: Token) -> None:
        if self.acts:
            raise self._err("'@define' forbidden inside macro body", t)
        t = self._raw()
        if t is None or t.kind is not _IDENT:
            raise self._err("expected identifier", t)
        name = t.text
        if name in self.namespace:
            err = self._err(f"attempt to redefine macro '@{name}' in the same file", t)
            err.chain.append(ParseError(f"macro '@{name}' first defined here", self.namespace[name].tok))
            raise err
        if name == "define":
            raise self._err("attempt to redefine '@define'", t)
        if name in ATWORDS:
            self.warnings.append((f"macro redefines built-in operator '@{name}'", t))
        decl = self.namespace[name] = Macro(name, t)
        saw_params = False
        t = self._raw()
        if t is not None and t.kind is _OP and t.text == "(":
            saw_params = True
            while True:
                t = self._raw()
                if t is None or t.kind is not _IDENT:
                    raise self._err("expected identifier", t)
                decl.params.append(t.text)
                t = self._raw()
                if t is not None and t.kind is _OP and t.text == ",":
                    continue
                if t is not None and t.kind is _OP and t.text == ")":
                    t = self._raw()
                    break
                raise self._err("expected ',' or ')'", t)
        if t is None or t.kind is not _OP or t.text != "%(":
            raise self._err("expected '%('" if saw_params else "expected '%(' or '('", t)
        nesting = 0
        while True:
            b = self._next_pp1()
            if b is None:
                raise self._err("incomplete macro definition - missing '%)'", decl.tok)
            if b.kind is _OP:
                if b.text == "%(":
                    nesting += 1
                elif b.text == "%)":
                    if not nesting:
                        return
                    nesting -= 1
            decl.body.append((b, self.last_spaced))

    def _invoke(self, t: Token, name: str, decl: Macro, act: _Activation | None) -> None:
        if len(self.acts) >= MAX_MACRO_NESTING:
            raise self._err(f"macro expansion nested too deeply (more than {MAX_MACRO_NESTING} levels)", t)
        if self.expanded > MAX_MACRO_TOKENS:
            self.acts.clear()  # abandon the whole expansion, not just this invocation
            raise self._err(f"macro expansion too large (more than {MAX_MACRO_TOKENS} tokens)", t)
        new_act = _Activation(t, decl)
        n = len(decl.params)
        if n == 0:
            if decl.parent is not None:
                new_act.params = decl.parent.params
            self.acts.append(new_act)
            return
        t2 = self._next_pp1()
        if t2 is None or t2.kind is not _OP or t2.text != "(":
            plural = "parameter" if n == 1 else "parameters"
            raise self._err(f"expected '(' in invocation of macro '@{name}' taking {n} {plural}", t2)
        for i in range(n):
            p = Macro(decl.params[i], new_act.tok, parent=act)
            new_act.params[decl.params[i]] = p
            nesting = 0
            while True:
                s = self._next_pp1()
                if s is None:
                    raise self._err("could not find end of macro invocation", new_act.tok)
                if s.kind is _OP:
                    if s.text in ("(", "["):
                        nesting += 1
                    elif nesting and s.text in (")", "]"):
                        nesting -= 1
                    elif not nesting and s.text in (")", ","):
                        break
                p.body.append((s, self.last_spaced))
            if s.text == ",":
                if i + 1 == n:
                    raise self._err(f"too many parameters for macro '@{name}' (expected {n})", s)
            elif i + 1 != n:
                raise self._err(f"too few parameters for macro '@{name}' (expected {n})", s)
        self.acts.append(new_act)

    # -- layer 2: conditionals ---------------------------------------------------------------

    def scan_pp(self) -> Token | None:
        while True:
            pp = self.pp_state[-1][1] if self.pp_state else _NONE
            t = self._skip_pp() if pp in (_SKIP_THEN, _SKIP_ELSE) else self.scan_pp1()
            if t is None:
                if pp != _NONE:
                    start = self.pp_state.pop()[0]
                    raise self._err("incomplete conditional at end of file", start)
                return None
            if t.kind is not _OP or t.text not in _PP_OPS:
                return t
            text = t.text
            if text == "%?":
                raise self._err("incomplete conditional - missing '%('", t)
            if text == "%:":
                if pp == _NONE:
                    raise self._err("incomplete conditional - missing '%('", t)
                if pp in (_KEEP_ELSE, _SKIP_ELSE):
                    raise self._err("invalid conditional - duplicate '%:'", t)
                self.pp_state[-1][1] = _SKIP_ELSE if pp == _KEEP_THEN else _KEEP_ELSE
                continue
            if text == "%)":
                if pp == _NONE:
                    raise self._err("incomplete conditional - missing '%('", t)
                self.pp_state.pop()
                continue
            # "%(": evaluate the condition
            result = False
            and_result = True
            while True:
                lhs = self.scan_pp1()
                op = self.scan_pp1()
                rhs = self.scan_pp1()
                if lhs is None or op is None or rhs is None:
                    raise self._err("incomplete condition after '%('", t)
                and_result = self.evaluate(lhs, op, rhs) and and_result
                n = self.scan_pp1()
                if n is not None and n.kind is _OP and n.text == "&&":
                    continue
                result = result or and_result
                and_result = True
                if not (n is not None and n.kind is _OP and n.text == "||"):
                    break
            if n is None or n.kind is not _OP or n.text != "%?":
                raise self._err("expected '%?' marker for conditional", t)
            self.pp_state.append([t, _KEEP_THEN if result else _SKIP_THEN])

    def _skip_pp(self) -> Token | None:
        nesting = 0
        while True:
            try:
                t = self.scan_pp1(True)
            except ParseError:
                continue
            if t is None:
                return None
            if t.kind is _OP:
                if t.text == "%(":
                    nesting += 1
                elif nesting and t.text == "%)":
                    nesting -= 1
                elif not nesting and t.text in ("%:", "%?", "%)"):
                    return t

    # -- condition evaluation ----------------------------------------------------------------

    def _compare(self, lhs: object, op: Token, rhs: object) -> bool:
        o = op.text if op.kind is _OP else ""
        if o == "<=":
            return lhs <= rhs  # type: ignore[operator]
        if o == ">=":
            return lhs >= rhs  # type: ignore[operator]
        if o == "<":
            return lhs < rhs  # type: ignore[operator]
        if o == ">":
            return lhs > rhs  # type: ignore[operator]
        if o == "==":
            return lhs == rhs
        if o == "!=":
            return lhs != rhs
        raise self._err("expected comparison operator", op)

    def _eq_ne(self, op: Token, matched: bool) -> bool:
        if op.kind is _OP and op.text == "==":
            return matched
        if op.kind is _OP and op.text == "!=":
            return not matched
        raise self._err("expected '==' or '!='", op)

    def _number(self, tok: Token) -> int:
        value = c_number(tok.text)
        if value is None or value >= 2**63:
            raise self._err("number invalid or out of range", tok)
        return value

    def evaluate(self, lhs: Token, op: Token, rhs: Token) -> bool:
        """One ``LHS OP RHS`` triple (SystemTap's ``eval_pp_conditional``)."""
        ctx = self.ctx
        name = lhs.text if lhs.kind is _IDENT else None
        if name in ("kernel_v", "kernel_vr", "systemtap_v"):
            if rhs.kind is not _STRING:
                raise self._err("expected string literal", rhs)
            target = {"kernel_v": ctx.kernel_version, "kernel_vr": ctx.kernel_release}.get(
                name, ctx.compatible
            )
            query = rhs.text
            wildcard = any(c in query for c in "*?[")
            o = op.text if op.kind is _OP else ""
            if o not in ("<=", ">=", "<", ">", "==", "!="):
                raise self._err("expected comparison operator", op)
            if wildcard:
                if o not in ("==", "!="):
                    raise self._err("wildcard not allowed with order comparison operators", op)
                return _fnmatch(query, target) == (o == "==")
            return self._compare(strverscmp(target, query), op, 0)
        if name == "systemtap_privilege":
            if rhs.kind is not _STRING:
                raise self._err("expected string literal", rhs)
            return self._eq_ne(op, ctx.privilege == rhs.text)
        if name == "guru_mode":
            if rhs.kind is not _NUMBER:
                raise self._err("expected number", rhs)
            value = self._number(rhs)
            if value not in (0, 1):
                raise self._err("expected 0 or 1", op)
            if not (op.kind is _OP and op.text in ("==", "!=")):
                raise self._err("expected '==' or '!='", op)
            return self._compare(int(ctx.guru), op, value)
        if name in ("arch", "runtime"):
            if rhs.kind is not _STRING:
                raise self._err("expected string literal", rhs)
            target = ctx.arch if name == "arch" else ctx.runtime
            return self._eq_ne(op, _fnmatch(rhs.text, target))
        if name is not None and name.startswith("CONFIG_"):
            if rhs.kind is _STRING:
                return self._eq_ne(op, _fnmatch(rhs.text, ctx.config_value(name)))
            if rhs.kind is _NUMBER:
                left = _strtoll(ctx.config_value(name))
                if left is None:
                    raise self._err("Config option value not a number", lhs)
                return self._compare(left, op, self._number(rhs))
            if rhs.kind is _IDENT and rhs.text.startswith("CONFIG_"):
                ls, rs = ctx.config_value(name), ctx.config_value(rhs.text)
                li, ri = _strtoll(ls), _strtoll(rs)
                if li is not None and ri is not None:
                    return self._compare(li, op, ri)
                return self._compare(ls, op, rs)
            raise self._err(
                "expected string, number literal or other CONFIG_... as right side operand", rhs
            )
        if lhs.kind is _STRING and rhs.kind is _STRING:
            return self._compare(lhs.text, op, rhs.text)
        if lhs.kind is _NUMBER and rhs.kind is _NUMBER:
            return self._compare(self._number(lhs), op, self._number(rhs))
        if lhs.kind is _STRING and rhs.kind is _NUMBER and op.kind is _OP:
            raise self._err("expected string literal as right value", rhs)
        if lhs.kind is _NUMBER and rhs.kind is _STRING and op.kind is _OP:
            raise self._err("expected number literal as right value", rhs)
        raise self._err(_BAD_LHS, lhs)

    # -- driver ------------------------------------------------------------------------------

    def run(self) -> tuple[list[Item], list[bool]]:
        """The preprocessed stream: tokens, and errors where they occur."""
        items: list[Item] = []
        spaced: list[bool] = []
        toks = self.toks
        raw_spaced = self.spaced
        n = len(toks)
        op = _OP
        budget = n + 64  # every error consumes input; this only guards against a bug looping
        while True:
            if not self.acts and not self.pp_state:
                i = self.i
                start = i
                while i < n:
                    t = toks[i]
                    if t.kind is op and (t.text[0] == "@" or t.text in _PP_OPS):
                        break
                    i += 1
                if i > start:
                    items.extend(toks[start:i])
                    spaced.extend(raw_spaced[start:i])
                    self.i = i
                if i >= n:
                    break
            try:
                t = self.scan_pp()
            except ParseError as e:
                items.append(e)
                spaced.append(False)
                budget -= 1
                if budget < 0:
                    break
                continue
            if t is None:
                break
            items.append(t)
            spaced.append(self.last_spaced)
        return items, spaced


def keywords_for(ctx: ParseContext) -> frozenset[str]:
    """Reserved words under ``--compatible`` (``private`` only from 3.0)."""
    return BASE_KEYWORDS | {"private"} if ctx.has_version("3.0") else BASE_KEYWORDS


def preprocess(text: str, name: str, ctx: ParseContext) -> tuple[list[Item], list[bool], Lexer, Preprocessor]:
    """Lex and preprocess one file (see :class:`Preprocessor`)."""
    lexer = Lexer(
        text,
        name,
        ctx.args,
        keywords_for(ctx),
        hex_escapes=ctx.has_version("2.3"),
        glue_across_comments=ctx.has_version("2.0"),
    )
    tokens, spaced = lexer.tokens()
    pre = Preprocessor(tokens, spaced, ctx, lexer.eof_token())
    items, out_spaced = pre.run()
    return items, out_spaced, lexer, pre


class MacroFileError(Exception):
    """A library macro file was rejected; ``errors`` say why."""

    def __init__(self, errors: list[ParseError]) -> None:
        super().__init__(errors[0].message if errors else "bad macro file")
        self.errors = errors


def parse_library_macros(text: str, name: str, ctx: ParseContext) -> dict[str, Macro]:
    """The ``@define``s of a tapset ``*.stpm`` file, to be merged into
    ``ctx.library_macros``.  Such a file may contain nothing but macro
    definitions (possibly inside conditionals); a macro already defined by
    another library file is an error, and then none of this file's macros
    are taken (SystemTap's all-or-nothing rule)."""
    items, _, _, pre = preprocess(text, name, ctx)
    errors: list[ParseError] = [i for i in items if isinstance(i, ParseError)]
    if not errors:
        for i in items:
            if isinstance(i, Token):
                errors.append(ParseError(f"unexpected token in library macro file '{name}'", i))
                break
    if not errors:
        for mname, macro in pre.namespace.items():
            if mname in ctx.library_macros:
                err = ParseError(f"duplicate definition of library macro '@{mname}'", macro.tok)
                first = ctx.library_macros[mname].tok
                err.chain.append(ParseError(f"macro '@{mname}' first defined here", first))
                errors.append(err)
                break
    if errors:
        raise MacroFileError(errors)
    for macro in pre.namespace.values():
        macro.library = True
    return dict(pre.namespace)
