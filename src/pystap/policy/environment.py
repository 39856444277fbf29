"""Environment variables that change what the translator reads or generates.

SystemTap's documentation says ``SYSTEMTAP_TAPSET``, ``SYSTEMTAP_RUNTIME`` and
``SYSTEMTAP_DEBUGINFO_PATH`` "must not be set" for unprivileged users, but
nothing enforces it: a tapset directory from the environment is parsed as
privileged input, so it could declare any function unprivileged.  pystap
refuses them below stapdev (they are input to the translator exactly like
``-R`` or a trusted tapset directory), and the compile server never takes the
client's environment at all: only a short allowlist of locale variables,
each value matched against SystemTap's pattern, crosses the wire.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pystap.policy.options import PAT_TMPDIR
from pystap.privilege import Level


@dataclass(frozen=True)
class EnvPolicy:
    """One variable that is translator input; ``what`` completes "it changes …"."""

    name: str
    what: str


# Refused below stapdev whenever set to a non-empty value.
INPUT_VARIABLES: tuple[EnvPolicy, ...] = (
    EnvPolicy("PYSTAP_TAPSET", "which tapset files are parsed, as trusted input"),
    EnvPolicy("PYSTAP_RUNTIME", "the runtime code every module runs"),
    EnvPolicy("PYSTAP_DEBUGINFO_PATH", "where symbol and type information is read from"),
)

# Each directory of this list contributes <dir>/pystap/tapset when that exists;
# refused below stapdev only when it would actually add a tapset directory
# (the variable itself is set on most desktops).
XDG_DATA_DIRS = "XDG_DATA_DIRS"
XDG_TAPSET_SUBDIR = ("pystap", "tapset")

# What the compile server accepts from a client's environment (SystemTap's list).
LOCALE_VARIABLES: tuple[str, ...] = (
    "LANG", "LC_ALL", "LC_CTYPE", "LC_COLLATE", "LC_MESSAGES", "LC_TIME", "LC_MONETARY", "LC_NUMERIC",
)
LOCALE_VALUE = re.compile(r"[a-zA-Z0-9@_.=-]*")


def xdg_tapset_dirs(env: Mapping[str, str]) -> list[Path]:
    """The tapset directories ``XDG_DATA_DIRS`` adds (only existing, absolute ones)."""
    dirs: list[Path] = []
    for entry in env.get(XDG_DATA_DIRS, "").split(":"):
        if not entry or not os.path.isabs(entry):
            continue
        candidate = Path(entry, *XDG_TAPSET_SUBDIR)
        if candidate.is_dir():
            dirs.append(candidate)
    return dirs


def check_environment(env: Mapping[str, str], level: Level) -> list[str]:
    """Errors for the translator's environment at ``level`` (empty = fine).

    ``TMPDIR`` is checked with SystemTap's safety pattern at every level; the
    input variables are refused below stapdev, each with the reason.
    """
    errors: list[str] = []
    tmpdir = env.get("TMPDIR")
    if tmpdir is not None and tmpdir != "" and not PAT_TMPDIR.matches(tmpdir):
        errors.append(PAT_TMPDIR.error(tmpdir))
    if level is Level.STAPDEV:
        return errors
    for var in INPUT_VARIABLES:
        if env.get(var.name):
            errors.append(
                f"ERROR: environment variable {var.name} may not be set when --privilege={level.label} "
                f"is specified (it changes {var.what}); unset it or use --privilege=stapdev"
            )
    extra = xdg_tapset_dirs(env)
    if extra:
        shown = ", ".join(str(d) for d in extra)
        errors.append(
            f"ERROR: {XDG_DATA_DIRS} adds tapset directories ({shown}), which may not be used when "
            f"--privilege={level.label} is specified; remove them from {XDG_DATA_DIRS} or use "
            "--privilege=stapdev"
        )
    return errors


def tapset_dirs(env: Mapping[str, str], level: Level) -> list[Path]:
    """Extra *trusted* tapset directories from the environment, in search order.

    Empty below stapdev: the caller must have refused the run already
    (:func:`check_environment`); returning nothing makes a caller that forgot
    fail closed rather than trust the user's files.
    """
    if level is not Level.STAPDEV:
        return []
    dirs: list[Path] = []
    value = env.get("PYSTAP_TAPSET")
    if value:
        dirs.append(Path(value))
    dirs.extend(xdg_tapset_dirs(env))
    return dirs


def client_locale(env: Mapping[str, str]) -> dict[str, str]:
    """What a client sends to a compile server: the allowlisted locale subset.

    Variables whose value does not match SystemTap's pattern are left out
    (the server would refuse them anyway); nothing else is ever sent.
    """
    return {
        name: env[name]
        for name in LOCALE_VARIABLES
        if name in env and LOCALE_VALUE.fullmatch(env[name]) is not None
    }


def server_locale(text: str) -> tuple[dict[str, str], list[str]]:
    """Parse a client's ``locale`` request file (``KEY=VALUE`` lines) on the server.

    Returns the accepted variables and SystemTap's messages for the rest;
    the server's own environment is then overlaid with exactly these.
    """
    accepted: dict[str, str] = {}
    errors: list[str] = []
    for line in text.splitlines():
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep or not key:
            errors.append(f"Localization key=value line '{line}' cannot be parsed")
        elif key not in LOCALE_VARIABLES:
            errors.append(f"Localization key '{key}' not found in global list")
        elif LOCALE_VALUE.fullmatch(value) is None:
            errors.append(f"Localization value '{value}' contains illegal characters")
        else:
            accepted[key] = value
    return accepted, errors
