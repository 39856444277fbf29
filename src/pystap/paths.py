"""Names and places: one table, so every part agrees (see the design's table).

Each function reads the environment at call time, so tests can point a whole
process tree at temporary directories with ``PYSTAP_SYSCONFDIR``,
``PYSTAP_SOCKET``, ``XDG_CONFIG_HOME`` and ``XDG_CACHE_HOME``.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_SYSCONFDIR = Path("/etc/pystap")
DEFAULT_SOCKET = Path("/run/pystap/pystapd.sock")


def sysconfdir() -> Path:
    """System configuration root (``PYSTAP_SYSCONFDIR`` overrides, for tests)."""
    value = os.environ.get("PYSTAP_SYSCONFDIR")
    return Path(value) if value else DEFAULT_SYSCONFDIR


def signer_store_dir() -> Path:
    """Trusted module signers (root-owned)."""
    return sysconfdir() / "staprun"


def ssl_client_dir_all_users() -> Path:
    """Compile servers trusted as TLS peers by every user."""
    return sysconfdir() / "ssl" / "client"


def daemon_config() -> Path:
    return sysconfdir() / "pystapd.toml"


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var)
    if value and os.path.isabs(value):
        return Path(value)
    return Path(os.path.expanduser("~")) / fallback


def user_config_dir() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config") / "pystap"


def user_ssl_client_dir() -> Path:
    """Compile servers trusted as TLS peers by this user."""
    return user_config_dir() / "ssl" / "client"


def user_signing_dir() -> Path:
    """The user's own signing key and certificate."""
    return user_config_dir() / "signing"


def cache_dir() -> Path:
    return _xdg("XDG_CACHE_HOME", ".cache") / "pystap"


def kernel_release() -> str:
    return os.uname().release


def blessed_dir(release: str | None = None) -> Path:
    """Root-owned directory whose unsigned modules stapusr/stapsys users may load."""
    return Path("/lib/modules") / (release or kernel_release()) / "pystap"


def daemon_socket() -> Path:
    value = os.environ.get("PYSTAP_SOCKET")
    return Path(value) if value else DEFAULT_SOCKET
