"""The blessed directory: proof, on file descriptors, that a module was installed by root.

SystemTap compares ``realpath`` strings and then ``fstat``s the module fd, which
leaves a window for symlink games on intermediate directories.  Here the proof
is made on descriptors only: open the (admin-configured) directory, walk to the
module relative to it without ever following a symlink, and require that what
we reached is the very inode the client handed us.  Ownership and mode are
checked on those descriptors, never on paths.  The messages are SystemTap's
``check_stap_module_path`` texts.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from pystap.loader.ladder import LocationProof

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO planted in the directory must not hang the daemon.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0)
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,200}")

MODULE_SUFFIX = ".stapmod"


def _members(directory: str) -> str:
    return (
        'ERROR: Members of the "stapusr" and "stapsys" groups can only use unsigned modules within\n'
        f'  the "{directory}" directory.\n'
    )


def _not_within(directory: str, module_path: str) -> str:
    return _members(directory) + f'  Module "{module_path}" does not exist within that directory.'


def _check_dir_fd(fd: int, directory: str) -> str | None:
    st = os.fstat(fd)
    if not stat.S_ISDIR(st.st_mode):
        return _members(directory) + "  That path must refer to a directory."
    if st.st_uid != 0:
        return _members(directory) + "  That directory should be owned by root."
    if st.st_mode & stat.S_IWOTH:
        return _members(directory) + "  That directory should not be world writable."
    return None


def open_directory(blessed_dir: Path) -> tuple[int | None, str | None]:
    """Open and validate the blessed directory: ``(fd, None)`` or ``(None, message)``.

    The configured path itself is the administrator's and may contain
    symlinks (``/lib`` is one on merged-usr systems); it is canonicalised
    once, and the last component is opened without following a symlink.
    """
    directory = str(blessed_dir)
    try:
        real = os.path.realpath(directory, strict=True)
    except OSError as exc:
        return None, _members(directory) + f"  Unable to canonicalize that directory: {exc.strerror}"
    try:
        fd = os.open(real, _DIR_FLAGS)
    except NotADirectoryError:
        return None, _members(directory) + "  That path must refer to a directory."
    except OSError as exc:
        return None, _members(directory) + f"  Error getting information on that directory: {exc.strerror}"
    problem = _check_dir_fd(fd, directory)
    if problem is not None:
        os.close(fd)
        return None, problem
    return fd, None


def _walk(dir_fd: int, parts: list[str], directory: str, module_path: str) -> tuple[int | None, str | None]:
    """Open ``parts`` below ``dir_fd`` with no symlink following; the fd of the last one."""
    current = dir_fd
    owned: list[int] = []
    try:
        for part in parts[:-1]:
            try:
                current = os.open(part, _DIR_FLAGS, dir_fd=current)
            except OSError:
                return None, _not_within(directory, module_path)
            owned.append(current)
            problem = _check_dir_fd(current, os.path.join(directory, part))
            if problem is not None:
                return None, problem
        try:
            return os.open(parts[-1], _FILE_FLAGS, dir_fd=current), None
        except OSError:
            return None, _not_within(directory, module_path)
    finally:
        for fd in owned:
            os.close(fd)


def _relative_parts(real_dir: str, module_path: str) -> list[str] | None:
    prefix = real_dir.rstrip("/") + "/"
    if not module_path.startswith(prefix):
        return None
    parts = module_path[len(prefix):].split("/")
    if not parts or any(p in ("", ".", "..") for p in parts):
        return None
    return parts


def _check_module_fd(st: os.stat_result, module_path: str) -> list[str]:
    problems = []
    if st.st_uid != 0:
        problems.append(f'ERROR: The module "{module_path}" must be owned by root.')
    if st.st_mode & stat.S_IWOTH:
        problems.append(f'ERROR: The module "{module_path}" must not be world writable.')
    return problems


def prove(blessed_dir: Path, module_path: str, module_fd: int | None) -> LocationProof:
    """Is ``module_fd`` the file at ``module_path`` inside the blessed directory?

    ``module_path`` is the client's canonical path (used to find the file and
    in messages); the proof holds only when walking there from the directory
    fd, without following symlinks, reaches the same inode as ``module_fd``,
    and that inode is root-owned and not world-writable.
    """
    directory = str(blessed_dir)
    if module_fd is None:
        return LocationProof(False, (_not_within(directory, module_path),))
    dir_fd, problem = open_directory(blessed_dir)
    if dir_fd is None:
        return LocationProof(False, (problem or "",))
    try:
        parts = _relative_parts(os.path.realpath(directory), module_path)
        if parts is None:
            return LocationProof(False, (_not_within(directory, module_path),))
        found, problem = _walk(dir_fd, parts, directory, module_path)
        if found is None:
            return LocationProof(False, (problem or "",))
        try:
            there = os.fstat(found)
        finally:
            os.close(found)
        given = os.fstat(module_fd)
        if (there.st_dev, there.st_ino) != (given.st_dev, given.st_ino) or not stat.S_ISREG(given.st_mode):
            return LocationProof(False, (_not_within(directory, module_path),))
        problems = _check_module_fd(given, module_path)
        if problems:
            return LocationProof(False, tuple(problems))
        return LocationProof(True)
    finally:
        os.close(dir_fd)


def valid_name(name: str) -> bool:
    """A bare module name (``pystaprun NAME``): no slash, no dot-dot, bounded."""
    return bool(_NAME.fullmatch(name)) and ".." not in name


def open_by_name(blessed_dir: Path, name: str) -> tuple[int | None, str, str | None]:
    """Open ``NAME.stapmod`` in the blessed directory for a bare-name load.

    Returns ``(fd, module_path, None)`` or ``(None, module_path, message)``.
    The daemon opens the file itself, so the location is proven by
    construction (``prove`` is still applied to the fd for the owner checks).
    """
    directory = str(blessed_dir)
    module_path = os.path.join(os.path.realpath(directory), name + MODULE_SUFFIX)
    if not valid_name(name):
        return None, module_path, _not_within(directory, module_path)
    dir_fd, problem = open_directory(blessed_dir)
    if dir_fd is None:
        return None, module_path, problem
    try:
        fd, problem = _walk(dir_fd, [name + MODULE_SUFFIX], directory, module_path)
        return fd, module_path, problem
    finally:
        os.close(dir_fd)


def open_signature_beside(module_fd_dir: Path, name: str) -> int | None:
    """Open ``NAME.stapmod.sgn`` in the blessed directory, or ``None`` when absent."""
    dir_fd, _problem = open_directory(module_fd_dir)
    if dir_fd is None:
        return None
    try:
        return os.open(name + MODULE_SUFFIX + ".sgn", _FILE_FLAGS, dir_fd=dir_fd)
    except OSError:
        return None
    finally:
        os.close(dir_fd)
