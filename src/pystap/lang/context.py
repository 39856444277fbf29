"""What pass 1 needs to know about the world: the inputs of the preprocessor.

``%( kernel_v >= "5.0" %? … %)`` and friends are decided at parse time, and
``$1``/``@1`` paste command-line arguments into the token stream, so the
parser cannot be a pure function of the script text.  Everything it depends
on is gathered in one small :class:`ParseContext`, so tests can describe any
host (another kernel, arch, privilege, kernel config) without touching the
real one, and the CLI builds it once from the command line.
"""

from __future__ import annotations

import gzip
import io
import os
import platform
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pystap.lang.preprocess import Macro

#: The SystemTap language version whose behaviour we reproduce (``--compatible`` default).
SYSTEMTAP_VERSION = "5.6"

#: Largest kernel config file we are willing to read (real ones are ~300 KiB).
_MAX_CONFIG_BYTES = 16 * 1024 * 1024

_ARCH_ALIASES = {
    "aarch64": "arm64",
    "s390x": "s390",
    "ppc64": "powerpc",
    "ppc64le": "powerpc",
    "sa110": "arm",
    "sparc64": "sparc",
}


def normalize_arch(machine: str) -> str:
    """``uname -m`` → SystemTap's architecture name (``i686`` → ``i386``,
    ``aarch64`` → ``arm64``), as ``%( arch == "…" %)`` compares it."""
    if re.fullmatch(r"i[3-6]86", machine):
        return "i386"
    if machine.startswith("arm") and machine != "arm64":
        return "arm"
    if machine.startswith("mips"):
        return "mips"
    return _ARCH_ALIASES.get(machine, machine)


def kernel_base_release(release: str) -> str:
    """``6.1.0-18-amd64`` → ``6.1.0``: what ``kernel_v`` compares against."""
    return release.split("-", 1)[0]


def _read_limited(fd: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > _MAX_CONFIG_BYTES:
            raise OSError("kernel config too large")
        chunks.append(chunk)


def parse_kernel_config(text: str) -> dict[str, str]:
    """``CONFIG_X=y`` lines → ``{"CONFIG_X": "y"}``; quotes around string
    values are removed (SystemTap compares the bare value)."""
    config: dict[str, str] = {}
    for line in text.splitlines():
        if not line.startswith("CONFIG_") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        config[key.strip()] = value
    return config


def read_host_kernel_config(release: str | None = None) -> dict[str, str]:
    """The running kernel's config from ``/proc/config.gz`` or
    ``/boot/config-<release>``; empty when neither is readable (the corpus
    passes with an empty map, so this is never an error)."""
    release = release or platform.release()
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW
    for path, compressed in (("/proc/config.gz", True), (f"/boot/config-{release}", False)):
        try:
            fd = os.open(path, flags)
        except OSError:
            continue
        try:
            data = _read_limited(fd)
            if compressed:
                with gzip.GzipFile(fileobj=io.BytesIO(data)) as gz:
                    data = gz.read(_MAX_CONFIG_BYTES + 1)
                if len(data) > _MAX_CONFIG_BYTES:
                    continue
            return parse_kernel_config(data.decode("latin-1"))
        except (OSError, EOFError, gzip.BadGzipFile):
            continue
        finally:
            os.close(fd)
    return {}


@dataclass
class ParseContext:
    """The preprocessor's view of the session.

    ``kernel_config`` ``None`` means "read the running kernel's config the
    first time a ``CONFIG_`` condition needs it"; pass a mapping in tests.
    ``library_macros`` are the ``@define``s of the tapset's ``*.stpm`` files
    (see :func:`pystap.lang.preprocess.parse_library_macros`), visible in
    every file.
    """

    kernel_release: str = field(default_factory=platform.release)
    kernel_version: str = ""  # base release; derived from kernel_release when empty
    arch: str = field(default_factory=lambda: normalize_arch(platform.machine()))
    runtime: str = "kernel"
    compatible: str = SYSTEMTAP_VERSION
    privilege: str = "stapdev"  # stapusr | stapsys | stapdev
    guru: bool = False
    kernel_config: Mapping[str, str] | None = None
    args: list[str] = field(default_factory=list)
    library_macros: dict[str, Macro] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.kernel_version:
            self.kernel_version = kernel_base_release(self.kernel_release)

    def config_value(self, name: str) -> str:
        """A kernel config option's value, ``""`` when unset."""
        if self.kernel_config is None:
            self.kernel_config = read_host_kernel_config(self.kernel_release)
        return self.kernel_config.get(name, "")

    def has_version(self, version: str) -> bool:
        """Whether ``--compatible`` is at least ``version`` (gates keywords and @-words)."""
        from pystap.lang.preprocess import strverscmp

        return strverscmp(self.compatible, version) >= 0
