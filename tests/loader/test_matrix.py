"""The whole matrix through a real pystapd: caller x module state x module level.

Each case runs ``pystaprun -v`` as another uid/gid set with ``setpriv`` and
asserts the exact outcome: the refusal messages (all of stderr) and exit
status 1, or the grant (rule and credentials) and the module actually
starting.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pystap import signing
from pystap.loader.blessed import MODULE_SUFFIX
from pystap.loader.ladder import MSG_ALTERED, MSG_INSUFFICIENT, MSG_NORMAL_USER, MSG_UNVERIFIED
from pystap.signing import trust_admin

from .conftest import CALLERS, USER_GID, USER_UID, make_module

LEVELS = ("stapusr", "stapsys", "stapdev")
STATES = ("unsigned", "signed-trusted", "signed-untrusted", "tampered", "expired", "revoked", "blessed",
          "blessed-name", "blessed-owner", "blessed-writable", "blessed-symlink-name", "blessed-symlink-path")
SIGNED = ("signed-trusted", "signed-untrusted", "tampered", "expired", "revoked")
CREDS = {"stapusr": 0x2, "stapsys": 0x6, "stapdev": 0xE, "root": 0xE}


def _members(directory: Path) -> str:
    return ('ERROR: Members of the "stapusr" and "stapsys" groups can only use unsigned modules within\n'
            f'  the "{directory}" directory.\n')


def _not_within(directory: Path, module: Path) -> str:
    return _members(directory) + f'  Module "{module}" does not exist within that directory.'


@pytest.fixture(scope="module")
def keys(pystapd):
    """Signing keys: trusted, untrusted, trusted-then-revoked, and one made in the past (for expiry)."""
    keydir = pystapd.base / "keys"
    past = datetime.now(UTC) - timedelta(days=30)
    made = {
        "trusted": signing.generate_signing_key(keydir / "trusted", key_type="ed25519"),
        "untrusted": signing.generate_signing_key(keydir / "untrusted", key_type="ed25519"),
        "revoked": signing.generate_signing_key(keydir / "revoked", key_type="ed25519"),
        "old": signing.generate_signing_key(keydir / "old", key_type="ed25519", now=past),
    }
    for which in ("trusted", "revoked", "old"):
        trust_admin.add_certificate(pystapd.signers, made[which].certificate, owner_uid=0, signer=True)
    trust_admin.add_revocations(pystapd.signers, keyids=[made["revoked"].keyid])
    made["past"] = past
    return made


def _user_file(home: Path, name: str, data: bytes, sgn: bytes | None = None) -> Path:
    path = home / f"{name}{MODULE_SUFFIX}"
    path.write_bytes(data)
    os.chown(path, USER_UID, USER_GID)
    if sgn is not None:
        sig = Path(str(path) + ".sgn")
        sig.write_bytes(sgn)
        os.chown(sig, USER_UID, USER_GID)
    return path


@pytest.fixture(scope="module")
def modules(pystapd, keys):
    """Create every (state, level) module; returns {(state, level): (argument, canonical path)}."""
    outside = pystapd.base / "outside"
    outside.mkdir(mode=0o755)
    table = {}
    for level in LEVELS:
        data = make_module(level)
        user_file = _user_file(pystapd.home, f"unsigned_{level}", data)
        table["unsigned", level] = (str(user_file), user_file)
        signed = {
            "signed-trusted": signing.sign_module(data, keys["trusted"]),
            "signed-untrusted": signing.sign_module(data, keys["untrusted"]),
            "revoked": signing.sign_module(data, keys["revoked"]),
            "expired": signing.sign_module(data, keys["old"], now=keys["past"], validity=timedelta(days=1)),
        }
        for state, sgn in signed.items():
            path = _user_file(pystapd.home, f"{state}_{level}", data, sgn)
            table[state, level] = (str(path), path)
        tampered = data.replace(b"running", b"tampered")
        path = _user_file(pystapd.home, f"tampered_{level}", tampered, signed["signed-trusted"])
        table["tampered", level] = (str(path), path)
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


def _verdict_message(path: Path, signers: Path) -> str:
    """What the signing library says about this module (the first line of a refusal)."""
    sgn = Path(str(path) + ".sgn")
    return signing.verify(path.read_bytes(), sgn.read_bytes(), signing.SignerStore.open(signers),
                          datetime.now(UTC), path=str(path)).message


def expected(caller: str, state: str, level: str, path: Path, blessed: Path, signers: Path):
    """(allowed, rule, credential name, refusal messages)."""
    if caller == "nogroup":
        return False, None, None, [MSG_NORMAL_USER]
    if state == "blessed-symlink-name":
        return False, None, None, [_not_within(blessed, path)]
    if state == "tampered":
        return False, None, None, [MSG_ALTERED.format(path=path)]
    if caller in ("root", "stapdev"):
        return True, caller, "stapdev", []
    unverified = MSG_UNVERIFIED.format(path=path)
    if state == "signed-trusted":
        if CREDS[caller] & CREDS[level] == CREDS[level]:
            return True, "signature", caller, []
        return False, None, None, [MSG_INSUFFICIENT.format(cred=caller, path=path, req=level)]
    if state in SIGNED:
        return False, None, None, [_verdict_message(path, signers), unverified, _not_within(blessed, path)]
    if state in ("blessed", "blessed-name"):
        return True, "blessed", "stapdev", []
    if state == "blessed-owner":
        return False, None, None, [unverified, f'ERROR: The module "{path}" must be owned by root.']
    if state == "blessed-writable":
        return False, None, None, [unverified, f'ERROR: The module "{path}" must not be world writable.']
    return False, None, None, [unverified, _not_within(blessed, path)]


CASES = [(caller, state, level) for caller in CALLERS for state in STATES for level in LEVELS]


@pytest.fixture(scope="module")
def results(pystapd, modules):
    """Run every case up front, a few at a time (each is a separate pystaprun process)."""
    def one(case):
        caller, state, level = case
        return case, pystapd.run_as(caller, "-v", modules[state, level][0])

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(one, CASES))


@pytest.mark.parametrize(("caller", "state", "level"), CASES)
def test_matrix(pystapd, modules, results, caller, state, level):
    _argument, path = modules[state, level]
    allowed, rule, cred, messages = expected(caller, state, level, path, pystapd.blessed, pystapd.signers)
    result = results[caller, state, level]
    if not allowed:
        assert result.returncode == 1
        assert result.stderr == "\n".join(messages) + "\n"
        assert result.stdout == ""
        return
    assert f"pystaprun: module {path} allowed by rule '{rule}' with credentials {cred}\n" in result.stderr
    assert "pystaprun: module started" in result.stderr
    assert result.stdout == f"running {level}\n"
    assert result.returncode == 0
