"""One request's private directory: the client's files written safely, the module found.

Layout (everything 0700/0600, created fresh under the server's ``TMPDIR``)::

    pystap-server.XXXXXX/
      request/     the translator's working directory: script/NAME, tapset/N/NAME,
                   and the module the translator writes
      home/        HOME, XDG_CONFIG_HOME and XDG_CACHE_HOME of the translator
      tmp/         its TMPDIR
      stdout       its standard output
      stderr       its standard error

SystemTap unzipped the client's archive with ``unzip``, so a crafted archive
could plant symlinks that exposed the server's files (spec §9.2).  Here the
server writes each file itself: names were validated against
:data:`~pystap.server.protocol.FILE_NAME` and are checked again, directories
are created with ``mkdir`` relative to their parent's descriptor, files are
opened ``O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC`` relative to theirs.  Nothing a
client sends can name, replace or follow anything outside the directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from pystap.server.protocol import FILE_NAME, MAX_MODULE, MODULE_FILE, TAPSET_DIR
from pystap.signing import safe_files

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
PREFIX = "pystap-server."


class WorkDirError(Exception):
    """The request's files or the translator's result cannot be used; the message is for the client."""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class WorkDir:
    """A private temporary directory for one request; :meth:`remove` deletes it."""

    def __init__(self, base: Path) -> None:
        self._outputs: list[int] = []
        self.path = Path(tempfile.mkdtemp(prefix=PREFIX, dir=base))
        try:
            for sub in ("request", "home", "tmp"):
                os.mkdir(self.path / sub, 0o700)
        except BaseException:
            self.remove()
            raise

    @property
    def request(self) -> Path:
        return self.path / "request"

    @property
    def home(self) -> Path:
        return self.path / "home"

    @property
    def tmp(self) -> Path:
        return self.path / "tmp"

    def write_files(self, files: Mapping[str, bytes], tapset_dirs: Iterable[str]) -> None:
        """Create the ``-I`` directories and every client file below ``request/``."""
        root = safe_files.open_dir(self.request)
        opened: dict[str, int] = {}

        def directory(rel: str) -> int:
            if not rel:
                return root
            if rel not in opened:
                parent_rel, _, name = rel.rpartition("/")
                parent = directory(parent_rel)
                os.mkdir(name, 0o700, dir_fd=parent)
                opened[rel] = os.open(name, safe_files.DIR_FLAGS, dir_fd=parent)
            return opened[rel]

        try:
            for rel in tapset_dirs:
                if not TAPSET_DIR.fullmatch(rel):
                    raise WorkDirError(f"invalid tapset directory name {rel!r}")
                directory(rel)
            for name, data in sorted(files.items()):
                if not FILE_NAME.fullmatch(name):
                    raise WorkDirError(f"invalid file name {name!r}")
                parent_rel, _, base = name.rpartition("/")
                fd = os.open(base, _CREATE, 0o600, dir_fd=directory(parent_rel))
                try:
                    _write_all(fd, data)
                finally:
                    os.close(fd)
        except FileExistsError:
            raise WorkDirError("the request names a file twice or a file and a directory alike") from None
        finally:
            for fd in opened.values():
                os.close(fd)
            os.close(root)

    def outputs(self) -> tuple[int, int]:
        """The translator's stdout and stderr: fresh files, opened once and kept open.

        The server reads them back through these very descriptors, so what it
        sends is what was written there, whatever happens to the names.
        """
        if not self._outputs:
            for name in ("stdout", "stderr"):
                self._outputs.append(os.open(self.path / name, (_CREATE & ~os.O_WRONLY) | os.O_RDWR, 0o600))
        return self._outputs[0], self._outputs[1]

    @staticmethod
    def read_output(fd: int, limit: int) -> bytes:
        """At most ``limit`` bytes of an output file, with a note when there was more."""
        size = os.fstat(fd).st_size
        data = os.pread(fd, limit, 0) if limit else b""
        if size > limit:
            data += f"\n[{size - limit} more bytes of output not shown]\n".encode()
        return data

    def find_module(self) -> tuple[str, bytes] | None:
        """The one module the translator wrote into ``request/``; None when there is none."""
        root = safe_files.open_dir(self.request)
        try:
            with os.scandir(root) as entries:
                names = sorted(e.name for e in entries if e.name.endswith(".stapmod"))
            if not names:
                return None
            if len(names) > 1:
                raise WorkDirError(f"Too many modules ({len(names)}) in <server>")
            if not MODULE_FILE.fullmatch(names[0]):
                raise WorkDirError(f"Unexpected module name {names[0]!r} in <server>")
            st = os.stat(names[0], dir_fd=root, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                raise WorkDirError(f"Unable to find a module in <server>: {names[0]} is not a regular file")
            return names[0], safe_files.read_regular(names[0], MAX_MODULE, dir_fd=root)
        finally:
            os.close(root)

    def remove(self) -> None:
        """Close the outputs and delete the directory (``rmtree`` never follows a link)."""
        for fd in self._outputs:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._outputs.clear()

        def writable(function: object, path: str, _exc: object) -> None:
            with contextlib.suppress(OSError):
                os.chmod(os.path.dirname(path), 0o700)
                if os.path.isdir(path) and not os.path.islink(path):
                    os.chmod(path, 0o700)
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)

        shutil.rmtree(self.path, onerror=writable)
