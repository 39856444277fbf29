"""``pystap --trust-servers[=SPEC] --use-server=…``: trusting servers by fingerprint, never on first use.

SPEC is a comma list of ``ssl``, ``signer``, ``revoke``, ``all-users``,
``no-prompt`` (SystemTap's words and messages, spec §7.9).  The two kinds of
trust are about two different certificates:

* ``ssl`` (default): the server's **TLS certificate**, as presented in the
  handshake, goes into the user's SSL-peer store (``all-users``: everyone's,
  root only) -- "I trust this server to compile for me";
* ``signer`` (root only): the server's **module-signing certificate**, which
  the server hands out in its hello, goes into the signer store --
  "modules this server signs may run here".  The TLS certificate can never
  be a signer (the signer store refuses it).

SystemTap imported whatever certificate the peer presented (trust on first
use, spec §9.2).  Here the fingerprints of exactly the certificates that will
be trusted are shown, and trust is added only when the user confirms
(``[y/N]``); with ``no-prompt`` the server specification must carry them
(``#sha256:FP`` for ``ssl``, ``#signer-sha256:FP`` for ``signer``) and any
difference refuses the change.  ``revoke`` removes by fingerprint (a pinned
specification needs no connection, so a dead or hostile server can be
revoked), and revoking a signer also revokes its key.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass
from typing import TextIO

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from pystap import paths
from pystap.server import tlsclient
from pystap.server.spec import ServerSpec
from pystap.signing import SigningError, certificates, trust_admin

WORDS = ("ssl", "signer", "revoke", "all-users", "no-prompt")


@dataclass
class Target:
    """One server and the certificates the change is about (None where not needed or unknown)."""

    spec: ServerSpec
    address: str = "offline"
    port: str = "unknown"
    tls: x509.Certificate | None = None
    tls_fp: str | None = None
    signer: x509.Certificate | None = None
    signer_fp: str | None = None

    def line(self) -> str:
        def fp(value: str | None) -> str:
            return certificates.show_fingerprint(value) if value else "unknown"

        return (f"  host={self.spec.host} address={self.address} port={self.port} "
                f'certinfo="{fp(self.tls_fp)}" signer_certinfo="{fp(self.signer_fp)}"')


def _parse(spec_text: str, err: TextIO) -> set[str]:
    words: set[str] = set()
    for word in spec_text.split(",") if spec_text else []:
        if word in WORDS:
            words.add(word)
        elif word:
            err.write(f"Unrecognized server trust specification: {word}\n")
    if not words & {"ssl", "signer"}:
        words.add("ssl")
    return words


def _purpose(words: set[str]) -> str:
    parts = []
    if "ssl" in words:
        parts.append("as an SSL peer for all users" if "all-users" in words
                     else "as an SSL peer for the current user")
    if "signer" in words:
        parts.append("as a module signer for all users")
    return " and ".join(parts)


def _inspect(spec: ServerSpec, words: set[str]) -> Target:
    """Learn the certificates involved: from the pins alone when revoking, else from the server."""
    target = Target(spec, tls_fp=spec.tls_pin, signer_fp=spec.signer_pin)
    if spec.port is not None:
        target.port = str(spec.port)
    needs_ssl, needs_signer = "ssl" in words, "signer" in words
    if "revoke" in words and (not needs_ssl or spec.tls_pin) and (not needs_signer or spec.signer_pin):
        return target
    peer, hello = tlsclient.hello(spec)
    target.address, target.port = peer.address, str(peer.port)
    target.tls, target.tls_fp = peer.certificate, peer.fingerprint
    try:
        target.signer = certificates.load_certificate(hello.signer_certificate)
    except ValueError:
        target.signer = None
    target.signer_fp = certificates.fingerprint(target.signer) if target.signer is not None else None
    return target


def _pin_problem(target: Target, words: set[str]) -> str | None:
    """A pinned fingerprint that the server's certificate does not have (None when all agree)."""
    spec = target.spec
    checks = []
    if "ssl" in words:
        checks.append(("sha256", spec.tls_pin, target.tls_fp, "TLS"))
    if "signer" in words:
        checks.append(("signer-sha256", spec.signer_pin, target.signer_fp, "module-signing"))
    for kind, pinned, actual, what in checks:
        if pinned is None:
            if "no-prompt" in words:
                return (f"--trust-servers=no-prompt needs the expected fingerprint of the server's {what} "
                        f"certificate: --use-server={spec.address}#{kind}:FINGERPRINT")
            continue
        if actual is None:
            return f"{spec.address} did not present a {what} certificate"
        if not hmac.compare_digest(pinned, actual):
            return (f"The {what} certificate of {spec.address} has the SHA-256 fingerprint "
                    f"{certificates.show_fingerprint(actual)}, not the expected "
                    f"{certificates.show_fingerprint(pinned)}")
    return None


def _stores(words: set[str]) -> list[tuple[str, os.PathLike[str] | str, int]]:
    stores: list[tuple[str, os.PathLike[str] | str, int]] = []
    if "ssl" in words:
        if "all-users" in words:
            stores.append(("ssl", paths.ssl_client_dir_all_users(), 0))
        else:
            stores.append(("ssl", paths.user_ssl_client_dir(), os.getuid()))
    if "signer" in words:
        stores.append(("signer", paths.signer_store_dir(), 0))
    return stores


def _apply(target: Target, words: set[str], verbose: int, err: TextIO) -> None:
    for kind, directory, owner in _stores(words):
        cert = target.tls if kind == "ssl" else target.signer
        fingerprint = target.tls_fp if kind == "ssl" else target.signer_fp
        if "revoke" in words:
            assert fingerprint is not None
            try:
                keyids = trust_admin.remove_certificate(directory, fingerprint, owner_uid=owner)
            except SigningError:
                if verbose:
                    err.write(f"{target.spec.address} is already untrusted in {directory}\n")
                continue
            if kind == "signer":
                trust_admin.add_revocations(directory, keyids=keyids, owner_uid=owner)
            if verbose:
                err.write(f"Removed {certificates.show_fingerprint(fingerprint)} from {directory}\n")
            continue
        assert cert is not None
        if kind == "ssl" and not certificates.has_purpose(cert, ExtendedKeyUsageOID.SERVER_AUTH):
            raise SigningError(f"Unable to authorize certificate: the TLS certificate of "
                               f"{target.spec.address} is not a TLS server certificate")
        trust_admin.add_certificate(directory, cert, owner_uid=owner, signer=kind == "signer")
        if verbose:
            shown = certificates.show_fingerprint(certificates.fingerprint(cert))
            err.write(f"Trusted {shown} in {directory}\n")


def manage_trust(spec_text: str, servers: list[ServerSpec], *, stdin: TextIO, err: TextIO,
                 verbose: int = 0) -> int:
    """Add or revoke trust in ``servers``; exit status 0 also when the user declined."""
    words = _parse(spec_text, err)
    if os.geteuid() != 0:
        for word in ("signer", "all-users"):
            if word in words:
                err.write(f"Only root can specify '{word}' on --trust-servers\n")
                return 1
    if not servers:
        err.write("No servers identified for trust\n")
        return 1
    targets: list[Target] = []
    failed = False
    for spec in servers:
        try:
            target = _inspect(spec, words)
        except tlsclient.ConnectError as exc:
            err.write(f"{exc}\n")
            failed = True
            continue
        problem = _pin_problem(target, words)
        if problem is not None:
            err.write(f"{problem}\nServer trust unchanged\n")
            return 1
        targets.append(target)
    if not targets:
        return 1
    revoke, prompt = "revoke" in words, "no-prompt" not in words
    verb = ("Revoke" if revoke else "Add") if prompt else ("Revoking" if revoke else "Adding")
    err.write(f"{verb} trust in the following servers {_purpose(words)}{'?' if prompt else ''}\n")
    for target in targets:
        err.write(target.line() + "\n")
    if prompt:
        err.write("[y/N] ")
        err.flush()
        answer = stdin.readline()
        if answer[:1] not in ("y", "Y"):
            err.write("Server trust unchanged\n")
            return 0
    try:
        for target in targets:
            _apply(target, words, verbose, err)
    except SigningError as exc:
        err.write(f"{exc}\n")
        return 1
    return 1 if failed else 0
