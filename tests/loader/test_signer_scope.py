"""Signer scopes through a real pystapd: the administrator limits what a trusted key certifies.

SystemTap's weakest point (spec §9.2) is that every trusted signer is root-equivalent for every
stapusr member.  Here a user's own key can be trusted for modules up to stapusr, run by that user
only; the same signature is refused to another stapusr member and for a stapsys module.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pystap import signing
from pystap.loader.blessed import MODULE_SUFFIX
from pystap.loader.ladder import MSG_SCOPE_LEVEL, MSG_SCOPE_UID
from pystap.privilege import PR_STAPUSR
from pystap.signing import trust_admin
from pystap.signing.signer_store import SignerScope

from .conftest import CALLERS, USER_GID, USER_UID, make_module

OTHER_UID = USER_UID + 7


@pytest.fixture(scope="module")
def scoped(pystapd):
    """A key trusted for modules up to stapusr run by USER_UID; a module of each level it signed."""
    key = signing.generate_signing_key(pystapd.base / "keys" / "user", key_type="ed25519")
    trust_admin.add_certificate(pystapd.signers, key.certificate, owner_uid=0, signer=True)
    trust_admin.set_scope(pystapd.signers, key.fingerprint, SignerScope(PR_STAPUSR, frozenset({USER_UID})))
    paths = {}
    for level in ("stapusr", "stapsys"):
        data = make_module(level)
        path = pystapd.home / f"scoped_{level}{MODULE_SUFFIX}"
        path.write_bytes(data)
        Path(str(path) + ".sgn").write_bytes(signing.sign_module(data, key))
        for p in (path, Path(str(path) + ".sgn")):
            os.chown(p, USER_UID, USER_GID)
            p.chmod(0o644)
        paths[level] = path
    return paths


def test_the_user_it_was_trusted_for_runs_a_stapusr_module(pystapd, scoped):
    r = pystapd.run_as("stapusr", "-v", str(scoped["stapusr"]))
    assert (r.returncode, r.stdout) == (0, "running stapusr\n"), r.stderr
    assert "allowed by rule 'signature' with credentials stapusr" in r.stderr


def test_another_stapusr_member_is_refused(pystapd, scoped):
    _uid, gid, groups = CALLERS["stapusr"]
    CALLERS["other-stapusr"] = (OTHER_UID, gid, groups)
    try:
        r = pystapd.run_as("other-stapusr", str(scoped["stapusr"]))
    finally:
        del CALLERS["other-stapusr"]
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == MSG_SCOPE_UID.format(path=scoped["stapusr"], uid=OTHER_UID) + "\n"


def test_a_stapsys_module_is_beyond_the_signers_scope(pystapd, scoped):
    r = pystapd.run_as("stapsys", str(scoped["stapsys"]))
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == MSG_SCOPE_LEVEL.format(path=scoped["stapsys"], max="stapusr", req="stapsys") + "\n"


def test_stapdev_is_not_bound_by_signer_scopes(pystapd, scoped):
    r = pystapd.run_as("stapdev", str(scoped["stapsys"]))
    assert (r.returncode, r.stdout) == (0, "running stapsys\n"), r.stderr
