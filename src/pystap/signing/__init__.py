"""Module signing: keys, certificates, the ``.sgn`` envelope, trust stores, verification.

Interfaces other parts call (names are stable):

``sign_module(module_bytes, key, *, now=None, validity=90 days) -> bytes``
    The ``.sgn`` bytes for a module. Name, privilege, script digest,
    translator, release and arch are read from the module with
    ``modfile.load`` (a module that does not load raises :class:`SigningError`).
``sign_module_file(module_path, key, ...) -> Path``
    Signs an existing module file into ``<module>.sgn`` (``pystap --sign-module``).
``signature_path(module_path) -> Path``
    Where a module's signature lives.
``load_signing_key(dir_or_key_path, passphrase=None) -> SigningKey``
``user_signing_key(create=True) -> SigningKey``
    The user's key under ``paths.user_signing_dir()``, created on first use
    (key 0600 in a 0700 directory). Key type: ``PYSTAP_SIGN_KEY_TYPE``.
``generate_signing_key(directory, *, key_type=None, dns_names=(), validity=365 days, passphrase=None)``
``SignerStore.open(path=None)``
    Trusted signer certificates plus the revocation list, default
    ``paths.signer_store_dir()``; ``.problems`` says why it is treated as empty.
``verify(module_bytes, sgn_bytes, store, now, *, path=None) -> Verdict``
    ``sgn_bytes`` None → UNSIGNED. Never raises. Imports only the standard
    library, ``cryptography`` and ``pystap.modfile``/``privilege``/``paths``.
``SslPeerStore.user() / .all_users() / .combined() / .open(path, owner_uid)``
    Trusted compile servers; ``.trusts(cert_der)`` compares SHA-256 fingerprints.
``generate_tls_identity(directory, dns_names) -> TlsIdentity``
    The compile server's TLS key + certificate (serverAuth only, never a signer).
``trust_admin.add_certificate / remove_certificate / add_revocations / list_certificates``
    Changing stores (``pystap-authorize-cert``; ``--trust-servers`` can reuse them).

All user-caused failures other than verification raise :class:`SigningError`
with a message to print. The envelope and statement formats are documented in
``docs/admin/signing.md`` and in :mod:`.envelope` / :mod:`.statement`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pystap.signing.errors import SigningError
    from pystap.signing.keys import SigningKey, generate_signing_key, load_signing_key, user_signing_key
    from pystap.signing.sign import sign_module, sign_module_file, signature_path
    from pystap.signing.signer_store import SignerStore, TrustedSigner
    from pystap.signing.ssl_peers import SslPeerStore
    from pystap.signing.tls import TlsIdentity, generate_tls_identity
    from pystap.signing.verdict import Verdict, VerdictKind
    from pystap.signing.verify import verify

# Where each public name lives.  The names are resolved on first use (PEP 562)
# rather than imported here: importing ``cryptography`` costs tens of
# milliseconds, and stdlib-only parts of this package (``safe_files``,
# ``envelope``, ``statement``) are used on paths that never sign or verify --
# a cached ``pystap`` run, the tapset index -- which should not pay for it.
_PUBLIC = {
    "SigningError": "errors",
    "SigningKey": "keys",
    "generate_signing_key": "keys",
    "load_signing_key": "keys",
    "user_signing_key": "keys",
    "sign_module": "sign",
    "sign_module_file": "sign",
    "signature_path": "sign",
    "SignerStore": "signer_store",
    "TrustedSigner": "signer_store",
    "SslPeerStore": "ssl_peers",
    "TlsIdentity": "tls",
    "generate_tls_identity": "tls",
    "Verdict": "verdict",
    "VerdictKind": "verdict",
    "verify": "verify",
}


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))


__all__ = [
    "SignerStore",
    "SigningError",
    "SigningKey",
    "SslPeerStore",
    "TlsIdentity",
    "TrustedSigner",
    "Verdict",
    "VerdictKind",
    "generate_signing_key",
    "generate_tls_identity",
    "load_signing_key",
    "sign_module",
    "sign_module_file",
    "signature_path",
    "user_signing_key",
    "verify",
]
