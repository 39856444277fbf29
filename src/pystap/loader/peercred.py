"""Who is on the other end of the socket, as the kernel says (never as the client says).

``SO_PEERCRED`` gives the pid/uid/gid captured at ``connect()``,
``SO_PEERGROUPS`` the supplementary groups, and ``SO_PEERPIDFD`` a pidfd
for the peer process, so a recycled pid can never be mistaken for the
client and the daemon can notice the client's death.  Python 3.11's
``socket`` module lacks the last two constants, hence the numbers.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from pystap.privilege import credentials_from_groups

SO_PEERCRED = getattr(socket, "SO_PEERCRED", 17)
SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)
SO_PEERPIDFD = getattr(socket, "SO_PEERPIDFD", 77)
_UCRED = struct.Struct("iII")
_NGROUPS_MAX = 65536


@dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gid: int
    groups: tuple[int, ...]
    pidfd: int | None = None

    def credentials(self, group_gids: Mapping[str, int | None]) -> int:
        """SystemTap's credentials: effective gid first, then supplementary gids."""
        return credentials_from_groups(self.uid, (self.gid, *self.groups), group_gids)

    def describe(self) -> str:
        groups = ",".join(str(g) for g in self.groups)
        return f"pid={self.pid} uid={self.uid} gid={self.gid} groups=[{groups}]"


def _peer_groups_large(sock: socket.socket) -> bytes:
    """``SO_PEERGROUPS`` with room for NGROUPS_MAX (Python's getsockopt stops at 1024 bytes)."""
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(_NGROUPS_MAX * 4)
    size = ctypes.c_uint32(len(buf))
    if libc.getsockopt(sock.fileno(), socket.SOL_SOCKET, SO_PEERGROUPS, buf, ctypes.byref(size)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return buf.raw[: size.value]


def _peer_groups(sock: socket.socket) -> tuple[int, ...]:
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, 1024)
    except OSError as exc:
        if exc.errno != errno.ERANGE:
            raise
        raw = _peer_groups_large(sock)
    count = len(raw) // 4
    return struct.unpack(f"={count}I", raw[: count * 4])


def _peer_pidfd(sock: socket.socket) -> int | None:
    try:
        fd = sock.getsockopt(socket.SOL_SOCKET, SO_PEERPIDFD)
    except OSError as exc:
        if exc.errno in (errno.ENOPROTOOPT, errno.EINVAL, errno.ENODATA, errno.ESRCH):
            return None
        raise
    os.set_inheritable(fd, False)
    return fd


def peer_of(sock: socket.socket) -> Peer:
    """Authenticate the peer of an AF_UNIX stream socket from the kernel's records.

    The pidfd, when the kernel provides one, belongs to the caller (close it).
    """
    pid, uid, gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, SO_PEERCRED, _UCRED.size))
    return Peer(pid=pid, uid=uid, gid=gid, groups=_peer_groups(sock), pidfd=_peer_pidfd(sock))
