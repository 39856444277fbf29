"""Finding and parsing the tapset library, with a content-keyed index cache.

The library is the package's own ``*.stp``/``*.stpm`` files plus every ``-I``
directory.  ``*.stpm`` files hold library macros and are always read (they
change how the user's script is parsed).  ``*.stp`` files are only needed
when the script uses something they declare -- an alias, a global or a
function -- and elaboration pulls them in on demand.

So instead of caching parse trees (which would need pickle, and which a
fresh parse of a small file beats anyway), we cache a *JSON index*: for each
file's content hash, the names it declares.  A warm run lexes nothing it
does not need: it parses only the files whose declared names occur in the
user's script (transitively), which is exact for the way pass 2 pulls files
in.  The cache is advisory: a missing, unreadable or corrupt index is
rebuilt, and a file whose hash changed is re-indexed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pystap.signing import safe_files

MAX_TAPSET_FILE = 4 * 1024 * 1024
INDEX_VERSION = 1
_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")


def builtin_dir() -> Path:
    return Path(__file__).resolve().parent


@dataclass
class TapsetFile:
    path: str
    text: str
    digest: str
    macros: bool  # *.stpm


@dataclass
class Library:
    """The tapset files of a session, with their parsed forms once needed."""

    files: list[TapsetFile] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=lambda: {"parsed": 0, "indexed_from_cache": 0})


def _read_limited(path: str) -> str | None:
    """A regular file's text (latin-1), refusing symlink tricks, FIFOs and huge files."""
    try:
        return safe_files.read_regular(path, MAX_TAPSET_FILE).decode("latin-1")
    except OSError:
        return None


def find_files(include_dirs: Iterable[str] = (), with_builtin: bool = True) -> list[TapsetFile]:
    """Every ``*.stp``/``*.stpm`` file of the library, in a stable order
    (built-in first, then each ``-I`` directory, names sorted)."""
    dirs: list[str] = [str(builtin_dir())] if with_builtin else []
    dirs.extend(include_dirs)
    out: list[TapsetFile] = []
    seen: set[str] = set()
    for d in dirs:
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if not (entry.name.endswith(".stp") or entry.name.endswith(".stpm")):
                continue
            path = os.path.join(d, entry.name)
            if path in seen:
                continue
            seen.add(path)
            text = _read_limited(path)
            if text is None:
                continue
            digest = hashlib.sha256(text.encode("latin-1")).hexdigest()
            out.append(TapsetFile(path, text, digest, entry.name.endswith(".stpm")))
    return out


# -- the index ------------------------------------------------------------------------------


def declared_names(stapfile: Any) -> dict[str, list[str]]:
    """What a parsed tapset file declares (what can pull it into a session)."""
    aliases = sorted({c.name for a in stapfile.aliases for n in a.names for c in n.components[:1]})
    return {
        "globals": sorted({g.name for g in stapfile.globals}),
        "functions": sorted({fn.name for fn in stapfile.functions}),
        "aliases": aliases,
        "uses": sorted(set(_IDENT.findall(stapfile.source or ""))),
    }


def _index_path() -> Path:
    from pystap.paths import cache_dir

    return cache_dir() / "tapset-index.json"


def load_index(path: Path | None = None) -> dict[str, Any]:
    p = path or _index_path()
    text = _read_limited(str(p))
    if text is None:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    if (
        not isinstance(data, dict)
        or data.get("version") != INDEX_VERSION
        or not isinstance(data.get("files"), dict)
    ):
        return {}
    return data["files"]


def save_index(entries: dict[str, Any], path: Path | None = None) -> None:
    """Write the index atomically (temp file + rename, private mode); errors are ignored."""
    p = path or _index_path()
    try:
        p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        flags = (
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        )
        fd = os.open(tmp, flags, 0o600)
        try:
            os.write(fd, json.dumps({"version": INDEX_VERSION, "files": entries}, sort_keys=True).encode())
        finally:
            os.close(fd)
        os.replace(tmp, p)
    except OSError:
        return


def needed_files(
    index: dict[str, dict[str, list[str]]], seed_words: set[str], candidates: list[TapsetFile]
) -> list[TapsetFile]:
    """Files whose declarations are (transitively) named by ``seed_words``."""
    words = set(seed_words)
    chosen: dict[str, TapsetFile] = {}
    changed = True
    while changed:
        changed = False
        for f in candidates:
            if f.path in chosen:
                continue
            entry = index.get(f.digest)
            if entry is None:
                chosen[f.path] = f  # unknown: must parse to know
                changed = True
                continue
            decl = set(entry["globals"]) | set(entry["functions"]) | set(entry["aliases"])
            if decl & words:
                chosen[f.path] = f
                words |= set(entry["uses"])
                changed = True
    return [f for f in candidates if f.path in chosen]


def load_library(
    ctx: Any,
    include_dirs: Iterable[str] = (),
    words: set[str] | None = None,
    use_cache: bool = True,
    sources: dict[str, str] | None = None,
) -> list[Any]:
    """Macros into ``ctx.library_macros``; the parsed ``*.stp`` files a script
    whose identifiers are ``words`` can need (all of them when ``words`` is None)."""
    from pystap.lang.parser import parse_file
    from pystap.lang.preprocess import parse_library_macros

    candidates = find_files(include_dirs)
    for f in candidates:
        if f.macros:
            if sources is not None:
                sources[f.path] = f.text
            ctx.library_macros.update(parse_library_macros(f.text, f.path, ctx))
    stp = [f for f in candidates if not f.macros]
    index = load_index() if use_cache else {}
    chosen = stp if words is None else needed_files(index, words, stp)
    out = []
    dirty = False
    for f in chosen:
        parsed = parse_file(f.text, f.path, ctx, tapset=True)
        if sources is not None:
            sources[f.path] = f.text
        out.append(parsed)
        if f.digest not in index:
            index[f.digest] = declared_names(parsed)
            dirty = True
    if dirty and use_cache:
        save_index(index)
    return out


def script_words(text: str) -> set[str]:
    """Identifiers of a script: what can pull a library file in."""
    return set(_IDENT.findall(text))
