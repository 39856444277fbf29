"""The server's audit log: one line per connection, what was asked and what was signed.

A signature by the server vouches for a module on every host that trusts it,
so each request is recorded: the peer's address, digests of the options and
of the script, the requested privilege, the result, the digest of the module
that was signed and by which key, and how long it took.  Lines are
``EVENT key=value …``; values that are not plain tokens are JSON strings, so
nothing a client sends can forge a line or a field.

The log goes to ``--log FILE`` (opened ``O_APPEND|O_NOFOLLOW``, mode 0600) or
else to syslog (the journal under systemd), else to stderr.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import re
import threading
from pathlib import Path

from pystap.logs import log_handler

_PLAIN = re.compile(r"[A-Za-z0-9_.:/@+=<>\[\]-]{1,200}")


def format_record(event: str, fields: dict[str, object]) -> str:
    parts = [event]
    for key, value in fields.items():
        if value is None:
            continue
        text = str(value)
        parts.append(f"{key}={text}" if _PLAIN.fullmatch(text) else f"{key}={json.dumps(text[:500])}")
    return " ".join(parts)


def open_handler(path: Path | None) -> logging.Handler:
    """The audit log's destination (see :func:`pystap.logs.log_handler`)."""
    return log_handler(path, "pystap-server")


class AuditLog:
    """Numbered records through a :mod:`logging` logger."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._lock = threading.Lock()
        self._next = 0

    def next_id(self) -> int:
        with self._lock:
            self._next += 1
            return self._next

    def write(self, event: str, **fields: object) -> None:
        self.logger.info(format_record(event, fields))
