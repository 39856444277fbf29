"""pystapd's configuration: a small TOML file, read with ``tomllib``, strictly validated.

Every key is known and typed; an unknown key or a wrong type is an error
(a typo in a security policy must not silently mean "default").  A missing
file means all defaults, so a fresh install works; tests and the demo write
a temporary file and start the daemon with ``--config``.

Example (every key optional)::

    socket = "/run/pystap/pystapd.sock"
    blessed_dir = "/lib/modules/6.18.0/pystap"
    signer_store = "/etc/pystap/staprun"
    log_file = "/var/log/pystapd.log"        # default: syslog (journal)
    reap_interval = 30.0                       # seconds between reaper runs (leftover probes)

    [groups]                                   # names or gids
    stapusr = "stapusr"
    stapsys = 41002
    stapdev = "stapdev"

    [limits]
    max_module_bytes = 16777216
    max_signature_bytes = 65536
    max_sessions = 64                          # simultaneous connections, all users
    max_sessions_per_user = 16                 # simultaneous connections of one uid (root: unlimited)
    max_kernel_probes = 1024                   # kernel probes one module may declare (root: unlimited)
    request_timeout = 10.0                     # seconds for a client to send its request
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pystap import modfile, paths
from pystap.privilege import GROUP_GRANTS, system_group_gids


class ConfigError(ValueError):
    """The configuration file is unreadable or invalid (message names the key)."""


@dataclass(frozen=True)
class Limits:
    max_module_bytes: int = modfile.MAX_MODULE_BYTES
    max_signature_bytes: int = 64 * 1024
    max_sessions: int = 64
    max_sessions_per_user: int = 16
    max_kernel_probes: int = 1024
    request_timeout: float = 10.0


@dataclass(frozen=True)
class DaemonConfig:
    socket: Path = field(default_factory=paths.daemon_socket)
    blessed_dir: Path = field(default_factory=paths.blessed_dir)
    signer_store: Path = field(default_factory=paths.signer_store_dir)
    log_file: Path | None = None
    groups: dict[str, int | str] = field(default_factory=lambda: {g: g for g in GROUP_GRANTS})
    limits: Limits = field(default_factory=Limits)
    reap_interval: float = 30.0

    def group_gids(self) -> dict[str, int | None]:
        """Gids of the three privilege groups (looked up now: groups may be created later)."""
        return system_group_gids(self.groups)


_TOP = {"socket", "blessed_dir", "signer_store", "log_file", "groups", "limits", "reap_interval"}
_LIMIT_TYPES: dict[str, type] = {
    "max_module_bytes": int, "max_signature_bytes": int, "max_sessions": int, "max_sessions_per_user": int,
    "max_kernel_probes": int,
    "request_timeout": float,
}


def _path(where: Path, key: str, value: Any) -> Path:
    if not isinstance(value, str) or not value.startswith("/"):
        raise ConfigError(f"{where}: '{key}' must be an absolute path string")
    return Path(value)


def _groups(where: Path, raw: Any) -> dict[str, int | str]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: [groups] must be a table")
    result: dict[str, int | str] = {g: g for g in GROUP_GRANTS}
    for key, value in raw.items():
        if key not in GROUP_GRANTS:
            raise ConfigError(
                f"{where}: unknown group '{key}' in [groups] (expected stapusr, stapsys, stapdev)"
            )
        if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
            raise ConfigError(f"{where}: groups.{key} must be a group name or a gid")
        if isinstance(value, int) and not 0 < value < 2**32 - 1:
            raise ConfigError(f"{where}: groups.{key} is not a valid gid")
        result[key] = value
    return result


def _limits(where: Path, raw: Any) -> Limits:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: [limits] must be a table")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        kind = _LIMIT_TYPES.get(key)
        if kind is None:
            raise ConfigError(f"{where}: unknown key '{key}' in [limits]")
        if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
            raise ConfigError(f"{where}: limits.{key} must be a number")
        if value <= 0:
            raise ConfigError(f"{where}: limits.{key} must be positive")
        values[key] = kind(value)
    limits = Limits(**values)
    if limits.max_module_bytes > modfile.MAX_MODULE_BYTES:
        raise ConfigError(f"{where}: limits.max_module_bytes may not exceed {modfile.MAX_MODULE_BYTES}")
    return limits


def parse(text: str, where: Path) -> DaemonConfig:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    unknown = sorted(set(raw) - _TOP)
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}'")
    kwargs: dict[str, Any] = {}
    for key in ("socket", "blessed_dir", "signer_store", "log_file"):
        if key in raw:
            kwargs[key] = _path(where, key, raw[key])
    if "groups" in raw:
        kwargs["groups"] = _groups(where, raw["groups"])
    if "limits" in raw:
        kwargs["limits"] = _limits(where, raw["limits"])
    if "reap_interval" in raw:
        value = raw["reap_interval"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.1 <= value <= 86400:
            raise ConfigError(f"{where}: 'reap_interval' must be a number of seconds (0.1 to 86400)")
        kwargs["reap_interval"] = float(value)
    return DaemonConfig(**kwargs)


def load(path: Path | None = None, *, required: bool = False) -> DaemonConfig:
    """Read the configuration; a missing default file means defaults."""
    where = path or paths.daemon_config()
    try:
        text = where.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            raise ConfigError(f"{where}: no such file") from None
        return DaemonConfig()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot read: {exc}") from None
    return parse(text, where)
