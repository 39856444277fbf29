"""Root side: install a module's kernel probes, stream their events, clean up.

Runs inside the root service, so it imports only the standard library and
``pystap.privilege``/``pystap.modfile``/``pystap.policy``; it never parses
scripts or binaries' symbol tables (the translator resolved those).

API for the daemon
------------------

What pystapd does (``service.KernelService``; at start, single-threaded)::

    kernel = service.KernelService.start()        # private mount ns + tracefs, comm "pystapd", reap
    Daemon(config, installer=kernel.installer)    # the ``loader.session.Installer`` contract
    kernel.start_reaper(interval)                 # reap(tfs, installer.live_sids()) periodically
    kernel.close()                                # at exit: join teardowns, close gates, reap

By hand::

    root = tracefs.enter_private_namespace()
    tfs = tracefs.Tracefs(root)
    installer = installer.KernelInstaller(tfs)
    reaper.reap(tfs, installer.live_sids())       # a live view: spares sessions being installed
    installer.close()

It picks the mechanism below by the module's privilege, streams
``(probe_id, timestamp_ns, JSON)`` records through ``session.send_events``
(context ``pid tid cpu comm uid euid``, probe values as ``$name``) and
registers the teardown with ``session.own``.

Per session (root/stapsys/stapdev)::

    ks = KernelSession(sid, level, uid, tfs)       # sid: [A-Za-z0-9]{1,32}, unique
    reader = ks.install(module.probes)            # ProbeEntry objects or {"id","family","params"}
    ks.problems                                   # per-probe failures (reported, rest installed)
    for probe_id, fields in reader.read(timeout): ...
    reader.lost()                                 # kernel-dropped events, report at exit
    ks.close(wait=False)                          # teardown in the background; ks.join()

Per session (stapusr: only the user's own processes, see ``usersession``)::

    gates = usersession.SharedGates(tfs)          # once per daemon, closed at exit
    us = usersession.UserSession(sid, uid, tfs, target_pids, gates=gates,
                                 follow=False)    # follow: also attach the user's new processes
                                                  # (the installer: -c/-x targets, follow=True)
    reader = us.install(module.probes)            # same reader interface as above
    us.close(wait=False); us.join()

``fields`` holds the probe's values by name plus context keys ``_pid``
(thread-group id), ``_tid``, ``_time`` (CLOCK_MONOTONIC ns).
:class:`KernelSession` refuses stapusr (tracefs has no uid filtering).
Every failure is a :class:`KernelError`/:class:`TracefsError` (an
``OSError``) with a message for the user, or a line in ``.problems``.

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
* informational: ``symbol``, ``provider``, ``func`` (``probefunc()``) and
  ``pp`` (SystemTap's run-time ``pp()`` where it differs from the entry's
  probe point, which is the ``-l`` text: library, label, callee, PLT and
  ``.nearest`` probes).

``process.begin`` / ``process.end`` / ``process.thread.begin`` /
``process.thread.end``: target keys plus ``event``: ``"begin"``, ``"end"``,
``"thread.begin"``, ``"thread.end"``.  Fields: ``filename``, ``pid``,
``old_pid`` (begin); ``comm``, ``pid``, ``prio``, ``group_dead`` (end);
``pid`` (new thread id), ``comm``, ``clone_flags`` (thread.begin).

Uprobe fields: the ``fetch`` names, plus ``__probe_ip`` (entry) or
``__probe_func``/``__probe_ret_ip`` (return).  The translator's default
fetch (``pystap.probes.fetchargs``) is ``comm``, ``arg1..arg6`` (entry),
``retval`` (return), ``v_<param>`` for DWARF parameters, and for SDT marks
``argN`` plus ``argN_str`` (the user string a pointer-sized arg points to,
read in the kernel at the hit).

``process.syscall`` / ``process.syscall.return``: target keys plus
``event``: ``"syscall"`` | ``"syscall.return"``.  Fields: ``syscall`` and
``arg1..arg6`` (entry), ``syscall`` and ``return`` (return).

``syscall`` (tapset, stapsys+): ``syscall``: name or ``"*"``, ``nr``: int
(-1 for ``"*"``), ``return``: bool.  Fields as ``process.syscall`` plus
``name`` for a named call; for the path-taking calls of
``syscallstrings.STRING_ARGS`` the entry probe also carries ``argN_str``,
the user string read in the kernel at the call (BPF template).

``kernel.trace`` (stapsys+): ``system``, ``event`` (``[A-Za-z0-9_]+``).
Fields: the tracepoint's own fields by name.
"""

from pystap.kernel.session import EventReader, KernelError, KernelSession
from pystap.kernel.tracefs import Tracefs, TracefsError

__all__ = ["EventReader", "KernelError", "KernelSession", "Tracefs", "TracefsError"]
