"""X.509 certificates: building self-signed ones, reading them, naming them.

A certificate here is only a carrier for a public key plus a validity period
and a purpose (extended key usage).  It is identified by its SHA-256
fingerprint (of the DER bytes), shown as colon-separated hex pairs; the key
inside is identified by its key id (SHA-256 of the SubjectPublicKeyInfo).
Serial numbers identify nothing (SystemTap's weakness, spec §9.2).

Purposes are kept apart: module signers carry ``codeSigning`` only, TLS
identities ``serverAuth`` only, so a TLS certificate can never be trusted as a
module signer and vice versa.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from collections.abc import Iterable
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pystap.signing import algorithms

MAX_CERT_BYTES = 64 * 1024
_HEX64 = re.compile(r"[0-9a-f]{64}")


def default_dns_names(extra: Iterable[str] = ()) -> list[str]:
    """The host's names, as ``stap-gen-cert`` uses them: nodename, short name ``.local``, extras."""
    node = os.uname().nodename or socket.gethostname() or "localhost"
    names = [node, node.split(".")[0] + ".local", *extra]
    result: list[str] = []
    for name in names:
        if name and name not in result:
            result.append(name)
    return result


def build_certificate(
    private_key: algorithms.PrivateKey,
    *,
    common_name: str,
    dns_names: Iterable[str],
    purpose: x509.ObjectIdentifier,
    now: datetime,
    validity: timedelta,
) -> x509.Certificate:
    """A self-signed end-entity certificate for ``private_key`` with one extended key usage.

    Valid from five minutes before ``now`` (tolerating small clock skew between
    hosts) until ``now + validity``.
    """
    if validity <= timedelta(0):
        raise ValueError("certificate validity must be positive")
    subject = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64]),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pystap"),
    ])
    public_key = private_key.public_key()
    key_usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False,
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    names = [x509.DNSName(n) for n in dns_names]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(private_key, algorithms.certificate_hash(private_key))


def load_certificate(data: bytes) -> x509.Certificate:
    """Exactly one certificate from PEM or DER bytes; ``ValueError`` otherwise."""
    if len(data) > MAX_CERT_BYTES:
        raise ValueError(f"certificate file is too large (limit {MAX_CERT_BYTES} bytes)")
    if data.lstrip().startswith(b"-----BEGIN"):
        certs = x509.load_pem_x509_certificates(data)
        if len(certs) != 1:
            raise ValueError(f"expected one certificate, found {len(certs)}")
        return certs[0]
    return x509.load_der_x509_certificate(data)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER bytes, lowercase hex without separators."""
    return hashlib.sha256(der(cert)).hexdigest()


def show_fingerprint(hex_digest: str) -> str:
    """``ab:cd:…``: how fingerprints are shown to people."""
    return ":".join(hex_digest[i:i + 2] for i in range(0, len(hex_digest), 2))


def parse_hex_id(text: str, what: str = "fingerprint") -> str:
    """Normalise a SHA-256 fingerprint/key id typed by a person (any case, optional colons)."""
    value = text.strip().lower().replace(":", "")
    if not _HEX64.fullmatch(value):
        raise ValueError(f"invalid {what} '{text}' (expected 64 hex digits, optionally as colon pairs)")
    return value


def has_purpose(cert: x509.Certificate, purpose: x509.ObjectIdentifier) -> bool:
    """True when the certificate's extended key usage lists ``purpose``."""
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (x509.ExtensionNotFound, ValueError):
        return False
    return purpose in eku


def is_code_signing(cert: x509.Certificate) -> bool:
    return has_purpose(cert, ExtendedKeyUsageOID.CODE_SIGNING)


def subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()
