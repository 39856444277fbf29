"""Pass 4's signature: every module ``pystap`` builds gets a detached ``<module>.sgn``.

The seed's rule is "stap signs all modules": a module only becomes runnable
by an unprivileged user when a signer the administrator trusts vouches for
it, so the translator signs every module it writes, with ``--sign-key=PATH``
when given and otherwise with the user's own key
(``$XDG_CONFIG_HOME/pystap/signing/``), which is created on first use.  The
signature is a separate file, so the module itself stays byte-for-byte
deterministic.

A module reused from the cache keeps its signature when that signature still
belongs to it: same module digest, same signer certificate as the key in use
now, and more than :data:`RESIGN_MARGIN` of validity left; otherwise it is
signed again.  That check is structural and uses only the standard library
(the envelope and statement parsers are stdlib-only): importing
``cryptography`` alone would add some 40 ms to a cached run of about 110 ms.
It does not re-verify the signature bytes: only a file owned by the user and
writable by nobody else is kept (one written by this user's own pystap), and
the loader verifies every signature cryptographically anyway (a damaged one
is refused there, and ``--clean-cache`` rebuilds it).

``--no-sign`` builds without a signature (see docs/cli.md for when that is
needed); a stale ``.sgn`` beside the module is then removed, because a
signature that does not match its module reads as "altered", which even
root may not load.
"""

from __future__ import annotations

import binascii
import hmac
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from pystap import modfile, paths
from pystap.signing import envelope, safe_files, statement

RESIGN_MARGIN = timedelta(days=1)
MAX_KEY_FILE_BYTES = 64 * 1024
_CERT_BEGIN = b"-----BEGIN CERTIFICATE-----"
_CERT_END = b"-----END CERTIFICATE-----"
KEY_FILE = "signing-key.pem"  # pystap.signing.keys.KEY_FILE, without importing cryptography
CERT_FILE = "signing-cert.pem"  # pystap.signing.keys.CERT_FILE
ADVICE = "(sign with another key using --sign-key=PATH, or build without a signature using --no-sign)"


class SignError(Exception):
    """The module could not be signed; the message is for the user."""


@dataclass(frozen=True)
class SignSettings:
    """How pass 4 signs: ``key`` is ``--sign-key`` (None: the user's own key); ``enabled`` is
    False with ``--no-sign``."""

    key: str | None = None
    enabled: bool = True

    @classmethod
    def from_options(cls, o: Any) -> SignSettings:
        return cls(key=getattr(o, "sign_key", None), enabled=not getattr(o, "no_sign", False))


def signature_path(module_path: Path) -> Path:
    return Path(f"{os.fspath(module_path)}{modfile.SIGNATURE_SUFFIX}")


def creation_note(key: Any) -> str:
    """The one line printed when the user's key is created: where it is, and how it becomes trusted."""
    directory = key.directory or paths.user_signing_dir()
    fingerprint = ":".join(key.fingerprint[i:i + 2] for i in range(0, len(key.fingerprint), 2))
    return (f"Created a module-signing key in {directory}; to trust the modules it signs, an "
            f"administrator runs: pystap-authorize-cert {directory / CERT_FILE} --signer "
            f"--expect-fingerprint {fingerprint} --max-privilege stapusr --only-uid {os.getuid()}")


def ensure_signature(
    module_path: Path,
    settings: SignSettings,
    err: TextIO,
    *,
    force: bool = False,
    now: datetime | None = None,
) -> Path | None:
    """Make ``<module>.sgn`` a current signature of the module file; returns its path.

    ``None`` when signing is disabled.  ``force`` signs even when the present
    signature is still good (``pystap --sign-module``).  Raises
    :class:`SignError` when the key cannot be used or the file not written;
    an existing key is never replaced.
    """
    when = (now or datetime.now(UTC)).astimezone(UTC)
    data = _read(module_path, modfile.MAX_MODULE_BYTES, "module")
    target = signature_path(module_path)
    existing = _read_optional(target)
    if not settings.enabled:
        if existing is not None and not _belongs(existing, data):
            _remove(target)
        return None
    if not force and existing is not None:
        identity = _current_certificate(settings)
        if identity is not None and _still_good(existing, data, identity, when):
            return target
    key = _signing_key(settings, err)
    from pystap.signing import SigningError
    from pystap.signing.sign import sign_module, write_signature

    try:
        sgn = sign_module(data, key, now=when)
    except SigningError as exc:
        raise SignError(f"cannot sign module {module_path}: {exc}") from None
    try:
        return write_signature(module_path, sgn)
    except SigningError as exc:
        raise SignError(str(exc)) from None


def _signing_key(settings: SignSettings, err: TextIO) -> Any:
    """The key to sign with; the user's own is created on first use, with the note on ``err``."""
    from pystap.signing import SigningError, load_signing_key, user_signing_key
    from pystap.signing.errors import PassphraseNeeded

    def note(key: Any) -> None:
        err.write(creation_note(key) + "\n")
        err.flush()

    try:
        if settings.key is not None:
            try:
                return load_signing_key(settings.key)
            except PassphraseNeeded:
                return _ask_passphrase(settings.key, load_signing_key)
        return user_signing_key(on_create=note)
    except SigningError as exc:
        raise SignError(f"{exc} {ADVICE}") from None


def _ask_passphrase(key_path: str, load: Any) -> Any:
    """An encrypted ``--sign-key``: ask on the terminal, as SystemTap asks for its certificate
    database's password; three tries.  Never from stdin, which may be the script."""
    from pystap.signing import SigningError

    try:
        tty = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        raise SigningError(f"signing key {key_path} is encrypted and there is no terminal to ask for "
                           "its passphrase") from None
    os.close(tty)
    import getpass

    for _attempt in range(3):
        passphrase = getpass.getpass(f"Passphrase for signing key {key_path}: ")
        try:
            return load(key_path, passphrase)
        except SigningError as exc:
            last = exc
    raise SigningError(f"{last} (three attempts)")


# -- the structural check of an existing signature (standard library only) ---------------------------


def _read(path: Path, limit: int, what: str) -> bytes:
    try:
        return safe_files.read_regular(path, limit, what=f"{what} {path}")
    except OSError as exc:
        raise SignError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def _read_optional(path: Path) -> bytes | None:
    """An existing signature this user wrote (owned by them, writable by nobody else), else None.

    Only such a file may be kept unchecked by cryptography: in a shared
    directory (``-m`` in /tmp) someone else could plant a look-alike.
    """
    try:
        return safe_files.read_regular(path, envelope.MAX_SGN_BYTES, owner_uid=os.geteuid())
    except OSError:
        return None


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise SignError(f"cannot remove the stale signature {path}: {exc.strerror or exc}") from None


def _claims(sgn: bytes) -> tuple[envelope.Envelope, dict[str, Any]] | None:
    try:
        env = envelope.decode(sgn)
        claims = statement.decode(env.payload)
    except envelope.EnvelopeError:
        return None
    if not hmac.compare_digest(claims["keyid"], env.keyid):
        return None
    return env, claims


def _belongs(sgn: bytes, module_bytes: bytes) -> bool:
    parsed = _claims(sgn)
    if parsed is None:
        return False
    return hmac.compare_digest(parsed[1]["module_sha256"], modfile.digest(module_bytes))


def _still_good(sgn: bytes, module_bytes: bytes, cert_der: bytes, now: datetime) -> bool:
    """Signed by the certificate in use now, for these bytes, valid for a while yet."""
    parsed = _claims(sgn)
    if parsed is None:
        return False
    env, claims = parsed
    if len(env.certificates) != 1 or not hmac.compare_digest(env.certificates[0], cert_der):
        return False
    if not hmac.compare_digest(claims["module_sha256"], modfile.digest(module_bytes)):
        return False
    issued = statement.parse_time(claims["issued_at"])
    expires = statement.parse_time(claims["expires_at"])
    return issued <= now + timedelta(minutes=5) and expires - now > RESIGN_MARGIN


def _pem_certificate(data: bytes) -> bytes | None:
    """DER of the first PEM certificate in ``data``."""
    start = data.find(_CERT_BEGIN)
    if start < 0:
        return None
    end = data.find(_CERT_END, start)
    if end < 0:
        return None
    try:
        return binascii.a2b_base64(data[start + len(_CERT_BEGIN):end])
    except (binascii.Error, ValueError):
        return None


def _current_certificate(settings: SignSettings) -> bytes | None:
    """DER of the certificate of the key pass 4 would sign with, found as ``load_signing_key`` finds it.

    The key file itself is opened and checked as loading it would check it
    (no link, regular file, private mode, and for the user's own key the
    owner and the directory), but not parsed.  ``None`` when anything is
    missing or wrong: the caller then loads the key, which says what.
    """
    try:
        if settings.key is None:
            uid = os.geteuid()
            dir_fd = safe_files.open_dir(paths.user_signing_dir())
            try:
                if safe_files.ownership_problem(os.fstat(dir_fd), "directory", uid):
                    return None
                key_data = safe_files.read_regular(KEY_FILE, MAX_KEY_FILE_BYTES, dir_fd=dir_fd,
                                                   owner_uid=uid, private=True)
                cert_data = safe_files.read_regular(CERT_FILE, MAX_KEY_FILE_BYTES, dir_fd=dir_fd,
                                                    owner_uid=uid)
            finally:
                os.close(dir_fd)
            return _pem_certificate(key_data) or _pem_certificate(cert_data)
        path = Path(settings.key)
        if path.is_dir():
            key_path, cert_path = path / KEY_FILE, path / CERT_FILE
        else:
            key_path, cert_path = path, path.parent / CERT_FILE
        bundled = _pem_certificate(safe_files.read_regular(key_path, MAX_KEY_FILE_BYTES, private=True))
        if bundled is not None:
            return bundled
        return _pem_certificate(safe_files.read_regular(cert_path, MAX_KEY_FILE_BYTES))
    except OSError:
        return None
