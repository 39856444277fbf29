"""Key types and signature algorithms: one explicit allowlist.

The algorithm is never read from a signature file: it follows from the key
type of the *trusted* certificate, so an attacker cannot choose it (no
algorithm confusion, no downgrade).  What is signed is always the full
pre-authentication encoding, with these fixed parameters:

=============  ==========================================================
key type       signature
=============  ==========================================================
ml-dsa-65      ML-DSA-65 (FIPS 204), pure, empty context (also 44, 87)
ecdsa-p256     ECDSA P-256 with SHA-256, DER encoded (also P-384/SHA-384)
ed25519        Ed25519 (pure)
rsa-4096       RSA-PSS, SHA-256, MGF1-SHA-256, 32-byte salt (RSA >= 3072)
=============  ==========================================================

Weak material is refused everywhere: RSA keys under 3072 bits, other curves,
DSA, and certificates signed with SHA-1 or MD5.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, padding, rsa

KEY_TYPES = ("ml-dsa-65", "ecdsa-p256", "ed25519", "rsa-4096")
DEFAULT_KEY_TYPE = "ml-dsa-65"
KEY_TYPE_ENV = "PYSTAP_SIGN_KEY_TYPE"
MIN_RSA_BITS = 3072

_ALIASES = {
    "ml-dsa-65": "ml-dsa-65", "mldsa65": "ml-dsa-65", "mldsa-65": "ml-dsa-65", "ml-dsa": "ml-dsa-65",
    "ecdsa-p256": "ecdsa-p256", "ecdsa": "ecdsa-p256", "p256": "ecdsa-p256", "ecdsa-p-256": "ecdsa-p256",
    "ed25519": "ed25519",
    "rsa-4096": "rsa-4096", "rsa": "rsa-4096", "rsa4096": "rsa-4096",
}
_WEAK_HASHES = ("sha1", "md5")
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)

PublicKey = Any
PrivateKey = Any


class WeakKeyError(ValueError):
    """The key or certificate uses an algorithm pystap refuses."""


def parse_key_type(text: str, source: str = "key type") -> str:
    """Canonical key type name for ``text`` (case-insensitive, SystemTap-style aliases)."""
    canonical = _ALIASES.get(text.strip().lower())
    if canonical is None:
        raise ValueError(
            f"Invalid {source} '{text}' (expected ml-dsa-65, ecdsa-p256, ed25519, or rsa-4096)"
        )
    return canonical


def key_type_from_env() -> str:
    """The key type for new keys: ``PYSTAP_SIGN_KEY_TYPE`` or the default (ML-DSA-65)."""
    value = os.environ.get(KEY_TYPE_ENV, "")
    return parse_key_type(value, KEY_TYPE_ENV) if value else DEFAULT_KEY_TYPE


def generate_private_key(key_type: str) -> PrivateKey:
    key_type = parse_key_type(key_type)
    if key_type == "ml-dsa-65":
        return mldsa.MLDSA65PrivateKey.generate()
    if key_type == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=4096)


def key_type_of(public_key: PublicKey) -> str:
    """Name of an allowed public key's type; :class:`WeakKeyError` for anything else."""
    if isinstance(public_key, mldsa.MLDSA65PublicKey):
        return "ml-dsa-65"
    if isinstance(public_key, mldsa.MLDSA87PublicKey):
        return "ml-dsa-87"
    if isinstance(public_key, mldsa.MLDSA44PublicKey):
        return "ml-dsa-44"
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if isinstance(public_key.curve, ec.SECP256R1):
            return "ecdsa-p256"
        if isinstance(public_key.curve, ec.SECP384R1):
            return "ecdsa-p384"
        raise WeakKeyError(f"elliptic curve {public_key.curve.name} is not allowed (use P-256)")
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < MIN_RSA_BITS:
            raise WeakKeyError(
                f"RSA key of {public_key.key_size} bits is too weak (at least {MIN_RSA_BITS} required)"
            )
        return f"rsa-{public_key.key_size}"
    raise WeakKeyError(f"key type {type(public_key).__name__} is not allowed")


def spki_der(public_key: PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_id(public_key: PublicKey) -> str:
    """SHA-256 of the SubjectPublicKeyInfo DER, lowercase hex: names a key, not a certificate."""
    return hashlib.sha256(spki_der(public_key)).hexdigest()


def sign(private_key: PrivateKey, data: bytes) -> bytes:
    """Sign ``data`` with the fixed algorithm of the key's type."""
    key_type = key_type_of(private_key.public_key())
    if key_type.startswith(("ml-dsa", "ed25519")):
        return private_key.sign(data)
    if key_type == "ecdsa-p256":
        return private_key.sign(data, ec.ECDSA(hashes.SHA256()))
    if key_type == "ecdsa-p384":
        return private_key.sign(data, ec.ECDSA(hashes.SHA384()))
    return private_key.sign(data, _PSS, hashes.SHA256())


def verify(public_key: PublicKey, signature: bytes, data: bytes) -> bool:
    """True only when ``signature`` is this key's valid signature over ``data``."""
    try:
        key_type = key_type_of(public_key)
        if key_type.startswith(("ml-dsa", "ed25519")):
            public_key.verify(signature, data)
        elif key_type == "ecdsa-p256":
            public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        elif key_type == "ecdsa-p384":
            public_key.verify(signature, data, ec.ECDSA(hashes.SHA384()))
        else:
            public_key.verify(signature, data, _PSS, hashes.SHA256())
    except (InvalidSignature, ValueError, UnsupportedAlgorithm, TypeError):
        return False
    return True


def certificate_hash(private_key: PrivateKey) -> hashes.HashAlgorithm | None:
    """Hash argument for ``CertificateBuilder.sign`` (None for ML-DSA and Ed25519)."""
    key_type = key_type_of(private_key.public_key())
    if key_type.startswith(("ml-dsa", "ed25519")):
        return None
    if key_type == "ecdsa-p384":
        return hashes.SHA384()
    return hashes.SHA256()


def check_certificate(cert: x509.Certificate) -> str:
    """Key type of an acceptable certificate; :class:`WeakKeyError` for weak ones."""
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm as exc:
        raise WeakKeyError(f"certificate signature algorithm is not supported: {exc}") from None
    if algorithm is not None and algorithm.name in _WEAK_HASHES:
        raise WeakKeyError(f"certificate is signed with {algorithm.name.upper()}, which is too weak")
    try:
        public_key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise WeakKeyError(f"certificate public key is not supported: {exc}") from None
    return key_type_of(public_key)
