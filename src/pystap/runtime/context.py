"""The probe context: what a handler sees of the event that fired it.

One :class:`Context` per session is reused for every probe hit (as
SystemTap keeps one per CPU), so dispatch costs a few attribute stores and
no allocation.  Generated code reads ``c.pid``/``c.tid``/``c.cpu`` directly
and writes output with ``c.w(text)``.

``fields`` (the event's target variables and other values) is built on
first use for events that arrive as packed rows (``c._rows``/``c._row``,
see :mod:`pystap.eventwire`): a handler that reads no field never pays
for the dict.
"""

from __future__ import annotations

import os
from typing import Any


class Context:
    __slots__ = (
        "_fields", "_row", "_rows", "act", "cpu", "match", "myproc", "nest", "params", "pid", "pn", "pp",
        "probe_type", "session", "tid", "tok_state", "uid", "w",
    )

    def __init__(self, session: Any, write: Any) -> None:
        self.session = session
        self.w = write
        self.act = 0
        self.nest = 0
        self.pp = ""
        self.pn = ""
        self.probe_type = ""
        self._fields: dict[str, Any] | None = None
        self._rows: Any = None  # the eventwire.Rows block of the current row event, if any
        self._row: Any = None  # its row, until ``fields`` is built from it
        self.params: dict[str, Any] = {}  # the manifest params of the probe that fired
        self.pid = os.getpid()
        self.tid = self.pid
        self.uid = os.getuid()
        self.cpu = 0
        self.myproc = 0
        self.match: Any = None
        self.tok_state: tuple[str, str] | None = None

    @property
    def fields(self) -> dict[str, Any] | None:
        f = self._fields
        if f is None and self._row is not None:
            f = self._fields = self._rows.fields(self._row)
            self._row = None
        return f

    @fields.setter
    def fields(self, value: dict[str, Any] | None) -> None:
        self._fields = value
        self._row = None
