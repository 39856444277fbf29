"""The signer store: who may certify modules for unprivileged users.

Default ``/etc/pystap/staprun/`` (``pystap.paths.signer_store_dir()``).  It
holds one certificate per file (``*.pem``, ``*.crt`` or ``*.der``) and an
optional ``revocations.json`` listing revoked key ids and module digests::

    {"format": "pystap-revocations", "version": 1,
     "keyids": ["<sha256 hex of a signer's SPKI>", ...],
     "modules": ["<sha256 hex of a module>", ...]}

An optional ``scopes.json`` narrows what a signer may certify (SystemTap had
no such thing: every trusted signer was root-equivalent, spec §9.2)::

    {"format": "pystap-signer-scopes", "version": 1,
     "scopes": {"<sha256 hex of a certificate>":
                {"max_privilege": "stapusr", "uids": [1000]}}}

``max_privilege`` is the highest module level the signer may certify;
``uids`` are the only users for whom its signature counts (a user's own key
trusted for that user alone).  A signer without an entry is unrestricted.

The store is usable only when the directory and every file in it are owned by
root and not writable by group or others (checked on fds, see
:mod:`.trust_dir`); otherwise it is treated as empty and :attr:`problems` says
why.  A revocation list that cannot be read makes the store unusable too: a
store that might be missing a revocation must not vouch for anything.
Certificates that are weak, not for code signing, or unparsable are skipped
and reported in :attr:`warnings`.  Certificate validity is enforced at
verification time (SystemTap ignored it; spec §9.1 item 10).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509

from pystap import paths, privilege
from pystap.signing import algorithms, certificates
from pystap.signing.envelope import EnvelopeError, parse_json
from pystap.signing.trust_dir import read_trust_dir

REVOCATIONS_FILE = "revocations.json"
SCOPES_FILE = "scopes.json"
SCOPES_FORMAT = "pystap-signer-scopes"
REVOCATIONS_FORMAT = "pystap-revocations"
CERT_SUFFIXES = (".pem", ".crt", ".der")
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class SignerScope:
    """What a signer may certify: modules up to ``max_level`` (privilege bits as in
    :mod:`pystap.privilege`, e.g. ``PR_STAPUSR``), for the users in ``uids``;
    None means no limit."""

    max_level: int | None = None
    uids: frozenset[int] | None = None

    @property
    def unrestricted(self) -> bool:
        return self.max_level is None and self.uids is None

    def describe(self) -> str:
        if self.unrestricted:
            return "any module, any user"
        parts = []
        if self.max_level is not None:
            parts.append(f"modules up to {privilege.name(self.max_level)}")
        if self.uids is not None:
            parts.append("users " + ",".join(str(u) for u in sorted(self.uids)))
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.max_level is not None:
            out["max_privilege"] = privilege.name(self.max_level)
        if self.uids is not None:
            out["uids"] = sorted(self.uids)
        return out


UNRESTRICTED = SignerScope()


@dataclass(frozen=True)
class TrustedSigner:
    """A certificate from the store, with the key id it vouches for."""

    keyid: str
    key_type: str
    certificate: x509.Certificate
    fingerprint: str
    source: str = ""
    scope: SignerScope = UNRESTRICTED

    @property
    def public_key(self) -> algorithms.PublicKey:
        return self.certificate.public_key()

    def valid_at(self, now: datetime) -> bool:
        return self.certificate.not_valid_before_utc <= now <= self.certificate.not_valid_after_utc

    def describe(self) -> str:
        return f"'{certificates.subject(self.certificate)}' (fingerprint " \
               f"{certificates.show_fingerprint(self.fingerprint)})"


def signer_from_certificate(cert: x509.Certificate, source: str = "") -> TrustedSigner:
    """Check a certificate for use as a module signer; ``ValueError`` says why it cannot be."""
    key_type = algorithms.check_certificate(cert)
    if not certificates.is_code_signing(cert):
        raise ValueError("not a code-signing certificate (extended key usage codeSigning is missing)")
    return TrustedSigner(
        algorithms.key_id(cert.public_key()), key_type, cert, certificates.fingerprint(cert), source
    )


def parse_revocations(data: bytes) -> tuple[frozenset[str], frozenset[str]]:
    """(revoked key ids, revoked module digests) from ``revocations.json``; ``ValueError`` if malformed."""
    try:
        obj: Any = parse_json(data, REVOCATIONS_FILE)
    except EnvelopeError as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(obj, dict) or obj.get("format") != REVOCATIONS_FORMAT or obj.get("version") != 1:
        raise ValueError(f"{REVOCATIONS_FILE} is not a version 1 pystap revocation list")
    if set(obj) - {"format", "version", "keyids", "modules"}:
        raise ValueError(f"{REVOCATIONS_FILE} has unknown keys")
    result = []
    for key in ("keyids", "modules"):
        values = obj.get(key, [])
        if not isinstance(values, list) or not all(
            isinstance(v, str) and _HEX64.fullmatch(v) for v in values
        ):
            raise ValueError(f"'{key}' in {REVOCATIONS_FILE} must list 64-digit lowercase hex strings")
        result.append(frozenset(values))
    return result[0], result[1]


def parse_scopes(data: bytes) -> dict[str, SignerScope]:
    """Certificate fingerprint -> scope from ``scopes.json``; ``ValueError`` if malformed."""
    try:
        obj: Any = parse_json(data, SCOPES_FILE)
    except EnvelopeError as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(obj, dict) or obj.get("format") != SCOPES_FORMAT or obj.get("version") != 1 \
            or set(obj) != {"format", "version", "scopes"} or not isinstance(obj["scopes"], dict):
        raise ValueError(f"{SCOPES_FILE} is not a version 1 pystap signer-scope list")
    scopes: dict[str, SignerScope] = {}
    for fingerprint, entry in obj["scopes"].items():
        if not _HEX64.fullmatch(fingerprint) or not isinstance(entry, dict) \
                or not entry or set(entry) - {"max_privilege", "uids"}:
            raise ValueError(f"{SCOPES_FILE}: bad entry for '{str(fingerprint)[:80]}'")
        max_level = None
        if "max_privilege" in entry:
            level = entry["max_privilege"]
            if level not in privilege.GROUP_GRANTS:
                raise ValueError(f"{SCOPES_FILE}: unknown privilege level in entry {fingerprint}")
            max_level = privilege.GROUP_GRANTS[level]
        uids = None
        if "uids" in entry:
            values = entry["uids"]
            if not isinstance(values, list) or not values or not all(
                    type(u) is int and 0 <= u < 2**32 - 1 for u in values):
                raise ValueError(f"{SCOPES_FILE}: 'uids' of entry {fingerprint} must list user ids")
            uids = frozenset(values)
        scopes[fingerprint] = SignerScope(max_level, uids)
    return scopes


class SignerStore:
    """Trusted signer certificates plus the revocation list (immutable once built)."""

    def __init__(
        self,
        signers: Iterable[TrustedSigner] = (),
        *,
        revoked_keys: Iterable[str] = (),
        revoked_modules: Iterable[str] = (),
        problems: Iterable[str] = (),
        warnings: Iterable[str] = (),
        path: Path | None = None,
    ) -> None:
        self.path = path
        self.problems: list[str] = list(problems)
        self.warnings: list[str] = list(warnings)
        self._by_keyid: dict[str, tuple[TrustedSigner, ...]] = {}
        if not self.problems:
            for signer in signers:
                self._by_keyid[signer.keyid] = (*self._by_keyid.get(signer.keyid, ()), signer)
            self.revoked_keys = frozenset(revoked_keys)
            self.revoked_modules = frozenset(revoked_modules)
        else:
            self.revoked_keys = frozenset()
            self.revoked_modules = frozenset()

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None) -> SignerStore:
        """Read the store (default ``paths.signer_store_dir()``); never raises for bad contents."""
        directory = Path(path) if path is not None else paths.signer_store_dir()
        contents = read_trust_dir(directory, 0, "signer store")
        if contents.problems:
            return cls(problems=contents.problems, path=directory)
        signers: list[TrustedSigner] = []
        warnings: list[str] = []
        revoked_keys: frozenset[str] = frozenset()
        revoked_modules: frozenset[str] = frozenset()
        scopes: dict[str, SignerScope] = {}
        for name, data in contents.files.items():
            try:
                if name == REVOCATIONS_FILE:
                    revoked_keys, revoked_modules = parse_revocations(data)
                elif name == SCOPES_FILE:
                    scopes = parse_scopes(data)
            except ValueError as exc:
                # a store that might be missing a revocation or a limit vouches for nothing
                return cls(problems=[f"{directory / name}: {exc}"], path=directory)
        for name, data in contents.files.items():
            if name.endswith(CERT_SUFFIXES) and not name.startswith("."):
                try:
                    signer = signer_from_certificate(certificates.load_certificate(data), name)
                except ValueError as exc:
                    warnings.append(f"ignoring {directory / name}: {exc}")
                    continue
                signers.append(replace(signer, scope=scopes.get(signer.fingerprint, UNRESTRICTED)))
        return cls(signers, revoked_keys=revoked_keys, revoked_modules=revoked_modules,
                   warnings=warnings, path=directory)

    @classmethod
    def from_certificates(
        cls,
        certs: Iterable[x509.Certificate],
        *,
        revoked_keys: Iterable[str] = (),
        revoked_modules: Iterable[str] = (),
    ) -> SignerStore:
        """An in-memory store (for tests and for callers that already hold certificates)."""
        return cls([signer_from_certificate(c) for c in certs],
                   revoked_keys=revoked_keys, revoked_modules=revoked_modules)

    @property
    def usable(self) -> bool:
        return not self.problems

    def signers(self, keyid: str) -> tuple[TrustedSigner, ...]:
        return self._by_keyid.get(keyid, ())

    def all_signers(self) -> list[TrustedSigner]:
        return [s for group in self._by_keyid.values() for s in group]

    def __len__(self) -> int:
        return len(self._by_keyid)
