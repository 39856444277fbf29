"""Verification: module bytes + ``.sgn`` bytes + signer store → one :class:`Verdict`.

Called by the root service, so it imports only the standard library,
``cryptography`` and ``pystap.modfile``/``privilege``/``paths`` (through the
signing modules it uses).  Order of the checks, each ending in one verdict:

1. no signature → UNSIGNED; oversized or malformed envelope → ERROR;
2. the module digest or the signature's key id is revoked → REVOKED;
3. the key id names no certificate in the store → UNTRUSTED (the key id makes
   "not our signer" and "tampered" impossible to confuse, unlike SystemTap's
   ML-DSA path, spec §9.1 item 4);
4. the trusted key's signature does not verify over the envelope's
   pre-authentication encoding → ALTERED;
5. the signed statement disagrees with the module bytes (digest) or with the
   module's own fields (privilege, name, …) → ALTERED;
6. the signer certificate or the statement is outside its validity → EXPIRED;
7. otherwise OK, with the verified statement and the signer's key id.

Any unexpected exception is turned into an ERROR verdict: the daemon gets a
verdict for every input, never a traceback.
"""

from __future__ import annotations

import hmac
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from pystap import modfile
from pystap.signing import algorithms, certificates, envelope, statement
from pystap.signing.signer_store import SignerStore, TrustedSigner
from pystap.signing.verdict import Verdict, VerdictKind

CLOCK_SKEW = timedelta(minutes=5)


def _label(path: str | os.PathLike[str] | None) -> str:
    return os.fspath(path) if path is not None else "(module)"


def verify(
    module_bytes: bytes,
    sgn_bytes: bytes | None,
    store: SignerStore,
    now: datetime,
    *,
    path: str | os.PathLike[str] | None = None,
) -> Verdict:
    """Decide whether ``module_bytes`` carry a valid signature of a trusted signer.

    ``sgn_bytes`` None means there is no signature file. ``path`` only names the
    module in messages. A naive ``now`` is taken as UTC.
    """
    try:
        return _verify(module_bytes, sgn_bytes, store, now, _label(path))
    except Exception as exc:  # the contract is a verdict for every input
        return Verdict(VerdictKind.ERROR, f"Unable to check the signature of {_label(path)}: "
                                          f"internal error ({type(exc).__name__})")


def _error(where: str, detail: str) -> Verdict:
    return Verdict(VerdictKind.ERROR, f"Invalid signature file {where}.sgn: {detail}.")


def _verify(
    module_bytes: bytes, sgn_bytes: bytes | None, store: SignerStore, now: datetime, where: str
) -> Verdict:
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    if sgn_bytes is None:
        return Verdict(VerdictKind.UNSIGNED, f"Signature file {where}.sgn not found.")
    if not isinstance(module_bytes, (bytes, bytearray, memoryview)):
        return Verdict(VerdictKind.ERROR, f"Unable to read the module {where}.")
    module_bytes = bytes(module_bytes)
    if len(module_bytes) > modfile.MAX_MODULE_BYTES:
        return Verdict(VerdictKind.ERROR, f"The module {where} is too large "
                                          f"({len(module_bytes)} bytes, limit {modfile.MAX_MODULE_BYTES}).")
    try:
        env = envelope.decode(sgn_bytes)
    except envelope.EnvelopeError as exc:
        return _error(where, str(exc))
    embedded = None
    if env.certificates:
        try:
            embedded = certificates.load_certificate(env.certificates[0])
            embedded_keyid = algorithms.key_id(embedded.public_key())
        except Exception:
            return _error(where, "the embedded certificate is not a valid X.509 certificate")
        if not hmac.compare_digest(embedded_keyid, env.keyid):
            return _error(where, "the embedded certificate does not belong to the signing key")

    digest = modfile.digest(module_bytes)
    if digest in store.revoked_modules:
        return Verdict(VerdictKind.REVOKED, f"The module {where} (sha256 {digest}) has been revoked "
                                            "by the administrator.", signer=env.keyid)
    if env.keyid in store.revoked_keys:
        return Verdict(VerdictKind.REVOKED, f"The module {where} is signed by key {env.keyid}, which has "
                                            "been revoked by the administrator.", signer=env.keyid)
    trusted = store.signers(env.keyid)
    if not trusted:
        return _untrusted(env.keyid, embedded, store, where)

    pae = envelope.pae(env.payload_type, env.payload)
    signer = trusted[0]
    if not algorithms.verify(signer.public_key, env.signature, pae):
        return _altered(where, env.keyid)

    try:
        claims = statement.decode(env.payload)
    except envelope.EnvelopeError as exc:
        return _error(where, str(exc))
    if not hmac.compare_digest(claims["keyid"], env.keyid):
        return _error(where, "the signed statement names another signer key")
    if not hmac.compare_digest(claims["module_sha256"], digest):
        return _altered(where, env.keyid)
    mismatch = _module_mismatch(module_bytes, claims)
    if mismatch is not None:
        return Verdict(VerdictKind.ALTERED,
                       f"Unable to verify the signed module {where}. It may have been altered since it "
                       f"was created ({mismatch}).", signer=env.keyid)
    return _check_times(trusted, claims, now, where, env.keyid)


def _untrusted(keyid: str, embedded: Any, store: SignerStore, where: str) -> Verdict:
    who = ""
    if embedded is not None:
        who = (f" ('{certificates.subject(embedded)}', certificate fingerprint "
               f"{certificates.show_fingerprint(certificates.fingerprint(embedded))})")
    message = f"The module {where} is signed by key {keyid}{who}, which is not a trusted signer."
    if store.problems:
        message += (f" Unable to use the signer store {store.path} due to errors: "
                    + "; ".join(store.problems) + ".")
    else:
        message += " An administrator can trust it with 'pystap-authorize-cert CERT --signer'."
    return Verdict(VerdictKind.UNTRUSTED, message, signer=keyid)


def _altered(where: str, keyid: str) -> Verdict:
    return Verdict(VerdictKind.ALTERED, f"Unable to verify the signed module {where}. It may have been "
                                        "altered since it was created.", signer=keyid)


def _module_mismatch(module_bytes: bytes, claims: dict[str, Any]) -> str | None:
    try:
        module = modfile.load(module_bytes)
    except modfile.ModuleFormatError as exc:
        return f"the module does not load: {exc}"
    actual = {"privilege": module.privilege, "name": module.name, "script_digest": module.script_digest,
              "translator": module.translator, "release": module.release, "arch": module.arch}
    for key, value in actual.items():
        if claims[key] != value:
            return f"the signed {key} '{claims[key]}' differs from the module's '{value}'"
    return None


def _check_times(
    trusted: tuple[TrustedSigner, ...], claims: dict[str, Any], now: datetime, where: str, keyid: str
) -> Verdict:
    if not any(s.valid_at(now) for s in trusted):
        cert = trusted[0].certificate
        end = statement.format_time(cert.not_valid_after_utc)
        return Verdict(VerdictKind.EXPIRED,
                       f"The certificate of the signer of {where} ({trusted[0].describe()}) is not valid "
                       f"now (valid until {end}); the administrator must trust a new signer certificate.",
                       signer=keyid)
    issued = statement.parse_time(claims["issued_at"])
    expires = statement.parse_time(claims["expires_at"])
    if now > expires:
        return Verdict(VerdictKind.EXPIRED, f"The signature of the module {where} expired on "
                                            f"{claims['expires_at']}; rebuild or re-sign the module.",
                       signer=keyid)
    if issued > now + CLOCK_SKEW:
        return Verdict(VerdictKind.EXPIRED, f"The signature of the module {where} is not valid before "
                                            f"{claims['issued_at']}; check the system clocks.", signer=keyid)
    valid = next(s for s in trusted if s.valid_at(now))
    return Verdict(VerdictKind.OK, f"The module {where} is signed by a trusted signer ({valid.describe()}).",
                   statement=claims, signer=keyid, scope=valid.scope)
