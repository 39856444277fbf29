"""The module file: the one contract between the translator and the loader.

A module is canonical JSON (sorted keys, ASCII, one-space indent, trailing
newline), so it is deterministic, human-inspectable and parsed by the root
service with nothing but the standard library.  It declares what it needs
(privilege, target, probe manifest) as data; the only executable part is the
``code`` text, which only ever runs in the user's own process.

This module is below everyone: the translator writes modules with
:func:`dump`, the signer hashes their bytes, the loader reads them with
:func:`load`.  :func:`load` validates every field and fails closed: an unknown
key, a wrong type, a duplicate key or an oversized file is a
:class:`ModuleFormatError` with a message a user can act on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from pystap.privilege import LEVEL_NAMES

FORMAT = "pystap-module"
FORMAT_VERSION = 1
EXTENSION = ".stapmod"
SIGNATURE_SUFFIX = ".sgn"
MAX_MODULE_BYTES = 16 * 1024 * 1024
MAX_PROBES = 100_000

JSONScalar = str | int | bool | None


class ModuleFormatError(ValueError):
    """The bytes are not a module this version of pystap can load."""


@dataclass(frozen=True)
class ProbeEntry:
    """One probe of the manifest: data the privileged side may act on.

    ``family`` names a row of the probe-family policy table; ``params`` holds
    only JSON scalars and lists of scalars (never code); ``handler`` names the
    function in the module's code that runs for the probe's events.
    """

    id: int
    family: str
    point: str
    handler: str
    params: dict[str, Any] = field(default_factory=dict)
    myproc: bool = False


# Probe families whose events the module's runtime produces itself, in the user's process;
# every other entry is a kernel probe that pystapd installs.
USER_SIDE_FAMILIES = frozenset({"begin", "end", "error", "never", "timer"})


@dataclass(frozen=True)
class Module:
    """A loaded, validated module."""

    name: str
    translator: str
    privilege: str
    release: str
    arch: str
    script_digest: str
    probes: tuple[ProbeEntry, ...]
    code: str
    globals: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    confinement: dict[str, Any] = field(default_factory=dict)
    version: int = FORMAT_VERSION

    @property
    def kernel_probes(self) -> list[ProbeEntry]:
        """The manifest entries pystapd installs in the kernel."""
        return [p for p in self.probes if p.family not in USER_SIDE_FAMILIES]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": self.version,
            "name": self.name,
            "translator": self.translator,
            "privilege": self.privilege,
            "target": {"release": self.release, "arch": self.arch},
            "script_digest": self.script_digest,
            "probes": [
                {
                    "id": p.id,
                    "family": p.family,
                    "point": p.point,
                    "handler": p.handler,
                    "params": p.params,
                    "myproc": p.myproc,
                }
                for p in self.probes
            ],
            "globals": list(self.globals),
            "options": self.options,
            "confinement": self.confinement,
            "code": self.code,
        }


def dump(module: Module) -> bytes:
    """Canonical bytes of a module: the same module always gives the same bytes."""
    text = json.dumps(module.to_json(), sort_keys=True, indent=1, ensure_ascii=True)
    return (text + "\n").encode("ascii")


def digest(data: bytes) -> str:
    """SHA-256 of module (or any) bytes, as lowercase hex."""
    return hashlib.sha256(data).hexdigest()


class StrictJsonError(ValueError):
    """What :func:`strict_json` refuses beyond JSON syntax (a duplicate key, NaN/Infinity)."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise StrictJsonError(f"duplicate key {json.dumps(key[:100])}".replace('"', "'"))
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise StrictJsonError(f"invalid number '{name}'")


def strict_json(text: str) -> Any:
    """``json.loads`` for data that decides something (modules, signatures, requests): a duplicate
    key could be read one way by the verifier and another by a consumer, and NaN/Infinity are not
    JSON; both raise :class:`StrictJsonError`, other syntax errors ``ValueError``."""
    return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)


def _expect(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise ModuleFormatError(f"missing '{key}' in {where}")
    value = obj[key]
    if isinstance(value, bool) and kind is int:
        raise ModuleFormatError(f"'{key}' in {where} must be {kind.__name__}")
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ModuleFormatError(f"'{key}' in {where} must be {names}")
    return value


def _check_keys(obj: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(obj) - allowed)
    if extra:
        raise ModuleFormatError(f"unknown key '{extra[0]}' in {where}")


def _check_param_value(value: Any, where: str) -> None:
    if isinstance(value, list):
        for item in value:
            _check_param_value(item, where)
        return
    if value is None or isinstance(value, (str, int, bool)):
        return
    raise ModuleFormatError(f"probe parameter in {where} must be a scalar or a list")


_TOP_KEYS = {
    "format", "version", "name", "translator", "privilege", "target", "script_digest",
    "probes", "globals", "options", "confinement", "code",
}
_PROBE_KEYS = {"id", "family", "point", "handler", "params", "myproc"}


def load(data: bytes) -> Module:
    """Parse and validate module bytes; raise :class:`ModuleFormatError` if invalid."""
    if len(data) > MAX_MODULE_BYTES:
        raise ModuleFormatError(f"module is too large ({len(data)} bytes, limit {MAX_MODULE_BYTES})")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ModuleFormatError("module is not ASCII JSON (corrupt or not a pystap module)") from exc
    try:
        obj = strict_json(text)
    except StrictJsonError as exc:
        raise ModuleFormatError(f"{exc} in module") from None
    except (ValueError, RecursionError) as exc:
        raise ModuleFormatError(f"module is not valid JSON: {exc}") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ModuleFormatError("not a pystap module (missing format marker)")
    version = _expect(obj, "version", int, "module")
    if version != FORMAT_VERSION:
        raise ModuleFormatError(
            f"unsupported module format version {version} (this pystap reads version {FORMAT_VERSION})"
        )
    _check_keys(obj, _TOP_KEYS, "module")
    privilege = _expect(obj, "privilege", str, "module")
    if privilege not in LEVEL_NAMES:
        raise ModuleFormatError(f"invalid privilege '{privilege}' in module")
    target = _expect(obj, "target", dict, "module")
    _check_keys(target, {"release", "arch"}, "target")
    probes_raw = _expect(obj, "probes", list, "module")
    if len(probes_raw) > MAX_PROBES:
        raise ModuleFormatError(f"too many probes in module ({len(probes_raw)})")
    probes: list[ProbeEntry] = []
    seen_ids: set[int] = set()
    for index, raw in enumerate(probes_raw):
        where = f"probe #{index}"
        if not isinstance(raw, dict):
            raise ModuleFormatError(f"{where} must be an object")
        _check_keys(raw, _PROBE_KEYS, where)
        pid = _expect(raw, "id", int, where)
        if pid in seen_ids:
            raise ModuleFormatError(f"duplicate probe id {pid}")
        seen_ids.add(pid)
        params = _expect(raw, "params", dict, where)
        for value in params.values():
            _check_param_value(value, where)
        probes.append(
            ProbeEntry(
                id=pid,
                family=_expect(raw, "family", str, where),
                point=_expect(raw, "point", str, where),
                handler=_expect(raw, "handler", str, where),
                params=params,
                myproc=_expect(raw, "myproc", bool, where),
            )
        )
    globals_raw = _expect(obj, "globals", list, "module")
    if not all(isinstance(g, str) for g in globals_raw):
        raise ModuleFormatError("'globals' in module must be a list of strings")
    return Module(
        name=_expect(obj, "name", str, "module"),
        translator=_expect(obj, "translator", str, "module"),
        privilege=privilege,
        release=_expect(target, "release", str, "target"),
        arch=_expect(target, "arch", str, "target"),
        script_digest=_expect(obj, "script_digest", str, "module"),
        probes=tuple(probes),
        code=_expect(obj, "code", str, "module"),
        globals=tuple(globals_raw),
        options=_expect(obj, "options", dict, "module"),
        confinement=_expect(obj, "confinement", dict, "module"),
        version=version,
    )
