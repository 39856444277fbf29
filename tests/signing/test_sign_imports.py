"""The verifier runs in the root service: it may import only stdlib, cryptography and three contracts."""

from __future__ import annotations

import json
import subprocess
import sys

ALLOWED = {"pystap", "pystap.modfile", "pystap.privilege", "pystap.paths"}


def test_verify_import_closure():
    code = (
        "import json, sys\n"
        "import pystap.signing\n"
        "from pystap.signing import verify, SignerStore\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'pystap')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(json.loads(out))
    outside = {m for m in loaded if not m.startswith("pystap.signing") and m not in ALLOWED}
    assert not outside, f"the signing package pulls in {sorted(outside)}"
    top_level = code.replace("m.split('.')[0] == 'pystap'", "'.' not in m")
    baseline = "\n".join(line for line in top_level.splitlines() if "pystap" not in line)
    runs = [subprocess.run([sys.executable, "-c", c], capture_output=True, text=True, check=True).stdout
            for c in (top_level, baseline)]
    with_signing, without = (set(json.loads(r)) for r in runs)
    new = {m for m in with_signing - without if m not in sys.stdlib_module_names and not m.startswith("_")}
    assert new <= {"pystap", "cryptography"}, new
