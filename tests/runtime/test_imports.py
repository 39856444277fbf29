"""The passes and the runtime meet only through the module file and the shared leaf modules.

DESIGN: the passes do not import the runtime, and the runtime never imports the translator.
What both need -- the regex dialect (pystap.ere), the printf format parser
(pystap.printf_format), the syscall tables (pystap.syscalls) and the list of
functions this substrate cannot provide (pystap.unavailable) -- lives at the
top of the package, importing no pass.
"""

from __future__ import annotations

import json
import subprocess
import sys


def _modules(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True).stdout
    return [m for m in json.loads(out) if m.startswith("pystap")]


def test_runtime_imports_no_pass() -> None:
    mods = _modules("import pystap.runtime, pystap.runtime.prelude, pystap.runtime.regex, pystap.runtime.printf")
    assert [m for m in mods if m.startswith(("pystap.lang", "pystap.translate", "pystap.probes", "pystap.cli"))] \
        == []
    assert "pystap.ere" in mods and "pystap.printf_format" in mods


def test_translator_checks_import_no_runtime() -> None:
    mods = _modules("import pystap.lang.checks, pystap.lang.types, pystap.lang.parser")
    assert [m for m in mods if m.startswith("pystap.runtime")] == []


def test_shared_leaf_modules_import_nothing_of_pystap() -> None:
    leaves = {"pystap.ere", "pystap.printf_format", "pystap.syscalls", "pystap.unavailable"}
    assert set(_modules("import " + ", ".join(sorted(leaves)))) == {"pystap", *leaves}
