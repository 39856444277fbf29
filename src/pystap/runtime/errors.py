"""Run-time errors, with SystemTap's texts.

Three kinds of non-local exit exist in a running handler, and they must stay
distinct because the language treats them differently:

* :class:`StapRuntimeError` is a run-time error (division by 0, array
  overflow, ``error()``...).  ``try``/``catch`` intercepts it; otherwise the
  handler is abandoned and the session counts an error.
* :class:`MaxActionError` ("MAXACTION exceeded") and :class:`AbortRequest`
  (``abort()``) are *not* catchable, so they do not derive from
  :class:`StapRuntimeError`.
* :class:`NextProbe` leaves the current handler quietly (``next``).
"""

from __future__ import annotations


class StapRuntimeError(Exception):
    """A catchable run-time error.

    ``message`` is the bare text a ``catch (msg)`` variable receives;
    ``where`` is the ``near ...`` location the session prints
    (``operator '/' at <input>:1:22``), filled in by the generated code.
    """

    def __init__(self, message: str, where: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where

    def render(self) -> str:
        """The line SystemTap prints (without the ``ERROR: `` prefix)."""
        if self.where:
            return f"{self.message} near {self.where}"
        return self.message


class MaxActionError(Exception):
    """``MAXACTION exceeded``: a handler ran too many statements (uncatchable)."""

    def __init__(self, where: str | None = None) -> None:
        super().__init__("MAXACTION exceeded")
        self.message = "MAXACTION exceeded"
        self.where = where

    def render(self) -> str:
        return f"{self.message} near {self.where}" if self.where else self.message


class AbortRequest(Exception):
    """``abort()``: stop the handler and the session at once (uncatchable)."""


class NextProbe(Exception):
    """``next`` in a function without a further overload, or in a probe body."""


class ModuleLoadError(Exception):
    """The module cannot be run (bad code, unknown runtime function ...)."""


class ModuleInitError(ModuleLoadError):
    """The module's own initialisation failed, as SystemTap's ``systemtap_module_init`` can
    (a linear histogram whose buckets cannot be laid out leaves its global unallocated):
    the message is printed as ``ERROR: <message>`` and no probe runs."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
