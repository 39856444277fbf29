"""Remove tracefs objects left behind by dead sessions (SIGKILL included).

tracefs instances and uprobe definitions are not tied to any fd, so a killed
daemon leaves its probes armed (they keep firing into an orphan buffer and
every process running the binary keeps paying the trap).  The daemon runs
:func:`reap` at start and periodically:

* an instance ``pystap-<sid>-<pid>`` is removed when daemon ``pid`` is dead,
  or when it is this daemon's own and ``<sid>`` is not a live session;
* a group ``stp_<sid>`` is deleted when no instance of any live daemon
  carries that ``<sid>`` and it is not a live session of this daemon.

Sessions create their instance before their group, so a live session's
group always has an instance.  Anything that does not follow our naming
scheme is never touched.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from dataclasses import dataclass, field

from pystap.kernel.session import GROUP_PREFIX, INSTANCE_PREFIX, remove_session_objects
from pystap.kernel.tracefs import Tracefs

_INSTANCE = re.compile(rf"{re.escape(INSTANCE_PREFIX)}([A-Za-z0-9]{{1,32}})-([0-9]{{1,10}})")
_GROUP = re.compile(rf"{re.escape(GROUP_PREFIX)}([A-Za-z0-9]{{1,32}})")


@dataclass
class ReapReport:
    instances: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap(tfs: Tracefs, live_sids: Collection[str] = (), own_pid: int | None = None) -> ReapReport:
    """Remove every pystap instance and group no live session owns.

    ``live_sids`` is consulted for each object as it is examined (never
    copied), so a live view such as ``KernelInstaller.live_sids()`` also
    protects a session that starts installing while the reaper runs.
    """
    own = own_pid if own_pid is not None else os.getpid()
    report = ReapReport()
    live_instance_sids: set[str] = set()
    for name in tfs.instances():
        m = _INSTANCE.fullmatch(name)
        if not m:
            continue
        sid, pid = m.group(1), int(m.group(2))
        dead = (pid == own and sid not in live_sids) or (pid != own and not _alive(pid))
        if not dead:
            live_instance_sids.add(sid)
            continue
        left = remove_session_objects(tfs, name, None, retries=3)
        (report.failures.extend(left) if left else report.instances.append(name))
    groups = {g for g, _ in tfs.uprobe_groups()}
    for group in sorted(groups):
        m = _GROUP.fullmatch(group)
        if not m or m.group(1) in live_instance_sids or m.group(1) in live_sids:
            continue
        left = remove_session_objects(tfs, None, group, retries=3)
        (report.failures.extend(left) if left else report.groups.append(group))
    return report
