"""``pystap-gen-cert`` and ``pystap-authorize-cert``: argv → signing library calls.

``pystap-gen-cert [options] [DIR] [DNSNAME…]`` creates a module-signing key
(or, with ``--tls``, a compile-server TLS identity).
``pystap-authorize-cert CERT --signer|--ssl [--all-users]`` trusts a
certificate; ``--list``, ``--revoke FINGERPRINT``, ``--revoke-key KEYID`` and
``--revoke-module SHA256`` manage the stores.  Errors are one line on stderr
and exit status 1; nothing here decides policy.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from datetime import timedelta
from pathlib import Path

from pystap import paths
from pystap.privilege import GROUP_GRANTS, LEVEL_NAMES
from pystap.signing import SigningError, generate_signing_key, generate_tls_identity, trust_admin
from pystap.signing.algorithms import KEY_TYPES, parse_key_type
from pystap.signing.certificates import fingerprint, load_certificate, parse_hex_id, show_fingerprint, subject
from pystap.signing.safe_files import read_regular
from pystap.signing.signer_store import SignerScope, SignerStore


def _passphrase(args: argparse.Namespace) -> str | None:
    if args.passphrase_file:
        data = read_regular(args.passphrase_file, 4096, what=args.passphrase_file)
        return data.decode("utf-8").rstrip("\r\n")
    if not args.ask_passphrase:
        return None
    if not sys.stdin.isatty():
        raise SigningError("Cannot prompt for the key passphrase: stdin is not a tty")
    for _attempt in range(3):
        first = getpass.getpass("Passphrase for the new signing key: ")
        if first and first == getpass.getpass("Re-enter the passphrase: "):
            return first
        print("Passphrases do not match (or are empty)", file=sys.stderr)
    raise SigningError("Too many passphrase attempts")


def gen_cert_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pystap-gen-cert",
        description="Create a module-signing key and certificate (default: the user's signing key).",
    )
    parser.add_argument("directory", nargs="?", help="key directory (default: the user's signing dir)")
    parser.add_argument("dns_names", nargs="*", metavar="DNSNAME", help="extra certificate host names")
    parser.add_argument("--key-type", help=f"one of {', '.join(KEY_TYPES)} (default: $PYSTAP_SIGN_KEY_TYPE "
                                           "or ml-dsa-65)")
    parser.add_argument("--days", type=int, default=365, help="certificate validity in days (default 365)")
    parser.add_argument("-P", "--ask-passphrase", action="store_true", help="encrypt the key (prompt)")
    parser.add_argument("--passphrase-file", help="encrypt the key with the passphrase in this file")
    parser.add_argument("--force", action="store_true", help="replace an existing key (old files → *.old)")
    parser.add_argument("--tls", action="store_true",
                        help="create a compile-server TLS identity instead (never signs modules)")
    args = parser.parse_args(argv)
    try:
        if args.days <= 0 or args.days > 36500:
            raise SigningError("--days must be between 1 and 36500")
        directory = Path(args.directory) if args.directory else paths.user_signing_dir()
        if args.tls:
            if not args.directory:
                raise SigningError("--tls needs a directory")
            identity = generate_tls_identity(directory, args.dns_names, validity=timedelta(days=args.days))
            print(f"TLS certificate: {identity.cert_path}")
            print(f"fingerprint:     {show_fingerprint(identity.fingerprint)}")
            return 0
        key_type = parse_key_type(args.key_type, "--key-type") if args.key_type else None
        key = generate_signing_key(
            directory, key_type=key_type, dns_names=args.dns_names,
            validity=timedelta(days=args.days), passphrase=_passphrase(args), replace=args.force,
        )
    except (SigningError, ValueError, OSError) as exc:
        print(f"pystap-gen-cert: {exc}", file=sys.stderr)
        return 1
    cert_path = directory / "signing-cert.pem"
    print(f"signing key:  {directory / 'signing-key.pem'} ({key.key_type})")
    print(f"certificate:  {cert_path}")
    print(f"key id:       {key.keyid}")
    print(f"fingerprint:  {show_fingerprint(key.fingerprint)}")
    print(f"valid until:  {key.certificate.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC")
    print(f"To trust it (as root): pystap-authorize-cert {cert_path} --signer")
    return 0


def _store(args: argparse.Namespace) -> tuple[Path, int]:
    """Which store and which owner it must have; root-only stores are refused to others."""
    if args.signer:
        if os.geteuid() != 0:
            raise SigningError("Only root can change the trusted module signers")
        return paths.signer_store_dir(), 0
    if args.all_users:
        if os.geteuid() != 0:
            raise SigningError("Only root can trust servers for all users")
        return paths.ssl_client_dir_all_users(), 0
    return paths.user_ssl_client_dir(), os.getuid()


def _list(directory: Path, owner: int, signer: bool) -> None:
    if signer:
        store = SignerStore.open(directory)
        for problem in store.problems + store.warnings:
            print(f"warning: {problem}", file=sys.stderr)
        for trusted in store.all_signers():
            cert = trusted.certificate
            print(f"{show_fingerprint(trusted.fingerprint)}  {trusted.key_type}  "
                  f"until {cert.not_valid_after_utc:%Y-%m-%d}  {subject(cert)}  key id {trusted.keyid}  "
                  f"certifies {trusted.scope.describe()}")
        for keyid in sorted(store.revoked_keys):
            print(f"revoked key id {keyid}")
        for digest in sorted(store.revoked_modules):
            print(f"revoked module {digest}")
        return
    for _name, cert in trust_admin.list_certificates(directory, owner):
        print(f"{show_fingerprint(fingerprint(cert))}  until {cert.not_valid_after_utc:%Y-%m-%d}  "
              f"{subject(cert)}")


def _scope(args: argparse.Namespace) -> SignerScope:
    """The signer scope the options ask for (only meaningful when trusting a signer)."""
    if (args.max_privilege or args.only_uid) and not (args.signer and args.certificate):
        raise SigningError("--max-privilege and --only-uid go with trusting a certificate as --signer")
    if args.only_uid and any(not 0 <= uid < 2**32 - 1 for uid in args.only_uid):
        raise SigningError("--only-uid needs a user id")
    return SignerScope(
        GROUP_GRANTS[args.max_privilege] if args.max_privilege else None,
        frozenset(args.only_uid) if args.only_uid else None,
    )


def authorize_cert_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pystap-authorize-cert",
        description="Trust a certificate as a module signer or as a compile server (SSL peer).",
    )
    parser.add_argument("certificate", nargs="?", help="certificate file (PEM or DER) to trust")
    role = parser.add_mutually_exclusive_group()
    role.add_argument("--signer", action="store_true", help="module signer for all users (root only)")
    role.add_argument("--ssl", action="store_true", help="compile server trusted as an SSL peer")
    parser.add_argument("--all-users", action="store_true", help="with --ssl: for all users (root only)")
    parser.add_argument("--expect-fingerprint", metavar="FP",
                        help="refuse unless the certificate has this SHA-256 fingerprint")
    parser.add_argument("--max-privilege", choices=LEVEL_NAMES, metavar="LEVEL",
                        help="with --signer: the highest module level this signer may certify")
    parser.add_argument("--only-uid", type=int, action="append", metavar="UID",
                        help="with --signer: its signatures count only for modules this user runs "
                             "(repeatable)")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--list", action="store_true", help="list trusted certificates")
    action.add_argument("--revoke", metavar="FINGERPRINT",
                        help="remove a certificate (signers: also revoke its key)")
    action.add_argument("--revoke-key", metavar="KEYID", help="revoke a signer key id")
    action.add_argument("--revoke-module", metavar="SHA256", help="revoke one module's signatures")
    args = parser.parse_args(argv)
    if args.revoke_key or args.revoke_module:
        args.signer = True
    try:
        if not (args.signer or args.ssl):
            raise SigningError("say what to trust the certificate for: --signer or --ssl")
        directory, owner = _store(args)
        scope = _scope(args)
        if args.list:
            _list(directory, owner, args.signer)
        elif args.revoke:
            keyids = trust_admin.remove_certificate(directory, args.revoke, owner_uid=owner)
            if args.signer:
                trust_admin.add_revocations(directory, keyids=keyids, owner_uid=owner)
            print(f"removed certificate {show_fingerprint(args.revoke.lower().replace(':', ''))}"
                  + (f"; revoked key id {', '.join(keyids)}" if args.signer else ""))
        elif args.revoke_key or args.revoke_module:
            trust_admin.add_revocations(
                directory, keyids=[args.revoke_key] if args.revoke_key else [],
                modules=[args.revoke_module] if args.revoke_module else [], owner_uid=owner,
            )
            what = f"key id {args.revoke_key}" if args.revoke_key else f"module {args.revoke_module}"
            print(f"revoked {what}")
        else:
            if not args.certificate:
                raise SigningError("Certificate file must be specified")
            data = read_regular(args.certificate, 64 * 1024, what=args.certificate)
            try:
                cert = load_certificate(data)
            except ValueError as exc:
                raise SigningError(f"Unable to authorize certificate: {args.certificate}: {exc}") from None
            actual = fingerprint(cert)
            if args.expect_fingerprint:
                if parse_hex_id(args.expect_fingerprint) != actual:
                    raise SigningError(f"Unable to authorize certificate: its fingerprint is "
                                       f"{show_fingerprint(actual)}, not the expected one")
            trust_admin.add_certificate(directory, cert, owner_uid=owner, signer=args.signer)
            if args.signer:
                trust_admin.set_scope(directory, actual, scope, owner_uid=owner)
            print(f"trusted {subject(cert)}" + (f" to certify {scope.describe()}" if args.signer else ""))
            print(f"fingerprint {show_fingerprint(actual)} in {directory}")
    except (SigningError, ValueError, OSError) as exc:
        print(f"pystap-authorize-cert: {exc}", file=sys.stderr)
        return 1
    return 0
