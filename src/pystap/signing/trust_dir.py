"""A directory of trust material, read as a whole through fds or not at all.

SystemTap checked its trust database by path (and, in the snapshot studied,
on the wrong path; spec §6.3a, §9.1).  Here the directory is opened with
``O_NOFOLLOW|O_DIRECTORY``, checked with ``fstat`` on that fd, listed through
the fd, and every entry is opened relative to it (``dir_fd=``, ``O_NOFOLLOW``)
and checked with ``fstat`` on the fd that is then read.  If the directory or
*any* entry is wrong (owner, group/other-writable, not a regular file, a
symlink, too large, too many entries) the whole directory is treated as empty
and the reasons are returned: half-trusting a tampered store is never right.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from pathlib import Path

from pystap.signing import safe_files

MAX_ENTRIES = 1000
MAX_FILE_BYTES = 4 * 1024 * 1024


@dataclass
class TrustDirContents:
    """Files of a usable trust directory (``problems`` empty) or why it is unusable."""

    path: Path
    files: dict[str, bytes] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    exists: bool = True


def _open_problem(exc: OSError, what: str, path: Path | None = None) -> str:
    """Say why an open failed; the refusal is already decided, ``lstat`` only words it."""
    if exc.errno == errno.ELOOP:
        return f"{what} is a symbolic link"
    if exc.errno == errno.ENOTDIR:
        if path is not None and path.is_symlink():
            return f"{what} is a symbolic link"
        return f"{what} is not a directory"
    return f"cannot open {what}: {exc.strerror or exc}"


def read_trust_dir(path: str | os.PathLike[str], owner_uid: int, what: str) -> TrustDirContents:
    """Read every entry of ``path``; all must be owned by ``owner_uid`` and not group/other-writable."""
    directory = Path(path)
    label = f"{what} {directory}"
    contents = TrustDirContents(directory)
    try:
        dir_fd = safe_files.open_dir(directory)
    except FileNotFoundError:
        contents.exists = False
        contents.problems.append(f"{label} does not exist")
        return contents
    except OSError as exc:
        contents.problems.append(_open_problem(exc, label, directory))
        return contents
    try:
        problem = safe_files.ownership_problem(os.fstat(dir_fd), label, owner_uid)
        if problem:
            contents.problems.append(problem)
            return contents
        names = sorted(os.listdir(dir_fd))
        if len(names) > MAX_ENTRIES:
            contents.problems.append(f"{label} has too many entries ({len(names)}, limit {MAX_ENTRIES})")
            return contents
        for name in names:
            entry = f"{directory / name}"
            try:
                contents.files[name] = safe_files.read_regular(
                    name, MAX_FILE_BYTES, dir_fd=dir_fd, owner_uid=owner_uid, what=entry
                )
            except safe_files.UnsafeFileError as exc:
                contents.problems.append(str(exc))
            except OSError as exc:
                contents.problems.append(_open_problem(exc, entry))
    finally:
        os.close(dir_fd)
    if contents.problems:
        contents.files.clear()
    return contents
