"""A result cache for ``-p2`` runs whose answer cannot depend on the host.

Passes 1-2 are deterministic functions of the script, the command line, the
tapset library and the translator's own code -- except where a probe family
looks at the host (process paths and pids, tracepoints, syscall tables).  A
``-p2`` run that produced only host-independent probes (begin, end, error,
never, timers) is stored under a key that covers all of those inputs, so the
next identical run prints the stored listing without importing the parser at
all.  This is what makes a warm ``pystap -p2`` start like a small tool.

The key includes the stat signature (size, mtime) of every translator source
file, so a changed translator never answers from an old entry.  Only
successful runs are stored; failures are always recomputed.  Entries live in
the user's own cache directory (0700), are read with ``O_NOFOLLOW`` and must
be owned by the caller; anything unexpected is a miss, never an error.
This module deliberately imports nothing heavy.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys

from pystap.signing import safe_files

CACHEABLE_FAMILIES = frozenset({"begin", "end", "error", "never", "timer"})
_MAX_ENTRY = 8 * 1024 * 1024
_CODE_DIRS = ("lang", "probes", "tapset", "policy", "cli")


def _pkg_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _code_signature(h: hashlib._Hash) -> None:
    root = _pkg_root()
    for sub in _CODE_DIRS:
        d = os.path.join(root, sub)
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            continue
        for e in entries:
            if e.name.endswith((".py", ".stp", ".stpm")):
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                h.update(f"{sub}/{e.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    for name in ("privilege.py", "paths.py"):
        try:
            st = os.stat(os.path.join(root, name))
            h.update(f"{name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
        except OSError:
            pass


def _file_digest(path: str) -> str | None:
    """SHA-256 of a regular file (no symlink, FIFO or oversized file), or ``None``."""
    try:
        return hashlib.sha256(safe_files.read_regular(path, _MAX_ENTRY)).hexdigest()
    except OSError:
        return None


def _tapset_dirs(include: list[str]) -> list[str]:
    return [os.path.join(_pkg_root(), "tapset"), *include]


# PYSTAP_TAPSET, PYSTAP_RUNTIME, PYSTAP_DEBUGINFO_PATH (pystap.policy.environment.INPUT_VARIABLES,
# named here so that a cache hit does not import the policy tables) and XDG_DATA_DIRS
_INPUT_ENV = ("PYSTAP_TAPSET", "PYSTAP_RUNTIME", "PYSTAP_DEBUGINFO_PATH", "XDG_DATA_DIRS")


def cache_key(argv: list[str], script_file: str | None, include: list[str]) -> str | None:
    """The key of a ``-p2`` run, or ``None`` when an input cannot be read."""
    h = hashlib.sha256()
    h.update(b"pystap-p2-cache-1\0")
    h.update(repr(sys.version_info[:3]).encode())
    uname = os.uname()
    h.update(f"{uname.release}\0{uname.machine}\0".encode())
    h.update(json.dumps(argv).encode())
    h.update(os.getcwd().encode("utf-8", "surrogateescape") + b"\0")
    # what else decides the answer: the caller's credentials (the privilege level pass 2 selects
    # for them) and the environment variables that are translator input (refused below stapdev)
    h.update(json.dumps([os.geteuid(), os.getegid(), sorted(os.getgroups())]).encode())
    h.update(json.dumps({k: os.environ.get(k) for k in _INPUT_ENV}, sort_keys=True).encode())
    if script_file is not None:
        # never open a pipe or device here: opening a FIFO would let a writer's data
        # go to this descriptor instead of the parser
        try:
            if not stat.S_ISREG(os.lstat(script_file).st_mode):
                return None
        except OSError:
            return None
        digest = _file_digest(script_file)
        if digest is None:
            return None
        h.update(digest.encode())
    for d in _tapset_dirs(include):
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            h.update(b"-missing-dir\0")
            continue
        for e in entries:
            if e.name.endswith((".stp", ".stpm")):
                digest = _file_digest(os.path.join(d, e.name))
                h.update(f"{d}/{e.name}:{digest}\n".encode("utf-8", "surrogateescape"))
    _code_signature(h)
    return h.hexdigest()


def _dir() -> str:
    from pystap.paths import cache_dir

    return os.path.join(str(cache_dir()), "p2")


def lookup(key: str) -> tuple[str, str] | None:
    """(stdout, stderr) of a stored run, or ``None``."""
    path = os.path.join(_dir(), key + ".json")
    try:  # only our own entries: another user's file in our cache is ignored
        data = safe_files.read_regular(path, _MAX_ENTRY, owner_uid=os.geteuid())
    except OSError:
        return None
    try:
        entry = json.loads(data)
    except ValueError:
        return None
    if (
        not isinstance(entry, dict)
        or not isinstance(entry.get("stdout"), str)
        or not isinstance(entry.get("stderr"), str)
    ):
        return None
    return entry["stdout"], entry["stderr"]


def store(key: str, stdout: str, stderr: str) -> None:
    """Store a successful run (atomically, private mode); failures to store are ignored."""
    d = _dir()
    try:
        os.makedirs(d, mode=0o700, exist_ok=True)
        tmp = os.path.join(d, f".{key}.{os.getpid()}.tmp")
        flags = (
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        )
        fd = os.open(tmp, flags, 0o600)
        try:
            os.write(fd, json.dumps({"stdout": stdout, "stderr": stderr}).encode())
        finally:
            os.close(fd)
        os.replace(tmp, os.path.join(d, key + ".json"))
    except OSError:
        return


def cacheable(script: object) -> bool:
    """Only scripts whose probes cannot depend on the host are stored."""
    probes = getattr(script, "probes", [])
    return all(getattr(p, "family", "") in CACHEABLE_FAMILIES for p in probes)
