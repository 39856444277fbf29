"""The whole matrix through a real pystapd: caller x module state x module level.

Each case runs ``pystaprun -v`` as another uid/gid set with ``setpriv`` and
asserts the exact outcome: the refusal messages (all of stderr) and exit
status 1, or the grant (rule and credentials) and the module actually
starting.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pystap.loader.blessed import MODULE_SUFFIX
from pystap.loader.ladder import MSG_NORMAL_USER, MSG_UNVERIFIED

from .conftest import CALLERS, USER_GID, USER_UID, make_module

LEVELS = ("stapusr", "stapsys", "stapdev")
STATES = ("unsigned", "blessed", "blessed-name", "blessed-owner", "blessed-writable", "blessed-symlink-name",
          "blessed-symlink-path")
CREDS = {"stapusr": 0x2, "stapsys": 0x6, "stapdev": 0xE, "root": 0xE}


def _members(directory: Path) -> str:
    return ('ERROR: Members of the "stapusr" and "stapsys" groups can only use unsigned modules within\n'
            f'  the "{directory}" directory.\n')


def _not_within(directory: Path, module: Path) -> str:
    return _members(directory) + f'  Module "{module}" does not exist within that directory.'


@pytest.fixture(scope="module")
def modules(pystapd):
    """Create every (state, level) module; returns {(state, level): (argument, canonical path)}."""
    outside = pystapd.base / "outside"
    outside.mkdir(mode=0o755)
    table = {}
    for level in LEVELS:
        data = make_module(level, code=f"def probe_0(ctx):\n    pass\n# {level}\n")
        user_file = pystapd.home / f"unsigned_{level}{MODULE_SUFFIX}"
        user_file.write_bytes(data)
        os.chown(user_file, USER_UID, USER_GID)
        table["unsigned", level] = (str(user_file), user_file)
        blessed_file = pystapd.blessed / f"{level}{MODULE_SUFFIX}"
        blessed_file.write_bytes(data)
        blessed_file.chmod(0o644)
        table["blessed", level] = (str(blessed_file), blessed_file)
        table["blessed-name", level] = (level, blessed_file)
        owned = pystapd.blessed / f"owner_{level}{MODULE_SUFFIX}"
        owned.write_bytes(data)
        os.chown(owned, USER_UID, USER_GID)
        table["blessed-owner", level] = (str(owned), owned)
        writable = pystapd.blessed / f"ww_{level}{MODULE_SUFFIX}"
        writable.write_bytes(data)
        writable.chmod(0o646)
        table["blessed-writable", level] = (str(writable), writable)
        target = outside / f"{level}{MODULE_SUFFIX}"
        target.write_bytes(data)
        target.chmod(0o644)
        link = pystapd.blessed / f"link_{level}{MODULE_SUFFIX}"
        link.symlink_to(target)
        table["blessed-symlink-name", level] = (f"link_{level}", link)
        table["blessed-symlink-path", level] = (str(link), target)
    return table


def expected(caller: str, state: str, level: str, path: Path, blessed: Path):
    """(allowed, rule, credential name, refusal messages)."""
    if caller == "nogroup":
        return False, None, None, [MSG_NORMAL_USER]
    if state == "blessed-symlink-name":
        return False, None, None, [_not_within(blessed, path)]
    if caller in ("root", "stapdev"):
        return True, caller, "stapdev", []
    unverified = MSG_UNVERIFIED.format(path=path)
    if state in ("blessed", "blessed-name"):
        return True, "blessed", "stapdev", []
    if state == "blessed-owner":
        return False, None, None, [unverified, f'ERROR: The module "{path}" must be owned by root.']
    if state == "blessed-writable":
        return False, None, None, [unverified, f'ERROR: The module "{path}" must not be world writable.']
    return False, None, None, [unverified, _not_within(blessed, path)]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("caller", list(CALLERS))
def test_matrix(pystapd, modules, caller, state, level):
    argument, path = modules[state, level]
    allowed, rule, cred, messages = expected(caller, state, level, path, pystapd.blessed)
    result = pystapd.run_as(caller, "-v", argument)
    if not allowed:
        assert result.returncode == 1
        assert result.stderr == "\n".join(messages) + "\n"
        assert result.stdout == ""
        return
    assert f"pystaprun: module {path} allowed by rule '{rule}' with credentials {cred}\n" in result.stderr
    assert "pystaprun: module started" in result.stderr
