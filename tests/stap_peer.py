"""Running Debian's ``stap`` beside pystap in differential tests.

stap 4.8 wants a kernel build tree even for passes 1-3; this stand-in (the running kernel's
config, its release, an empty Module.symvers) is enough, as the project's peers notes explain.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path


def stand_in_kernel_tree(tree: Path) -> Path:
    """Create the stand-in build tree at ``tree`` (a new directory) and return it."""
    (tree / "include" / "config").mkdir(parents=True)
    try:
        with gzip.open("/proc/config.gz") as f:
            (tree / ".config").write_bytes(f.read())
    except OSError:
        (tree / ".config").write_bytes(b"")
    release = os.uname().release
    (tree / "Makefile").write_text(f"KERNELRELEASE={release}\n")
    (tree / "include" / "config" / "kernel.release").write_text(release + "\n")
    (tree / "Module.symvers").write_text("")
    return tree
