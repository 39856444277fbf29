"""The ladder as a pure function: every caller x verdict x module level x location."""

import itertools

import pytest

from pystap.loader.ladder import (
    MSG_ALTERED,
    MSG_INSUFFICIENT,
    MSG_NORMAL_USER,
    MSG_SCOPE_LEVEL,
    MSG_SCOPE_UID,
    MSG_UNVERIFIED,
    LadderInput,
    LocationProof,
    decide,
)
from pystap.privilege import PR_ALL, PR_NONE, PR_STAPDEV, PR_STAPSYS, PR_STAPUSR
from pystap.signing.verdict import VerdictKind

PATH = "/home/u/m.stapmod"
CALLERS = {
    "root": (0, PR_ALL),
    "stapdev": (40001, PR_ALL),
    "stapsys": (40001, PR_STAPSYS | PR_STAPUSR),
    "stapusr": (40001, PR_STAPUSR),
    "nogroup": (40001, PR_NONE),
}
LEVELS = {"stapusr": PR_STAPUSR, "stapsys": PR_STAPSYS, "stapdev": PR_STAPDEV}
BLESSED = LocationProof(True)
OUTSIDE = LocationProof(False, ("ERROR: outside",))


def expected(caller, kind, level, location):
    _uid, creds = CALLERS[caller]
    if caller == "nogroup":
        return (False, PR_NONE, "no-credentials", (MSG_NORMAL_USER,))
    if kind is VerdictKind.ALTERED:
        return (False, PR_NONE, "altered", (MSG_ALTERED.format(path=PATH),))
    if caller == "root":
        return (True, PR_ALL, "root", ())
    if caller == "stapdev":
        return (True, PR_ALL, "stapdev", ())
    if kind is VerdictKind.OK:
        if creds & LEVELS[level] == LEVELS[level]:
            return (True, creds, "signature", ())
        msg = MSG_INSUFFICIENT.format(cred=caller, path=PATH, req=level)
        return (False, PR_NONE, "insufficient", (msg,))
    head = (("why",) if kind is not VerdictKind.UNSIGNED else ())
    head += (MSG_UNVERIFIED.format(path=PATH),)
    if location.ok:
        return (True, PR_ALL, "blessed", head)
    return (False, PR_NONE, "unverified", head + location.messages)


@pytest.mark.parametrize(
    ("caller", "kind", "level", "location"),
    list(itertools.product(CALLERS, VerdictKind, LEVELS, (BLESSED, OUTSIDE))),
)
def test_matrix(caller, kind, level, location):
    uid, creds = CALLERS[caller]
    got = decide(LadderInput(uid=uid, credentials=creds, verdict=kind, module_level=LEVELS[level],
                             module_path=PATH, location=location, verdict_message="why"))
    assert (got.allowed, got.credentials, got.rule, got.messages) == expected(caller, kind, level, location)


def test_exact_systemtap_texts():
    got = decide(LadderInput(uid=5, credentials=PR_STAPUSR, verdict=VerdictKind.OK, module_level=PR_STAPSYS,
                             module_path="/m.stapmod"))
    assert got.messages == ("ERROR: Your privilege credentials (stapusr) are insufficient to load the module "
                            "/m.stapmod (stapsys required)",)
    got = decide(LadderInput(uid=0, credentials=PR_ALL, verdict=VerdictKind.ALTERED, module_level=PR_STAPUSR,
                             module_path="/m.stapmod"))
    assert got.messages == ("Unable to verify the signed module /m.stapmod. It may have been altered since "
                            "it was created.",)
    assert not got.allowed
    got = decide(LadderInput(uid=5, credentials=PR_NONE, verdict=VerdictKind.OK, module_level=PR_STAPUSR,
                             module_path="/m.stapmod"))
    assert got.messages[0].splitlines() == [
        "ERROR: You are trying to run systemtap as a normal user.",
        'You should either be root, or be part of group "stapusr" and possibly the groups "stapsys" or "stapdev".',
    ]


def test_signed_but_insufficient_does_not_fall_back_to_blessed_directory():
    got = decide(LadderInput(uid=5, credentials=PR_STAPUSR, verdict=VerdictKind.OK, module_level=PR_STAPDEV,
                             module_path=PATH, location=BLESSED))
    assert not got.allowed and got.rule == "insufficient"


def test_unsigned_says_nothing_more_than_systemtap_untrusted_says_which_key():
    got = decide(LadderInput(uid=5, credentials=PR_STAPUSR, verdict=VerdictKind.UNSIGNED,
                             module_level=PR_STAPUSR, module_path=PATH, verdict_message="detail"))
    assert got.messages == (MSG_UNVERIFIED.format(path=PATH),)
    got = decide(LadderInput(uid=5, credentials=PR_STAPUSR, verdict=VerdictKind.UNTRUSTED,
                             module_level=PR_STAPUSR, module_path=PATH, verdict_message="key k"))
    assert got.messages == ("key k", MSG_UNVERIFIED.format(path=PATH))


SCOPES = {  # signer scope -> (max level bits, uids)
    "any": (None, None),
    "usr-only": (PR_STAPUSR, None),
    "sys-max": (PR_STAPSYS | PR_STAPUSR, None),
    "uid-40001": (None, frozenset({40001})),
    "uid-other": (None, frozenset({40002})),
    "usr-uid-40001": (PR_STAPUSR, frozenset({40001})),
}


@pytest.mark.parametrize(("caller", "scope", "level"), list(itertools.product(CALLERS, SCOPES, LEVELS)))
def test_signer_scope(caller, scope, level):
    """A trusted signature counts only within the scope the administrator gave its signer; root and
    stapdev are decided before signatures matter, as in SystemTap."""
    uid, creds = CALLERS[caller]
    max_level, uids = SCOPES[scope]
    got = decide(LadderInput(uid=uid, credentials=creds, verdict=VerdictKind.OK, module_level=LEVELS[level],
                             module_path=PATH, signer_max_level=max_level, signer_uids=uids))
    plain = expected(caller, VerdictKind.OK, level, OUTSIDE)
    if caller in ("root", "stapdev", "nogroup"):
        want = plain
    elif max_level is not None and max_level & LEVELS[level] != LEVELS[level]:
        want = (False, PR_NONE, "signer-scope", (MSG_SCOPE_LEVEL.format(
            path=PATH, max="stapusr" if max_level == PR_STAPUSR else "stapsys", req=level),))
    elif uids is not None and uid not in uids:
        want = (False, PR_NONE, "signer-scope", (MSG_SCOPE_UID.format(path=PATH, uid=uid),))
    else:
        want = plain
    assert (got.allowed, got.credentials, got.rule, got.messages) == want
