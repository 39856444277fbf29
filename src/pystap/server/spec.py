"""Server specifications: which server ``--use-server=SPEC`` names, and which certificates it must show.

A specification is an address followed by optional pins (spec §7.3, without
mDNS discovery, which pystap does not do)::

    HOST:PORT  |  A.B.C.D:PORT  |  [IPv6]:PORT  |  HOST  |  [IPv6]  |  IPv6
    … then any of  #sha256:FINGERPRINT         the server's TLS certificate
                   #signer-sha256:FINGERPRINT  the server's module-signing certificate

Fingerprints are SHA-256 of the DER certificate, 64 hex digits, optionally
as colon-separated pairs (as ``pystap-gen-cert`` prints them).  A pin is an
extra condition on top of the trust stores: the connection is refused when
the certificate differs, and ``--trust-servers=no-prompt`` requires one.  The
``#`` separator cannot occur in a host name, so the syntax is unambiguous.
SystemTap's certificate-serial form (``xx:xx:xx:xx:xx``) is not accepted:
servers are identified by fingerprint, never by serial number.

A specification without a port is completed from the *known servers* files
(one specification per line, ``#`` at the start of a line begins a comment):
``$XDG_CONFIG_HOME/pystap/servers`` and ``/etc/pystap/servers``; ``--use-server``
without a value means every server listed there.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from pathlib import Path

from pystap import paths
from pystap.signing import safe_files

_HOSTNAME = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?")
_PORT = re.compile(r"[0-9]{1,5}")
_HEX = re.compile(r"[0-9a-f]{64}")
MAX_KNOWN_BYTES = 64 * 1024


class SpecError(ValueError):
    """An unusable specification; the message is SystemTap's."""


@dataclass(frozen=True)
class ServerSpec:
    """One server: ``host`` is a name or an address literal (IPv6 without brackets)."""

    text: str
    host: str
    port: int | None = None
    tls_pin: str | None = None
    signer_pin: str | None = None

    @property
    def is_address(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    @property
    def address(self) -> str:
        """``host:port`` as typed back to a user (``[v6]:port`` for IPv6)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    def with_pins(self, tls_pin: str | None, signer_pin: str | None) -> ServerSpec:
        return replace(self, tls_pin=tls_pin, signer_pin=signer_pin)


def fingerprint_hex(text: str) -> str | None:
    """``AB:CD:…`` or ``abcd…`` → 64 lowercase hex digits; None when it is not a fingerprint."""
    value = text.strip().lower().replace(":", "")
    return value if _HEX.fullmatch(value) else None


def _invalid(text: str) -> SpecError:
    return SpecError(f"Invalid server specification: {text}")


def _port(text: str, whole: str) -> int:
    if not _PORT.fullmatch(text) or not 0 < int(text) < 65536:
        raise _invalid(whole)
    return int(text)


def parse_spec(text: str) -> ServerSpec:
    """Parse one ``--use-server`` value (see the module documentation)."""
    base, sep, pin_text = text.partition("#")
    tls_pin = signer_pin = None
    for fragment in pin_text.split("#") if sep else []:
        kind, sep, value = fragment.partition(":")
        digest = fingerprint_hex(value) if sep else None
        if digest is None or kind not in ("sha256", "signer-sha256"):
            raise _invalid(text)
        if kind == "sha256":
            if tls_pin is not None:
                raise _invalid(text)
            tls_pin = digest
        else:
            if signer_pin is not None:
                raise _invalid(text)
            signer_pin = digest
    port: int | None = None
    if base.startswith("["):
        match = re.fullmatch(r"\[([^\]]+)\](?::([^:]*))?", base)
        if match is None:
            raise _invalid(text)
        host = match.group(1)
        if match.group(2) is not None:
            port = _port(match.group(2), text)
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _invalid(text) from None
    elif base.count(":") >= 2:
        host = base
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _invalid(text) from None
    else:
        host, sep, port_text = base.partition(":")
        if sep:
            port = _port(port_text, text)
        if not _HOSTNAME.fullmatch(host):
            raise _invalid(text)
        if re.fullmatch(r"[0-9.]+", host):
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                raise _invalid(text) from None
    return ServerSpec(text, host, port, tls_pin, signer_pin)


def known_server_files() -> list[Path]:
    return [paths.user_config_dir() / "servers", paths.sysconfdir() / "servers"]


def known_servers() -> tuple[list[ServerSpec], list[str]]:
    """The servers the known-servers files list, and a message for each unusable line."""
    specs: list[ServerSpec] = []
    problems: list[str] = []
    for path in known_server_files():
        try:
            data = safe_files.read_regular(path, MAX_KNOWN_BYTES, what=str(path))
        except FileNotFoundError:
            continue
        except OSError as exc:
            problems.append(f"cannot read {path}: {exc.strerror or exc}")
            continue
        for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                specs.append(parse_spec(line))
            except SpecError as exc:
                problems.append(f"{path}:{number}: {exc}")
    return specs, problems


def complete(spec: ServerSpec, known: list[ServerSpec]) -> list[ServerSpec]:
    """A specification with a port as is; without one, the known servers with that host.

    Pins typed on the command line are kept; a known entry's pins apply when
    none were typed.
    """
    if spec.port is not None:
        return [spec]
    result = []
    for entry in known:
        if entry.port is not None and entry.host.lower() == spec.host.lower():
            if spec.tls_pin is None and spec.signer_pin is None:
                result.append(entry)
            else:
                result.append(entry.with_pins(spec.tls_pin, spec.signer_pin))
    return result
