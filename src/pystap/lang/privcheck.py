"""Pass-2 privilege checks over a script: functions, guru constructs, probe families.

What this pass decides, and why it is one pass:

* **Functions.**  Every built-in or tapset function with native or embedded
  code declares a tag (:class:`~pystap.policy.functions.FunctionPrivilege`)
  as data.  At stapusr only ``unprivileged`` and ``myproc-unprivileged``
  functions may be reached; a ``guru`` function needs ``-g`` unless it is
  called from trusted tapset code.  Script functions have no tag: the check
  follows their calls, so a violation is found however deep it is (through
  other functions and through probe aliases).  The stapusr error names the
  function's declaration, the guru error the call site -- as SystemTap does.
* **Trust in files.**  Only the built-in tapset directory (and, for stapdev,
  the directories the environment adds) is trusted input.  A directory given
  with ``-I`` is the user's: below stapdev its files are checked like the
  user's script (no embedded code, no guru operators) and a tag it declares
  never makes a function unprivileged.
* **Guru constructs** (embedded code and expressions, ``@const``,
  ``@kregister``, ``@kderef``, writes to target variables) without ``-g``,
  each with SystemTap's message.  The parser may refuse some of them in the
  user's script already; this pass covers the files the parser trusted and
  anything that reaches pass 2, so each construct is reported once here.
* **Defence in depth for probe families**: every derived probe's family is
  checked against the policy table again, and the run-time confinement
  markers are set (``DerivedProbe.myproc``, ``user_memory_functions``) for
  the loader and the runtime.

Errors are collected, never raised, so ``--semantic-keep-going`` lists every
violation of a run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pystap.lang import ast
from pystap.lang.diagnostics import SemanticError, StapError
from pystap.lang.tokens import Token
from pystap.policy import probes as probe_policy
from pystap.policy.functions import FunctionPrivilege, allowed_at_level, needs_guru, reads_user_memory
from pystap.policy.guru import MESSAGES as GURU
from pystap.privilege import Level

MSG_FUNC_LEVEL = "function may not be used when --privilege={level} is specified"
MSG_FUNC_GURU = "function may not be used unless -g is specified"
MSG_EXPR_LEVEL = "embedded expression may not be used when --privilege={level} is specified"
MSG_EXPR_GURU = "embedded expression may not be used unless -g is specified"
MSG_EMBEDDED_CODE = GURU["embedded-code"]
MSG_EMBEDDED_EXPR = GURU["embedded-expr"]
MSG_WRITE_TARGET = GURU["write-target"]
MSG_WRITE_CAST = GURU["write-cast"]
MSG_WRITE = GURU["write-autocast"]
MSG_WRITE_TRACEPOINT = GURU["write-tracepoint"]
MSG_WRITE_VERDICT = GURU["write-verdict"]
MSG_ABSOLUTE = GURU["absolute-probe"]
MSG_PROBE_LEVEL = "probe point is not allowed for --privilege={level}"

GURU_AT_OPS = ("@const", "@kregister", "@kderef")


BuiltinLookup = Callable[[str, int], object | None]


def default_builtin_lookup(fn_name: str, arity: int) -> object | None:
    """The privilege tag of a native built-in function (``None``: not a built-in)."""
    from pystap.tapset import builtins

    entry = builtins.lookup(fn_name, arity)
    return None if entry is None else entry.privilege


def builtin_tapset_dir() -> Path:
    """The package's own tapset directory: the one always-trusted source of tags."""
    import pystap.tapset

    return Path(pystap.tapset.__file__).resolve().parent


@dataclass
class _Trust:
    """Which files are trusted (parsed as privileged), decided once per run."""

    level: Level
    guru: bool
    trusted_dirs: tuple[Path, ...]
    by_name: dict[str, bool] = field(default_factory=dict)

    def file(self, f: ast.StapFile) -> bool:
        if not f.tapset:
            # The user's own script: privileged only with -g, which only stapdev has.
            return self.guru
        if _under(f.name, self.trusted_dirs):
            return True
        # A tapset from elsewhere (-I): the user's input unless the session is stapdev,
        # where SystemTap trusts every tapset directory (stapdev may do anything).
        return self.level is Level.STAPDEV and f.privileged

    def name(self, file_name: str) -> bool:
        return self.by_name.get(file_name, False)


def _under(file_name: str, dirs: Sequence[Path]) -> bool:
    if not file_name or not os.path.isabs(file_name):
        return False
    try:
        real = Path(os.path.realpath(file_name))
    except (OSError, ValueError):
        return False
    return any(real.is_relative_to(d) for d in dirs)


def _outermost(tok: Token) -> Token:
    """Follow macro-expansion chains to the invocation the user wrote."""
    while tok.chain is not None:
        tok = tok.chain
    return tok


def _level(level: Level | int) -> Level:
    try:
        return Level(int(level))
    except ValueError:
        return Level.STAPUSR  # an unknown level gets the strictest rules


class _Checker:
    def __init__(
        self,
        files: Sequence[ast.StapFile],
        level: Level,
        guru: bool,
        builtin_tags: Mapping[str, FunctionPrivilege | str],
        trusted_dirs: Sequence[Path],
        builtin_lookup: BuiltinLookup,
    ) -> None:
        self.level = level
        self.label = level.label
        self.guru = guru and level is Level.STAPDEV  # -g below stapdev is refused; fail closed
        self.builtin_tags = builtin_tags
        self.builtin_lookup = builtin_lookup
        self.trust = _Trust(level, self.guru, tuple(Path(os.path.realpath(d)) for d in trusted_dirs))
        self.files = list(files)
        self.decl_file: dict[int, ast.StapFile] = {}
        self.by_name: dict[str, list[ast.FunctionDecl]] = {}
        for f in self.files:
            self.trust.by_name[f.name] = self.trust.file(f)
            for fn in f.functions:
                self.decl_file[id(fn)] = f
                self.by_name.setdefault(fn.name, []).append(fn)
        self.errors: list[StapError] = []
        self._seen_errors: set[tuple[str, str, int, int]] = set()
        self.user_memory: set[str] = set()
        self._visited_functions: set[int] = set()
        self._pending: list[ast.FunctionDecl] = []

    # -- reporting -------------------------------------------------------------------------

    def error(self, message: str, tok: Token | None) -> None:
        key = (message, tok.loc.file, tok.loc.line, tok.loc.col) if tok else (message, "", 0, 0)
        if key in self._seen_errors:
            return
        self._seen_errors.add(key)
        self.errors.append(SemanticError(message, tok))

    # -- trust -----------------------------------------------------------------------------

    def trusted_token(self, tok: Token) -> bool:
        return self.trust.name(_outermost(tok).loc.file)

    def function_tag(self, fn: ast.FunctionDecl) -> FunctionPrivilege | None:
        """The tag of a function with native/embedded code; ``None`` for script functions."""
        if isinstance(fn.body, ast.Block):
            return None
        declared = getattr(fn, "privilege", None)
        if declared is None:
            declared = self.builtin_tags.get(fn.name)
        tag = FunctionPrivilege.parse(declared)
        src = self.decl_file.get(id(fn))
        trusted = self.trust.file(src) if src is not None else self.trust.name(fn.tok.loc.file)
        if not trusted and tag in (FunctionPrivilege.UNPRIVILEGED, FunctionPrivilege.MYPROC):
            # Untrusted input never lowers a requirement.
            tag = FunctionPrivilege.PRIVILEGED
        return tag

    # -- functions, transitively -----------------------------------------------------------

    def check_tag(self, tag: FunctionPrivilege, decl_tok: Token | None, call: ast.FunctionCall) -> None:
        if reads_user_memory(tag):
            self.user_memory.add(call.name)
        if not allowed_at_level(tag, self.level):
            self.error(MSG_FUNC_LEVEL.format(level=self.label), decl_tok or call.tok)
        if needs_guru(tag) and not self.guru and not self.trusted_token(call.tok):
            self.error(MSG_FUNC_GURU, call.tok)

    def call(self, call: ast.FunctionCall) -> None:
        resolved = getattr(call, "builtin", None)
        targets: list[ast.FunctionDecl] = []
        if resolved is None:
            targets = list(call.referents) or [
                fn for fn in self.by_name.get(call.name, []) if len(fn.params) == len(call.args)
            ]
        if not targets:
            native = self.builtin_tags.get(call.name)
            if native is None and resolved is not None:
                native = getattr(resolved, "privilege", None) or FunctionPrivilege.PRIVILEGED
            if native is None:
                native = self.builtin_lookup(call.name, len(call.args))
            if native is not None:
                self.check_tag(FunctionPrivilege.parse(native), None, call)
            # else: unresolved; the elaborator reports that, not a privilege question.
            return
        for fn in targets:
            tag = self.function_tag(fn)
            if tag is not None:
                self.check_tag(tag, fn.tok, call)
            self.function(fn)

    def function(self, fn: ast.FunctionDecl) -> None:
        """Queue a reached function (a worklist, so call chains of any depth are fine)."""
        if id(fn) in self._visited_functions:
            return
        self._visited_functions.add(id(fn))
        if isinstance(fn.body, ast.EmbeddedCode):
            if not self.trusted_token(fn.body.tok):
                self.error(MSG_EMBEDDED_CODE, fn.body.tok)
            return
        self._pending.append(fn)

    def body(self, root: ast.Node, family: str | None) -> None:
        """A reachable body and every function it reaches, transitively."""
        self._walk(root, family)
        while self._pending:
            fn = self._pending.pop()
            self._walk(fn.body, None)

    def _walk(self, root: ast.Node, family: str | None) -> None:
        """Everything one body does: calls (queued), guru constructs, writes."""
        for n in ast.walk(root):
            if isinstance(n, ast.FunctionCall):
                self.call(n)
            elif isinstance(n, ast.EmbeddedExpr):
                self.embedded_expr(n)
            elif isinstance(n, ast.EmbeddedCode):
                if not self.trusted_token(n.tok):
                    self.error(MSG_EMBEDDED_CODE, n.tok)
            elif isinstance(n, ast.AtOp) and n.name in GURU_AT_OPS:
                if not self.trusted_token(n.tok):
                    self.error(GURU[n.name], n.tok)
            elif not self.guru and isinstance(n, (ast.Assign, ast.Crement)):
                self.write(n, family)

    def embedded_expr(self, n: ast.EmbeddedExpr) -> None:
        if not self.trusted_token(n.tok):
            self.error(MSG_EMBEDDED_EXPR, n.tok)
            return
        tag = FunctionPrivilege.parse(getattr(n, "privilege", None))
        if not allowed_at_level(tag, self.level):
            self.error(MSG_EXPR_LEVEL.format(level=self.label), n.tok)
        if needs_guru(tag) and not self.guru:
            self.error(MSG_EXPR_GURU, n.tok)

    def embeds(self, embeds: Iterable[ast.EmbeddedTopLevel]) -> None:
        """Top-level embedded code goes into the module whenever its file is used."""
        for e in embeds:
            if not self.trusted_token(e.tok):
                self.error(MSG_EMBEDDED_CODE, e.tok)

    def write(self, n: ast.Assign | ast.Crement, family: str | None) -> None:
        """Writes to the probed program's state need -g (SystemTap checks the session flag)."""
        target = n.target if isinstance(n, ast.Assign) else n.operand
        if isinstance(target, ast.TargetSymbol):
            if family == "netfilter" and target.name.lstrip("$") == "verdict":
                self.error(MSG_WRITE_VERDICT, target.tok)
            elif family == "kernel.trace":
                self.error(MSG_WRITE_TRACEPOINT.format(name=target.name), target.tok)
            else:
                self.error(MSG_WRITE_TARGET, target.tok)
        elif isinstance(target, ast.AtVar):
            self.error(MSG_WRITE_TARGET, target.tok)
        elif isinstance(target, ast.CastOp):
            self.error(MSG_WRITE_CAST, target.tok)
        elif isinstance(target, ast.Autocast):
            self.error(MSG_WRITE, target.tok)

    # -- derived probes ----------------------------------------------------------------------

    def derived_probe(self, p: ast.DerivedProbe) -> None:
        row = probe_policy.lookup(p.family)
        last = p.origin.components[-1].tok if p.origin.components else p.origin.tok
        if row is None or not probe_policy.family_allowed(p.family, self.level):
            self.error(MSG_PROBE_LEVEL.format(level=self.label), last)
        elif row.needs_guru and not self.guru and not self.trusted_token(p.origin.tok):
            self.error(MSG_ABSOLUTE, last)
        if row is not None and row.myproc:
            p.myproc = True


def _family_of_points(points: Sequence[ast.ProbePoint]) -> str | None:
    """The family whose writes have their own message, from probe points as written."""
    for pp in points:
        names = [c.name for c in pp.components]
        if names[:1] == ["netfilter"]:
            return "netfilter"
        if names[:1] == ["kernel"] and len(names) > 1 and names[1] in ("trace", "tracepoint"):
            return "kernel.trace"
    return None


def check_privilege(
    script: ast.ElaboratedScript | Sequence[ast.StapFile],
    level: Level | int,
    guru: bool,
    *,
    builtin_tags: Mapping[str, FunctionPrivilege | str] | None = None,
    trusted_dirs: Sequence[Path | str] | None = None,
    builtin_lookup: BuiltinLookup | None = None,
) -> list[StapError]:
    """Every privilege violation of ``script`` at ``level``; empty means allowed.

    ``script`` is the elaborated script (preferred: calls are resolved, alias
    bodies merged into derived probes) or the parsed files when elaboration
    did not get that far.  ``builtin_tags`` maps native functions (those
    without a declaration of their own) to their tag; a declaration may also
    carry a ``privilege`` attribute; ``builtin_lookup(name, arity)`` answers for
    calls that resolve to no declaration (default: the built-in tapset table).
    ``trusted_dirs`` are the tapset
    directories whose files are trusted (default: the built-in one).

    For an elaborated script the confinement markers are filled in as a side
    effect: ``DerivedProbe.myproc`` for probes that must only fire for the
    user's own processes, and ``user_memory_functions`` (sorted) for the
    functions that read user memory.
    """
    lvl = _level(level)
    dirs = [Path(d) for d in trusted_dirs] if trusted_dirs is not None else [builtin_tapset_dir()]
    files = script.files if isinstance(script, ast.ElaboratedScript) else list(script)
    checker = _Checker(files, lvl, guru, builtin_tags or {}, dirs, builtin_lookup or default_builtin_lookup)

    if isinstance(script, ast.ElaboratedScript):
        checker.embeds(e for f in files for e in f.embeds)
        for p in script.probes:
            checker.derived_probe(p)
            checker.body(p.body, p.family)
            if p.condition is not None:
                checker.body(p.condition, p.family)
        # Only what a probe reaches is checked: a function nobody calls is
        # never translated, and SystemTap accepts it too.
        memory = set(script.user_memory_functions) | checker.user_memory
        script.user_memory_functions = sorted(memory)
    else:
        # Without elaboration, reachability is approximated: every probe and
        # alias of the user's own files, and what they call.
        for f in files:
            if f.tapset:
                continue  # tapset files count only where the user's code reaches them
            checker.embeds(f.embeds)
            for fn in f.functions:
                if isinstance(fn.body, ast.EmbeddedCode):
                    checker.function(fn)
            for pr in f.probes:
                checker.body(pr.body, _family_of_points(pr.points))
            for a in f.aliases:
                for b in (a.prologue, a.epilogue):
                    if b is not None:
                        checker.body(b, _family_of_points(a.points))
    return checker.errors

