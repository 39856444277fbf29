"""The root-side kernel library imports only the standard library and the allowed pystap modules."""

from __future__ import annotations

import subprocess
import sys

ALLOWED = {"pystap", "pystap.privilege", "pystap.modfile", "pystap.policy", "pystap.eventwire", "pystap.syscalls"}


def test_kernel_package_import_closure() -> None:
    code = ("import sys, pystap.kernel, pystap.kernel.reaper, pystap.kernel.usersession, pystap.kernel.elfcheck\n"
            "import pystap.kernel.service, pystap.kernel.installer\n"
            "print('\\n'.join(sorted(m for m in sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    ours = {m for m in out if m.startswith("pystap")}
    assert {m for m in ours if not m.startswith("pystap.kernel") and m.split(".policy")[0] not in ALLOWED} <= ALLOWED
    assert not any(m.startswith(("pystap.lang", "pystap.probes", "pystap.translate", "pystap.runtime"))
                   for m in ours)
    assert "elftools" not in {m.split(".")[0] for m in out}
