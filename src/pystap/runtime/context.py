"""The probe context: what a handler sees of the event that fired it.

One :class:`Context` per session is reused for every probe hit (as
SystemTap keeps one per CPU), so dispatch costs a few attribute stores and
no allocation.  Generated code reads ``c.pid``/``c.tid``/``c.cpu`` directly
and writes output with ``c.w(text)``.
"""

from __future__ import annotations

import os
from typing import Any


class Context:
    __slots__ = (
        "act", "cpu", "fields", "match", "myproc", "nest", "params", "pid", "pn", "pp", "probe_type",
        "session",
        "tid", "tok_state", "uid", "w",
    )

    def __init__(self, session: Any, write: Any) -> None:
        self.session = session
        self.w = write
        self.act = 0
        self.nest = 0
        self.pp = ""
        self.pn = ""
        self.probe_type = ""
        self.fields: dict[str, Any] | None = None
        self.params: dict[str, Any] = {}  # the manifest params of the probe that fired
        self.pid = os.getpid()
        self.tid = self.pid
        self.uid = os.getuid()
        self.cpu = 0
        self.myproc = 0
        self.match: Any = None
        self.tok_state: tuple[str, str] | None = None
