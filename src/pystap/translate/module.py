"""Pass 4: package generated code into a deterministic module, and the module cache.

The module's bytes depend only on the script (and tapsets) as elaborated,
the options that change code or limits, the translator version and the
target; its name is ``stap_<hash>`` of exactly those bytes (or ``-m NAME``),
so building the same script twice gives byte-identical files and a cache
keyed the same way can hand back the earlier build.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pystap import modfile, paths, privilege
from pystap.lang import ast as A
from pystap.translate.codegen import generate

TRANSLATOR_VERSION = "pystap 0.1.0 (codegen 1)"
_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# -D names the runtime understands as limits (SystemTap's names)
LIMIT_NAMES = ("MAXACTION", "MAXACTION_INTERRUPTIBLE", "MAXNESTING", "MAXSTRINGLEN", "MAXMAPENTRIES",
               "MAXERRORS", "MAXSKIPPED", "HIST_ELISION", "HIST_WIDTH")
# a negative HIST_ELISION is meaningful: the histogram printer then elides nothing
_SIGNED_LIMITS = frozenset({"HIST_ELISION"})
DEFAULT_HZ = 250


class BuildError(ValueError):
    """A build option is unusable (bad ``-m`` name, bad ``-D`` value ...)."""


@dataclass
class BuildOptions:
    """What besides the elaborated script changes the module."""

    module_name: str | None = None  # -m NAME
    defines: dict[str, str] = field(default_factory=dict)  # -D NAME=VALUE
    release: str = field(default_factory=lambda: os.uname().release)
    arch: str = field(default_factory=platform.machine)
    hz: int = DEFAULT_HZ
    timing: bool = False  # -t: the runtime times handlers and prints the probe hit report
    suppress_handler_errors: bool = False  # --suppress-handler-errors
    modinfo: dict[str, str] = field(default_factory=dict)  # --modinfo NAME=VALUE (metadata only)


def _option(options: Any, name: str, default: Any) -> Any:
    if options is None:
        return default
    if isinstance(options, Mapping):
        return options.get(name, default)
    return getattr(options, name, default)


def parse_defines(defines: Mapping[str, str] | list[str]) -> tuple[dict[str, int], dict[str, str]]:
    """Split ``-D`` settings into runtime limits (integers) and other macros."""
    items: list[tuple[str, str]] = []
    if isinstance(defines, Mapping):
        items = [(str(k), str(v)) for k, v in defines.items()]
    else:
        for d in defines:
            name, _, value = d.partition("=")
            items.append((name, value))
    limits: dict[str, int] = {}
    other: dict[str, str] = {}
    for name, value in items:
        if name in LIMIT_NAMES:
            try:
                limits[name] = int(value, 0)
            except ValueError:
                raise BuildError(f"-D {name}={value}: the value must be an integer") from None
            if limits[name] < 0 and name not in _SIGNED_LIMITS:
                raise BuildError(f"-D {name}={value}: the value must not be negative")
        else:
            other[name] = value
    return limits, other


def max_nesting(script: A.ElaboratedScript) -> int:
    """SystemTap's computed MAXNESTING: deepest static call chain + 1, +10 with recursion."""
    calls: dict[int, set[int]] = {}
    by_id = {id(f): f for f in script.functions}
    for f in script.functions:
        calls[id(f)] = {id(r) for n in A.walk(f.body) if isinstance(n, A.FunctionCall) for r in n.referents}
    depth: dict[int, int] = {}
    recursive = False

    def visit(fid: int, stack: set[int]) -> int:
        nonlocal recursive
        if fid in stack:
            recursive = True
            return 0
        if fid in depth:
            return depth[fid]
        stack.add(fid)
        d = 1 + max((visit(c, stack) for c in calls.get(fid, ()) if c in by_id), default=0)
        stack.discard(fid)
        depth[fid] = d
        return d

    deepest = 0
    for p in script.probes:
        for n in A.walk(p.body):
            if isinstance(n, A.FunctionCall):
                for r in n.referents:
                    deepest = max(deepest, visit(id(r), set()))
    return deepest + 1 + (10 if recursive else 0)


def build(elaborated: A.ElaboratedScript, options: Any = None) -> tuple[modfile.Module, bytes]:
    """Pass 3-4: the module for ``elaborated`` and its canonical bytes.

    ``options`` is a :class:`BuildOptions`, a mapping or any object with the
    same attribute names (``module_name``, ``defines``, ``release``,
    ``arch``, ``hz``); missing ones take their defaults.
    """
    limits, macros = parse_defines(_option(options, "defines", {}) or {})
    limits.setdefault("MAXNESTING", max_nesting(elaborated))
    maxstr = limits.get("MAXSTRINGLEN", 512)
    if maxstr < 2:
        raise BuildError("-D MAXSTRINGLEN must be at least 2")
    generated = generate(elaborated, maxstringlen=maxstr)
    probes = tuple(
        modfile.ProbeEntry(
            id=i,
            family=family,
            point=point,
            handler=handler,
            params={k: v for k, v in sorted(params.items()) if _json_scalar(v)},
            myproc=bool(p.myproc) if p is not None else False,
        )
        for i, (p, handler, family, point, params) in enumerate(generated.probes)
    )
    level = elaborated.privilege if elaborated.privilege in (p.value for p in privilege.Level) else 0x8
    mod_options: dict[str, Any] = {
        "limits": dict(sorted(limits.items())),
        "hz": int(_option(options, "hz", DEFAULT_HZ)),
    }
    if macros:
        mod_options["defines"] = dict(sorted(macros.items()))
    # run-time switches the translator compiles in, as SystemTap does (absent unless asked for)
    if _option(options, "timing", False):
        from pystap.translate.hitreport import probe_labels

        mod_options["timing"] = probe_labels(elaborated, [p for p, *_ in generated.probes])
    if _option(options, "suppress_handler_errors", False):
        mod_options["suppress_handler_errors"] = True
    if _option(options, "modinfo", None):
        mod_options["modinfo"] = dict(sorted(_option(options, "modinfo", {}).items()))
    requested = _option(options, "module_name", None)
    if requested is not None and not _MODULE_NAME.match(requested):
        raise BuildError(f"invalid module name '{requested}': use letters, digits and '_' (at most 64)")
    module = modfile.Module(
        name=requested or "stap_0",
        translator=TRANSLATOR_VERSION,
        privilege=privilege.Level(level).label,
        release=str(_option(options, "release", os.uname().release)),
        arch=str(_option(options, "arch", platform.machine())),
        script_digest=elaborated.script_digest or hashlib.sha256(generated.code.encode()).hexdigest(),
        probes=probes,
        code=generated.code,
        globals=tuple(generated.globals),
        options=mod_options,
    )
    if requested is None:
        digest = hashlib.sha256(modfile.dump(module)).hexdigest()[:32]
        module = _renamed(module, f"stap_{digest}")
    return module, modfile.dump(module)


def _json_scalar(v: Any) -> bool:
    if isinstance(v, list):
        return all(_json_scalar(x) for x in v)
    return v is None or isinstance(v, (str, int, bool))


def _renamed(module: modfile.Module, name: str) -> modfile.Module:
    from dataclasses import replace

    return replace(module, name=name)


# ---------------------------------------------------------------------------- files and cache


def module_filename(module: modfile.Module) -> str:
    return module.name + modfile.EXTENSION


def write_module(data: bytes, path: Path) -> Path:
    """Write module bytes atomically (temp file + rename; never follows a symlink)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def read_module_file(path: Path | str) -> modfile.Module:
    """Read and validate a module file (no symlinks; size-limited)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        with os.fdopen(fd, "rb") as f:
            data = f.read(modfile.MAX_MODULE_BYTES + 1)
    except BaseException:
        raise
    return modfile.load(data)


def cache_key(parts: Mapping[str, Any]) -> str:
    """A digest of everything that changes a build (script text, tapsets, options, target)."""
    blob = json.dumps({"translator": TRANSLATOR_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def modules_cache_dir() -> Path:
    return paths.cache_dir() / "modules"


def cache_lookup(key: str) -> tuple[Path, modfile.Module] | None:
    """A cached module for ``key`` (validated), or ``None``."""
    entry = modules_cache_dir() / f"{key}.ref"
    try:
        fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            name = f.read(200).decode("ascii").strip()
        if not _MODULE_NAME.match(name):
            return None
        path = modules_cache_dir() / (name + modfile.EXTENSION)
        return path, read_module_file(path)
    except (OSError, UnicodeDecodeError, modfile.ModuleFormatError):
        return None


def cache_store(key: str, module: modfile.Module, data: bytes) -> Path:
    """Store a module in the cache; returns its path there."""
    d = modules_cache_dir()
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = write_module(data, d / module_filename(module))
    write_module((module.name + "\n").encode("ascii"), d / f"{key}.ref")
    return path


def clean_cache() -> int:
    """Remove every cached module (``--clean-cache``); returns how many files went."""
    d = modules_cache_dir()
    count = 0
    if not d.is_dir() or d.is_symlink():
        return 0
    for entry in d.iterdir():
        if entry.suffix in (modfile.EXTENSION, ".ref") and entry.is_file() and not entry.is_symlink():
            entry.unlink()
            count += 1
    return count
