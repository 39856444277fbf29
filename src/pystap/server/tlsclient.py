"""The client's TLS connection to a compile server: TLS 1.3, no CA, the certificate pinned.

There is no certificate authority.  A server is trusted when the SHA-256
fingerprint of the certificate it presents is in an SSL-peer store -- the
user's or all users' (:class:`~pystap.signing.SslPeerStore`), compared in
constant time -- and, when the server specification carries
``#sha256:FINGERPRINT``, equals that too.  The TLS 1.3 handshake itself
proves that the server holds the key of the certificate it presented
(CertificateVerify), so after these checks the peer *is* the pinned server.
The certificate must also be valid now and carry ``serverAuth``.  Nothing is
sent before all of this holds.

A host name that the certificate does not list is only a warning, with
SystemTap's words (spec §7.1): identity is the fingerprint, not the name.
"""

from __future__ import annotations

import hmac
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from pystap.server import protocol
from pystap.server.identity import validity_problem
from pystap.server.spec import ServerSpec
from pystap.signing import SslPeerStore, certificates

CONNECT_TIMEOUT = 10.0
RESPONSE_TIMEOUT = 900.0  # longer than any server's translation limit
MSG_UNKNOWN_ISSUER = "Peer's Certificate issuer is not recognized."
MAX_HELLO = 256 * 1024  # a hello comes from a server not trusted yet: keep it small


class ConnectError(Exception):
    """The server cannot be used; ``str()`` is one line naming it and why."""


@dataclass(frozen=True)
class Peer:
    """What the handshake showed: where we are connected and the certificate presented."""

    spec: ServerSpec
    address: str
    port: int
    certificate_der: bytes
    certificate: x509.Certificate

    @property
    def fingerprint(self) -> str:
        return certificates.fingerprint(self.certificate)

    @property
    def shown_address(self) -> str:
        return f"[{self.address}]:{self.port}" if ":" in self.address else f"{self.address}:{self.port}"


def client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    # No CA: the certificate is checked by fingerprint below, before anything is sent.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def open_connection(spec: ServerSpec, *, timeout: float = CONNECT_TIMEOUT) -> tuple[ssl.SSLSocket, Peer]:
    """Connect and complete the TLS handshake; no trust decision is taken here."""
    if spec.port is None:
        raise ConnectError(f"Unable to connect to {spec.address}: no port is known for it")
    try:
        raw = socket.create_connection((spec.host, spec.port), timeout=timeout)
    except OSError as exc:
        raise ConnectError(f"Unable to connect to {spec.address}: {exc.strerror or exc}") from None
    try:
        tls = client_context().wrap_socket(raw, server_hostname=None if spec.is_address else spec.host)
    except (OSError, ssl.SSLError) as exc:
        raw.close()
        raise ConnectError(f"Unable to connect to {spec.address}: TLS handshake failed: {exc}") from None
    try:
        der = tls.getpeercert(binary_form=True)
        if not der:
            raise ConnectError(f"Unable to connect to {spec.address}: the server presented no certificate")
        try:
            cert = certificates.load_certificate(der)
        except ValueError:
            raise ConnectError(f"Unable to connect to {spec.address}: the server's certificate is not valid "
                               "X.509") from None
        address, port = tls.getpeername()[:2]
    except BaseException:
        tls.close()
        raise
    return tls, Peer(spec, str(address), int(port), der, cert)


def trust_problem(peer: Peer, store: SslPeerStore, *, now: datetime | None = None) -> str | None:
    """Why ``peer`` may not be used (None when it may): pin, store, validity, purpose."""
    where = f"Unable to connect to the server at {peer.shown_address}"
    shown = certificates.show_fingerprint(peer.fingerprint)
    if peer.spec.tls_pin is not None and not hmac.compare_digest(peer.spec.tls_pin, peer.fingerprint):
        return (f"{where}: its certificate has the SHA-256 fingerprint {shown}, not the one given with "
                f"--use-server ({certificates.show_fingerprint(peer.spec.tls_pin)}).")
    if not store.trusts(peer.certificate_der):
        return (f"{where}: {MSG_UNKNOWN_ISSUER}\n"
                f"  Its certificate (SHA-256 fingerprint {shown}) is not a trusted SSL peer. To trust it, "
                f"compare that fingerprint with the one the server's administrator gives you and run:\n"
                f"  pystap --use-server={peer.spec.address} --trust-servers")
    problem = validity_problem(peer.certificate, now or datetime.now(UTC))
    if problem is not None:
        return f"{where}: its certificate (SHA-256 fingerprint {shown}) is not valid now: {problem}."
    if not certificates.has_purpose(peer.certificate, ExtendedKeyUsageOID.SERVER_AUTH):
        return f"{where}: its certificate (SHA-256 fingerprint {shown}) is not a TLS server certificate."
    return None


def hostname_warning(peer: Peer) -> str | None:
    """SystemTap's warning when the typed host name is not among the certificate's DNS names."""
    if peer.spec.is_address:
        return None
    try:
        names = peer.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = names.get_values_for_type(x509.DNSName)
    except (x509.ExtensionNotFound, ValueError):
        dns = []
    wanted = peer.spec.host.rstrip(".").lower()
    if any(name.lower() == wanted for name in dns):
        return None
    listed = "".join(f"\n  {name}" for name in dns)
    return (f"WARNING: The domain name, {peer.spec.host}, does not match the DNS name(s) on the server "
            f"certificate:{listed}")


def _read_exact(sock: ssl.SSLSocket, size: int, deadline: float) -> bytes:
    buffer = bytearray()
    while len(buffer) < size:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ConnectError("the server did not answer in time")
        sock.settimeout(remaining)
        chunk = sock.recv(min(size - len(buffer), 1 << 20))
        if not chunk:
            raise ConnectError("the server closed the connection before its answer was complete")
        buffer += chunk
    return bytes(buffer)


def exchange(sock: ssl.SSLSocket, body: bytes, *, timeout: float = RESPONSE_TIMEOUT,
             limit: int = protocol.MAX_RESPONSE) -> bytes:
    """Send one frame (``body`` empty: a hello) and return the answer, inflated within ``limit``."""
    sock.settimeout(CONNECT_TIMEOUT)
    try:
        sock.sendall(protocol.frame(body))
        deadline = time.monotonic() + timeout
        header = _read_exact(sock, 4, deadline)
        size = protocol.LENGTH.unpack(header)[0]
        if not 0 < size <= limit:
            raise ConnectError(f"the server announced an answer of {size} bytes")
        payload = _read_exact(sock, size, deadline)
    except (OSError, ssl.SSLError) as exc:
        raise ConnectError(f"the connection failed: {exc}") from None
    try:
        return protocol.inflate(payload, limit, "response")
    except protocol.ProtocolError as exc:
        raise ConnectError(str(exc)) from None


def hello(spec: ServerSpec) -> tuple[Peer, protocol.Hello]:
    """Connect without trusting, and ask the server to describe itself (a request of length 0)."""
    tls, peer = open_connection(spec)
    try:
        data = exchange(tls, b"", timeout=CONNECT_TIMEOUT, limit=MAX_HELLO)
        try:
            return peer, protocol.decode_hello(data)
        except protocol.ProtocolError as exc:
            raise ConnectError(f"Unable to use the answer of {spec.address}: {exc}") from None
    finally:
        tls.close()
