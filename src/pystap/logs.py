"""Where a service's log lines go: a file it appends to, else syslog, else stderr.

``pystapd`` (root) and ``pystap-server`` both log every decision they take;
the file is opened as a service should open a path an administrator named
(``O_APPEND|O_NOFOLLOW``, mode 0600, a regular file or nothing) and syslog
is preferred to stderr so that, under systemd, lines reach the journal.
Standard library only: the root daemon imports it.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import stat
import sys
from pathlib import Path


def log_handler(path: Path | None, program: str) -> logging.Handler:
    """A handler for ``path``, or syslog, or stderr (in that order of preference)."""
    if path is not None:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(f"{path} is not a regular file")
        handler: logging.Handler = logging.StreamHandler(os.fdopen(fd, "a", buffering=1, encoding="utf-8"))
        handler.setFormatter(logging.Formatter(f"%(asctime)s {program}[%(process)d]: %(message)s"))
        return handler
    try:
        if stat.S_ISSOCK(os.stat("/dev/log").st_mode):
            handler = logging.handlers.SysLogHandler(
                address="/dev/log", facility=logging.handlers.SysLogHandler.LOG_DAEMON
            )
            handler.setFormatter(logging.Formatter(f"{program}[%(process)d]: %(message)s"))
            return handler
    except OSError:
        pass
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{program}: %(message)s"))
    return handler
