"""``pystap --list-servers[=PROPS]``: the servers named, known or trusted, in SystemTap's format.

There is no mDNS discovery: the servers are those given with
``--use-server`` (``specified``, the default; without ``--use-server``, the
known-servers files), plus with ``all`` the certificates of the SSL-peer
stores.  Each server with an address is asked for its hello (no trust is
needed to *list* a server; nothing is sent but a length of 0).  ``online``,
``trusted``, ``signer`` and ``compatible`` then filter, in that order.

Output (stderr, as SystemTap's)::

    Systemtap Compile Server Status for 'PROPS'
     host=H address=A port=P sysinfo="R A" version=V certinfo="FP" signer_certinfo="FP"

where ``certinfo`` is the SHA-256 fingerprint of the TLS certificate (not a
serial number) and ``signer_certinfo`` that of the module-signing certificate;
``No servers found`` when nothing matches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TextIO

from cryptography import x509

from pystap.server import protocol, tlsclient
from pystap.server.spec import ServerSpec, SpecError, complete, known_servers, parse_spec
from pystap.signing import SignerStore, SslPeerStore, certificates

ACCUMULATE = ("all", "specified")
FILTERS = ("online", "trusted", "signer", "compatible")


@dataclass
class Entry:
    host: str = "unknown"
    address: str = "offline"
    port: str = "unknown"
    sysinfo: tuple[tuple[str, str], ...] = ()
    version: str = "unknown"
    tls_der: bytes | None = None
    signer_fp: str | None = None
    online: bool = False

    @property
    def tls_fp(self) -> str | None:
        return certificates.fingerprint(certificates.load_certificate(self.tls_der)) if self.tls_der else None

    def line(self) -> str:
        sysinfo = ", ".join(f"{r} {a}" for r, a in self.sysinfo) or "unknown"
        tls = certificates.show_fingerprint(self.tls_fp) if self.tls_fp else "unknown"
        signer = certificates.show_fingerprint(self.signer_fp) if self.signer_fp else "unknown"
        return (f' host={self.host} address={self.address} port={self.port} sysinfo="{sysinfo}" '
                f'version={self.version} certinfo="{tls}" signer_certinfo="{signer}"')


def _probe(spec: ServerSpec) -> Entry:
    entry = Entry(host=spec.host, port=str(spec.port) if spec.port is not None else "unknown")
    if spec.port is None:
        return entry
    try:
        peer, hello = tlsclient.hello(spec)
    except tlsclient.ConnectError:
        return entry
    entry.address, entry.port, entry.online = peer.address, str(peer.port), True
    entry.sysinfo, entry.version, entry.tls_der = hello.sysinfo, str(protocol.VERSION), peer.certificate_der
    try:
        entry.signer_fp = certificates.fingerprint(certificates.load_certificate(hello.signer_certificate))
    except ValueError:
        entry.signer_fp = None
    return entry


def _stored(cert: x509.Certificate) -> Entry:
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = names.get_values_for_type(x509.DNSName)
    except (x509.ExtensionNotFound, ValueError):
        dns = []
    return Entry(host=dns[0] if dns else "unknown", tls_der=certificates.der(cert))


def list_servers(props_text: str, specified: list[str], *, release: str, arch: str, err: TextIO) -> None:
    props = [p for p in (props_text or "specified").split(",") if p]
    err.write(f"Systemtap Compile Server Status for '{props_text or 'specified'}'\n")
    for prop in props:
        if prop not in ACCUMULATE + FILTERS:
            err.write(f"Unrecognized server property: {prop}\n")
    known, _problems = known_servers()
    specs: list[ServerSpec] = []
    for value in specified:
        try:
            specs.extend(complete(parse_spec(value), known) if value else known)
        except SpecError as exc:
            err.write(f"{exc}\n")
    if not specified:
        specs = list(known)
    entries = [_probe(s) for s in specs]
    ssl_store = SslPeerStore.combined()
    if "all" in props or not any(p in ACCUMULATE for p in props):
        shown = {e.tls_fp for e in entries}
        entries += [_stored(p.certificate) for p in ssl_store.peers if p.fingerprint not in shown]
    if "online" in props:
        entries = [e for e in entries if e.online]
    if "trusted" in props:
        entries = [e for e in entries if e.tls_der is not None and ssl_store.trusts(e.tls_der)]
    if "signer" in props:
        signers = {s.fingerprint for s in SignerStore.open().all_signers()}
        entries = [e for e in entries if e.signer_fp in signers]
    if "compatible" in props:
        entries = [e for e in entries if (release, arch) in e.sysinfo]
    if not entries:
        err.write("No servers found\n")
    for entry in entries:
        err.write(entry.line() + "\n")
