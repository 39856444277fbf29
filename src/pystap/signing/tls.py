"""TLS identities for the compile server: a key pair that never signs modules.

SystemTap used one certificate for TLS and for module signing (spec §9.2), so a
compromise of the network-facing key was a compromise of every host trusting
the signer.  Here the TLS identity is a separate ECDSA P-256 key whose
certificate carries only the ``serverAuth`` usage; the signer store refuses
such certificates, so the two roles cannot be mixed up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from pystap.signing import algorithms, certificates, safe_files
from pystap.signing.errors import SigningError

TLS_KEY_FILE = "tls-key.pem"
TLS_CERT_FILE = "tls-cert.pem"


@dataclass(frozen=True)
class TlsIdentity:
    key_path: Path
    cert_path: Path
    certificate: x509.Certificate

    @property
    def fingerprint(self) -> str:
        return certificates.fingerprint(self.certificate)


def generate_tls_identity(
    directory: str | os.PathLike[str],
    dns_names: tuple[str, ...] | list[str] = (),
    *,
    validity: timedelta = timedelta(days=365),
    now: datetime | None = None,
) -> TlsIdentity:
    """Create ``tls-key.pem`` (0600) and ``tls-cert.pem`` in ``directory`` (created 0700).

    The key is ECDSA P-256 because TLS stacks do not yet negotiate ML-DSA
    certificates; DNS names default to the host's names plus ``dns_names``.
    """
    target = Path(directory)
    when = (now or datetime.now(UTC)).replace(microsecond=0)
    private_key = algorithms.generate_private_key("ecdsa-p256")
    cert = certificates.build_certificate(
        private_key,
        common_name=f"pystap compile server {os.uname().nodename}",
        dns_names=certificates.default_dns_names(dns_names),
        purpose=ExtendedKeyUsageOID.SERVER_AUTH,
        now=when,
        validity=validity,
    )
    key_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        safe_files.make_dirs(target, 0o700)
        dir_fd = safe_files.open_dir(target)
        try:
            safe_files.write_atomic(dir_fd, TLS_KEY_FILE, key_pem, 0o600)
            safe_files.write_atomic(dir_fd, TLS_CERT_FILE, certificates.pem(cert), 0o644)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise SigningError(f"cannot write TLS identity in {target}: {exc.strerror or exc}") from None
    return TlsIdentity(target / TLS_KEY_FILE, target / TLS_CERT_FILE, cert)
