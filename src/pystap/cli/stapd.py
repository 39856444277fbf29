"""``pystapd``: start the loader service (argv → calls; the service is pystap.loader.daemon).

The service never forks: systemd runs it as is (optionally socket-activated),
and ``--foreground`` additionally logs to stderr and prints one readiness
line, ``pystapd: listening on PATH``, which tests and the demo wait for.

At start, before any thread exists, it enters a private mount namespace with
its own tracefs mount and reaps what a killed predecessor left armed
(:mod:`pystap.kernel.service`); SIGTERM/SIGINT/SIGHUP end every session and
remove all of their kernel probes before the process exits.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import logging.handlers
import os
import signal
import sys
from pathlib import Path

from pystap.loader import config as config_mod
from pystap.loader.daemon import Daemon, start_kernel
from pystap.logs import log_handler

log = logging.getLogger("pystapd")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pystapd", description="pystap loader service (runs as root)")
    parser.add_argument("--config", type=Path, help="TOML configuration (default /etc/pystap/pystapd.toml)")
    parser.add_argument("--socket", type=Path, help="listening socket path (overrides the configuration)")
    parser.add_argument("-f", "--foreground", action="store_true",
                        help="also log to stderr and print a readiness line (for tests)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if os.geteuid() != 0:
        print("pystapd: must be started as root", file=sys.stderr)
        return 1
    try:
        cfg = config_mod.load(args.config, required=args.config is not None)
    except config_mod.ConfigError as exc:
        print(f"pystapd: {exc}", file=sys.stderr)
        return 1
    if args.socket is not None:
        cfg = dataclasses.replace(cfg, socket=args.socket)
    log.setLevel(logging.INFO)
    try:
        log.addHandler(log_handler(cfg.log_file, "pystapd"))
    except OSError as exc:
        print(f"pystapd: cannot open log file: {exc}", file=sys.stderr)
        return 1
    if args.foreground and cfg.log_file is not None:
        stderr_handler = logging.StreamHandler(sys.stderr)
        stderr_handler.setFormatter(logging.Formatter("pystapd: %(message)s"))
        log.addHandler(stderr_handler)
    kernel, installer = start_kernel()
    daemon = Daemon(cfg, installer=installer)
    try:
        daemon.listen()
    except (OSError, RuntimeError) as exc:
        print(f"pystapd: cannot listen on {cfg.socket}: {exc}", file=sys.stderr)
        if kernel is not None:
            kernel.close()
        return 1
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_: daemon.stop())
    if kernel is not None:
        kernel.start_reaper(cfg.reap_interval)
    log.info("listening on %s (blessed directory %s, signers %s)",
             cfg.socket, cfg.blessed_dir, cfg.signer_store)
    if args.foreground:
        print(f"pystapd: listening on {cfg.socket}", flush=True)
    try:
        daemon.serve()
    finally:
        if kernel is not None:
            kernel.close()  # every session's probes removed, leftovers reaped
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
