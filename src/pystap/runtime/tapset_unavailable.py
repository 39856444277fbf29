"""Run-time stubs of tapset functions this substrate cannot provide.

Pass 3 already refuses a call to any of them with the reason
(``pystap.unavailable``, shared with the translator); a module that calls one
anyway (hand-built, or from an older translator) fails with a run-time error
that says the same, never with a missing name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pystap.runtime.errors import StapRuntimeError
from pystap.unavailable import SUBSTRATE


def _stub(name: str, reason: str) -> Callable[..., Any]:
    def unavailable(c: Any, *args: Any) -> Any:
        raise StapRuntimeError(f"function {name}() is not available with pystap ({reason})")

    return unavailable


FUNCTIONS: dict[str, Callable[..., Any]] = {name: _stub(name, reason) for name, reason in SUBSTRATE.items()}
