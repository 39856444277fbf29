"""``pystap``: the translator's command line, as ``stap`` has it.

Only argument handling and output live here; each pass is one function
(:func:`run_pass1`, :func:`run_pass2`, :func:`run_later_passes`) so passes 3-5
plug in at a single dispatch point.  Heavy modules are imported inside the
pass that needs them: a ``-p1`` run never imports the elaborator, and
``--help`` imports nothing.

Exit status: 0 on success, 1 on any error (as ``stap``).
"""

from __future__ import annotations

import getopt
import os
import re
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

VERSION = "0.1.0"
STAP_COMPAT = "5.6"

USAGE = """\
pystap {version} (SystemTap {compat} script language)
Usage: pystap [options] FILE [ARGS ...]        Run script in file.
   or: pystap [options] -                      Run script on stdin.
   or: pystap [options] -e SCRIPT [ARGS ...]   Run given script.
   or: pystap [options] -l PROBE               List matching probes.
   or: pystap [options] -L PROBE               List matching probes and context variables.
   or: pystap [options] --dump-probe-types     List available probe types.
   or: pystap [options] --dump-probe-aliases   List available probe aliases.
   or: pystap [options] --dump-functions       List available functions.

Options:
   --         end of translator options, script options follow
   -h --help  show help
   -V --version
              show version
   -p NUM     stop after pass NUM 1-5, instead of 5
              (parse, elaborate, translate, package, run)
   -v         add verbosity to all passes
   --vp {{N}}+  add per-pass verbosity [00000]
   -k         keep temporary directory (it holds the pass-3 module)
   -u         unoptimized translation
   -w         suppress warnings
   -W         turn warnings into errors
   -g         guru mode
   -P         prologue-searching for function probes (no effect: probes are
              placed at the function's symbol)
   -b         bulk (percpu file) mode (no effect)
   -s NUM     buffer size in megabytes (1-4095; no effect)
   -I DIR     look in DIR for additional .stp/.stpm tapset files
   -D NM=VAL  emit macro definition into generated code
   -B NM=VAL  pass option to kbuild make (not supported: no kbuild step)
   --modinfo NM=VAL
              include NM=VAL in the generated module's metadata
   -G VAR=VAL set global variable to value
   -R DIR     look in DIR for runtime (not supported)
   -r RELEASE target kernel release recorded in the module, instead of this host's
   -a ARCH    target architecture recorded in the module, instead of this host's
   -m MODULE  set probe module name, instead of stap_<hash>
   -o FILE    send script output to file, instead of stdout
   -E SCRIPT  run the SCRIPT in addition to the main script specified
              through -e or a script file
   -c CMD     start the probes, run CMD, and exit when it finishes
   -x PID     sets target() to PID
   -F         run as flight recorder (not supported)
   -S size[,n] set maximum of the size and the number of files (not supported)
   -d OBJECT  add unwind/symbol data for OBJECT file (no effect: pystap does not
              unwind stacks)
   --ldd      add unwind/symbol data for referenced user-space objects (no effect)
   --all-modules
              add unwind/symbol data for all loaded kernel objects (no effect)
   -t         collect probe timing information
   -T TIME    terminate the script after TIME seconds
   -q         generate information on tapset coverage (no effect)
   --runtime=MODE
              set the pass-5 runtime mode, instead of kernel (bpf: pass 1 only)
   --bpf      shorthand for --runtime=bpf
   --dyninst  shorthand for --runtime=dyninst (unavailable)
   --prologue-searching[=WHEN]
              prologue-searching for function probes: always, never, auto
              (no effect)
   --privilege=PRIVILEGE_LEVEL
              check the script for constructs not allowed at the given privilege level
   --unprivileged
              equivalent to --privilege=stapusr
   --compatible=VERSION
              suppress incompatible language/tapset changes beyond VERSION,
              instead of {compat}
   --check-version
              displays warnings where a syntax element may be
              version dependent
   --skip-badvars
              substitute zero for bad context $variables
   --suppress-handler-errors
              catch all runtime errors, quietly skip probe handlers
   --semantic-keep-going
              list every pass-2 error in a tab-separated catalogue
   --use-server[=SERVER]
              compile (passes 1-4) on a compile server; SERVER is HOST:PORT,
              A.B.C.D:PORT or [IPv6]:PORT, optionally followed by
              #sha256:FINGERPRINT (repeatable)
   --list-servers[=PROPERTIES]
              report on the status of the specified compile-servers:
              all,specified,online,trusted,signer,compatible
   --trust-servers[=TRUST-SPEC]
              add/revoke trust of specified compile-servers:
              ssl,signer,all-users,revoke,no-prompt
   --use-server-on-error[=yes/no]
              retry compilation using a compile server upon compilation error
              (only "no" is supported)
   --remote=HOSTNAME
              run pass 5 on the specified ssh host (not supported)
   --remote-prefix
              prefix each line of remote output with a host index (not supported)
   --tmpdir=NAME
              specify name of temporary directory to be used.
   --download-debuginfo[=OPTION]
              automatically download debuginfo: yes,no,ask,<timeout value>
              (pystap needs none: warns and continues)
   --dump-probe-types
              show a list of available probe types.
   --dump-probe-aliases
              show a list of available probe aliases.
   --dump-functions
              show a list of available functions.
   --sysroot=DIR
              specify sysroot directory where target files are located
              (not supported)
   --sysenv=VAR=VALUE
              provide an alternate value for an environment variable (not supported)
   --suppress-time-limits
              disable -DSTP_OVERLOAD, -DMAXACTION, and -DMAXTRYACTION limits
   --save-uprobes
              save uprobes.ko to current directory if it is built from source
              (no effect: pystap has no uprobes.ko)
   --target-namespace=PID
              sets the target namespaces pid to PID (not supported)
   --monitor[=INTERVAL]
              monitor mode (not supported)
   --interactive, -i
              build a script interactively (not supported)
   --rlimit-as=NUM, --rlimit-cpu=NUM, --rlimit-nproc=NUM, --rlimit-stack=NUM,
   --rlimit-fsize=NUM
              set a resource limit of the translator process
   --disable-cache        do not use the caches
   --poison-cache         do not read the caches, rebuild their entries
   --clean-cache          remove the cached modules
   --sign-key=PATH        sign modules with this key (directory, or key file with its
                          certificate) instead of your own key
   --sign-module=MODULE   sign an existing module file (writes MODULE.sgn)
   --no-sign              build modules without a signature (only root and stapdev
                          can run them)
"""

_SHORT = "hVvtp:e:E:I:D:guwWc:x:o:m:T:G:s:l:L:kbr:a:qPiFS:d:B:R:"
_LONG = [
    "help",
    "version",
    "compatible=",
    "privilege=",
    "unprivileged",
    "semantic-keep-going",
    "dump-probe-types",
    "dump-probe-aliases",
    "dump-functions",
    "disable-cache",
    "poison-cache",
    "suppress-time-limits",
    "suppress-handler-errors",
    "skip-badvars",
    "check-version",
    "vp=",
    "clean-cache",
    "sign-key=",
    "sign-module=",
    "no-sign",
    "client-options",
    "use-server=",
    "use-server-on-error=",
    "trust-servers=",
    "list-servers=",
    "runtime=",
    "bpf",
    "dyninst",
    "prologue-searching=",
    "ldd",
    "all-modules",
    "save-uprobes",
    "tmpdir=",
    "modinfo=",
    "download-debuginfo=",
    "interactive",
    "monitor=",
    "remote=",
    "remote-prefix",
    "sysroot=",
    "sysenv=",
    "target-namespace=",
    "rlimit-as=",
    "rlimit-cpu=",
    "rlimit-nproc=",
    "rlimit-stack=",
    "rlimit-fsize=",
]
# Long options whose value is optional (getopt has no such kind; see _optional_values), with
# what the bare option means: "" where the bare option means "the default set" (servers).
_OPTIONAL_VALUE = {
    "use-server": "",
    "trust-servers": "",
    "list-servers": "",
    "prologue-searching": "always",
    "use-server-on-error": "yes",
    "download-debuginfo": "yes",
    "monitor": "1",
}

# SystemTap options pystap refuses, and why (``ERROR: OPT is not supported by pystap: WHY``).
# Each still has its row in pystap.policy.options (a compile server's client meets that table).
UNSUPPORTED = {
    "-B": "there is no kbuild step (modules hold generated Python, not C to compile)",
    "-R": "the runtime is part of pystap itself, not a directory of sources",
    "--sysroot": "probe targets and symbols are read from this host's own file system",
    "--sysenv": "probe targets and symbols are read from this host's own file system",
    "--remote": "pass 5 runs on this host; build with -p4 and run the module with pystaprun there",
    "--remote-prefix": "pass 5 runs on this host; build with -p4 and run the module with pystaprun there",
    "--target-namespace": "probes see this host's processes; run pystap inside the target's namespaces",
    "--monitor": "there is no monitor mode; print what you need from the script",
    "-i": "give the script with -e, as a file or on standard input",
    "--interactive": "give the script with -e, as a file or on standard input",
    "--use-server-on-error": "a failed build is not retried; give --use-server to compile on a server",
    "-F": "pass 5 does not detach; run it in the background with -o FILE",
    "-S": "output files are not rotated by size; switch_file() starts the next one",
}
# refused only when pass 5 would run: they are options of the run, meaningless before it
_PASS5_ONLY = frozenset({"-F", "-S"})
RLIMITS = ("as", "cpu", "nproc", "stack", "fsize")
MSG_BPF = ("ERROR: --runtime=bpf is not supported by pystap beyond pass 1: it has one runtime (kernel); "
           "-p1 parses with runtime \"bpf\" for %( runtime == ... %) conditionals")
MSG_DYNINST = "ERROR: --runtime=dyninst unavailable; this build lacks DYNINST feature"
MSG_DEBUGINFO = ("WARNING: pystap does not download debuginfo (it reads symbols from the binaries "
                 "themselves). Continuing without downloading debuginfo.")


def _takes_value(name: str) -> bool:
    if name.startswith("--"):
        return name[2:] + "=" in _LONG
    i = _SHORT.find(name[1:])
    return i >= 0 and i + 1 < len(_SHORT) and _SHORT[i + 1] == ":"


def _long_name(text: str) -> str | None:
    """The long option ``--text`` denotes, as getopt resolves it (exact, else a unique prefix)."""
    names = [n.rstrip("=") for n in _LONG]
    if text in names:
        return text
    matches = [n for n in names if n.startswith(text)]
    return matches[0] if len(matches) == 1 else None


def _optional_values(argv: list[str]) -> list[str]:
    """Give a bare optional-value option (``--use-server``, ``--prologue-searching`` ...) its value.

    getopt knows only options that always or never take a value, while these
    take one optionally (``--use-server`` alone means the known servers,
    ``--prologue-searching`` alone means ``always``).  Only option positions
    are rewritten, found as getopt finds them: the scan stops at ``--`` or the
    first operand and steps over the values of options that take one, so a
    script text is never changed.
    """
    out = list(argv)
    i = 0
    while i < len(out):
        arg = out[i]
        if arg == "--" or not arg.startswith("-") or arg == "-":
            break
        if arg.startswith("--"):
            text, has_value, _ = arg[2:].partition("=")
            name = _long_name(text)
            if name in _OPTIONAL_VALUE and not has_value:
                out[i] = f"--{name}={_OPTIONAL_VALUE[name]}"
            elif name is not None and not has_value and name + "=" in _LONG:
                i += 1  # its value is the next element
        else:
            for j, letter in enumerate(arg[1:], 1):
                if _takes_value("-" + letter):
                    if j == len(arg) - 1:
                        i += 1  # the value is the next element
                    break
        i += 1
    return out


class UsageError(Exception):
    """A command line stap answers with the message and "Try '--help' ..."."""


class OptionError(Exception):
    """An option value stap refuses with the message alone (exit status 1)."""


class ScriptMissing(Exception):
    """The script file cannot be read: stap reports it as a pass-1 failure."""


class CliOptions:
    """The command line, parsed; ``raw`` keeps (option, value) pairs in order.

    A plain class (not a dataclass): the CLI must start fast, and the
    dataclasses machinery is a noticeable part of a cold start.
    """

    def __init__(self, **kw: Any) -> None:
        self.raw: list[tuple[str, str | None]] = []
        self.last_pass = 5
        self.verbose = 0
        self.perpass = [0, 0, 0, 0, 0]  # verbosity of passes 1-5: -v adds 1 to each, --vp digits
        self.script: str | None = None  # -e text
        self.script_file: str | None = None
        self.extra_scripts: list[str] = []  # -E texts, parsed as <input1>, <input2> ...
        self.args: list[str] = []
        self.include: list[str] = []
        self.defines: list[str] = []
        self.guru = False
        self.unoptimized = False
        self.no_warnings = False
        self.warnings_as_errors = False
        self.keep_going = False
        self.compatible = STAP_COMPAT
        self.privilege = 0x8
        self.privilege_given = False
        self.list_probes: str | None = None
        self.list_vars = False
        self.dump: str | None = None
        self.target_cmd: str | None = None
        self.target_pid: int | None = None
        self.output: str | None = None
        self.module: str | None = None
        self.timeout: float | None = None
        self.set_globals: list[str] = []
        self.disable_cache = False
        self.poison_cache = False  # --poison-cache: never read the caches, rewrite their entries
        self.sign_key: str | None = None  # --sign-key
        self.sign_module: str | None = None  # --sign-module
        self.no_sign = False
        self.auto_messages: list[str] = []  # why a privilege level was selected for this user
        self.release: str | None = None  # -r
        self.arch: str | None = None  # -a
        self.client_options = False  # --client-options: what follows came from a server's client
        self.client_split = 0  # index in raw of --client-options
        self.use_server: list[str] = []  # --use-server values ("" = the known servers)
        self.trust_servers: str | None = None
        self.list_servers: str | None = None
        self.timing = False  # -t
        self.suppress_handler_errors = False
        self.check_version = False
        self.runtime = "kernel"  # --runtime / --bpf (bpf only for pass 1)
        self.unwind_objects: list[str] = []  # -d OBJECT (symbol data: checked, not used)
        self.modinfo: list[str] = []  # --modinfo NAME=VALUE
        self.keep_tmpdir = False  # -k
        self.tmpdir: str | None = None  # --tmpdir=NAME
        self.tmpdir_path: str | None = None  # the temporary directory in use (-k / --tmpdir)
        self.reporter: Any = None  # the run's Reporter, for the closing message counts
        self.download_debuginfo: str | None = None
        self.rlimits: dict[str, int] = {}  # --rlimit-*: resource name -> limit
        self.unsupported: list[str] = []  # SystemTap options pystap refuses, as spelled
        self.help = False
        self.version = False
        for k, v in kw.items():
            setattr(self, k, v)


def _vp(o: CliOptions, value: str) -> None:
    """``--vp NNNNN``: add each digit to the verbosity of its pass (stap's rule and message)."""
    if not 1 <= len(value) <= 5 or not all("0" <= c <= "9" for c in value):
        raise OptionError("Invalid --vp argument: it takes 1 to 5 digits.")
    for i, c in enumerate(value):
        o.perpass[i] += ord(c) - ord("0")


def _c_unsigned(text: str) -> int | None:
    """``strtoul(text, &end, 0)`` with nothing left over, as stap reads --rlimit values
    (a negative value wraps around: it means "unlimited", returned as -1)."""
    import re

    m = re.fullmatch(r"\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)", text)
    if m is None:
        return None
    digits = m.group(2)
    value = int(digits, 16) if digits[:2] in ("0x", "0X") else int(digits, 8 if digits[0] == "0" else 10)
    return -1 if m.group(1) == "-" and value else value


def _rlimit(o: CliOptions, name: str, value: str) -> None:
    limit = _c_unsigned(value)
    if limit is None:
        raise OptionError(f"Unable to convert rlimit-as resource limit '{value}'." if name == "as"
                          else f"Unable to convert resource limit '{value}' for rlimit-{name}")
    o.rlimits[name] = limit


def _positive(value: str) -> bool:
    return value.isdigit() and int(value) > 0


def _check_value(o: CliOptions, name: str, value: str) -> None:
    """The option values stap checks while reading its command line (its messages)."""
    if name == "-s" and not (value.isdigit() and 1 <= int(value) <= 4095):
        raise OptionError("Invalid buffer size (should be 1-4095).")
    if name == "--prologue-searching" and value not in ("always", "never", "auto"):
        raise OptionError(f"Invalid argument '{value}' for --prologue-searching.")
    if name == "--use-server-on-error" and value not in ("yes", "no"):
        raise OptionError(f"Invalid argument '{value}' for --use-server-on-error.")
    if name == "--monitor" and not _positive(value):
        raise OptionError("Invalid monitor interval.")
    if name == "--target-namespace" and not _positive(value):
        raise OptionError("Invalid process ID number for target namespaces.")
    if name == "--download-debuginfo" and value not in ("yes", "no", "ask") and not value.isdigit():
        raise OptionError(f"ERROR: {value} is not a valid value. Use 'yes', 'no', 'ask' or a timeout value.")
    if name == "--sysroot" and not os.path.isdir(value):
        raise OptionError(f"ERROR: {value} is an invalid directory for --sysroot")
    if name == "--sysenv" and not any(n == "--sysroot" for n, _ in o.raw[:-1]):
        raise OptionError("ERROR: --sysenv must follow --sysroot")


def _runtime(o: CliOptions, value: str) -> None:
    if value == "dyninst":
        raise OptionError(MSG_DYNINST)
    if value not in ("kernel", "bpf"):
        raise OptionError(f"ERROR: {value} is an invalid argument for --runtime")
    o.runtime = value


# Options that only set a flag, store their value, or add their value to a list (the rest,
# which check or combine, are spelled out in parse_args).
_FLAGS = {
    "-g": "guru", "-u": "unoptimized", "-w": "no_warnings", "-W": "warnings_as_errors",
    "-t": "timing", "--suppress-handler-errors": "suppress_handler_errors",
    "--check-version": "check_version", "--semantic-keep-going": "keep_going",
    "--disable-cache": "disable_cache", "--poison-cache": "poison_cache", "--no-sign": "no_sign",
    "-k": "keep_tmpdir",
}
_VALUES = {
    "-c": "target_cmd", "-o": "output", "-m": "module", "--compatible": "compatible",
    "--sign-key": "sign_key", "--sign-module": "sign_module", "-r": "release", "-a": "arch",
    "--trust-servers": "trust_servers", "--list-servers": "list_servers", "--tmpdir": "tmpdir",
    "--download-debuginfo": "download_debuginfo",
}
_APPENDS = {
    "-E": "extra_scripts", "-I": "include", "-D": "defines", "-G": "set_globals",
    "--use-server": "use_server", "-d": "unwind_objects", "--modinfo": "modinfo",
}


def parse_args(argv: Sequence[str]) -> CliOptions:
    try:
        pairs, rest = getopt.getopt(_optional_values(list(argv)), _SHORT, _LONG)
    except getopt.GetoptError as err:
        raise UsageError(str(err)) from None
    o = CliOptions()
    for name, value in pairs:
        o.raw.append((name, value if _takes_value(name) else None))
        if value is not None and _takes_value(name):
            _check_value(o, name, value)
        if name in UNSUPPORTED:
            if name == "--use-server-on-error" and value == "no":
                continue  # the default: nothing to refuse
            o.unsupported.append(name)
        elif name in _FLAGS:
            setattr(o, _FLAGS[name], True)
        elif name in _VALUES:
            setattr(o, _VALUES[name], value)
        elif name in _APPENDS:
            getattr(o, _APPENDS[name]).append(value)
        elif name in ("-h", "--help"):
            o.help = True
        elif name in ("-V", "--version"):
            o.version = True
        elif name == "-v":
            o.verbose += 1
            o.perpass = [n + 1 for n in o.perpass]
        elif name == "--vp":
            _vp(o, value)
        elif name == "-p":
            if value not in ("1", "2", "3", "4", "5"):
                raise UsageError(f"Invalid pass number '{value}' (should be 1-5).")
            o.last_pass = int(value)
        elif name == "-e":
            if o.script is not None:
                raise UsageError("Only one script can be given on the command line.")
            o.script = value
        elif name == "-x":
            try:
                o.target_pid = int(value, 10)
            except ValueError:
                raise UsageError(f"Invalid target process ID number '{value}'.") from None
        elif name == "-T":
            try:
                o.timeout = float(value)
            except ValueError:
                raise UsageError(f"Invalid timeout '{value}'.") from None
        elif name in ("-l", "-L"):
            o.list_probes = value
            o.list_vars = name == "-L"
            o.last_pass = 2
        elif name in ("--dump-probe-types", "--dump-probe-aliases", "--dump-functions"):
            o.dump = name[2:]
        elif name == "--client-options":
            if not o.client_options:
                o.client_options = True
                o.client_split = len(o.raw) - 1
        elif name == "--runtime":
            _runtime(o, value)
        elif name == "--bpf":
            o.runtime = "bpf"
        elif name == "--dyninst":
            raise OptionError(MSG_DYNINST)
        elif name.startswith("--rlimit-"):
            _rlimit(o, name.removeprefix("--rlimit-"), value)
        # accepted without effect here (docs/cli.md says why): -b -s -q -P --prologue-searching
        # --ldd --all-modules --save-uprobes --skip-badvars --suppress-time-limits
    if o.sign_key is not None and o.no_sign:
        raise UsageError("You can't specify --sign-key and --no-sign together.")
    if o.sign_module is not None and o.no_sign:
        raise UsageError("You can't specify --sign-module and --no-sign together.")
    if o.sign_module is not None and (o.script is not None or rest):
        raise UsageError("--sign-module signs an existing module; no script may be given with it.")
    if (o.list_probes is not None or o.dump is not None) and (o.script is not None or o.extra_scripts):
        raise UsageError("Cannot specify a script with -l/-L/--dump-* switches.")
    # --trust-servers and --list-servers may be the whole command (SystemTap's too)
    managing = (o.trust_servers is not None or o.list_servers is not None) and not rest
    if o.list_probes is None and o.dump is None and o.sign_module is None and not o.help and not o.version:
        if o.script is None and not managing:
            if not rest:
                raise UsageError("A script must be specified.")
            o.script_file = rest[0]
            rest = rest[1:]
        o.args = list(rest)
    else:
        o.args = list(rest)
    return o


def refusal(o: CliOptions) -> str | None:
    """Why pystap cannot do what this command line asks (an option it refuses), or ``None``.

    The first refused option is named, as stap names the first bad option.
    """
    for name in o.unsupported:
        if name in _PASS5_ONLY and o.last_pass < 5:
            continue
        if name == "-S":
            from pystap.policy.options import PAT_S  # only here: a warm -p2 imports no policy

            value = next((v for n, v in o.raw if n == "-S"), "") or ""
            if not PAT_S.matches(value):
                return PAT_S.error(value)
        return f"ERROR: {name} is not supported by pystap: {UNSUPPORTED[name]}"
    if o.runtime == "bpf" and (o.last_pass >= 2 or o.list_probes is not None or o.dump is not None):
        return MSG_BPF
    return None


def apply_rlimits(o: CliOptions, err: TextIO) -> None:
    """``--rlimit-*``: set soft and hard limit of this process, as stap does (a failure is
    reported and the run goes on)."""
    if not o.rlimits:
        return
    import errno
    import resource

    for name, limit in o.rlimits.items():
        res = getattr(resource, f"RLIMIT_{name.upper()}")
        value = resource.RLIM_INFINITY if limit < 0 else limit
        try:
            resource.setrlimit(res, (value, value))
        except OSError as exc:
            err.write(f"Unable to set resource limits for rlimit-{name} : {exc.strerror}\n")
        except ValueError as exc:  # Python's words for EPERM / EINVAL; stap prints strerror()
            code = errno.EPERM if "not allowed" in str(exc) else errno.EINVAL
            err.write(f"Unable to set resource limits for rlimit-{name} : {os.strerror(code)}\n")


def make_tmpdir(o: CliOptions) -> str | None:
    """The temporary directory of this run: ``--tmpdir`` as given (it must exist), else with
    ``-k`` a new ``stapXXXXXX`` under ``TMPDIR``; ``None`` when temporaries are not kept
    (pystap writes none then, but checks, as stap does, that one can be made)."""
    if o.tmpdir is not None:
        if not os.path.isdir(o.tmpdir):
            raise OptionError(f"ERROR: {o.tmpdir} is an invalid directory for --tmpdir")
        return o.tmpdir
    # stap makes its temporary directory at start-up, for every pass: a TMPDIR where none can be
    # made fails the run at once (parseko/cmdline06), with its message; kept only with -k
    import secrets
    import tempfile

    base = os.environ.get("TMPDIR") or tempfile.gettempdir()
    for _attempt in range(8):
        path = os.path.join(base, "stap" + secrets.token_hex(3))
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        except OSError as exc:
            raise OptionError(f'cannot create temporary directory (" {path} "): {exc.strerror}') from None
        if o.keep_tmpdir:
            return path
        os.rmdir(path)
        return None
    raise OptionError(f'cannot create temporary directory (" {path} "): File exists')


# -- diagnostics ----------------------------------------------------------------------------


class Reporter:
    """Renders errors and warnings as ``stap`` does, with source lines."""

    def __init__(self, err: TextIO, sources: dict[str, str], verbose: bool = False) -> None:
        self.err = err
        self.sources = sources
        self.files_named: set[str] = set()
        self.verbose = verbose
        self.warnings_seen: set[str] = set()
        self.warnings_suppressed = 0
        self.summarized = False

    def _elide_files(self, text: str, toks: list[Any]) -> str:
        """stap names a file in a token's location only the first time; later ones read ``at :L:C``.

        Only the token descriptions that end a message line are touched, never message text.
        """
        by_desc = {t.describe(): t for t in toks if t is not None}
        lines = text.split("\n")
        for i, line in enumerate(lines):
            for desc, tok in by_desc.items():
                if line.endswith(desc):
                    name = tok.loc.file
                    if name in self.files_named:
                        lines[i] = line[: len(line) - len(desc)] + desc.replace(f" at {name}:", " at :", 1)
                    else:
                        self.files_named.add(name)
                    break
        return "\n".join(lines)

    @staticmethod
    def _tokens(e: Any) -> list[Any]:
        out = [getattr(e, "tok", None)]
        for sub in getattr(e, "chain", []) or []:
            out.extend(Reporter._tokens(sub))
        return out

    def error(self, e: Any) -> None:
        """One error, then a blank line -- except after pass 1's report, which ends with its
        ``N parse errors.`` summary (or an input-file note) directly followed by the pass line."""
        from pystap.lang.diagnostics import ParseErrors, format_error

        render = getattr(e, "render", None)
        text = render(self.sources) if callable(render) else format_error(e, self.sources)
        if getattr(e, "kind", "") == "semantic":
            text = self._elide_files(text, self._tokens(e))
        summary = isinstance(e, ParseErrors) or getattr(e, "kind", "") == "input"
        self.err.write(text.rstrip("\n") + ("\n" if summary else "\n\n"))

    def summary(self, errors_suppressed: int = 0) -> None:
        """stap's closing count of the messages it printed once (only the first time)."""
        if self.summarized:
            return
        self.summarized = True
        if errors_suppressed:
            self.err.write(f"Number of similar error messages suppressed: {errors_suppressed}.\n")
        if self.warnings_suppressed:
            self.err.write(f"Number of similar warning messages suppressed: {self.warnings_suppressed}.\n")
        if errors_suppressed or self.warnings_suppressed:
            self.err.write("Rerun with -v to see them.\n")

    def warning(self, w: Any) -> None:
        # like stap, a warning with the same text is printed once (all of them with -v)
        if not self.verbose:
            if w.message in self.warnings_seen:
                self.warnings_suppressed += 1
                return
            self.warnings_seen.add(w.message)
        self.err.write(self._elide_files(w.render(), [w.tok]) + "\n")
        tok = w.tok
        if tok is not None and tok.loc.file in self.sources:
            lines = self.sources[tok.loc.file].split("\n")
            if 1 <= tok.loc.line <= len(lines):
                line = lines[tok.loc.line - 1]
                prefix = " source: "
                self.err.write(prefix + line + "\n")
                lead = "".join("\t" if c == "\t" else " " for c in line[: max(tok.loc.col - 1, 0)])
                self.err.write(" " * len(prefix) + lead + "^\n")


def _usage_kb() -> str:
    """``virt/res/shr/data kb`` of this process, as stap's pass summaries print it."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            size, res, shr, _text, _lib, data = (int(x) for x in f.read().split()[:6])
    except (OSError, ValueError):
        return "unknown memory"
    kb = os.sysconf("SC_PAGE_SIZE") // 1024
    return f"{size * kb}virt/{res * kb}res/{shr * kb}shr/{data * kb}data kb"


class PassTimer:
    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.r0 = os.times()

    def summary(self) -> str:
        t = os.times()
        real = (time.monotonic() - self.t0) * 1000
        usr = (t.user - self.r0.user) * 1000
        sys_ = (t.system - self.r0.system) * 1000
        return f"using {_usage_kb()}, in {usr:.0f}usr/{sys_:.0f}sys/{real:.0f}real ms."


# -- pass 1 -----------------------------------------------------------------------------------


class Pass1Result:
    def __init__(self, user: Any, library: list[Any], sources: dict[str, str], library_count: int,
                 extras: list[Any] | None = None, ctx: Any = None) -> None:
        self.user = user  # StapFile, or None for listings
        self.library = library  # StapFile (tapset) the script can reach
        self.sources = sources
        self.library_count = library_count
        self.extras = extras or []  # the -E scripts (<input1> ...), user files like the main one
        self.ctx = ctx  # the ParseContext the files were parsed with

    @property
    def user_files(self) -> list[Any]:
        return ([self.user] if self.user is not None else []) + self.extras


def _parse_context(o: CliOptions) -> Any:
    from pystap.lang.context import ParseContext
    from pystap.privilege import name as level_name

    return ParseContext(
        compatible=o.compatible, privilege=level_name(o.privilege), guru=o.guru, args=list(o.args),
        runtime=o.runtime,
    )


def _read_script(o: CliOptions, stdin: TextIO) -> tuple[str, str]:
    if o.script is not None:
        # the bytes of the argument, as a script file's are read: "é" is two characters, as in stap
        return os.fsencode(o.script).decode("latin-1"), "<input>"
    path = o.script_file or "-"
    if path == "-":
        data = stdin.buffer.read() if hasattr(stdin, "buffer") else stdin.read().encode("latin-1", "replace")
        return data.decode("latin-1"), "<input>"
    from pystap.tapset.loader import MAX_TAPSET_FILE

    try:
        with open(path, "rb") as f:
            data = f.read(MAX_TAPSET_FILE * 4 + 1)
    except OSError:
        raise ScriptMissing(f"Input file '{path}' is missing.") from None
    if len(data) > MAX_TAPSET_FILE * 4:
        raise UsageError(f"Script file '{path}' is too large.")
    return data.decode("latin-1"), path


def run_pass1(o: CliOptions, stdin: TextIO, rep: Reporter, need_library: bool = True) -> Pass1Result:
    """Parse the user script and the tapset library files it can need.

    Library macros are read first (they change how the script parses); the
    library's ``*.stp`` files are parsed only when pass 2 will run, and then
    only those the script can reach (see :mod:`pystap.tapset.loader`).
    """
    from pystap.lang.parser import parse_file
    from pystap.lang.preprocess import parse_library_macros
    from pystap.tapset import loader

    ctx = _parse_context(o)
    candidates = loader.find_files(o.include)
    for f in candidates:
        if f.macros:
            rep.sources[f.path] = f.text
            ctx.library_macros.update(parse_library_macros(f.text, f.path, ctx))
    has_script = o.script is not None or o.script_file is not None
    text, name = _read_script(o, stdin) if has_script else ("", "<input>")
    rep.sources[name] = text
    user = parse_file(text, name, ctx, privileged=o.guru) if has_script else None
    # -E: more user files, named as stap names them (<input1>, <input2> ...)
    extras = []
    for i, extra_arg in enumerate(o.extra_scripts if has_script else [], 1):
        extra = os.fsencode(extra_arg).decode("latin-1")  # bytes, as -e and script files
        rep.sources[f"<input{i}>"] = extra
        extras.append(parse_file(extra, f"<input{i}>", ctx, privileged=o.guru))
    library: list[Any] = []
    if need_library:
        words = None
        if user is not None:
            words = loader.script_words(text)
            for extra in o.extra_scripts:
                words |= loader.script_words(extra)
        library = _library(o, ctx, candidates, words, rep)
    return Pass1Result(user, library, rep.sources, len(candidates), extras, ctx)


def _library(
    o: CliOptions, ctx: Any, candidates: list[Any], words: set[str] | None, rep: Reporter
) -> list[Any]:
    from pystap.lang.parser import parse_file
    from pystap.tapset import loader

    stp = [f for f in candidates if not f.macros]
    index = {} if o.disable_cache or o.poison_cache else loader.load_index()  # poisoned: rebuilt
    chosen = stp if words is None else loader.needed_files(index, words, stp)
    out = []
    dirty = False
    for f in chosen:
        parsed = parse_file(f.text, f.path, ctx, tapset=True)
        rep.sources[f.path] = f.text
        out.append(parsed)
        if f.digest not in index:
            index[f.digest] = loader.declared_names(parsed)
            dirty = True
    if dirty and not o.disable_cache:
        loader.save_index(index)
    return out


# -- pass 2 -----------------------------------------------------------------------------------


def elab_options(o: CliOptions) -> Any:
    from pystap.lang.elaborate import ElabOptions

    return ElabOptions(
        privilege=o.privilege,
        guru=o.guru,
        unoptimized=o.unoptimized,
        suppress_warnings=o.no_warnings,
        warnings_as_errors=o.warnings_as_errors,
        keep_going=o.keep_going,
        target_pid=o.target_pid,
        target_cmd=o.target_cmd,
    )


def run_pass2(o: CliOptions, p1: Pass1Result, rep: Reporter) -> Any:
    from pystap.lang.elaborate import elaborate

    files = p1.user_files + p1.library
    script = elaborate(files, elab_options(o))
    check_version(o, p1, script, rep)
    for w in script.warnings:
        rep.warning(w)
    return script


def check_version(o: CliOptions, p1: Pass1Result, script: Any, rep: Reporter) -> None:
    """``--check-version``: print SystemTap's version-dependence warnings (see
    :mod:`pystap.lang.versioncheck`); each text once unless pass 2 is verbose.  With ``-W``
    they are errors and pass 2 fails."""
    if not o.check_version or o.no_warnings:
        return
    from pystap.lang.diagnostics import SemanticError
    from pystap.lang.elaborate import ElaborationError
    from pystap.lang.versioncheck import version_warnings

    warnings = version_warnings(script, p1.sources, p1.ctx)
    if o.warnings_as_errors and warnings:
        errors = [SemanticError(f"{w.message} (warning treated as error)", w.tok) for w in warnings]
        raise ElaborationError(errors, [])
    for w in warnings:
        rep.warning(w)  # printed once per text (the Reporter's duplicate check)


# -- passes 3-5: the dispatch point ---------------------------------------------------------------


def run_later_passes(o: CliOptions, script: Any, out: TextIO, err: TextIO) -> int:
    """Passes 3 (translate), 4 (package) and 5 (run): see :mod:`pystap.translate.driver`."""
    from pystap.translate.driver import run_later_passes as later

    if o.perpass[2]:
        for name in o.unwind_objects:  # -d: symbol data pystap never uses; stap checks the file
            if "/" in name and not os.path.exists(name):
                err.write(f"WARNING: missing unwind/symbol data for module '{os.path.abspath(name)}'\n")
    return later(o, script, out, err)


# -- listings ----------------------------------------------------------------------------------


def list_probes(o: CliOptions, stdin: TextIO, out: TextIO, rep: Reporter) -> int:
    """``-l PROBE`` / ``-L PROBE``: the concrete points a probe point matches."""
    from pystap.lang.diagnostics import StapError

    pattern = o.list_probes or ""
    text = f"probe {pattern} {{}}"
    o2 = CliOptions(
        **{**o.__dict__, "script": text, "script_file": None, "unoptimized": True, "no_warnings": True}
    )
    try:
        p1 = run_pass1(o2, stdin, rep)
        from pystap.lang.elaborate import ElabOptions, elaborate

        eo = ElabOptions(
            privilege=o.privilege,
            guru=o.guru,
            unoptimized=True,
            suppress_warnings=True,
            check_privilege=False,
            target_pid=o.target_pid,
            target_cmd=o.target_cmd,
        )
        script = elaborate(([p1.user] if p1.user else []) + p1.library, eo)
    except StapError:
        return 0  # nothing matches: stap lists nothing
    lines: set[str] = set()
    for p in script.probes:
        if p.params.get("unread_display"):
            continue
        line = p.point
        if p.family == "process.mark":
            # stap -l names an SDT marker without its provider
            line = re.sub(r'\.provider\("(?:[^"\\]|\\.)*"\)(?=\.mark\()', "", line, count=1)
        if o.list_vars:
            # target variables only, as stap -L lists them ($$vars and friends are not listed)
            names = [n for n in [*p.context_vars, *(n for n in p.provided if n not in p.context_vars)]
                     if not n.startswith("$$")]
            line += "".join(f" {n}:{_listed_type(p, n)}" for n in names)
        lines.add(line)
    for line in sorted(lines):
        out.write(line + "\n")
    return 0


def _listed_type(p: Any, name: str) -> str:
    """The type ``-L`` shows for a target variable: its C type where debug info gave one
    (``$argv:char**``, as stap prints it), else the script type."""
    ctypes = p.params.get("_ctypes")
    ctype = ctypes.get(name) if isinstance(ctypes, dict) else None
    if ctype:
        return str(ctype)
    return (p.context_vars.get(name) or p.provided.get(name)).value


def dump_info(o: CliOptions, out: TextIO, stdin: TextIO, rep: Reporter) -> int:
    if o.dump == "dump-probe-types":
        from pystap.policy.probes import family_allowed
        from pystap.probes.registry import default_registry, shape_text

        seen = sorted(
            {shape_text(s) for s in default_registry().shapes if family_allowed(s.family, o.privilege)}
        )
        out.write("".join(line + "\n" for line in seen))
        return 0
    if o.dump == "dump-functions":
        from pystap.tapset.builtins import BUILTINS

        lines = []
        for b in BUILTINS.values():
            params = ", ".join(f"{n}:{t.value}" for n, t in b.params)
            ret = b.returns.value if b.returns.value != "unknown" else "unknown"
            lines.append(f"{b.name}:{ret} ({params}) /* {b.privilege.value} */")
        p1 = run_pass1(CliOptions(**{**vars(o), "script": None, "script_file": None}), stdin, rep)
        for f in p1.library:
            for fn in f.functions:
                params = ", ".join(f"{p.name}:{p.declared_type.value}" for p in fn.params)
                lines.append(f"{fn.name}:{fn.return_type.value} ({params})")
        out.write("".join(line + "\n" for line in sorted(set(lines))))
        return 0
    # aliases
    p1 = run_pass1(CliOptions(**{**vars(o), "script": None, "script_file": None}), stdin, rep)
    from pystap.lang.aliases import point_text

    names = sorted({point_text(n) for f in p1.library for a in f.aliases for n in a.names})
    out.write("".join(n + "\n" for n in names))
    return 0


# -- main ----------------------------------------------------------------------------------------


def _check_options_hook(o: CliOptions) -> list[str]:
    """The single call site of the option allowlist and the environment rules
    (owned by pystap.policy.options / pystap.policy.environment); fails closed."""
    from pystap.policy.environment import check_environment
    from pystap.policy.options import check_options
    from pystap.privilege import Level

    level = Level(o.privilege)
    if o.client_options:
        # SystemTap's --client-options: the options before it are the compile server's own
        # (trusted, checked only for their form), the ones after it are its client's.
        split = o.client_split
        return [*check_options(o.raw[:split], Level.STAPDEV),
                *check_options(o.raw[split + 1:], level, client=True),
                *check_environment(os.environ, level)]
    return [*check_options(o.raw, level), *check_environment(os.environ, level)]


def _remote(o: CliOptions) -> bool:
    return bool(o.use_server) or o.trust_servers is not None or o.list_servers is not None


def _target_mismatch(o: CliOptions, err: TextIO) -> None:
    """``-r``/``-a`` naming another target than this host: the module cannot run here (stap's rule)."""
    import platform

    other = (o.release not in (None, os.uname().release)) or (o.arch not in (None, platform.machine()))
    if other and o.last_pass == 5 and not o.client_options:
        err.write("WARNING: kernel release/architecture mismatch with host forces last-pass 4.\n")
        o.last_pass = 4


def main(
    argv: Sequence[str] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    stdin = stdin or sys.stdin
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        return _main(argv, stdin, out, err)
    except UsageError as e:
        err.write(f"{e}\nTry '--help' for more information.\n")
        return 1
    except OptionError as e:
        err.write(f"{e}\n")
        return 1
    except ScriptMissing as e:
        err.write(f"{e}\nPass 1: parse failed.  [man error::pass1]\n")
        return 1
    except KeyboardInterrupt:
        return 1
    except BrokenPipeError:
        return 1


class _Tee:
    """Writes through to a stream and remembers what was written (for the result cache)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


def _cache_key(argv: list[str], o: CliOptions) -> str | None:
    """The -p2 result-cache key, when this run may use the cache at all."""
    if _remote(o) or o.client_options:
        return None
    if o.last_pass != 2 or any(o.perpass) or o.disable_cache:
        return None
    if o.list_probes is not None or o.dump is not None:
        return None
    if o.tmpdir_path is not None or o.rlimits or o.download_debuginfo not in (None, "no"):
        return None  # what these print or change happens outside the replayed output
    if o.script is None and (o.script_file is None or o.script_file == "-"):
        return None
    from pystap.lang import elabcache

    return elabcache.cache_key(argv, o.script_file, o.include)


def report_pass1_warnings(o: CliOptions, p1: Pass1Result, rep: Reporter) -> bool:
    """Print the lexer's and preprocessor's warnings as stap does, right after parsing.

    ``-w`` hides them; with ``-W`` they fail pass 1 (returns False).
    """
    if o.no_warnings:
        return True
    warnings = [w for f in ([p1.user] if p1.user is not None else []) + p1.library
                for w in getattr(f, "warnings", [])]
    for w in warnings:
        rep.warning(w)
    return not (warnings and o.warnings_as_errors)


# -- automatic privilege (SystemTap's check_options step for pass 5) --------------------------------

MSG_SIGNED_BY_TRUSTED = (
    "For users with the privilege level {level}, the module created by compiling your script must be "
    "signed by a signer the administrator trusts (pystap-authorize-cert --signer)."
)


def select_privilege(o: CliOptions, err: TextIO) -> None:
    """Choose ``--privilege`` for a user who may not run stapdev modules, as stap does before pass 1.

    Only when pass 5 will run a script and no level was given: a member of
    stapsys gets stapsys, of stapusr only stapusr; anyone in none of the
    groups is refused with SystemTap's "normal user" message (exit 1).  The
    credentials are the loader's (pystapd's group configuration; without the
    service, the same configuration file read locally), so the translator and
    the loader agree on who is who.  The reason is printed with ``-v`` at
    once, and otherwise only if the run fails (stap explains its automatic
    choices the same way), together with what such a module needs: a
    signature by a signer the administrator trusts.
    """
    if o.last_pass < 5 or o.privilege_given or o.sign_module is not None:
        return
    if o.list_probes is not None or o.dump is not None or (o.script is None and o.script_file is None):
        return
    if os.getuid() == 0:
        return  # root holds every credential; not even the loader client needs importing
    from pystap.loader.client import LoadError, auto_privilege, caller_credentials
    from pystap.privilege import PR_STAPDEV, Level, contains, name

    credentials = caller_credentials()
    if contains(credentials, o.privilege):
        return
    try:
        level, message = auto_privilege(credentials)
    except LoadError as exc:
        raise UsageError("\n".join(exc.messages)) from None
    o.privilege = int(Level.from_name(level))
    if message is not None:
        o.auto_messages.append(message)
    if not contains(credentials, PR_STAPDEV):
        o.auto_messages.append(MSG_SIGNED_BY_TRUSTED.format(level=name(credentials)))
    if o.verbose:
        err.write("".join(m + "\n" for m in o.auto_messages))
        o.auto_messages.clear()


def sign_existing_module(o: CliOptions, out: TextIO, err: TextIO) -> int:
    """``--sign-module=MODULE``: sign a module file built earlier; prints the signature's path."""
    from pathlib import Path

    from pystap.translate import signature

    try:
        sgn = signature.ensure_signature(Path(o.sign_module or ""), signature.SignSettings.from_options(o),
                                         err, force=True)
    except signature.SignError as exc:
        err.write(f"ERROR: {exc}\n")
        return 1
    out.write(f"{sgn}\n")
    return 0


def _main(argv: list[str], stdin: TextIO, out: TextIO, err: TextIO) -> int:
    o = parse_args(argv)
    try:
        rc = _run(o, argv, stdin, out, err)
        if rc != 0 and o.auto_messages:  # why this run was checked at a lower level (see select_privilege)
            err.write("".join(m + "\n" for m in o.auto_messages))
    finally:  # stap says so at its clean-up, whatever happened
        rep = getattr(o, "reporter", None)
        if rep is not None:
            rep.summary()
        if o.keep_tmpdir and o.tmpdir is None and o.tmpdir_path is not None:
            err.write(f'Keeping temporary directory "{o.tmpdir_path}"\n')
    return rc


def _prepare(o: CliOptions, err: TextIO) -> None:
    """What stap does with its own process before pass 1: refuse what pystap cannot do,
    set resource limits, make the temporary directory, say that debuginfo is not fetched."""
    message = refusal(o)
    if message is not None:
        raise OptionError(message)
    apply_rlimits(o, err)
    o.tmpdir_path = make_tmpdir(o)
    if o.download_debuginfo not in (None, "no"):
        err.write(MSG_DEBUGINFO + "\n")


def _add_environment_tapsets(o: CliOptions) -> None:
    """``PYSTAP_TAPSET`` and ``XDG_DATA_DIRS``' ``pystap/tapset`` directories (SystemTap's
    ``SYSTEMTAP_TAPSET``): searched before the ``-I`` directories.  The environment check has
    passed, so they are only ever used at stapdev (below, ``tapset_dirs`` returns none); their
    ``.stpm`` macros and ``.stp`` files then reach every pass and every cache key, as ``-I``
    directories do.  Never for a compile server's translator: its environment is its own."""
    if o.client_options:
        return
    from pystap.policy.environment import tapset_dirs
    from pystap.privilege import Level

    extra = [str(d) for d in tapset_dirs(os.environ, Level(o.privilege))]
    o.include = [*extra, *(d for d in o.include if d not in extra)]


def _run(o: CliOptions, argv: list[str], stdin: TextIO, out: TextIO, err: TextIO) -> int:
    if o.help:
        out.write(USAGE.format(version=VERSION, compat=STAP_COMPAT))
        return 0
    if o.version:
        out.write(f"pystap translator (version {VERSION}, SystemTap {STAP_COMPAT} language)\n")
        return 0
    if not o.client_options:  # a server's translator: its client's options meet the table first
        _prepare(o, err)
    key = _cache_key(argv, o)
    if key is not None:
        from pystap.lang import elabcache

        hit = None if o.poison_cache else elabcache.lookup(key)
        if hit is not None:
            out.write(hit[0])
            err.write(hit[1])
            return 0
        err = _Tee(err)  # type: ignore[assignment]
    from pystap.policy.options import parse_privilege

    level, priv_errors = parse_privilege(o.raw)
    if priv_errors:
        raise UsageError(priv_errors[0])
    if level is not None:
        o.privilege = int(level)
        o.privilege_given = True
    if o.client_options and o.last_pass == 5:
        o.last_pass = 4  # a compile server never runs the module (SystemTap: silently)
    _target_mismatch(o, err)
    select_privilege(o, err)
    if _remote(o) and not o.client_options:
        from pystap.server.remote import run_remote

        remote_rc = run_remote(o, stdin, out, err)
        if remote_rc is not None:
            return remote_rc
    problems = _check_options_hook(o)
    if problems:
        for p in problems:
            err.write(p + "\n")
        return 1
    _add_environment_tapsets(o)
    if o.client_options:
        _prepare(o, err)
    if o.sign_module is not None:
        return sign_existing_module(o, out, err)
    rep = Reporter(err, {}, verbose=o.perpass[1] > 0)  # stap's duplicate check follows pass 2's -v
    o.reporter = rep  # the closing message counts are printed by _main, after every pass
    if o.dump is not None:
        return _guard(lambda: dump_info(o, out, stdin, rep), rep, err)
    if o.list_probes is not None:
        return _guard(lambda: list_probes(o, stdin, out, rep), rep, err)

    from pystap.lang.diagnostics import StapError

    if o.last_pass >= 3 and not o.poison_cache:
        from pystap.translate.driver import try_cached

        cached = try_cached(o, out, err)
        if cached is not None:
            return cached
    timer = PassTimer()
    try:
        p1 = run_pass1(o, stdin, rep, need_library=o.last_pass >= 2)
    except StapError as e:
        rep.error(e)
        err.write("Pass 1: parse failed.  [man error::pass1]\n")
        return 1
    if not report_pass1_warnings(o, p1, rep):
        err.write("Pass 1: parse failed.  [man error::pass1]\n")
        return 1
    if o.perpass[0]:
        err.write(f"Pass 1: parsed user script and {p1.library_count} library scripts {timer.summary()}\n")
    if o.last_pass == 1:
        from pystap.lang.printer import print_parse_tree

        out.write(print_parse_tree(p1.user_files))
        return 0
    timer = PassTimer()
    try:
        script = run_pass2(o, p1, rep)
    except StapError as e:
        return _pass2_failed(o, e, rep, err)
    if o.perpass[1]:
        err.write(f"Pass 2: analyzed script: {_counts(script)} {timer.summary()}\n")
    if o.last_pass == 2:
        from pystap.lang.dump import dump

        text = dump(script, verbose=o.perpass[1] > 0)
        out.write(text)
        if key is not None and isinstance(err, _Tee):
            from pystap.lang import elabcache

            if elabcache.cacheable(script):
                elabcache.store(key, text, "".join(err.parts))
        return 0
    return run_later_passes(o, script, out, err)


def _counts(script: Any) -> str:
    def n(count: int, word: str) -> str:
        return f"{count} {word}{'' if count == 1 else 's'}"

    funcs = len(script.functions) + len(script.builtins)
    return (
        f"{n(len(script.probes), 'probe')}, {n(funcs, 'function')}, {n(len(script.embeds), 'embed')}, "
        f"{n(len(script.globals), 'global')}"
    )


def _pass2_failed(o: CliOptions, e: Any, rep: Reporter, err: TextIO) -> int:
    from pystap.lang.diagnostics import format_keep_going

    errors = getattr(e, "errors", None) or [e]
    for w in getattr(e, "warnings", []):
        rep.warning(w)
    if o.keep_going:
        err.write(format_keep_going(errors) + "\n")
        err.write("Pass 2: analysis failed.  [man error::pass2]\n")
        return 1
    # Like stap, print each distinct message once (same text about the same name).
    seen: set[tuple[str, str]] = set()
    suppressed = 0
    for x in errors:
        key = (x.message, x.tok.text if x.tok is not None else "")
        if key in seen and not o.verbose:
            suppressed += 1
            continue
        seen.add(key)
        rep.error(x)
    err.write("Pass 2: analysis failed.  [man error::pass2]\n")
    rep.summary(suppressed)
    return 1


def _guard(fn: Any, rep: Reporter, err: TextIO) -> int:
    from pystap.lang.diagnostics import StapError

    try:
        return int(fn())
    except StapError as e:
        rep.error(e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
