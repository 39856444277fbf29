"""Passes 3-5 for the ``pystap`` command: build, package/cache, run.

``pystap.cli.stap`` calls :func:`run_later_passes` after pass 2 and
:func:`try_cached` before pass 1 (a cache hit skips passes 1-4 entirely,
which is what makes a rebuild instant).  The cache key covers everything
that changes the module: the script text and its arguments, every tapset
file's digest, the options that reach the translator, the translator
version and the target.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any, TextIO

from pystap import modfile
from pystap.translate import module as modbuild
from pystap.translate.codegen import CodegenError

# CLI options that change what pass 2-4 produce (everything else is pass 5 or output)
_KEY_OPTIONS = ("defines", "guru", "unoptimized", "privilege", "compatible", "module", "include",
                "target_pid", "args", "extra_scripts", "timing", "suppress_handler_errors", "modinfo")


def _verbose(o: Any, pass_number: int) -> int:
    """The verbosity of one pass: ``--vp`` digits plus ``-v`` (``CliOptions.perpass``), else ``-v``."""
    perpass = getattr(o, "perpass", None)
    if perpass:
        return int(perpass[pass_number - 1])
    return int(getattr(o, "verbose", 0))


def build_options(o: Any) -> modbuild.BuildOptions:
    defines = list(getattr(o, "defines", []) or [])
    target = {k: v for k in ("release", "arch") if (v := getattr(o, k, None))}  # -r / -a
    modinfo = dict(m.partition("=")[::2] for m in getattr(o, "modinfo", []) or [])
    return modbuild.BuildOptions(module_name=getattr(o, "module", None), defines=dict(
        (d.partition("=")[0], d.partition("=")[2]) for d in defines),
        timing=bool(getattr(o, "timing", False)),
        suppress_handler_errors=bool(getattr(o, "suppress_handler_errors", False)), modinfo=modinfo, **target)


def _script_text(o: Any) -> tuple[str, str] | None:
    if getattr(o, "script", None) is not None:
        return o.script, "<input>"
    path = getattr(o, "script_file", None)
    if not path or path == "-":
        return None  # stdin: read once by pass 1, so never cached
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            data = f.read(modbuild.modfile.MAX_MODULE_BYTES + 1)
    except OSError:
        return None
    return data.decode("latin-1"), path


def _translator_digest() -> str:
    """Digest of the translator's own sources: a changed pass 1-4 never reuses an old module."""
    import hashlib

    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for sub in ("lang", "translate", "probes", "policy", "tapset"):
        for f in sorted((root / sub).glob("*.py")):
            h.update(f.name.encode())
            h.update(f.read_bytes())
    for f in ("modfile.py", "privilege.py"):
        h.update((root / f).read_bytes())
    return h.hexdigest()


def cache_key_for(o: Any) -> str | None:
    """The module-cache key of this command line, or ``None`` when it cannot be cached."""
    if getattr(o, "disable_cache", False):
        return None
    script = _script_text(o)
    if script is None:
        return None
    from pystap.tapset import loader

    tapsets = sorted((f.path, f.digest) for f in loader.find_files(getattr(o, "include", []) or []))
    parts: dict[str, Any] = {k: getattr(o, k, None) for k in _KEY_OPTIONS}
    parts.update(script=script, tapsets=tapsets, release=getattr(o, "release", None) or os.uname().release,
                 arch=getattr(o, "arch", None) or platform.machine(),
                 uid=os.getuid(), translator=_translator_digest())
    return modbuild.cache_key(parts)


def _wants_clean(o: Any) -> bool:
    return any(name == "--clean-cache" for name, _ in getattr(o, "raw", []))


def try_cached(o: Any, out: TextIO, err: TextIO) -> int | None:
    """Passes 4-5 from the cache when this exact build was done before; ``None`` on a miss."""
    if _wants_clean(o):
        modbuild.clean_cache()
        return None
    if getattr(o, "last_pass", 5) < 3:
        return None
    key = cache_key_for(o)
    if key is None:
        return None
    hit = modbuild.cache_lookup(key)
    if hit is None:
        return None
    path, module = hit
    if _verbose(o, 3):
        err.write(f"Pass 3: using cached {path}\n")
    if _verbose(o, 4):
        err.write(f"Pass 4: using cached {path}\n")
    return _after_build(o, module, modfile.dump(module), path, out, err, cached=True)


def run_later_passes(o: Any, script: Any, out: TextIO, err: TextIO) -> int:
    """Pass 3 (print with ``-p3``), 4 (write, print the path with ``-p4``), 5 (run)."""
    try:
        module, data = modbuild.build(script, build_options(o))
    except (CodegenError, modbuild.BuildError) as exc:
        err.write(f"{exc}\nPass 3: translation failed.  [man error::pass3]\n")
        return 1
    if _verbose(o, 3):
        err.write(f"Pass 3: translated to module {module.name} ({len(module.probes)} probes,"
                  f" {len(module.code)} bytes of handler code)\n")
    if getattr(o, "tmpdir_path", None) and not _keep_temporary(Path(o.tmpdir_path), module, data, err):
        err.write("Pass 3: translation failed.  [man error::pass3]\n")
        return 1
    if getattr(o, "last_pass", 5) == 3:
        out.write(data.decode("ascii"))
        return 0
    path = _place(o, module, data, err)
    if path is None:
        err.write("Pass 4: compilation failed.  [man error::pass4]\n")
        return 1
    return _after_build(o, module, data, path, out, err)


def _keep_temporary(directory: Path, module: modfile.Module, data: bytes, err: TextIO) -> bool:
    """``-k`` / ``--tmpdir``: leave pass 3's product (the module text) in the temporary directory,
    as stap leaves its generated C there."""
    try:
        modbuild.write_module(data, directory / modbuild.module_filename(module))
    except OSError as exc:
        err.write(f"ERROR: cannot write into temporary directory {directory}: {exc.strerror}\n")
        return False
    return True


def _place(o: Any, module: modfile.Module, data: bytes, err: TextIO) -> Path | None:
    """Write the module: into the cache, or the current directory with ``-m``/``--disable-cache``."""
    key = cache_key_for(o)
    try:
        if key is not None and getattr(o, "module", None) is None:
            return modbuild.cache_store(key, module, data)
        return modbuild.write_module(data, Path.cwd() / modbuild.module_filename(module))
    except OSError as exc:
        err.write(f"ERROR: cannot write module {modbuild.module_filename(module)}: {exc.strerror}\n")
        return None


def _after_build(o: Any, module: modfile.Module, data: bytes, path: Path, out: TextIO, err: TextIO,
                 cached: bool = False) -> int:
    if getattr(o, "last_pass", 5) == 3:
        out.write(data.decode("ascii"))
        return 0
    if not _sign(o, path, err):  # the module where it was built or cached (a cached one needs its .sgn)
        return 1
    if getattr(o, "module", None) is not None and path.parent != Path.cwd():
        path = modbuild.write_module(data, Path.cwd() / modbuild.module_filename(module))
        if not _sign(o, path, err):
            return 1
    if _verbose(o, 4) and not cached:
        err.write(f"Pass 4: module written to \"{path}\"\n")
    if getattr(o, "last_pass", 5) == 4:
        out.write(f"{path}\n")
        out.flush()
        return 0
    if _verbose(o, 5):
        err.write("Pass 5: starting run.\n")
        err.flush()
    rc = run_pass5(o, module, path, out, err)
    if _verbose(o, 5) and rc == 0:
        err.write("Pass 5: run completed\n")
    if rc != 0:
        err.write("Pass 5: run failed.  [man error::pass5]\n")
    return rc


def _sign(o: Any, path: Path, err: TextIO) -> bool:
    """Pass 4's signature next to ``path`` (see :mod:`pystap.translate.signature`); False on failure."""
    from pystap.translate import signature

    try:
        sgn = signature.ensure_signature(path, signature.SignSettings.from_options(o), err)
    except signature.SignError as exc:
        err.write(f"ERROR: {exc}\nPass 4: compilation failed.  [man error::pass4]\n")
        return False
    if sgn is not None and _verbose(o, 4) > 1:
        err.write(f"Pass 4: signature in \"{sgn}\"\n")
    return True


def _globals(o: Any) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in getattr(o, "set_globals", []) or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"Invalid -G option '{item}' (expected NAME=VALUE).")
        result[name] = value
    return result


def run_pass5(o: Any, module: modfile.Module, path: Path, out: TextIO, err: TextIO) -> int:
    """Root runs the module in-process; everyone else goes through the loader service."""
    try:
        globals_ = _globals(o)
    except ValueError as exc:
        err.write(f"{exc}\n")
        return 1
    out.flush()
    if os.getuid() == 0:
        from pystap import privilege
        from pystap.runtime import RunOptions, run_module

        options = RunOptions(output=getattr(o, "output", None), stdout=out, stderr=err,
                             target_pid=getattr(o, "target_pid", None),
                             command=getattr(o, "target_cmd", None),
                             timeout=getattr(o, "timeout", None), globals=globals_,
                             verbose=_verbose(o, 5))
        if any(p.family not in ("begin", "end", "error", "never", "timer") for p in module.probes):
            from pystap.loader.local import run_as_root  # kernel probes: through a service

            return run_as_root(module, path, options)
        return run_module(module, credentials=privilege.own_credentials(), options=options)
    from pystap.loader.client import RunRequest, run

    # The module goes to pystapd by path: the client opens it and its ``<module>.sgn`` (written
    # at pass 4 next to it, in the cache or with -m in the current directory) and passes both fds.
    timeout = getattr(o, "timeout", None)
    req = RunRequest(module=str(path), globals=globals_,
                     output=Path(o.output) if getattr(o, "output", None) else None,
                     command=getattr(o, "target_cmd", None), target_pid=getattr(o, "target_pid", None),
                     verbose=_verbose(o, 5),
                     timeout_ms=None if timeout is None else int(timeout * 1000), stdout=out)
    return run(req, err=err)
