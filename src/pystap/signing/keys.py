"""Module-signing keys: create, load, and the user's own key.

A key directory holds ``signing-key.pem`` (PKCS#8, mode 0600, optionally
encrypted with a passphrase) and ``signing-cert.pem`` (its self-signed
certificate, codeSigning usage).  Keys are created whole: both files are
written into a fresh private temporary directory that is then renamed into
place, so a crash or a concurrent first use never leaves a key without its
certificate (as SystemTap creates its certificate database on first use).

A user's own key signs every module that user builds; it is trusted for
unprivileged loading only where an administrator adds its certificate to the
signer store.  Module-signing keys are never TLS keys (see :mod:`.tls`).
"""

from __future__ import annotations

import errno
import getpass
import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from pystap import paths
from pystap.signing import algorithms, certificates, safe_files
from pystap.signing.errors import PassphraseNeeded, SigningError

KEY_FILE = "signing-key.pem"
CERT_FILE = "signing-cert.pem"
DEFAULT_CERT_VALIDITY = timedelta(days=365)
MAX_KEY_BYTES = 64 * 1024


@dataclass(frozen=True)
class SigningKey:
    """A private signing key with its certificate (the certificate travels in ``.sgn`` files)."""

    private_key: algorithms.PrivateKey
    certificate: x509.Certificate
    key_type: str
    keyid: str
    directory: Path | None = None

    @property
    def fingerprint(self) -> str:
        """SHA-256 fingerprint of the certificate (hex) — what an administrator trusts."""
        return certificates.fingerprint(self.certificate)

    def sign(self, data: bytes) -> bytes:
        return algorithms.sign(self.private_key, data)


def _signer_common_name() -> str:
    host = os.uname().nodename or socket.gethostname() or "localhost"
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"pystap module signer {user}@{host}"


def _private_bytes(private_key: algorithms.PrivateKey, passphrase: bytes | None) -> bytes:
    encryption: serialization.KeySerializationEncryption
    if passphrase:
        encryption = serialization.BestAvailableEncryption(passphrase)
    else:
        encryption = serialization.NoEncryption()
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def _as_bytes(passphrase: str | bytes | None) -> bytes | None:
    if passphrase is None or isinstance(passphrase, bytes):
        return passphrase or None
    return passphrase.encode("utf-8") or None


def generate_signing_key(
    directory: str | os.PathLike[str],
    *,
    key_type: str | None = None,
    dns_names: tuple[str, ...] | list[str] = (),
    validity: timedelta = DEFAULT_CERT_VALIDITY,
    passphrase: str | bytes | None = None,
    common_name: str | None = None,
    replace: bool = False,
    now: datetime | None = None,
) -> SigningKey:
    """Create a signing key and certificate in ``directory`` (mode 0700).

    Refuses to overwrite an existing key unless ``replace`` (rotation keeps the
    old files as ``*.old`` so modules signed with them can still be inspected).
    """
    target = Path(directory)
    try:
        chosen = algorithms.parse_key_type(key_type) if key_type else algorithms.key_type_from_env()
    except ValueError as exc:
        raise SigningError(str(exc)) from None
    when = (now or datetime.now(UTC)).replace(microsecond=0)
    private_key = algorithms.generate_private_key(chosen)
    try:
        cert = certificates.build_certificate(
            private_key,
            common_name=common_name or _signer_common_name(),
            dns_names=certificates.default_dns_names(dns_names),
            purpose=ExtendedKeyUsageOID.CODE_SIGNING,
            now=when,
            validity=validity,
        )
    except ValueError as exc:
        raise SigningError(f"cannot create certificate: {exc}") from None
    key_pem = _private_bytes(private_key, _as_bytes(passphrase))
    _install_pair(target, key_pem, certificates.pem(cert), replace=replace)
    return SigningKey(private_key, cert, chosen, algorithms.key_id(private_key.public_key()), target)


def _install_pair(target: Path, key_pem: bytes, cert_pem: bytes, *, replace: bool) -> None:
    """Write key + certificate so that they appear together or not at all."""
    try:
        safe_files.make_dirs(target.parent, 0o700)
        if target.is_dir() and not target.is_symlink():
            dir_fd = safe_files.open_dir(target)
            try:
                existing = [n for n in (KEY_FILE, CERT_FILE) if _exists_at(n, dir_fd)]
                if existing and not replace:
                    raise SigningError(
                        f"a signing key already exists in {target}; use --force to replace it"
                    )
                for name in existing:
                    os.rename(name, name + ".old", src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                safe_files.write_atomic(dir_fd, KEY_FILE, key_pem, 0o600)
                safe_files.write_atomic(dir_fd, CERT_FILE, cert_pem, 0o644)
            finally:
                os.close(dir_fd)
            return
        staging = Path(tempfile.mkdtemp(prefix=".signing-", dir=target.parent))
        try:
            dir_fd = safe_files.open_dir(staging)
            try:
                safe_files.write_atomic(dir_fd, KEY_FILE, key_pem, 0o600)
                safe_files.write_atomic(dir_fd, CERT_FILE, cert_pem, 0o644)
            finally:
                os.close(dir_fd)
            os.chmod(staging, 0o700)
            os.rename(staging, target)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    except OSError as exc:
        raise SigningError(f"cannot write signing key in {target}: {exc.strerror or exc}") from None


def _exists_at(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _split_pem(data: bytes) -> tuple[bytes, bytes | None]:
    """A key file may also carry its certificate (one PEM bundle)."""
    marker = b"-----BEGIN CERTIFICATE-----"
    index = data.find(marker)
    if index < 0:
        return data, None
    end = data.find(b"-----END CERTIFICATE-----", index)
    if end < 0:
        return data, None
    cert = data[index:end + len(b"-----END CERTIFICATE-----")] + b"\n"
    return data[:index] + data[end + len(b"-----END CERTIFICATE-----"):], cert


def load_signing_key(
    dir_or_key_path: str | os.PathLike[str],
    passphrase: str | bytes | None = None,
    *,
    owner_uid: int | None = None,
) -> SigningKey:
    """Load a key from its directory, or from a key file (bundle, or next to ``signing-cert.pem``).

    The key file must not be accessible by group or others (as ssh requires)
    and must not be a symbolic link; with ``owner_uid`` it must also be owned
    by that uid (a key someone else can replace is not the user's key).  The
    certificate must belong to the key and use an allowed algorithm.
    """
    path = Path(dir_or_key_path)
    if path.is_dir():
        key_path, cert_path = path / KEY_FILE, path / CERT_FILE
    else:
        key_path, cert_path = path, path.parent / CERT_FILE
    try:
        key_data = safe_files.read_regular(key_path, MAX_KEY_BYTES, private=True, owner_uid=owner_uid,
                                           what=str(key_path))
    except FileNotFoundError:
        raise SigningError(f"no signing key at {key_path} (create one with pystap-gen-cert)") from None
    except safe_files.UnsafeFileError as exc:
        raise SigningError(f"refusing to use signing key {key_path}: {exc}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SigningError(f"cannot read signing key {key_path}: it is a symbolic link, and keys "
                               "are never read through links (give the real path)") from None
        raise SigningError(f"cannot read signing key {key_path}: {exc.strerror or exc}") from None
    key_part, cert_data = _split_pem(key_data)
    try:
        private_key = serialization.load_pem_private_key(key_part, _as_bytes(passphrase))
    except TypeError:
        if passphrase is None:
            raise PassphraseNeeded(f"signing key {key_path} is encrypted: a passphrase is needed") from None
        raise SigningError(f"signing key {key_path} is not encrypted; do not give a passphrase") from None
    except ValueError:
        raise SigningError(
            f"cannot load signing key {key_path}: wrong passphrase or not a PEM private key"
        ) from None
    except Exception as exc:  # unsupported algorithms raise library-specific errors
        raise SigningError(f"cannot load signing key {key_path}: {exc}") from None
    if cert_data is None:
        try:
            cert_data = safe_files.read_regular(cert_path, certificates.MAX_CERT_BYTES, owner_uid=owner_uid,
                                                what=str(cert_path))
        except OSError as exc:
            raise SigningError(
                f"cannot read the certificate {cert_path} of signing key {key_path}: {exc.strerror or exc}"
            ) from None
    try:
        cert = certificates.load_certificate(cert_data)
        key_type = algorithms.check_certificate(cert)
        keyid = algorithms.key_id(private_key.public_key())
    except ValueError as exc:
        raise SigningError(f"unusable signing certificate {cert_path}: {exc}") from None
    if algorithms.key_id(cert.public_key()) != keyid:
        raise SigningError(f"certificate {cert_path} does not belong to signing key {key_path}")
    if not certificates.is_code_signing(cert):
        raise SigningError(f"certificate {cert_path} is not a code-signing certificate")
    return SigningKey(private_key, cert, key_type, keyid, key_path.parent)


def _check_own_dir(directory: Path, uid: int) -> None:
    """The key directory must be a real directory of ``uid`` that nobody else can change."""
    try:
        fd = safe_files.open_dir(directory)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise SigningError(f"refusing to use signing key directory {directory}: it is a symbolic link "
                               "or not a directory") from None
        raise SigningError(f"cannot open signing key directory {directory}: {exc.strerror or exc}") from None
    try:
        problem = safe_files.ownership_problem(os.fstat(fd), f"signing key directory {directory}", uid)
    finally:
        os.close(fd)
    if problem:
        raise SigningError(f"refusing to use the signing key: {problem}")


def _lexists(path: Path) -> bool:
    try:
        os.lstat(path)
    except FileNotFoundError:
        return False
    return True


def user_signing_key(
    create: bool = True, *, on_create: Callable[[SigningKey], None] | None = None
) -> SigningKey:
    """The invoking user's own key (``paths.user_signing_dir()``), created on first use.

    The directory and both files must belong to the user (effective uid) and
    be unchangeable by anyone else; links are never followed.  A key is
    created only when neither file exists: a directory holding just one of
    them, a link, or a file of the wrong owner or mode is an error that names
    the file, and nothing is replaced.  ``on_create`` is called with a key
    this call created (the command line prints where it is and how an
    administrator trusts it).
    """
    directory = paths.user_signing_dir()
    uid = os.geteuid()
    present = [name for name in (KEY_FILE, CERT_FILE) if _lexists(directory / name)]
    if present or not create:
        if _lexists(directory):
            _check_own_dir(directory, uid)
        return load_signing_key(directory, owner_uid=uid)
    if _lexists(directory):
        _check_own_dir(directory, uid)
    try:
        key = generate_signing_key(directory)
    except SigningError:
        if _lexists(directory / KEY_FILE):  # another process created it first
            return load_signing_key(directory, owner_uid=uid)
        raise
    if on_create is not None:
        on_create(key)
    return key
