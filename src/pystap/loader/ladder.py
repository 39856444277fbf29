"""The authorization ladder: who may load which module, as a pure function.

This is SystemTap's ``assert_stap_module_permissions`` / ``check_groups`` /
``check_stap_module_path`` decision, reproduced step for step with its
messages, as a function of data only (no file system, no clock, no peer):
the daemon gathers the facts (peer credentials, signature verdict, the
module's declared level, the fd-based proof of location) and this module
decides.  Keeping it pure is what lets the whole matrix be tested
exhaustively without users, keys or directories.

The order is SystemTap's:

0. the gate: a caller with no credentials may not use the loader at all
   (SystemTap enforces this with staprun's file mode ``4110 root:stapusr``;
   pystapd has no setuid binary, so it enforces it here, with the message
   staprun prints to a credential-less user);
1. a tampered module (``ALTERED``) is refused for everyone, root included;
2. root, then any ``stapdev`` member, is allowed with all credentials;
3. a module signed by a trusted signer is allowed when the caller's
   credentials cover its level and the signer's scope (set by the
   administrator: highest level it may certify, users it certifies for)
   covers the module and the caller, and otherwise refused (no fallback to
   the blessed directory, as in SystemTap, which had no scopes);
4. an unverified module inside the blessed directory, proven on the fd, is
   allowed with all credentials;
5. everything else is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from pystap.privilege import PR_ALL, PR_NONE, PR_STAPDEV, contains, name
from pystap.signing.verdict import VerdictKind

# SystemTap's texts, verbatim (staprun_funcs.c / modverify.c).
MSG_ALTERED = "Unable to verify the signed module {path}. It may have been altered since it was created."
MSG_INSUFFICIENT = (
    "ERROR: Your privilege credentials ({cred}) are insufficient to load the module {path} ({req} required)"
)
MSG_UNVERIFIED = "Unable to verify the signature for the module {path}."
MSG_SCOPE_LEVEL = ("ERROR: The signer of the module {path} may certify modules up to {max} only "
                   "({req} required).")
MSG_SCOPE_UID = "ERROR: The signer of the module {path} is not trusted for modules run by uid {uid}."
MSG_NORMAL_USER = (
    "ERROR: You are trying to run systemtap as a normal user.\n"
    'You should either be root, or be part of group "stapusr" and possibly the groups "stapsys" or "stapdev".'
)

# Verdicts whose reason is worth a line of its own before SystemTap's generic
# "Unable to verify": SystemTap had no expiry or revocation to report, and
# said nothing about *which* key was not trusted; a missing signature needs
# no explanation.
_EXPLAINED = frozenset({VerdictKind.UNTRUSTED, VerdictKind.EXPIRED, VerdictKind.REVOKED, VerdictKind.ERROR})


@dataclass(frozen=True)
class LocationProof:
    """Whether the module is proven to be an admin-installed blessed module.

    ``messages`` are SystemTap's explanations of why the proof failed (empty
    when it holds, or when there was nothing to prove, e.g. a module sent as
    bytes).
    """

    ok: bool
    messages: tuple[str, ...] = ()


NO_LOCATION = LocationProof(ok=False)


@dataclass(frozen=True)
class LadderInput:
    uid: int
    credentials: int
    verdict: VerdictKind
    module_level: int
    module_path: str
    location: LocationProof = NO_LOCATION
    verdict_message: str = ""
    signer_max_level: int | None = None  # privilege bits the signer may certify; None: any
    signer_uids: frozenset[int] | None = None  # users the signer certifies for; None: all


@dataclass(frozen=True)
class Decision:
    """``rule`` names the rung that decided: ``root``, ``stapdev``,
    ``signature``, ``blessed`` when allowed; ``no-credentials``, ``altered``,
    ``insufficient``, ``signer-scope``, ``unverified`` when refused.  ``messages`` are printed
    to the user (on an allowed decision only with ``-v``, as they are
    SystemTap's diagnostics of a rung that did not decide)."""

    allowed: bool
    credentials: int
    rule: str
    messages: tuple[str, ...] = ()


def decide(facts: LadderInput) -> Decision:
    """Apply SystemTap's ladder to ``facts``; see the module docstring."""
    path = facts.module_path
    if facts.uid != 0 and facts.credentials == PR_NONE:
        return Decision(False, PR_NONE, "no-credentials", (MSG_NORMAL_USER,))
    if facts.verdict is VerdictKind.ALTERED:
        return Decision(False, PR_NONE, "altered", (MSG_ALTERED.format(path=path),))
    if facts.uid == 0:
        return Decision(True, PR_ALL, "root")
    if contains(facts.credentials, PR_STAPDEV):
        return Decision(True, PR_ALL, "stapdev")
    if facts.verdict is VerdictKind.OK:
        if facts.signer_max_level is not None and not contains(facts.signer_max_level, facts.module_level):
            message = MSG_SCOPE_LEVEL.format(path=path, max=name(facts.signer_max_level),
                                             req=name(facts.module_level))
            return Decision(False, PR_NONE, "signer-scope", (message,))
        if facts.signer_uids is not None and facts.uid not in facts.signer_uids:
            return Decision(False, PR_NONE, "signer-scope", (MSG_SCOPE_UID.format(path=path, uid=facts.uid),))
        if contains(facts.credentials, facts.module_level):
            return Decision(True, facts.credentials, "signature")
        message = MSG_INSUFFICIENT.format(
            cred=name(facts.credentials), path=path, req=name(facts.module_level)
        )
        return Decision(False, PR_NONE, "insufficient", (message,))
    messages: list[str] = []
    if facts.verdict in _EXPLAINED and facts.verdict_message:
        messages.append(facts.verdict_message)
    messages.append(MSG_UNVERIFIED.format(path=path))
    if facts.location.ok:
        return Decision(True, PR_ALL, "blessed", tuple(messages))
    messages.extend(facts.location.messages)
    return Decision(False, PR_NONE, "unverified", tuple(messages))
