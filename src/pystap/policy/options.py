"""Which command-line options each privilege level may use: one table, an allowlist.

SystemTap scatters these checks over its getopt loop (``if (client_options)``
branches, a ``-g``-must-come-first rule for ``--suppress-time-limits``), so a
new option is usable by everybody until somebody remembers to restrict it,
and the outcome depends on argument order.  Here every option is one row of
:data:`OPTIONS`, evaluated over the *whole* option list after parsing:

* an option without a row is refused to every level below stapdev (and to
  everybody in compile-server client mode) -- new options are unsafe until
  classified;
* the result does not depend on the order of the arguments;
* SystemTap's safety patterns (case-insensitive POSIX ERE) and its exact
  error texts are kept, so scripts and test suites written for ``stap`` see
  the same messages.

Two modes exist.  *Local* (``client=False``) is a translator run by the user
(the module may later be signed by the user's own trusted key, so the level's
rules apply to everybody, root included).  *Client* (``client=True``) is the
compile server running the translator on a remote client's options:
SystemTap's ``--client-options`` table applies on top (options that make the
server read or write its own files are invalid for everybody, ``-I``/``-m``/
``-D`` are refused below stapdev with one joined message).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pystap.privilege import Level


class Rule(enum.Enum):
    """What one level may do with one option (local mode)."""

    ALLOW = "allowed"
    REFUSE = "refused"
    CHECK = "value-checked"  # allowed when the value matches the row's pattern


class ClientRule(enum.Enum):
    """What the compile server does with an option sent by a client."""

    ALLOW = "allowed"
    INVALID = "invalid"  # "ERROR: <opt> invalid with --client-options" (getopt-time list)
    IS_INVALID = "is invalid"  # "ERROR: <opt> is invalid with --client-options"
    BELOW_STAPDEV = "refused below stapdev"  # joined "You can't specify -I, -m, -D when …"
    CHECK = "value-checked"


@dataclass(frozen=True)
class SafetyPattern:
    """A SystemTap safety pattern: ``label`` is the name its error message uses."""

    label: str
    regex: str

    def matches(self, value: str) -> bool:
        # POSIX ERE with REG_ICASE in the C locale; these patterns use no
        # construct whose meaning differs between ERE and Python's re.
        # fullmatch, because Python's '$' also matches before a final newline;
        # re.ASCII, because Unicode case folding would let 'K' (Kelvin sign)
        # or dotted capital I match [a-z].
        body = self.regex.removeprefix("^").removesuffix("$")
        return re.fullmatch(body, value, re.IGNORECASE | re.ASCII) is not None

    def error(self, value: str) -> str:
        return f"ERROR: Safety pattern mismatch for {self.label} ('{value}' vs. '{self.regex}') rc=1"


PAT_D = SafetyPattern("-D parameter", "^[a-z_][a-z_0-9]*(=-?[a-z_0-9]+)?$")
PAT_G = SafetyPattern("-G parameter", "^[a-z_][a-z0-9_]*=[a-z0-9_.-]+$")
PAT_M = SafetyPattern("-m parameter", "^[a-z0-9_]+$")
PAT_A = SafetyPattern("-a parameter", "^[a-z0-9_-]+$")
PAT_S = SafetyPattern("-S parameter", "^[0-9]+(,[0-9]+)?$")
PAT_R = SafetyPattern("-r parameter", "^[a-z0-9_.+-]+$")
PAT_R_CLIENT = SafetyPattern("-r parameter from client", PAT_R.regex)
PAT_MODINFO = SafetyPattern("--modinfo parameter", "^[a-z_][a-z0-9_]*=.+$")
PAT_TMPDIR = SafetyPattern("TMPDIR", "^[-/._0-9a-z]+$")

MODULE_NAME_LEN = 64  # the kernel's limit; SystemTap truncates -m to MODULE_NAME_LEN-1

_ALL = {Level.STAPUSR: Rule.ALLOW, Level.STAPSYS: Rule.ALLOW, Level.STAPDEV: Rule.ALLOW}
_CHECK_ALL = {Level.STAPUSR: Rule.CHECK, Level.STAPSYS: Rule.CHECK, Level.STAPDEV: Rule.CHECK}
_DEV_ONLY = {Level.STAPUSR: Rule.REFUSE, Level.STAPSYS: Rule.REFUSE, Level.STAPDEV: Rule.ALLOW}
_DEV_FREE = {Level.STAPUSR: Rule.CHECK, Level.STAPSYS: Rule.CHECK, Level.STAPDEV: Rule.ALLOW}
_DEV_CHECKED = {Level.STAPUSR: Rule.REFUSE, Level.STAPSYS: Rule.REFUSE, Level.STAPDEV: Rule.CHECK}


@dataclass(frozen=True)
class OptionPolicy:
    """One option: its spellings, whether it takes a value, and the rules.

    ``pattern`` is applied wherever a level's rule is :attr:`Rule.CHECK` and
    in client mode when ``client`` is :attr:`ClientRule.CHECK` (or
    ``client_pattern`` when the server uses a different one, as for ``-r``).
    ``why`` says in one line why the option is classified as it is; it is
    printed in the generated user documentation.
    """

    names: tuple[str, ...]
    takes_value: bool
    levels: dict[Level, Rule]
    client: ClientRule
    why: str
    pattern: SafetyPattern | None = None
    client_pattern: SafetyPattern | None = None
    value_hint: str = field(default="")

    @property
    def name(self) -> str:
        return self.names[0]


def _opt(
    names: str,
    levels: dict[Level, Rule],
    client: ClientRule,
    why: str,
    *,
    value: str = "",
    pattern: SafetyPattern | None = None,
    client_pattern: SafetyPattern | None = None,
) -> OptionPolicy:
    return OptionPolicy(
        tuple(names.split()), bool(value), dict(levels), client, why, pattern,
        client_pattern if client_pattern is not None else pattern, value,
    )


A, INV, IS_INV, BELOW, CHK = (
    ClientRule.ALLOW, ClientRule.INVALID, ClientRule.IS_INVALID, ClientRule.BELOW_STAPDEV, ClientRule.CHECK,
)

# The table.  Order is the order of the user documentation.
OPTIONS: tuple[OptionPolicy, ...] = (
    # -- what to run, how far to go, how much to say: the translator's own behaviour
    _opt("-e", _ALL, A, "the script itself; every construct in it is checked", value="SCRIPT"),
    _opt("-E", _ALL, A, "an additional script; checked like the main one", value="SCRIPT"),
    _opt("-p", _ALL, A, "stop after a pass", value="NUM"),
    _opt("-v", _ALL, A, "verbosity"),
    _opt("--vp", _ALL, A, "per-pass verbosity", value="NNNNN"),
    _opt("-h --help", _ALL, A, "help text"),
    _opt("-V --version", _ALL, A, "version text"),
    _opt("-u", _ALL, A, "unoptimised translation"),
    _opt("-w", _ALL, A, "suppress warnings"),
    _opt("-W", _ALL, A, "warnings become errors"),
    _opt("-t", _ALL, A, "probe timing statistics"),
    _opt("-P", _ALL, A, "function-probe placement (same as --prologue-searching=always)"),
    _opt("--prologue-searching", _ALL, A, "function-probe placement", value="[WHEN]"),
    _opt("--skip-badvars", _ALL, A, "unresolvable $vars read as zero"),
    _opt("--compatible", _ALL, A, "language version gate", value="VERSION"),
    _opt("--check-version", _ALL, A, "version-dependence warnings"),
    _opt("--semantic-keep-going", _ALL, A, "report every semantic error"),
    _opt("--suppress-handler-errors", _ALL, A, "handler errors are skipped quietly (own session only)"),
    _opt("--dump-probe-types", _ALL, A, "lists only what the level allows"),
    _opt("--dump-probe-aliases", _ALL, A, "lists probe aliases"),
    _opt("--dump-functions", _ALL, A, "lists functions"),
    _opt("-l", _ALL, A, "list probe points the level allows", value="PROBE"),
    _opt("-L", _ALL, A, "list probe points and variables", value="PROBE"),
    _opt("--privilege", _ALL, A, "sets the level; may be given only once", value="LEVEL"),
    _opt("--unprivileged", _ALL, A, "same as --privilege=stapusr"),
    _opt("--runtime", _ALL, IS_INV, "only the kernel runtime runs (bpf shapes pass 1 only): selects no code",
         value="MODE"),
    _opt("--bpf", _ALL, IS_INV, "same as --runtime=bpf"),
    _opt("--dyninst", _ALL, IS_INV, "same as --runtime=dyninst (always refused)"),
    # -- where output goes and how the session runs: affects only the user's own session
    _opt("-o", _ALL, A, "output file (opened by the user's own process)", value="FILE"),
    _opt("-b", _ALL, A, "bulk output mode"),
    _opt("-s", _ALL, A, "buffer size", value="NUM"),
    _opt("-F", _ALL, A, "flight-recorder mode"),
    _opt("-S", _CHECK_ALL, A, "output file rotation", value="SIZE[,N]", pattern=PAT_S),
    _opt("-T", _ALL, A, "session time limit", value="SECONDS"),
    _opt("-c", _ALL, A, "target command, run as the user", value="CMD"),
    _opt("-x", _ALL, A, "target process id (confined to the user's own processes)", value="PID"),
    _opt("-d", _ALL, A, "symbol data for an object the user can read", value="OBJECT"),
    _opt("-G", _CHECK_ALL, IS_INV, "initial global value", value="VAR=VAL", pattern=PAT_G),
    _opt("-m", _CHECK_ALL, BELOW, "module name", value="NAME", pattern=PAT_M),
    _opt("-k", _ALL, INV, "keep the temporary directory (the user's own)"),
    _opt("--tmpdir", _ALL, IS_INV, "temporary directory (the user's own)", value="DIR"),
    _opt("--disable-cache", _ALL, IS_INV, "do not use the user's cache"),
    _opt("--poison-cache", _ALL, IS_INV, "rebuild the user's cache"),
    _opt("--clean-cache", _ALL, IS_INV, "clean the user's cache"),
    _opt("--sign-key", _ALL, IS_INV, "sign with the user's own key (trusted only if the admin agrees)",
         value="PATH"),
    _opt("--sign-module", _ALL, IS_INV, "sign an existing module with the user's own key (trust is the "
         "admin's)", value="MODULE"),
    _opt("--no-sign", _ALL, IS_INV, "build without a signature: grants nothing, the loader decides"),
    # -- compile servers: where compilation happens, not what is compiled
    _opt("--use-server", _ALL, IS_INV, "compile on a server", value="[SERVER]"),
    _opt("--use-server-on-error", _ALL, IS_INV, "retry on a server", value="[yes|no]"),
    _opt("--download-debuginfo", _ALL, IS_INV, "debuginfo downloads (the user's own cache)",
         value="[OPTION]"),
    _opt("--list-servers", _ALL, IS_INV, "list compile servers", value="[PROPS]"),
    _opt("--trust-servers", _ALL, IS_INV, "trust management (system-wide trust needs root)", value="[SPEC]"),
    # -- target selection: release names only below stapdev (a path would choose the inputs)
    _opt("-r", _DEV_FREE, CHK, "target kernel release; below stapdev a release name, never a path",
         value="RELEASE", pattern=PAT_R, client_pattern=PAT_R_CLIENT),
    _opt("-a", _CHECK_ALL, CHK, "target architecture", value="ARCH", pattern=PAT_A),
    # -- extra tapset directories: allowed, but never trusted (see lang/privcheck.py)
    _opt("-I", _ALL, BELOW, "extra tapset directory; its functions are never unprivileged", value="DIR"),
    # -- what is generated: only stapdev
    _opt("-g", _DEV_ONLY, A, "guru mode: embedded code, kernel writes"),
    _opt("--suppress-time-limits", _DEV_ONLY, A, "disables overload protection; needs -g"),
    _opt("-D", _DEV_CHECKED, BELOW, "limits and macros in the generated code (overload protection)",
         value="NAME[=VAL]", pattern=PAT_D),
    _opt("-B", _DEV_ONLY, INV, "build options for the generated code", value="NAME=VAL"),
    _opt("-R", _DEV_ONLY, INV, "runtime directory: replaces the code every module runs", value="DIR"),
    _opt("--modinfo", _DEV_CHECKED, IS_INV, "metadata in the generated module", value="NAME=VAL",
         pattern=PAT_MODINFO),
    _opt("--sysroot", _DEV_ONLY, INV, "where target files and debuginfo are read from", value="DIR"),
    _opt("--sysenv", _DEV_ONLY, INV, "environment of the target system", value="VAR=VAL"),
    _opt("--target-namespace", _DEV_ONLY, IS_INV, "probes would follow processes of other namespaces",
         value="PID"),
    _opt("-q", _ALL, INV, "tapset coverage report"),
    _opt("--debug", _ALL, INV, "translator debugging output", value="[WHAT]"),
    _opt("-i --interactive", _ALL, INV, "interactive mode"),
    _opt("--ldd", _DEV_ONLY, IS_INV, "adds symbol data of every library the target links"),
    _opt("--all-modules", _DEV_ONLY, IS_INV, "adds symbol data of every kernel module"),
    _opt("--remote", _DEV_ONLY, IS_INV, "runs pass 5 elsewhere", value="HOST"),
    _opt("--remote-prefix", _DEV_ONLY, IS_INV, "prefixes remote output"),
    # -- the translator's own process and the user's session: nothing reaches the generated code
    _opt("--save-uprobes", _ALL, IS_INV, "would write uprobes.ko into the working directory"),
    _opt("--monitor", _ALL, IS_INV, "monitor mode of the user's own session", value="[INTERVAL]"),
    _opt("--rlimit-as", _ALL, IS_INV, "limits the translator's own process", value="NUM"),
    _opt("--rlimit-cpu", _ALL, IS_INV, "limits the translator's own process", value="NUM"),
    _opt("--rlimit-nproc", _ALL, IS_INV, "limits the translator's own process", value="NUM"),
    _opt("--rlimit-stack", _ALL, IS_INV, "limits the translator's own process", value="NUM"),
    _opt("--rlimit-fsize", _ALL, IS_INV, "limits the translator's own process", value="NUM"),
)

_BY_NAME: dict[str, OptionPolicy] = {n: row for row in OPTIONS for n in row.names}


def lookup(option: str) -> OptionPolicy | None:
    """The row for an option spelling (``-I``, ``--privilege``, ``--privilege=x``)."""
    return _BY_NAME.get(_split(option, None)[0])


def _split(option: str, value: str | None) -> tuple[str, str | None]:
    """``--name=value`` given as one string is the same as (``--name``, ``value``)."""
    if option.startswith("--") and "=" in option and value is None:
        name, _, val = option.partition("=")
        return name, val
    return option, value


def _canonical(option: str) -> str:
    row = _BY_NAME.get(option)
    return row.name if row is not None else option


def parse_privilege(options: Iterable[tuple[str, str | None]]) -> tuple[Level | None, list[str]]:
    """The level the options ask for (``None`` when none) and SystemTap's errors.

    ``--privilege`` takes an exact, case-sensitive name; ``--unprivileged`` is
    ``--privilege=stapusr``; repeating it is fine only with the same level.
    """
    level: Level | None = None
    errors: list[str] = []
    for raw, raw_value in options:
        name, value = _split(raw, raw_value)
        if name == "--unprivileged":
            wanted: Level | None = Level.STAPUSR
        elif name == "--privilege":
            try:
                wanted = Level.from_name(value or "")
            except ValueError as exc:
                errors.append(str(exc))
                continue
        else:
            continue
        if level is not None and wanted is not level:
            errors.append("Privilege level may be set only once.")
            continue
        level = wanted
    return level, errors


def _module_name(value: str) -> str:
    """``-m`` as SystemTap normalises it before the pattern check."""
    for suffix in (".ko", ".so", ".stapmod"):
        if value.endswith(suffix):
            value = value[: -len(suffix)]
            break
    return value[: MODULE_NAME_LEN - 1]


def _value_error(row: OptionPolicy, pattern: SafetyPattern | None, value: str | None) -> str | None:
    if pattern is None:
        return None
    checked = _module_name(value or "") if row.name == "-m" else (value or "")
    return None if pattern.matches(checked) else pattern.error(checked)


def _cant_specify(names: list[str], level: Level) -> str:
    return f"You can't specify {', '.join(names)} when --privilege={level.label} is specified."


def check_options(
    options: Sequence[tuple[str, str | None]],
    level: Level,
    *,
    client: bool = False,
) -> list[str]:
    """Every error the option list earns at ``level``; empty means accepted.

    ``options`` are (spelling, value) pairs in command-line order, as the CLI
    parsed them (``("-I", "dir")``, ``("--privilege", "stapusr")``,
    ``("-g", None)``; ``"--name=value"`` with value ``None`` is split here).
    ``level`` is the session level in force (the CLI's, or the one a server
    enforces).  With ``client`` the options came from a compile-server client.
    Whether the list is accepted, and which options each message names, does
    not depend on the order of ``options`` (a joined message lists the
    offending options in command-line order, as SystemTap does).
    """
    pairs = [_split(o, v) for o, v in options]
    names = {_canonical(n) for n, _ in pairs}
    errors: list[str] = []

    _, priv_errors = parse_privilege(pairs)
    errors.extend(dict.fromkeys(priv_errors))

    refused: list[str] = []
    below_stapdev_client: list[str] = []
    for raw_name, value in pairs:
        row = _BY_NAME.get(raw_name)
        if row is None:
            # Unclassified: refused below stapdev, and never taken from a client.
            if client:
                errors.append(f"ERROR: {raw_name} is invalid with --client-options")
            elif level is not Level.STAPDEV:
                refused.append(raw_name)
            continue
        if row.takes_value and not row.value_hint.startswith("[") and value is None:
            errors.append(f"ERROR: {row.name} requires an argument")
            continue
        if row.name == "-g":
            continue  # reported once below, whatever its position
        if row.name == "--suppress-time-limits":
            continue  # needs -g anywhere on the command line (below)
        if client:
            rule = row.client
            if rule is ClientRule.INVALID:
                errors.append(f"ERROR: {raw_name} invalid with --client-options")
                continue
            if rule is ClientRule.IS_INVALID:
                errors.append(f"ERROR: {raw_name} is invalid with --client-options")
                continue
            if rule is ClientRule.BELOW_STAPDEV and level is not Level.STAPDEV:
                below_stapdev_client.append(row.name)
                continue
            if rule is ClientRule.CHECK:
                err = _value_error(row, row.client_pattern, value)
                if err:
                    errors.append(err)
                continue
        local = row.levels[level]
        if local is Rule.REFUSE:
            refused.append(row.name)
        elif local is Rule.CHECK:
            err = _value_error(row, row.pattern, value)
            if err:
                errors.append(err)

    if "--suppress-time-limits" in names and "-g" not in names:
        errors.append("ERROR --suppress-time-limits requires guru mode (-g)")
    if below_stapdev_client:
        errors.append(_cant_specify(below_stapdev_client, level))
    if refused:
        errors.append(_cant_specify(list(dict.fromkeys(refused)), level))
    if "-c" in names and "-x" in names:
        errors.append("You can't specify -c and -x together.")
    if "-g" in names and level is not Level.STAPDEV:
        errors.append(f"You can't specify -g and --privilege={level.label} together.")
    return errors
