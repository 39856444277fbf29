"""Signing modules: statement from the module itself, envelope, ``.sgn`` file.

The statement is always read from the module bytes with ``modfile.load``, so a
signer cannot be talked into asserting a privilege or target the module does
not declare; a module that does not load is not signed.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pystap import modfile
from pystap.signing import certificates, envelope, safe_files, statement
from pystap.signing.errors import SigningError
from pystap.signing.keys import SigningKey

DEFAULT_SIGNATURE_VALIDITY = timedelta(days=90)


def signature_path(module_path: str | os.PathLike[str]) -> Path:
    """``<module>.sgn``, next to the module (as SystemTap's ``.ko.sgn``)."""
    return Path(f"{os.fspath(module_path)}{modfile.SIGNATURE_SUFFIX}")


def sign_module(
    module_bytes: bytes,
    key: SigningKey,
    *,
    now: datetime | None = None,
    validity: timedelta = DEFAULT_SIGNATURE_VALIDITY,
) -> bytes:
    """The ``.sgn`` bytes for ``module_bytes``.

    The signature expires after ``validity`` or when the signer's certificate
    does, whichever is first; signing with an expired certificate is refused.
    """
    try:
        module = modfile.load(module_bytes)
    except modfile.ModuleFormatError as exc:
        raise SigningError(f"cannot sign: not a valid pystap module: {exc}") from None
    if validity <= timedelta(0):
        raise SigningError("signature validity must be positive")
    when = now or datetime.now(UTC)
    if when.tzinfo is None:  # naive times are UTC, as in verify()
        when = when.replace(tzinfo=UTC)
    issued = when.astimezone(UTC).replace(microsecond=0)
    cert_end = key.certificate.not_valid_after_utc
    if issued >= cert_end:
        raise SigningError(
            f"the signing certificate expired on {statement.format_time(cert_end)}; "
            "create a new key with pystap-gen-cert and have it trusted"
        )
    if issued < key.certificate.not_valid_before_utc:
        raise SigningError("the signing certificate is not valid yet (check the clock)")
    expires = min(issued + validity, cert_end)
    claims = statement.build(module, modfile.digest(module_bytes), key.keyid, issued, expires)
    payload = statement.encode(claims)
    signature = key.sign(envelope.pae(envelope.PAYLOAD_TYPE, payload))
    return envelope.encode(
        envelope.Envelope(
            envelope.PAYLOAD_TYPE, payload, key.keyid, signature, (certificates.der(key.certificate),)
        )
    )


def sign_module_file(
    module_path: str | os.PathLike[str],
    key: SigningKey,
    *,
    now: datetime | None = None,
    validity: timedelta = DEFAULT_SIGNATURE_VALIDITY,
) -> Path:
    """Sign an existing module file and write ``<module>.sgn`` next to it (mode 0644)."""
    path = Path(module_path)
    try:
        data = safe_files.read_regular(path, modfile.MAX_MODULE_BYTES)
    except OSError as exc:
        raise SigningError(f"cannot read module {path}: {exc.strerror or exc}") from None
    return write_signature(path, sign_module(data, key, now=now, validity=validity))


def write_signature(module_path: str | os.PathLike[str], sgn: bytes) -> Path:
    """Write ``<module>.sgn`` atomically (mode 0644) through the directory's fd."""
    target = signature_path(module_path)
    try:
        dir_fd = safe_files.open_dir(target.parent)
        try:
            safe_files.write_atomic(dir_fd, target.name, sgn, 0o644)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise SigningError(f"cannot write signature {target}: {exc.strerror or exc}") from None
    return target
