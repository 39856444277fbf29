"""Root side: install a module's kernel probes, stream their events, clean up.

Runs inside the root service, so it imports only the standard library and
``pystap.privilege``/``pystap.modfile``/``pystap.policy``; it never parses
scripts or binaries' symbol tables (the translator resolved those).

API for the daemon
------------------

At start (single-threaded)::

    root = tracefs.enter_private_namespace()      # private mount ns + tracefs
    tfs = tracefs.Tracefs(root)
    reaper.reap(tfs)                              # and periodically: reap(tfs, live_sids)

Per session (root/stapsys/stapdev)::

    ks = KernelSession(sid, level, uid, tfs)       # sid: [A-Za-z0-9]{1,32}, unique
    reader = ks.install(module.probes)            # ProbeEntry objects or {"id","family","params"}
    ks.problems                                   # per-probe failures (reported, rest installed)
    for probe_id, fields in reader.read(timeout): ...
    reader.lost()                                 # kernel-dropped events, report at exit
    ks.close(wait=False)                          # teardown in the background; ks.join()

``fields`` holds the probe's values by name plus context keys ``_pid``
(thread-group id), ``_tid``, ``_time`` (CLOCK_MONOTONIC ns).  stapusr
sessions are refused by :class:`KernelSession` (no uid filtering exists in
tracefs); they need per-process perf events with the euid gate.

Manifest ``params`` per family (what the translator emits)
----------------------------------------------------------

Process target keys, shared by every ``process.*`` family:
``target``: ``"any"`` | ``"path"`` | ``"pid"``; ``path``: absolute program
path (target ``path``); ``pid``: int (target ``pid``).

``process.function`` / ``process.statement`` / ``process.mark`` / ``process.plt``
(uprobes):

* ``binary``: absolute path of the ELF file probed (program or library);
* ``build_id``: lowercase hex GNU build-id ("" when none), checked on the fd;
* ``offset``: file offset of the probed instruction (int);
* ``return``: bool (a uretprobe);
* ``semaphore``: file offset of the SDT semaphore, 0 for none;
* ``fetch``: list of ``"name=VALUE[:TYPE]"``. ``name`` is
  ``[A-Za-z][A-Za-z0-9_]{0,31}``; VALUE is ``%REG`` (ax bx cx dx si di bp
  sp ip r8-r15), ``$retval`` (return only), ``$stack``/``$stackN``,
  ``$comm``, ``@+OFF`` (global, relative to the probed file), ``\\IMM``, or a
  dereference ``[+-]OFF(VALUE)`` up to 3 deep; TYPE is ``u8..u64 s8..s64
  x8..x64 string ustring``.  Anything else is refused.
* informational: ``symbol``, ``provider``.

``process.begin`` / ``process.end`` / ``process.thread.begin`` /
``process.thread.end``: target keys plus ``event``: ``"begin"``, ``"end"``,
``"thread.begin"``, ``"thread.end"``.  Fields: ``filename``, ``pid``,
``old_pid`` (begin); ``comm``, ``pid``, ``prio``, ``group_dead`` (end);
``pid`` (new thread id), ``comm``, ``clone_flags`` (thread.begin).

``process.syscall`` / ``process.syscall.return``: target keys plus
``event``: ``"syscall"`` | ``"syscall.return"``.  Fields: ``syscall`` and
``arg1..arg6`` (entry), ``syscall`` and ``return`` (return).

``syscall`` (tapset, stapsys+): ``syscall``: name or ``"*"``, ``nr``: int
(-1 for ``"*"``), ``return``: bool.  Fields as ``process.syscall`` plus
``name`` for a named call.

``kernel.trace`` (stapsys+): ``system``, ``event`` (``[A-Za-z0-9_]+``).
Fields: the tracepoint's own fields by name.
"""

from pystap.kernel.session import EventReader, KernelError, KernelSession
from pystap.kernel.tracefs import Tracefs, TracefsError

__all__ = ["EventReader", "KernelError", "KernelSession", "Tracefs", "TracefsError"]
