"""Pass 2 (elaboration): parsed files in, a resolved and typed script out.

The driver only sequences the sub-passes, each in its own file:

1. :mod:`probepoints` / :mod:`aliases` -- every probe point of the user's
   files is matched against the probe families and aliases (tapset files are
   pulled in on demand: using one of their aliases, globals or functions
   brings in the whole file, its probes included);
2. :mod:`resolve` -- locals, globals, functions, arity;
3. :mod:`optimize` -- ``@defined`` folding, and unless ``-u`` the optimiser
   behaviour the corpus depends on, including probe elision;
4. :mod:`types` -- type inference with SystemTap's messages;
5. :mod:`checks` -- foreach mutation, statistics, regexes;
6. :mod:`unread` -- the synthetic display of globals never read;
7. the privilege checks (:mod:`pystap.lang.privcheck`, owned separately) --
   the probe-family hook itself runs inside step 1, before a family builds.

Errors are collected; :func:`elaborate` raises :class:`ElaborationError`
holding all of them (``--semantic-keep-going`` prints the whole list).
Warnings are returned as data on the result (and on the error).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pystap.lang import ast
from pystap.lang.diagnostics import SemanticError, StapError, Warning_
from pystap.privilege import PR_STAPDEV
from pystap.probes.registry import BuildContext, Registry


@dataclass
class ElabOptions:
    """What pass 2 needs from the command line."""

    privilege: int = PR_STAPDEV
    guru: bool = False
    unoptimized: bool = False  # -u
    suppress_warnings: bool = False  # -w
    warnings_as_errors: bool = False  # -W
    keep_going: bool = False  # --semantic-keep-going
    target_pid: int | None = None  # -x / -c
    target_cmd: str | None = None  # -c: unspecified ``process`` probes name its program
    registry: Registry | None = None  # default: every family in pystap.probes
    build_context: BuildContext | None = None
    check_privilege: bool = True  # run pystap.lang.privcheck on the result
    trusted_tapset_dirs: list[str] | None = None


class ElaborationError(StapError):
    """Pass 2 failed; ``errors`` lists every error, ``warnings`` the warnings so far."""

    def __init__(self, errors: list[StapError], warnings: list[Warning_]) -> None:
        first = errors[0] if errors else SemanticError("analysis failed")
        super().__init__(first.message, first.tok, first.kind, list(first.chain))
        self.errors = list(errors)
        self.warnings = list(warnings)


@dataclass
class _Probe:
    derived: Any  # probepoints.Derived
    probe: ast.Probe
    scope: Any = None
    node: ast.DerivedProbe | None = None


@dataclass
class _State:
    options: ElabOptions
    files: list[ast.StapFile]
    included: list[ast.StapFile] = field(default_factory=list)
    included_ids: set[int] = field(default_factory=set)
    errors: list[StapError] = field(default_factory=list)
    warnings: list[Warning_] = field(default_factory=list)


def elaborate(files: list[ast.StapFile], options: ElabOptions | None = None) -> ast.ElaboratedScript:
    """Elaborate ``files`` (user files and tapset files; tapset files are used on demand)."""
    opts = options or ElabOptions()
    try:
        return _elaborate(files, opts)
    except RecursionError:
        raise ElaborationError([SemanticError("script nesting too deep for pass 2")], []) from None
    except ElaborationError as e:
        if opts.keep_going and opts.check_privilege:
            _privilege_after_failure(files, opts, e)
        raise


def _privilege_after_failure(files: list[ast.StapFile], opts: ElabOptions, e: ElaborationError) -> None:
    """--semantic-keep-going lists every privilege violation, also when an earlier
    step failed: the privilege module checks the parsed files (owned there)."""
    from pystap.lang.privcheck import check_privilege

    kwargs: dict[str, Any] = {}
    if opts.trusted_tapset_dirs is not None:
        kwargs["trusted_dirs"] = opts.trusted_tapset_dirs
    seen = {(x.message, str(x.tok.loc) if x.tok else "") for x in e.errors}
    for extra in check_privilege(files, opts.privilege, opts.guru, **kwargs):
        if (extra.message, str(extra.tok.loc) if extra.tok else "") not in seen:
            e.errors.append(extra)


def _elaborate(files: list[ast.StapFile], opts: ElabOptions) -> ast.ElaboratedScript:
    from pystap.lang import optimize, resolve, types
    from pystap.lang.aliases import install
    from pystap.lang.checks import Checks
    from pystap.lang.dump import resolution_order
    from pystap.lang.probepoints import Resolver
    from pystap.lang.unread import mark_usage, unread_probes
    from pystap.probes.registry import default_registry

    st = _State(opts, files)
    pending: list[ast.StapFile] = []

    def include(f: ast.StapFile) -> None:
        if id(f) not in st.included_ids:
            st.included_ids.add(id(f))
            st.included.append(f)
            pending.append(f)

    for f in files:
        if not f.tapset:
            include(f)

    registry = opts.registry or default_registry()
    root = registry.overlay()
    install(root, files)
    ctx = opts.build_context or BuildContext()
    ctx.privilege = opts.privilege
    ctx.guru = opts.guru
    if opts.target_pid is not None:
        ctx.target_pid = opts.target_pid
    if opts.target_cmd is not None:
        ctx.target_cmd = opts.target_cmd
    resolver = Resolver(root, ctx, include)
    symbols = resolve.Symbols(files, include)

    functions: list[ast.FunctionDecl] = []
    fn_seen: set[int] = set()
    fn_queue: list[ast.FunctionDecl] = []

    def on_function(fn: ast.FunctionDecl) -> None:
        if id(fn) not in fn_seen:
            fn_seen.add(id(fn))
            functions.append(fn)
            fn_queue.append(fn)

    res = resolve.Resolution(symbols, st.errors, on_function)

    # 1+2: derive probes and resolve bodies, until no new file is pulled in
    derived: list[_Probe] = []
    while pending or fn_queue:
        while pending:
            f = pending.pop(0)
            for probe in f.probes:
                for d in resolver.derive_probe(probe, st.errors):
                    item = _Probe(d, probe)
                    derived.append(item)
                    item.scope = res.probe(d.body, d.condition, d.built, d.built.provides)
        while fn_queue and not pending:
            fn = fn_queue.pop(0)
            scope = res.function(fn)
            fn.locals = scope.locals

    # globals visible in the session: those of included files
    globals_: list[ast.GlobalDecl] = []
    seen_globals: set[int] = set()
    for f in st.included:
        for g in f.globals:
            if id(g) not in seen_globals:
                seen_globals.add(id(g))
                globals_.append(g)

    # warnings the probe families gave while building (BuildContext.warnings)
    st.warnings.extend(Warning_(message, tok) for message, tok in ctx.warnings)
    ctx.warnings.clear()

    if st.errors and not opts.keep_going:
        raise ElaborationError(st.errors, _visible_warnings(st))

    probes: list[ast.DerivedProbe] = []
    for item in derived:
        d = item.derived
        node = ast.DerivedProbe(
            tok=item.probe.tok,
            point=d.built.point,
            family=d.built.family,
            params=dict(d.built.params),
            body=d.body,
            origin=item.probe.points[0]
            if item.probe.points
            else ast.ProbePoint(tok=item.probe.tok, components=[]),
            locals=list(item.scope.locals),
            condition=d.condition,
            sequence=d.built.sequence,
            myproc=d.built.myproc,
            context_vars=dict(d.built.context_vars),
            derivation=list(d.derivation),
            provided=dict(d.built.provides),
            point_mark=d.mark,
        )
        item.node = node
        probes.append(node)

    # 3: @defined always; the optimiser unless -u
    for p in probes:
        optimize.fold_defined(p.body, res.target_errors)
        if p.condition is not None:
            p.condition = optimize.fold_defined(p.condition, res.target_errors)
    for fn in functions:
        optimize.fold_defined(fn.body, res.target_errors)
    if not opts.unoptimized:  # stap warns from its optimiser (semantic_pass_opt2), so not under -u
        _never_assigned(st, probes, functions, [g.name for g in globals_])
    if not opts.unoptimized:
        probes = _optimize(st, probes, functions)
        if not probes:
            _no_probes(st)
            raise ElaborationError(st.errors, _visible_warnings(st))
    elif not probes:
        _no_probes(st)
        raise ElaborationError(st.errors, _visible_warnings(st))
    functions = _reachable_functions(probes)
    used_globals = _reachable_globals(probes, functions)
    globals_ = [g for g in globals_ if id(g) in used_globals]

    # 4+5: types, then the other checks
    types.Inference(st.errors, res.target_errors, res.write_errors).run(probes, functions, globals_)
    if not st.errors or opts.keep_going:
        Checks(st.errors).run(probes, functions, globals_)
    if st.errors:
        raise ElaborationError(st.errors, _visible_warnings(st))

    # 6: unread globals, displayed (and listed by -p2) in resolution order
    globals_ = resolution_order(probes, functions, globals_)
    mark_usage(probes, functions, globals_)
    probes.extend(unread_probes(globals_, {f.name for f in st.included if f.tapset}))

    builtins = sorted(
        {id(b): b for b in _builtins_used(probes, functions)}.values(), key=lambda b: (b.name, len(b.params))
    )
    script = ast.ElaboratedScript(
        tok=files[0].tok if files else probes[0].tok,
        files=list(st.included),
        globals=globals_,
        functions=functions,
        probes=probes,
        embeds=[e for f in st.included for e in f.embeds],
        privilege=opts.privilege,
        guru=opts.guru,
        script_digest=_digest(st.included, opts),
        builtins=builtins,
    )
    script.user_memory_functions = sorted({b.name for b in builtins if b.user_memory})

    # 7: privilege checks owned by the privilege module (probe families were checked in 1)
    if opts.check_privilege:
        _privilege(st, script)
    if opts.warnings_as_errors and st.warnings:
        for w in st.warnings:
            st.errors.append(SemanticError(f"{w.message} (warning treated as error)", w.tok))
    if st.errors:
        raise ElaborationError(st.errors, _visible_warnings(st))
    script.warnings = _visible_warnings(st)
    return script


def _no_probes(st: _State) -> None:
    """ "no probes found" -- unless earlier errors (kept with --semantic-keep-going) explain it."""
    if not st.errors:
        st.errors.append(SemanticError("no probes found"))


def _visible_warnings(st: _State) -> list[Warning_]:
    if st.options.suppress_warnings:
        return []
    seen: set[tuple[str, int]] = set()
    out = []
    for w in st.warnings:
        key = (w.message, id(w.tok))
        if key not in seen:
            seen.add(key)
            out.append(w)
    return out


def _optimize(
    st: _State, probes: list[ast.DerivedProbe], functions: list[ast.FunctionDecl]
) -> list[ast.DerivedProbe]:
    from pystap.lang.optimize import Optimizer, body_is_empty

    opt = Optimizer(st.warnings)
    blocks = [fn for fn in functions if isinstance(fn.body, ast.Block)]
    for rounds in range(8):
        # stap's relaxation loop: each pass over every probe, then every function, and
        # warnings only from the first round
        opt.changed = False
        opt.quiet = rounds > 0
        for p in probes:
            opt.elide_unread(p.body, p.locals)
        for fn in blocks:
            opt.elide_unread(fn.body, fn.locals)  # type: ignore[arg-type]
        for p in probes:
            opt.reduce(p.body)
        for fn in blocks:
            had_code = not body_is_empty(fn.body)
            opt.reduce(fn.body)  # type: ignore[arg-type]
            if had_code and body_is_empty(fn.body):
                opt.warn(f"side-effect-free function '{fn.name}'", fn.tok)
        if not opt.changed:
            break
    kept = []
    for p in probes:
        if body_is_empty(p.body):
            st.warnings.append(Warning_(f"Probe '{p.point}' has been elided", p.tok))
            continue
        kept.append(p)
    return kept


def levenshtein(a: str, b: str) -> int:
    """SystemTap's edit distance (``util.cxx``): insertions, deletions and substitutions
    cost 2, a substitution that only changes case costs 1."""
    prev = [2 * j for j in range(len(b) + 1)]
    for i, ca in enumerate(a, 1):
        cur = [2 * i]
        for j, cb in enumerate(b, 1):
            if ca == cb:
                cur.append(prev[j - 1])
            else:
                sub = 1 if ca.lower() == cb.lower() else 2
                cur.append(min(prev[j - 1] + sub, prev[j] + 2, cur[j - 1] + 2))
        prev = cur
    return prev[-1]


def levenshtein_suggest(target: str, names: Iterable[str], limit: int = 5) -> str:
    """``levenshtein_suggest``: the ``limit`` closest names, by score then name, comma-joined."""
    scored = sorted((levenshtein(target, n), n) for n in set(names) if n)
    return ", ".join(n for _, n in scored[:limit])


def _never_assigned(st: _State, probes: list[ast.DerivedProbe], functions: list[ast.FunctionDecl],
                    global_names: list[str]) -> None:
    # locals a probe family provides (syscall ``name``, ``argstr`` ...) are assigned by the runtime
    bodies: list[tuple[ast.Node, list[ast.LocalVar], Any, list[str]]] = [
        (p.body, p.locals, p.provided, []) for p in probes]
    bodies += [(fn.body, fn.locals, {}, [prm.name for prm in fn.params]) for fn in functions]
    for body, locals_, provided, params in bodies:
        written: set[int] = set()
        first_read: dict[int, ast.Symbol] = {}
        targets: set[int] = set()
        for n in ast.walk(body):
            t = ast.write_target(n)
            if isinstance(n, ast.Foreach):
                for s in [*n.indexes, *([n.value] if n.value else [])]:
                    targets.add(id(s))
                    if s.referent is not None:
                        written.add(id(s.referent))
            elif isinstance(n, ast.TryCatch) and n.catch_var is not None:
                targets.add(id(n.catch_var))
                if n.catch_var.referent is not None:
                    written.add(id(n.catch_var.referent))
            if isinstance(t, ast.Symbol) and t.referent is not None:
                written.add(id(t.referent))
                if isinstance(n, ast.Assign) and n.op == "=":
                    targets.add(id(t))
        for n in ast.walk(body):
            if isinstance(n, ast.Symbol) and id(n) not in targets and n.referent is not None:
                first_read.setdefault(id(n.referent), n)
        for v in locals_:
            if id(v) not in written and id(v) in first_read and v.tok.loc.file != "<synthetic>" \
                    and v.name not in provided:
                sym = first_read[id(v)]
                # stap suggests the closest other locals, parameters and globals (top 5)
                others = [o.name for o in locals_] + params + global_names
                sugs = levenshtein_suggest(v.name, (n for n in others if n != v.name))
                hint = f" (similar: {sugs})" if sugs else ""
                st.warnings.append(Warning_(f"never-assigned local variable '{v.name}'{hint}", sym.tok))


def _reachable_functions(probes: list[ast.DerivedProbe]) -> list[ast.FunctionDecl]:
    out: list[ast.FunctionDecl] = []
    seen: set[int] = set()
    stack: list[ast.Node] = [p.body for p in probes]
    while stack:
        root = stack.pop()
        for n in ast.walk(root):
            if isinstance(n, ast.FunctionCall):
                for fn in n.referents:
                    if id(fn) not in seen:
                        seen.add(id(fn))
                        out.append(fn)
                        stack.append(fn.body)
    return out


def _reachable_globals(probes: list[ast.DerivedProbe], functions: list[ast.FunctionDecl]) -> set[int]:
    out: set[int] = set()
    roots: list[ast.Node] = [p.body for p in probes] + [fn.body for fn in functions]
    roots += [p.condition for p in probes if p.condition is not None]
    for root in roots:
        for n in ast.walk(root):
            if isinstance(n, ast.Symbol) and isinstance(n.referent, ast.GlobalDecl):
                out.add(id(n.referent))
    return out


def _builtins_used(probes: list[ast.DerivedProbe], functions: list[ast.FunctionDecl]) -> list[Any]:
    out = []
    roots: list[ast.Node] = [p.body for p in probes] + [fn.body for fn in functions]
    for root in roots:
        for n in ast.walk(root):
            if isinstance(n, ast.FunctionCall) and n.builtin is not None:
                out.append(n.builtin)
    return out


def _digest(files: list[ast.StapFile], opts: ElabOptions) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode("utf-8", "surrogateescape") + b"\0")
        h.update(f.source.encode("latin-1", "replace") + b"\0")
    h.update(f"{opts.privilege}:{int(opts.guru)}:{int(opts.unoptimized)}".encode())
    return h.hexdigest()


def _privilege(st: _State, script: ast.ElaboratedScript) -> None:
    try:
        from pystap.lang.privcheck import check_privilege
    except ImportError:
        return
    kwargs: dict[str, Any] = {}
    if st.options.trusted_tapset_dirs is not None:
        kwargs["trusted_dirs"] = st.options.trusted_tapset_dirs
    st.errors.extend(check_privilege(script, st.options.privilege, st.options.guru, **kwargs))
