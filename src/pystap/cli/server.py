"""``pystap-server``: the compile server's command line (argv → :mod:`pystap.server.service`).

Refuses to run as root, as stap-serverd does: the server compiles input from
the network, so it runs as a dedicated unprivileged user (see
``systemd/pystap-server.service`` and ``docs/admin/server.md``).  At start it
loads (or creates) its TLS identity and its signing key, prints both
fingerprints and then one readiness line, ``pystap-server: listening on ADDR
port PORT``, which is how a caller learns the port chosen for ``--port 0``.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import signal
import sys
import tempfile
from pathlib import Path

from pystap.policy.options import PAT_D, PAT_R, PAT_TMPDIR
from pystap.server import protocol
from pystap.server.audit import AuditLog, open_handler
from pystap.server.identity import default_signing_dir, default_ssl_dir, load_identity, validity_problem
from pystap.server.service import CompileServer, ServerConfig
from pystap.server.translator import MIB, ChildLimits
from pystap.signing import SigningError, safe_files
from pystap.signing.certificates import show_fingerprint
from pystap.signing.keys import CERT_FILE

MSG_ROOT = "For security reasons, invocation of pystap-server as root is not supported."


class ConfigError(Exception):
    """An unusable option value; the message is printed as is."""


def _positive(kind: type, low: float = 1) -> object:
    def parse(text: str) -> object:
        value = kind(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}")
        return value

    return parse


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pystap-server", description="pystap compile server: translates and signs for clients over TLS")
    p.add_argument("--port", type=_positive(int, 0), default=0, help="TCP port (0: any free port, printed)")
    p.add_argument("--listen", metavar="ADDR", help="address to listen on (default: all addresses)")
    p.add_argument("--ssl", type=Path, metavar="DIR", help="TLS identity directory (created if absent)")
    p.add_argument("--sign-key", type=Path, metavar="PATH", help="module-signing key directory or key file "
                   "(a directory is created with a new key if absent)")
    p.add_argument("--passphrase-file", type=Path, help="passphrase of an encrypted signing key")
    p.add_argument("--dns-name", action="append", default=[], metavar="NAME",
                   help="extra host name for certificates created at this start")
    p.add_argument("--log", type=Path, metavar="FILE", help="audit log file (default: syslog)")
    p.add_argument("-r", dest="releases", action="append", default=[], metavar="RELEASE",
                   help="kernel release clients may target (repeatable; default: the running one)")
    p.add_argument("-a", dest="arch", metavar="ARCH", help="target architecture (default: this machine's)")
    p.add_argument("-I", dest="include", action="append", default=[], metavar="DIR",
                   help="tapset directory added to every translation")
    p.add_argument("-D", dest="defines", action="append", default=[], metavar="NAME=VALUE",
                   help="macro definition added to every translation")
    p.add_argument("-B", dest="kbuild", action="append", default=[], help=argparse.SUPPRESS)
    p.add_argument("-R", dest="runtime", help=argparse.SUPPRESS)
    p.add_argument("--max-threads", type=_positive(int, 0), default=os.cpu_count() or 1,
                   help="translations at once (default: number of CPUs; 0 = 1)")
    p.add_argument("--max-connections", type=_positive(int), default=16,
                   help="connections at once; more wait in the backlog (default 16)")
    p.add_argument("--max-compressed-request", type=_positive(int), default=protocol.DEFAULT_MAX_COMPRESSED,
                   metavar="BYTES",
                   help=f"largest request on the wire (default {protocol.DEFAULT_MAX_COMPRESSED})")
    p.add_argument("--max-request-size", type=_positive(int), default=protocol.DEFAULT_MAX_REQUEST,
                   metavar="BYTES",
                   help=f"largest request uncompressed (default {protocol.DEFAULT_MAX_REQUEST})")
    p.add_argument("--max-files", type=_positive(int), default=protocol.DEFAULT_MAX_FILES,
                   help=f"files in one request (default {protocol.DEFAULT_MAX_FILES})")
    p.add_argument("--request-timeout", type=_positive(float, 0.1), default=10.0, metavar="SECONDS",
                   help="time for the TLS handshake and the whole request (default 10)")
    p.add_argument("--translate-timeout", type=_positive(float, 1), default=120.0, metavar="SECONDS",
                   help="wall-clock time of one translation (default 120)")
    p.add_argument("--cpu-limit", type=_positive(int), default=60, metavar="SECONDS",
                   help="CPU time of one translation (default 60)")
    p.add_argument("--memory-limit", type=_positive(int, 64), default=1024, metavar="MIB",
                   help="address space of one translation (default 1024)")
    return p


def _config(args: argparse.Namespace) -> ServerConfig:
    if args.kbuild or args.runtime:
        raise ConfigError("-B and -R are not supported: the pystap translator builds no kernel modules and "
                           "has no separate runtime directory")
    releases = tuple(dict.fromkeys(args.releases or [os.uname().release]))
    for release in releases:
        if not PAT_R.matches(release):
            raise ConfigError(f"-r {release}: a kernel release name is expected")
    arch = args.arch or platform.machine()
    if not protocol.ARCH.fullmatch(arch):
        raise ConfigError(f"-a {arch}: an architecture name is expected")
    options: list[tuple[str, str | None]] = []
    for directory in args.include:
        if not os.path.isabs(directory) or not os.path.isdir(directory):
            raise ConfigError(f"-I {directory}: an existing absolute directory is expected")
        options.append(("-I", directory))
    for define in args.defines:
        if not PAT_D.matches(define):
            raise ConfigError(PAT_D.error(define))
        options.append(("-D", define))
    tmpdir = Path(tempfile.gettempdir())
    if not PAT_TMPDIR.matches(str(tmpdir)):  # the translator checks its TMPDIR, which is below this
        raise ConfigError(PAT_TMPDIR.error(str(tmpdir)))
    passphrase = None
    if args.passphrase_file is not None:
        path = args.passphrase_file
        data = safe_files.read_regular(path, 4096, private=True, what=str(path))
        passphrase = data.decode("utf-8").rstrip("\r\n")
    identity = load_identity(args.ssl or default_ssl_dir(), args.sign_key or default_signing_dir(),
                             dns_names=tuple(args.dns_name), passphrase=passphrase)
    return ServerConfig(
        identity=identity, releases=releases, arch=arch, tmpdir=tmpdir,
        listen=args.listen, port=args.port, server_options=tuple(options),
        max_compressed=args.max_compressed_request, max_request=args.max_request_size,
        max_files=args.max_files, max_threads=max(1, args.max_threads),
        max_connections=args.max_connections, request_timeout=args.request_timeout,
        child=ChildLimits(cpu_seconds=args.cpu_limit, memory_bytes=args.memory_limit * MIB,
                          wall_seconds=args.translate_timeout),
    )


def main(argv: list[str] | None = None) -> int:
    if os.geteuid() == 0:
        print(MSG_ROOT, file=sys.stderr)
        return 1
    args = _parser().parse_args(argv)
    try:
        config = _config(args)
    except (ConfigError, SigningError, OSError, ValueError) as exc:
        print(f"pystap-server: {exc}", file=sys.stderr)
        return 1
    logger = logging.getLogger("pystap-server")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        logger.addHandler(open_handler(args.log))
    except OSError as exc:
        print(f"pystap-server: cannot open the log: {exc}", file=sys.stderr)
        return 1
    identity = config.identity
    for note in identity.notes:
        print(f"pystap-server: {note}", flush=True)
    problem = validity_problem(identity.tls_certificate)
    if problem is not None:
        message = (f"WARNING: the TLS certificate {identity.tls_cert_path} is not valid now ({problem}); "
                   "clients refuse it. "
                   "Create a new one with 'pystap-gen-cert --tls DIR' and have clients trust it.")
        print(message, file=sys.stderr, flush=True)
        logger.warning(message)
    server = CompileServer(config, AuditLog(logger), os.environ)
    try:
        host, port = server.listen()
    except OSError as exc:
        print(f"pystap-server: cannot listen: {exc.strerror or exc}", file=sys.stderr)
        return 1
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_: server.stop())
    print(f"pystap-server: TLS certificate {identity.tls_cert_path} "
          f"fingerprint {show_fingerprint(identity.tls_fingerprint)}")
    print(f"pystap-server: signing certificate {identity.signing_key.directory / CERT_FILE} "
          f"fingerprint {show_fingerprint(identity.signing_key.fingerprint)}")
    logger.info("listening on %s port %d (releases %s, arch %s, TLS %s, signer key id %s)", host, port,
                ",".join(config.releases), config.arch, identity.tls_fingerprint, identity.signing_key.keyid)
    print(f"pystap-server: listening on {host} port {port}", flush=True)
    server.serve()
    logger.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
