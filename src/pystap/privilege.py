"""Privilege levels and credentials, with SystemTap's bit values.

The values are ABI: they are stored in modules and signatures and sent by the
loader to the module, so they must never change.  Three different things are
expressed with the same bitmask, exactly as in SystemTap's ``privilege.h``:

* a *session level* (``--privilege=``), always exactly one bit;
* a *credential*, the set of levels a user holds (``0x0, 0x2, 0x6, 0xE``);
* a *requirement*, the set of levels a probe family allows.

``contains(actual, required)`` is the one comparison used everywhere.
"""

from __future__ import annotations

import enum
import grp
import os
from collections.abc import Iterable, Mapping

PR_NONE = 0x0
PR_UNKNOWN = 0x1
PR_STAPUSR = 0x2
PR_STAPSYS = 0x4
PR_STAPDEV = 0x8
PR_HIGHEST = PR_STAPDEV
PR_UNPRIVILEGED = PR_STAPUSR
PR_PRIVILEGED = PR_STAPSYS | PR_STAPDEV
PR_ALL = PR_STAPUSR | PR_STAPSYS | PR_STAPDEV


class Level(enum.IntEnum):
    """A session privilege level: exactly one bit."""

    STAPUSR = PR_STAPUSR
    STAPSYS = PR_STAPSYS
    STAPDEV = PR_STAPDEV

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def from_name(cls, name: str) -> Level:
        """Exact, case-sensitive lookup, as ``--privilege=`` does it."""
        for level in cls:
            if level.label == name:
                return level
        raise ValueError(f"Invalid argument '{name}' for --privilege.")


LEVEL_NAMES = tuple(level.label for level in Level)

# The group that grants each level, and what membership implies (stapdev
# implies the two lower levels, stapsys implies stapusr).
GROUP_GRANTS: Mapping[str, int] = {
    "stapdev": PR_STAPDEV | PR_STAPSYS | PR_STAPUSR,
    "stapsys": PR_STAPSYS | PR_STAPUSR,
    "stapusr": PR_STAPUSR,
}


def contains(actual: int, required: int) -> bool:
    """True when every bit of ``required`` is in ``actual``."""
    return (actual & required) == required


def name(bits: int, *, runtime: bool = False) -> str:
    """The highest level contained in ``bits`` (``none``/``unknown`` otherwise).

    The runtime flavour says ``unknown`` where the translator says ``none``,
    as SystemTap's two copies of this function do.
    """
    for level in (Level.STAPDEV, Level.STAPSYS, Level.STAPUSR):
        if contains(bits, level):
            return level.label
    if bits == PR_NONE and not runtime:
        return "none"
    return "unknown"


def credentials_from_groups(
    uid: int,
    gids: Iterable[int],
    group_gids: Mapping[str, int | None],
) -> int:
    """Credentials of a user, computed as SystemTap's ``get_privilege_credentials``.

    ``gids`` are the user's effective gid followed by the supplementary gids
    (as the kernel reports them for a socket peer); ``group_gids`` maps the
    three group names to their gids (``None`` when the group does not exist).
    uid 0 holds every level.
    """
    if uid == 0:
        return PR_ALL
    if all(group_gids.get(g) is None for g in GROUP_GRANTS):
        return PR_NONE
    creds = PR_NONE
    for gid in gids:
        for group, grant in GROUP_GRANTS.items():
            if group_gids.get(group) == gid:
                creds |= grant
        if creds == PR_ALL:
            break
    return creds


def system_group_gids(overrides: Mapping[str, int | str] | None = None) -> dict[str, int | None]:
    """Gids of the privilege groups: names looked up in the group database.

    ``overrides`` maps a level name to a gid (int or numeric string) or to
    another group name, so tests and administrators can use any groups.
    """
    result: dict[str, int | None] = {}
    for group in GROUP_GRANTS:
        spec: int | str = (overrides or {}).get(group, group)
        if isinstance(spec, int) or (isinstance(spec, str) and spec.isdigit()):
            result[group] = int(spec)
            continue
        try:
            result[group] = grp.getgrnam(spec).gr_gid
        except KeyError:
            result[group] = None
    return result


def own_credentials(overrides: Mapping[str, int | str] | None = None) -> int:
    """Credentials of the calling process (real uid, effective gid, groups)."""
    gids = [os.getegid(), *os.getgroups()]
    return credentials_from_groups(os.getuid(), gids, system_group_gids(overrides))
