"""The user-side module runtime (pass 5): runs a module's handler code.

Entry point (what the loader client and ``pystap`` pass 5 call)::

    run_module(module: pystap.modfile.Module, *, credentials: int,
               options: RunOptions, events: EventSource | None = None) -> int

* ``module`` — a module already validated by :func:`pystap.modfile.load`
  (and, on the loader path, verified);
* ``credentials`` — the privilege bits the loader established for the user
  (:mod:`pystap.privilege`); the module's *init check* refuses to start when
  they do not contain the module's level, with SystemTap's message;
* ``options`` — :class:`RunOptions` (output, streams, ``-x``/``-c``, ``-T``,
  ``-G``, limits);
* ``events`` — an :class:`EventSource` delivering kernel-probe records as
  ``(probe_id, fields)``; ``None`` when the module has no kernel probes.

``FUNCTIONS`` is the assembled tapset registry (name → callable) that
generated code reaches as ``_b_<name>``; it is exported so the translator's
tests can check that every function pass 2 accepts exists here, without
the translator itself importing the runtime.

Returns the exit status (0 success, 1 errors).  The runtime never imports
the translator: it only executes modules, so it can run in a process that
has nothing but the user's credentials.
"""

from __future__ import annotations

from pystap import privilege
from pystap.modfile import Module
from pystap.runtime.errors import ModuleInitError, ModuleLoadError
from pystap.runtime.options import EventSource, RunOptions
from pystap.runtime.prelude import TAPSET_FUNCTIONS as FUNCTIONS
from pystap.runtime.session import Session

__all__ = ["FUNCTIONS", "EventSource", "RunOptions", "init_check", "run_module"]


def init_check(module: Module, credentials: int) -> str | None:
    """The module's own start-up check: ``None`` when ``credentials`` cover its level."""
    level = privilege.Level.from_name(module.privilege)
    if privilege.contains(credentials, level):
        return None
    return (
        f"ERROR: Your privilege credentials ({privilege.name(credentials, runtime=True)}) are insufficient"
        f" to run this module ({level.label} required)."
    )


def run_module(module: Module, *, credentials: int, options: RunOptions,
               events: EventSource | None = None) -> int:
    """Run ``module`` to completion; see the module docstring."""
    session = Session(module, options, events)
    refusal = init_check(module, credentials)
    if refusal is not None:
        session.stderr_line(refusal)
        return 1
    try:
        session.load()
    except ModuleInitError as exc:
        session.stderr_line(f"ERROR: {exc.message}")
        return 1
    except ModuleLoadError as exc:
        session.stderr_line(f"ERROR: cannot run module {module.name}: {exc}")
        return 1
    return session.run()
