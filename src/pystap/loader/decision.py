"""From received bytes to a decision: verify, parse, prove location, apply the ladder, re-check.

Both the daemon (for every client) and ``pystaprun`` run by root without the
service call :func:`authorize`, so root's local path and the service take
the same decision on the same facts.  Everything is computed from the bytes
the caller read once; the only file-system access is the signer store and
the fd-based blessed-directory proof.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from pystap import modfile
from pystap.loader import blessed, manifest
from pystap.loader.ladder import Decision, LadderInput, LocationProof, decide
from pystap.privilege import PR_NONE, PR_STAPDEV, Level
from pystap.signing.verdict import Verdict, VerdictKind


@dataclass(frozen=True)
class Outcome:
    """A decision with the facts it was taken on (for the log and the grant)."""

    decision: Decision
    digest: str
    verdict: Verdict
    level: int
    module: modfile.Module | None


def verify_signature(module_bytes: bytes, sgn: bytes | None, store_dir: Path, path: str = "") -> Verdict:
    """The signing library's verdict on exactly ``module_bytes``; failures fail closed."""
    if sgn is None:
        return Verdict(VerdictKind.UNSIGNED, f"Signature file {path}.sgn not found.")
    try:
        from pystap import signing

        verify = signing.verify
        store_type = signing.SignerStore
    except (ImportError, AttributeError):
        return Verdict(VerdictKind.ERROR, "signature verification is not available in this pystap")
    try:
        store = store_type.open(store_dir)
        return verify(module_bytes, sgn, store, datetime.datetime.now(datetime.UTC), path=path or None)
    except Exception as exc:  # any verifier failure: unverified
        return Verdict(VerdictKind.ERROR, f"signature check failed: {exc}")


def authorize(
    *,
    uid: int,
    credentials: int,
    module_bytes: bytes,
    sgn: bytes | None,
    module_path: str,
    module_fd: int | None,
    blessed_dir: Path,
    signer_store: Path,
) -> Outcome:
    """Decide whether the caller may run ``module_bytes`` and with which credentials."""
    digest = modfile.digest(module_bytes)
    verdict = verify_signature(module_bytes, sgn, signer_store, module_path)
    module: modfile.Module | None = None
    format_error = ""
    try:
        module = modfile.load(module_bytes)
        level = int(Level.from_name(module.privilege))
    except modfile.ModuleFormatError as exc:
        # Unknown requirement: assume the highest, as staprun does for unreadable privilege data.
        level = PR_STAPDEV
        format_error = str(exc)
    location = (
        blessed.prove(blessed_dir, module_path, module_fd)
        if verdict.kind is not VerdictKind.OK and uid != 0
        else LocationProof(False)
    )
    decision = decide(
        LadderInput(
            uid=uid,
            credentials=credentials,
            verdict=verdict.kind,
            module_level=level,
            module_path=module_path,
            location=location,
            verdict_message=verdict.message,
            signer_max_level=verdict.scope.max_level if verdict.scope is not None else None,
            signer_uids=verdict.scope.uids if verdict.scope is not None else None,
        )
    )
    if decision.allowed and module is None:
        decision = Decision(False, PR_NONE, "malformed",
                            (f"ERROR: Couldn't load the module {module_path}: {format_error}",))
    elif decision.allowed and module is not None:
        problems = manifest.check(module)
        if problems:
            decision = Decision(False, PR_NONE, "manifest", tuple(problems))
    return Outcome(decision, digest, verdict, level, module)
