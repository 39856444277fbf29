"""The server's two keys, kept apart: its TLS identity and its module-signing key.

SystemTap's server used one certificate for TLS and for module signing, so
the key exposed to every network client also vouched for kernel code (spec
§9.2).  Here:

* the **TLS identity** (``--ssl DIR``, default
  ``$XDG_CONFIG_HOME/pystap/server/ssl``) is ``tls-key.pem`` + ``tls-cert.pem``
  from :mod:`pystap.signing.tls` (ECDSA P-256, ``serverAuth`` only, refused
  by every signer store).  Clients pin its fingerprint (SSL-peer trust).
* the **signing key** (``--sign-key PATH``, default
  ``$XDG_CONFIG_HOME/pystap/server/signing``) is an ordinary pystap signing
  key (``codeSigning`` only).  Administrators of loading hosts trust its
  certificate as a signer, separately.

Either is created on first start when its directory holds neither of its
files; a directory holding half a key is an error, never silently replaced.
Both files must belong to the server's user and the private keys must be
private (checked on the opened files).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from pystap import paths
from pystap.signing import SigningError, SigningKey, algorithms, certificates, safe_files
from pystap.signing.keys import CERT_FILE, KEY_FILE, generate_signing_key, load_signing_key
from pystap.signing.tls import TLS_CERT_FILE, TLS_KEY_FILE, generate_tls_identity

MAX_PEM = 64 * 1024


def default_ssl_dir() -> Path:
    return paths.user_config_dir() / "server" / "ssl"


def default_signing_dir() -> Path:
    return paths.user_config_dir() / "server" / "signing"


@dataclass(frozen=True)
class ServerIdentity:
    """The loaded keys; ``notes`` says what was created at this start."""

    tls_key_path: Path
    tls_cert_path: Path
    tls_certificate: x509.Certificate
    signing_key: SigningKey
    notes: tuple[str, ...] = ()

    @property
    def tls_fingerprint(self) -> str:
        return certificates.fingerprint(self.tls_certificate)

    @property
    def signing_certificate_der(self) -> bytes:
        return certificates.der(self.signing_key.certificate)


def _exists(path: Path) -> bool:
    try:
        os.lstat(path)
    except FileNotFoundError:
        return False
    return True


def _load_tls(directory: Path) -> x509.Certificate:
    uid = os.geteuid()
    key_path, cert_path = directory / TLS_KEY_FILE, directory / TLS_CERT_FILE
    try:
        key_pem = safe_files.read_regular(key_path, MAX_PEM, private=True, owner_uid=uid, what=str(key_path))
        cert_pem = safe_files.read_regular(cert_path, MAX_PEM, owner_uid=uid, what=str(cert_path))
    except OSError as exc:
        raise SigningError(f"cannot use the TLS identity in {directory}: {exc.strerror or exc}") from None
    try:
        cert = certificates.load_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, None)
    except (ValueError, TypeError) as exc:
        raise SigningError(f"cannot use the TLS identity in {directory}: {exc}") from None
    if algorithms.key_id(key.public_key()) != algorithms.key_id(cert.public_key()):
        raise SigningError(f"{cert_path} does not belong to {key_path}")
    if not certificates.has_purpose(cert, ExtendedKeyUsageOID.SERVER_AUTH):
        raise SigningError(f"{cert_path} is not a TLS server certificate (extended key usage serverAuth)")
    return cert


def load_identity(
    ssl_dir: Path,
    signing_path: Path,
    *,
    dns_names: tuple[str, ...] = (),
    passphrase: str | None = None,
) -> ServerIdentity:
    """Load (creating on first use) the TLS identity and the signing key; refuse one key in two roles."""
    notes: list[str] = []
    tls_files = [n for n in (TLS_KEY_FILE, TLS_CERT_FILE) if _exists(ssl_dir / n)]
    if not tls_files:
        generate_tls_identity(ssl_dir, dns_names)
        notes.append(f"created a TLS identity in {ssl_dir}")
    elif len(tls_files) == 1:
        raise SigningError(f"{ssl_dir} holds {tls_files[0]} without its pair; move it away to create a new "
                           "TLS identity")
    cert = _load_tls(ssl_dir)

    is_file = signing_path.is_file()
    signing_files = [] if is_file else [n for n in (KEY_FILE, CERT_FILE) if _exists(signing_path / n)]
    if not is_file and not signing_files:
        node = os.uname().nodename or socket.gethostname()
        generate_signing_key(signing_path, dns_names=dns_names, passphrase=passphrase,
                             common_name=f"pystap compile server signer {node}")
        notes.append(f"created a module-signing key in {signing_path}")
    key = load_signing_key(signing_path, passphrase, owner_uid=os.geteuid())
    if key.keyid == algorithms.key_id(cert.public_key()):
        raise SigningError("the TLS identity and the signing key must be different keys")
    return ServerIdentity(ssl_dir / TLS_KEY_FILE, ssl_dir / TLS_CERT_FILE, cert, key, tuple(notes))


def validity_problem(cert: x509.Certificate, now: datetime | None = None) -> str | None:
    """Why a certificate is not valid at ``now`` (None when it is)."""
    when = now or datetime.now(UTC)
    if when < cert.not_valid_before_utc:
        return f"not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC"
    if when > cert.not_valid_after_utc:
        return f"expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC"
    return None
