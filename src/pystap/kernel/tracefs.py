"""Finding, mounting and talking to tracefs without disturbing the host.

tracefs is not mounted on the hosts pystap targets, and every tracefs mount
shares one kernel state, so the daemon mounts its own copy inside a private
mount namespace (nothing appears in the host's mount table).  All file
access goes through :class:`Tracefs`, which opens with ``O_NOFOLLOW |
O_CLOEXEC`` and never with ``O_TRUNC``: truncating ``uprobe_events`` deletes
every session's uprobe definitions (or fails with EBUSY), so the one place
where that would be catastrophic is made impossible by construction.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import re
import threading
from collections.abc import Iterator

STANDARD_MOUNT = "/sys/kernel/tracing"
CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MNT_DETACH = 2
MAX_READ = 1 << 20

_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,200}")


class TracefsError(OSError):
    """A tracefs operation failed; the message says which file and why."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise TracefsError(err, f"{what}: {os.strerror(err)}")


def mount_tracefs(directory: str) -> None:
    """Mount tracefs at ``directory`` (``mount -t tracefs nodev DIR``)."""
    libc = _libc()
    _check(libc.mount(b"nodev", os.fsencode(directory), b"tracefs", 0, None), f"mount tracefs at {directory}")


def unmount(directory: str) -> None:
    """Lazily unmount ``directory`` (a tracefs mount made by :func:`mount_tracefs`)."""
    _check(_libc().umount2(os.fsencode(directory), MNT_DETACH), f"unmount {directory}")


def enter_private_namespace(mountpoint: str = STANDARD_MOUNT) -> str:
    """Give the calling process its own mount namespace with tracefs at ``mountpoint``.

    Called once by the daemon at start, while it is still single-threaded
    (the kernel refuses ``unshare(CLONE_NEWNS)`` to a thread sharing its
    filesystem context).  ``/`` is made a recursive *slave* first: our
    tracefs mount never propagates to the host, while filesystems the host
    mounts later (a new home, a container's root) still appear here, so a
    long-running daemon can open binaries on them.  Returns the tracefs path.
    """
    if threading.active_count() > 1:
        raise TracefsError(errno.EINVAL, "enter_private_namespace must run before any thread is started")
    libc = _libc()
    _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(libc.mount(b"none", b"/", None, MS_REC | MS_SLAVE, None), "make / a recursive slave mount")
    if not is_tracefs(mountpoint):
        mount_tracefs(mountpoint)
    return mountpoint


def is_tracefs(directory: str) -> bool:
    """True when ``directory`` is a tracefs mount point in this namespace."""
    wanted = os.path.realpath(directory)
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2] == "tracefs" and os.path.realpath(parts[1]) == wanted:
                    return True
    except OSError:
        return False
    return False


def find_tracefs() -> str | None:
    """A mounted tracefs in this namespace (the standard place first), or None."""
    if is_tracefs(STANDARD_MOUNT):
        return STANDARD_MOUNT
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2] == "tracefs":
                    return parts[1]
    except OSError:
        return None
    return None


def check_name(name: str) -> str:
    """Names we create in tracefs (instances, groups, events): a strict allowlist."""
    if not _NAME.fullmatch(name) or name in (".", ".."):
        raise TracefsError(errno.EINVAL, f"invalid tracefs name '{name[:80]}'")
    return name


class Tracefs:
    """One tracefs mount, addressed by its root directory.

    ``write`` appends (``O_WRONLY | O_APPEND``); a write the kernel refuses
    raises :class:`TracefsError` carrying the errno and, for definitions, the
    kernel's ``error_log`` explanation.
    """

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/") or "/"
        self.lock = threading.Lock()  # serialises uprobe_events writes within this process

    def path(self, rel: str) -> str:
        if rel.startswith("/") or ".." in rel.split("/"):
            raise TracefsError(errno.EINVAL, f"bad tracefs path '{rel[:80]}'")
        return f"{self.root}/{rel}"

    def exists(self, rel: str) -> bool:
        return os.path.lexists(self.path(rel))

    def read(self, rel: str, limit: int = MAX_READ) -> str:
        fd = os.open(self.path(rel), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            chunks: list[bytes] = []
            total = 0
            while total < limit:
                chunk = os.read(fd, min(65536, limit - total))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
        finally:
            os.close(fd)
        return b"".join(chunks).decode("utf-8", errors="replace")

    def write(self, rel: str, text: str) -> None:
        """Write ``text`` to a tracefs file in one ``write`` call, appending."""
        data = text.encode("utf-8")
        try:
            fd = os.open(self.path(rel), os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise TracefsError(exc.errno, f"open {rel}: {exc.strerror}") from None
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise TracefsError(errno.EIO, f"short write to {rel}")
        except OSError as exc:
            if isinstance(exc, TracefsError):
                raise
            raise TracefsError(exc.errno, f"write {rel} ({text.strip()[:200]!r}): {exc.strerror}") from None
        finally:
            os.close(fd)

    def last_error(self) -> str:
        """The newest entry of the kernel's ``error_log`` (why a definition was refused)."""
        try:
            text = self.read("error_log", 65536)
        except OSError:
            return ""
        lines = text.rstrip("\n").splitlines()
        for i in range(len(lines) - 1, -1, -1):
            if lines[i].startswith("["):
                return " ".join(x.strip() for x in lines[i:] if x.strip() and set(x.strip()) != {"^"})
        return ""

    def listdir(self, rel: str) -> list[str]:
        try:
            return sorted(os.listdir(self.path(rel)))
        except FileNotFoundError:
            return []

    def mkdir(self, rel: str) -> None:
        try:
            os.mkdir(self.path(rel))
        except OSError as exc:
            raise TracefsError(exc.errno, f"mkdir {rel}: {exc.strerror}") from None

    def rmdir(self, rel: str) -> None:
        try:
            os.rmdir(self.path(rel))
        except OSError as exc:
            raise TracefsError(exc.errno, f"rmdir {rel}: {exc.strerror}") from None

    def instances(self) -> list[str]:
        return self.listdir("instances")

    def uprobe_groups(self) -> Iterator[tuple[str, str]]:
        """(group, event) of every uprobe definition on the machine."""
        for line in self.read("uprobe_events").splitlines():
            head = line.split(None, 1)[0] if line.strip() else ""
            if ":" in head and "/" in head:
                group, event = head.split(":", 1)[1].split("/", 1)
                yield group, event

    def event_id(self, system: str, event: str) -> int:
        return int(self.read(f"events/{check_name(system)}/{check_name(event)}/id").strip())

    def event_format(self, system: str, event: str) -> str:
        return self.read(f"events/{check_name(system)}/{check_name(event)}/format")

    def cpus(self, instance_rel: str = "") -> list[int]:
        base = f"{instance_rel}/per_cpu" if instance_rel else "per_cpu"
        out = []
        for name in self.listdir(base):
            if name.startswith("cpu") and name[3:].isdigit():
                out.append(int(name[3:]))
        return sorted(out)
