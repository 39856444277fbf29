"""System-call facts every side needs: names and numbers, and which arguments are paths.

The translator resolves ``syscall.NAME`` to a number and plans which
arguments to capture as strings, the daemon captures exactly those strings in
the kernel, and the runtime turns a number back into ``name``.  One table
here keeps the three in agreement; a leaf module (it imports no pass, no
runtime, no daemon code) so each side may import it.
"""

from __future__ import annotations

import re

# Where the numbers come from: the system's own headers (the running kernel's ABI).
_UNISTD = (
    "/usr/include/x86_64-linux-gnu/asm/unistd_64.h",
    "/usr/include/asm/unistd_64.h",
    "/usr/include/asm-generic/unistd.h",
)
_BY_NAME: dict[str, int] | None = None
_BY_NUMBER: dict[int, str] | None = None

# Which (1-based) arguments of common calls are user strings (paths), captured at the hit
# as ``$argN_str``: an explicit allowlist, so the daemon never reads memory it was not told of.
STRING_ARGS: dict[str, tuple[int, ...]] = {
    "open": (1,), "openat": (2,), "openat2": (2,), "creat": (1,), "execve": (1,), "execveat": (2,),
    "access": (1,), "faccessat": (2,), "faccessat2": (2,), "stat": (1,), "lstat": (1,), "newfstatat": (2,),
    "statx": (2,), "unlink": (1,), "unlinkat": (2,), "mkdir": (1,), "mkdirat": (2,), "rmdir": (1,),
    "chdir": (1,), "chroot": (1,), "chmod": (1,), "fchmodat": (2,), "chown": (1,), "lchown": (1,),
    "fchownat": (2,), "truncate": (1,), "readlink": (1,), "readlinkat": (2,), "rename": (1, 2),
    "renameat": (2, 4), "renameat2": (2, 4), "link": (1, 2), "linkat": (2, 4), "symlink": (1, 2),
    "symlinkat": (1, 3), "mount": (1, 2), "umount2": (1,), "swapon": (1,), "swapoff": (1,),
    "sethostname": (1,), "memfd_create": (1,),
}


def syscall_numbers() -> dict[str, int]:
    """Syscall names and numbers from the system headers (empty when absent); read once."""
    global _BY_NAME
    if _BY_NAME is None:
        table: dict[str, int] = {}
        for path in _UNISTD:
            try:
                with open(path, encoding="latin-1") as f:
                    text = f.read(1 << 20)
            except OSError:
                continue
            for m in re.finditer(r"#define\s+__NR_(\w+)\s+(\d+)", text):
                table.setdefault(m.group(1), int(m.group(2)))
            if table:
                break
        _BY_NAME = table
    return _BY_NAME


def syscall_name(nr: int) -> str:
    """The name of syscall ``nr``, or "" when the headers do not know it."""
    global _BY_NUMBER
    if _BY_NUMBER is None:
        by_number: dict[int, str] = {}
        for name, number in syscall_numbers().items():
            by_number.setdefault(number, name)
        _BY_NUMBER = by_number
    return _BY_NUMBER.get(nr, "")
