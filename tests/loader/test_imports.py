"""The root service imports no pass and no runtime (the privilege boundary, visible in imports)."""

import json
import subprocess
import sys

FORBIDDEN = ("pystap.lang", "pystap.translate", "pystap.probes", "pystap.runtime", "pystap.cli.stap",
             "pystap.tapset", "pystap.server")
ALLOWED_PYSTAP = ("pystap.privilege", "pystap.paths", "pystap.modfile", "pystap.eventwire", "pystap.syscalls", "pystap.logs",
                  "pystap.signing",
                  "pystap.policy",
                  "pystap.loader", "pystap.cli.stapd", "pystap.cli", "pystap.kernel")
ALLOWED_THIRD_PARTY = ("cryptography", "_openssl", "cffi", "_cffi_backend", "pycparser")

CODE = """
import json, sys
import pystap.loader.daemon, pystap.cli.stapd, pystap.loader.decision
from pystap.loader import decision
# also exercise the lazily imported signature verifier
decision.verify_signature(b"x", b"y", __import__("pathlib").Path("/nonexistent"))
print(json.dumps(sorted(sys.modules)))
"""


def _under(module, packages):
    return any(module == p or module.startswith(p + ".") for p in packages)


def test_daemon_imports_only_what_it_may():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True).stdout
    modules = json.loads(out)
    pystap = [m for m in modules if m == "pystap" or m.startswith("pystap.")]
    bad = [m for m in pystap if _under(m, FORBIDDEN)]
    assert bad == []
    unexpected = [m for m in pystap if m != "pystap" and not _under(m, ALLOWED_PYSTAP)]
    assert unexpected == []
    stdlib = set(sys.stdlib_module_names)
    third = {m.split(".")[0] for m in modules if not m.startswith("pystap")} - stdlib
    third -= {"__main__", "_sitebuiltins", "sitecustomize", "usercustomize", "_distutils_hack"}
    assert not [m for m in third if not m.startswith(ALLOWED_THIRD_PARTY) and not m.startswith("__editable__")]
