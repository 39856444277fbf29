"""SSL-peer stores: the compile servers a user (or every user) trusts.

Per user: ``$XDG_CONFIG_HOME/pystap/ssl/client/`` (owned by that user); all
users: ``/etc/pystap/ssl/client/`` (owned by root).  Each file is one server
certificate.  A server is trusted when the SHA-256 fingerprint of the DER
certificate it presents equals one in a store (compared in constant time) —
pinning by fingerprint, never by serial number and never trust-on-first-use.
Directories and files are checked on fds exactly like the signer store.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from pystap import paths
from pystap.signing import certificates
from pystap.signing.signer_store import CERT_SUFFIXES
from pystap.signing.trust_dir import read_trust_dir


@dataclass(frozen=True)
class TrustedPeer:
    fingerprint: str
    certificate: x509.Certificate
    source: str


class SslPeerStore:
    """Certificates of trusted compile servers, keyed by SHA-256 fingerprint."""

    def __init__(self, peers: list[TrustedPeer], problems: list[str], warnings: list[str],
                 path: Path | None) -> None:
        self.peers = peers if not problems else []
        self.problems = problems
        self.warnings = warnings
        self.path = path

    @classmethod
    def open(cls, path: str | os.PathLike[str], owner_uid: int) -> SslPeerStore:
        """Read one store; it is empty (with :attr:`problems`) unless safely owned by ``owner_uid``."""
        directory = Path(path)
        contents = read_trust_dir(directory, owner_uid, "SSL peer store")
        peers: list[TrustedPeer] = []
        warnings: list[str] = []
        for name, data in contents.files.items():
            if name.startswith(".") or not name.endswith(CERT_SUFFIXES):
                continue
            try:
                cert = certificates.load_certificate(data)
            except ValueError as exc:
                warnings.append(f"ignoring {directory / name}: {exc}")
                continue
            peers.append(TrustedPeer(certificates.fingerprint(cert), cert, name))
        problems = [] if not contents.exists else contents.problems
        return cls(peers, problems, warnings, directory)

    @classmethod
    def user(cls) -> SslPeerStore:
        return cls.open(paths.user_ssl_client_dir(), os.getuid())

    @classmethod
    def all_users(cls) -> SslPeerStore:
        return cls.open(paths.ssl_client_dir_all_users(), 0)

    @classmethod
    def combined(cls) -> SslPeerStore:
        """The user's store and the all-users store together (what a client trusts)."""
        mine, everyone = cls.user(), cls.all_users()
        return cls(mine.peers + everyone.peers, [], mine.problems + everyone.problems
                   + mine.warnings + everyone.warnings, None)

    @property
    def fingerprints(self) -> list[str]:
        return [p.fingerprint for p in self.peers]

    def trusts(self, cert_der: bytes) -> bool:
        """True when the presented DER certificate is pinned in this store."""
        presented = hashlib.sha256(cert_der).hexdigest()
        found = False
        for peer in self.peers:
            found |= hmac.compare_digest(peer.fingerprint, presented)
        return found
