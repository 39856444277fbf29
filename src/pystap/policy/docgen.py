"""Generate ``docs/unprivileged.md`` from the policy tables, so the page cannot drift.

The page answers "what can I trace as an unprivileged user?".  Every list in
it is produced from the same data the translator and the loader enforce:
the probe-family table, the option table, the environment rules and the
function tags of the built-in tapset.  A test compares the committed page
with :func:`render`; regenerate with ``python -m pystap.policy.docgen``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

from pystap.policy import environment, guru, options, probes
from pystap.policy.functions import FunctionPrivilege
from pystap.privilege import Level, contains

LEVELS = (Level.STAPUSR, Level.STAPSYS, Level.STAPDEV)
DOC_PATH = Path("docs") / "unprivileged.md"

_RULE_WORDS = {
    options.Rule.ALLOW: "yes",
    options.Rule.REFUSE: "no",
    options.Rule.CHECK: "checked",
}
_CLIENT_WORDS = {
    options.ClientRule.ALLOW: "yes",
    options.ClientRule.INVALID: "never",
    options.ClientRule.IS_INVALID: "never",
    options.ClientRule.BELOW_STAPDEV: "stapdev only",
    options.ClientRule.CHECK: "checked",
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _probe_section() -> list[str]:
    out = [
        "## Probe points",
        "",
        "A probe point a level may not use is refused in pass 2 with `probe point is not allowed for",
        "--privilege=<level>`, also when it is reached through an alias or a wildcard (an optional probe",
        "`?` is then silently dropped).  `pystap --privilege=stapusr --dump-probe-types` lists exactly the",
        "stapusr set.  `P` stands for `process`, `process(\"PATH\")` or `process(PID)`.",
        "",
        "| family | probe points | stapusr | stapsys | stapdev | why | on pystap |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in probes.FAMILIES:
        levels = ["yes" if contains(row.allowed, lv) else "no" for lv in LEVELS]
        if row.needs_guru:
            levels = [v if v == "no" else "with -g" for v in levels]
        pts = ", ".join(f"`{p}`" for p in row.patterns)
        avail = "yes" if row.available else f"no: {row.unavailable_reason}"
        cells = [row.family, _cell(pts), *levels, _cell(row.why), _cell(avail)]
        out.append(f"| {' | '.join(cells)} |")
    out += [
        "",
        "Probes marked *own processes* only fire, for a stapusr module, in processes whose effective",
        "user id is the user who loaded the module; reads of memory go only to that process's user space.",
        "",
    ]
    return out


def _function_section(functions: Iterable[tuple[str, FunctionPrivilege]]) -> list[str]:
    by_tag: dict[FunctionPrivilege, set[str]] = {tag: set() for tag in FunctionPrivilege}
    for fn_name, tag in functions:
        by_tag[tag].add(fn_name)

    def names(tag: FunctionPrivilege) -> str:
        return ", ".join(f"`{n}`" for n in sorted(by_tag[tag])) or "(none)"

    return [
        "## Functions",
        "",
        "Every built-in function declares a tag.  Functions written in the script language have none:",
        "they may be used exactly when everything they call may be used (checked through any depth of",
        "calls and through probe aliases).  A tapset directory given with `-I` is the user's own input:",
        "its functions are never unprivileged, whatever they declare, and below stapdev its files may not",
        "contain embedded code.",
        "",
        "| tag | stapusr | stapsys | stapdev |",
        "|---|---|---|---|",
        "| unprivileged | yes | yes | yes |",
        "| myproc-unprivileged | yes, own processes only | yes | yes |",
        "| privileged | no | yes | yes |",
        "| guru | no | with -g | with -g |",
        "",
        "Errors: `function may not be used when --privilege=stapusr is specified` (at the function's",
        "declaration), `function may not be used unless -g is specified` (at the call).",
        "",
        f"**unprivileged**: {names(FunctionPrivilege.UNPRIVILEGED)}",
        "",
        "**myproc-unprivileged** (read the current process's memory; the run time checks that the",
        f"process is the user's own): {names(FunctionPrivilege.MYPROC)}",
        "",
        f"**privileged** (stapsys and stapdev): {names(FunctionPrivilege.PRIVILEGED)}",
        "",
        f"**guru** (need `-g`): {names(FunctionPrivilege.GURU)}",
        "",
    ]


def _guru_section() -> list[str]:
    out = [
        "## Guru-only constructs",
        "",
        "`-g` is only for stapdev (`You can't specify -g and --privilege=<level> together.`), so these are",
        "refused at stapusr and stapsys, and at stapdev without `-g`:",
        "",
        "| construct | error |",
        "|---|---|",
    ]
    out += [f"| {c.construct} | `{c.message.replace('{name}', '<v>')}` |" for c in guru.GURU_CONSTRUCTS]
    return [*out, ""]


def _option_section() -> list[str]:
    out = [
        "## Command-line options",
        "",
        "Options form an allowlist: an option not in this table is refused below stapdev, and the",
        "verdict does not depend on the order of the arguments.  *checked* means the value must match",
        "the pattern shown (case-insensitive), else `ERROR: Safety pattern mismatch for …`.  The last",
        "column is what a compile server accepts from a client.",
        "",
        "| option | stapusr | stapsys | stapdev | from a client | pattern | why |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in options.OPTIONS:
        spell = " ".join(f"`{n}`" for n in row.names)
        if row.value_hint:
            spell += f" {row.value_hint}"
        cells = [_RULE_WORDS[row.levels[lv]] for lv in LEVELS]
        pattern = f"`{row.pattern.regex}`" if row.pattern is not None else ""
        out.append(f"| {_cell(spell)} | {' | '.join(cells)} | {_CLIENT_WORDS[row.client]} | {_cell(pattern)} "
                   f"| {_cell(row.why)} |")
    out += [
        "",
        "`--privilege=LEVEL` takes exactly `stapusr`, `stapsys` or `stapdev` and may be repeated only",
        "with the same level (`Privilege level may be set only once.`); `--unprivileged` is",
        "`--privilege=stapusr`.",
        "`--suppress-time-limits` needs `-g` anywhere on the command line; `-c` and `-x` exclude each other.",
        "",
    ]
    return out


def _environment_section() -> list[str]:
    out = [
        "## Environment",
        "",
        "These variables change what the translator reads or generates; below stapdev a run with any of",
        "them set is refused:",
        "",
    ]
    out += [f"* `{v.name}`: changes {v.what}." for v in environment.INPUT_VARIABLES]
    out += [
        f"* `{environment.XDG_DATA_DIRS}`: refused only when one of its directories contains "
        f"`{'/'.join(environment.XDG_TAPSET_SUBDIR)}`.",
        f"* `TMPDIR` must match `{options.PAT_TMPDIR.regex}` at every level.",
        "",
        "A compile server never uses the client's environment; only "
        + ", ".join(f"`{v}`" for v in environment.LOCALE_VARIABLES)
        + " are sent, each value matching `^[a-zA-Z0-9@_.=-]*$`.",
        "",
    ]
    return out


def _script_section(scripts: Iterable[tuple[str, FunctionPrivilege]]) -> list[str]:
    rows = sorted(scripts)
    if not rows:
        return []
    return [
        "Functions of the stock tapset written in the script language (such as the queue statistics of",
        "`queue_stats.stp`) carry no tag; what they call makes them:",
        "",
        ", ".join(f"`{n}` ({tag.value})" for n, tag in rows),
        "",
    ]


def render(functions: Iterable[tuple[str, FunctionPrivilege]],
           scripts: Iterable[tuple[str, FunctionPrivilege]] = ()) -> str:
    """The whole page; ``functions`` are (name, tag) pairs of the built-in functions,
    ``scripts`` the derived ones of the stock tapset's script functions."""
    lines = [
        "<!-- Generated by `python -m pystap.policy.docgen` from the policy tables; do not edit. -->",
        "",
        "# What can I trace as an unprivileged user?",
        "",
        "pystap knows three privilege levels, with SystemTap's names.  Members of the group `stapusr`",
        "translate with `--privilege=stapusr` (or `--unprivileged`); `stapsys` adds the whole kernel but",
        "no guru mode; `stapdev` (and root) may do everything.  The level's rules apply to whoever asks",
        "for it, root included: a module built for stapusr is checked as strictly as one built by a",
        "stapusr member, and it records its level so the loader can check it again.",
        "",
        "In short, at stapusr you can trace **your own processes** (`process.*` probes), use timers and",
        "`begin`/`end`/`error` probes, and call the functions listed as unprivileged below; you cannot",
        "probe the kernel, read kernel memory, or use embedded code.",
        "",
    ]
    lines += _probe_section()
    lines += _function_section(functions)
    lines += _script_section(scripts)
    lines += _guru_section()
    lines += _option_section()
    lines += _environment_section()
    return "\n".join(lines).rstrip("\n") + "\n"


def builtin_functions() -> list[tuple[str, FunctionPrivilege]]:
    """(name, tag) for every built-in function of the tapset table.

    Imported here, lazily, because the policy package otherwise imports no
    pass: only the documentation needs the function list.
    """
    from pystap.tapset import builtins

    return sorted({(fn.name, FunctionPrivilege.parse(fn.privilege)) for fn in builtins.BUILTINS.values()},
                  key=lambda item: (item[0], item[1].value))


_ORDER = (FunctionPrivilege.UNPRIVILEGED, FunctionPrivilege.MYPROC, FunctionPrivilege.PRIVILEGED,
          FunctionPrivilege.GURU)


def tapset_script_functions() -> list[tuple[str, FunctionPrivilege]]:
    """(name, derived tag) for the public script functions of the package's own tapset.

    A script function may be used exactly when everything it calls may be
    (``lang/privcheck.py`` enforces that per script); for the page the same
    rule is applied to the stock tapset once: the most restrictive tag of
    its callees, transitively, and PRIVILEGED for anything unresolved or
    embedded (fail closed).  Lazy imports, as in :func:`builtin_functions`.
    """
    from pystap.lang import ast
    from pystap.lang.context import ParseContext
    from pystap.tapset import builtins, loader

    files = loader.load_library(ParseContext(), (), None, use_cache=False)
    decls = {f.name: f for sf in files for f in sf.functions}
    native = {fn.name: FunctionPrivilege.parse(fn.privilege) for fn in builtins.BUILTINS.values()}
    memo: dict[str, FunctionPrivilege] = {}

    def tag(name: str, stack: frozenset[str]) -> FunctionPrivilege:
        if name in native:
            return native[name]
        if name in memo:
            return memo[name]
        fn = decls.get(name)
        if fn is None or isinstance(fn.body, ast.EmbeddedCode):
            return FunctionPrivilege.PRIVILEGED
        worst = FunctionPrivilege.UNPRIVILEGED
        for node in ast.walk(fn.body):
            if isinstance(node, ast.FunctionCall) and node.name not in stack:
                callee = tag(node.name, stack | {name})
                worst = max(worst, callee, key=_ORDER.index)
        memo[name] = worst
        return worst

    return sorted({(f.name, tag(f.name, frozenset())) for sf in files for f in sf.functions
                   if not f.private and f.name not in native})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate docs/unprivileged.md from the policy tables.")
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed page is out of date")
    parser.add_argument("--output", type=Path, default=DOC_PATH, help="where the page lives")
    args = parser.parse_args(argv)
    text = render(builtin_functions(), tapset_script_functions())
    if args.check:
        try:
            current = args.output.read_text(encoding="utf-8")
        except OSError as exc:
            print(f"cannot read {args.output}: {exc.strerror}", file=sys.stderr)
            return 1
        if current != text:
            print(f"{args.output} is out of date; run python -m pystap.policy.docgen", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
