"""Changing trust stores: add a certificate, remove it, revoke keys and modules.

Used by ``pystap-authorize-cert``.  Stores are created with mode 0755 and
certificate files written as ``<fingerprint>.pem`` with mode 0644 through the
same fd-based, atomic writes as keys; before writing, the directory must
already pass the ownership check a reader will apply (so an administrator
learns about a bad store when changing it, not when a load is refused).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cryptography import x509

from pystap.signing import algorithms, certificates, safe_files
from pystap.signing.errors import SigningError
from pystap.signing.signer_store import (
    CERT_SUFFIXES,
    REVOCATIONS_FILE,
    REVOCATIONS_FORMAT,
    SCOPES_FILE,
    SCOPES_FORMAT,
    SignerScope,
    parse_revocations,
    parse_scopes,
    signer_from_certificate,
)
from pystap.signing.trust_dir import read_trust_dir


def _open_store(directory: Path, owner_uid: int, create: bool) -> int:
    try:
        if create:
            safe_files.make_dirs(directory, 0o755)
        dir_fd = safe_files.open_dir(directory)
    except OSError as exc:
        raise SigningError(f"cannot open trust store {directory}: {exc.strerror or exc}") from None
    problem = safe_files.ownership_problem(os.fstat(dir_fd), f"trust store {directory}", owner_uid)
    if problem:
        os.close(dir_fd)
        raise SigningError(problem)
    return dir_fd


def add_certificate(
    directory: str | os.PathLike[str], cert: x509.Certificate, *, owner_uid: int, signer: bool
) -> str:
    """Trust ``cert`` in the store at ``directory``; returns its fingerprint (hex).

    Signer stores accept only code-signing certificates with allowed
    algorithms; SSL stores accept any certificate with an allowed key.
    """
    try:
        if signer:
            signer_from_certificate(cert)
        else:
            algorithms.check_certificate(cert)
    except ValueError as exc:
        raise SigningError(f"Unable to authorize certificate: {exc}") from None
    fingerprint = certificates.fingerprint(cert)
    dir_fd = _open_store(Path(directory), owner_uid, create=True)
    try:
        safe_files.write_atomic(dir_fd, f"{fingerprint}.pem", certificates.pem(cert), 0o644)
    except OSError as exc:
        raise SigningError(f"Unable to authorize certificate: {exc.strerror or exc}") from None
    finally:
        os.close(dir_fd)
    return fingerprint


def list_certificates(
    directory: str | os.PathLike[str], owner_uid: int
) -> list[tuple[str, x509.Certificate]]:
    """(file name, certificate) for every readable certificate of a usable store."""
    contents = read_trust_dir(directory, owner_uid, "trust store")
    if contents.problems and contents.exists:
        raise SigningError("; ".join(contents.problems))
    result = []
    for name, data in contents.files.items():
        if name.endswith(CERT_SUFFIXES) and not name.startswith("."):
            try:
                result.append((name, certificates.load_certificate(data)))
            except ValueError:
                continue
    return result


def remove_certificate(directory: str | os.PathLike[str], fingerprint: str, *, owner_uid: int) -> list[str]:
    """Remove every certificate with this fingerprint; returns the key ids they carried."""
    wanted = certificates.parse_hex_id(fingerprint)
    matches = [(name, cert) for name, cert in list_certificates(directory, owner_uid)
               if certificates.fingerprint(cert) == wanted]
    if not matches:
        raise SigningError(f"no trusted certificate has fingerprint {certificates.show_fingerprint(wanted)}")
    dir_fd = _open_store(Path(directory), owner_uid, create=False)
    try:
        for name, _cert in matches:
            os.unlink(name, dir_fd=dir_fd)
        os.fsync(dir_fd)
        has_scopes = _exists(SCOPES_FILE, dir_fd)
    finally:
        os.close(dir_fd)
    if has_scopes:  # a scope outliving its certificate would silently apply if it came back
        set_scope(directory, wanted, SignerScope(), owner_uid=owner_uid)
    return sorted({algorithms.key_id(cert.public_key()) for _name, cert in matches})


def _exists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def add_revocations(
    directory: str | os.PathLike[str],
    *,
    keyids: tuple[str, ...] | list[str] = (),
    modules: tuple[str, ...] | list[str] = (),
    owner_uid: int = 0,
) -> None:
    """Add key ids and module digests to the store's ``revocations.json``."""
    store = Path(directory)
    new_keys = {certificates.parse_hex_id(k, "key id") for k in keyids}
    new_modules = {certificates.parse_hex_id(m, "module digest") for m in modules}
    dir_fd = _open_store(store, owner_uid, create=True)
    try:
        try:
            data = safe_files.read_regular(REVOCATIONS_FILE, 4 * 1024 * 1024, dir_fd=dir_fd,
                                           owner_uid=owner_uid, what=str(store / REVOCATIONS_FILE))
            old_keys, old_modules = parse_revocations(data)
        except FileNotFoundError:
            old_keys, old_modules = frozenset(), frozenset()
        except (OSError, ValueError) as exc:
            raise SigningError(f"cannot update {store / REVOCATIONS_FILE}: {exc}") from None
        document = {
            "format": REVOCATIONS_FORMAT,
            "version": 1,
            "keyids": sorted(old_keys | new_keys),
            "modules": sorted(old_modules | new_modules),
        }
        text = json.dumps(document, sort_keys=True, indent=1, ensure_ascii=True) + "\n"
        safe_files.write_atomic(dir_fd, REVOCATIONS_FILE, text.encode("ascii"), 0o644)
    finally:
        os.close(dir_fd)


def set_scope(directory: str | os.PathLike[str], fingerprint: str, scope: SignerScope, *,
              owner_uid: int = 0) -> None:
    """Record what the signer with this certificate fingerprint may certify in the store's
    ``scopes.json`` (an unrestricted scope removes its entry)."""
    store = Path(directory)
    wanted = certificates.parse_hex_id(fingerprint)
    dir_fd = _open_store(store, owner_uid, create=True)
    try:
        try:
            data = safe_files.read_regular(SCOPES_FILE, 4 * 1024 * 1024, dir_fd=dir_fd,
                                           owner_uid=owner_uid, what=str(store / SCOPES_FILE))
            scopes = parse_scopes(data)
        except FileNotFoundError:
            scopes = {}
        except (OSError, ValueError) as exc:
            raise SigningError(f"cannot update {store / SCOPES_FILE}: {exc}") from None
        if scope.unrestricted:
            scopes.pop(wanted, None)
        else:
            scopes[wanted] = scope
        document = {"format": SCOPES_FORMAT, "version": 1,
                    "scopes": {fp: sc.to_json() for fp, sc in sorted(scopes.items())}}
        text = json.dumps(document, sort_keys=True, indent=1, ensure_ascii=True) + "\n"
        safe_files.write_atomic(dir_fd, SCOPES_FILE, text.encode("ascii"), 0o644)
    finally:
        os.close(dir_fd)
