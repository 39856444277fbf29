"""File access for keys and trust material: through fds, never by path alone.

Trust decisions are taken on what was opened, not on what a path named a
moment earlier: directories are opened with ``O_NOFOLLOW|O_DIRECTORY``, files
inside them with ``openat`` (``dir_fd=``) and ``O_NOFOLLOW``, and ownership and
mode are read with ``fstat`` on the very fd that is then read.  Files are opened
``O_NONBLOCK`` so a FIFO planted in a store cannot hang the reader, and reads
are bounded so a huge file cannot exhaust memory.  Writes go to a fresh
``O_EXCL`` temporary in the same directory and are renamed into place, so a
reader never sees half a file and a pre-planted symlink is never followed.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafeFileError(OSError):
    """A file or directory exists but may not be trusted (type, owner, mode, size)."""


def describe_mode(st: os.stat_result) -> str:
    return f"{stat.S_IMODE(st.st_mode):04o}"


def ownership_problem(st: os.stat_result, what: str, owner_uid: int) -> str | None:
    """Why ``st`` may not hold trust material owned by ``owner_uid`` (None when it may)."""
    if st.st_uid != owner_uid:
        return f"{what} must be owned by uid {owner_uid} (it is owned by uid {st.st_uid})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{what} must not be writable by the group or others (mode {describe_mode(st)})"
    return None


def open_dir(path: str | os.PathLike[str]) -> int:
    """Open a directory without following a symlink in its last component."""
    return os.open(path, DIR_FLAGS)


def read_fd(fd: int, limit: int, what: str) -> bytes:
    """Read at most ``limit`` bytes; more is an :class:`UnsafeFileError`."""
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = os.read(fd, min(65536, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise UnsafeFileError(f"{what} is too large (limit {limit} bytes)")
    return b"".join(chunks)


def read_regular(
    name: str | os.PathLike[str],
    limit: int,
    *,
    dir_fd: int | None = None,
    owner_uid: int | None = None,
    private: bool = False,
    what: str | None = None,
) -> bytes:
    """Read a regular file through one fd, checking it with ``fstat`` first.

    ``owner_uid`` requires that owner and no group/other write bit;
    ``private`` requires no group/other bits at all (private keys, as ssh does).
    """
    label = what or str(name)
    fd = os.open(name, READ_FLAGS, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFileError(f"{label} is not a regular file")
        if owner_uid is not None:
            problem = ownership_problem(st, label, owner_uid)
            if problem:
                raise UnsafeFileError(problem)
        if private and st.st_mode & 0o077:
            raise UnsafeFileError(
                f"{label} is accessible by the group or others (mode {describe_mode(st)}); "
                f"run 'chmod 600 {label}'"
            )
        if st.st_size > limit:
            raise UnsafeFileError(f"{label} is too large ({st.st_size} bytes, limit {limit})")
        return read_fd(fd, limit, label)
    finally:
        os.close(fd)


def make_dirs(path: Path, mode: int) -> None:
    """Create ``path`` and missing parents with ``mode`` (existing ones are left alone)."""
    missing: list[Path] = []
    current = path
    while not current.exists() and not current.is_symlink():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, mode)
        except FileExistsError:
            continue
        os.chmod(directory, mode, follow_symlinks=False)


def write_atomic(dir_fd: int, name: str, data: bytes, mode: int) -> None:
    """Write ``name`` inside the open directory atomically with exactly ``mode``."""
    if "/" in name or name in ("", ".", ".."):
        raise ValueError(f"invalid file name {name!r}")
    tmp = f".{name}.tmp-{secrets.token_hex(8)}"
    fd = os.open(tmp, WRITE_FLAGS, 0o600, dir_fd=dir_fd)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        raise
    os.fsync(dir_fd)
