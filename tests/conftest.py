"""Keep every test away from the real user's configuration.

Each module ``pystap`` builds is signed at pass 4 with the user's own key,
which is created on first use under ``$XDG_CONFIG_HOME/pystap/signing``; a
test run must never create (or use) a key in the home directory of whoever
runs the suite.  Tests that care about the key directory set
``XDG_CONFIG_HOME`` themselves (monkeypatch, or a child's environment), which
takes precedence.  The session's key is created up front, so no test's
output depends on whether it happened to be the first to build a module (the
first build prints a note about the new key).

(The test directories' own ``conftest`` modules are imported by name from
their tests; ruff is told to keep treating ``conftest`` as third-party so
this file does not change how those imports are sorted.)
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def _private_config_home() -> Iterator[None]:
    previous = os.environ.get("XDG_CONFIG_HOME")
    directory = tempfile.mkdtemp(prefix="pystap-test-config-")
    os.environ["XDG_CONFIG_HOME"] = directory
    from pystap.signing import user_signing_key

    user_signing_key()
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("XDG_CONFIG_HOME", None)
        else:
            os.environ["XDG_CONFIG_HOME"] = previous
        shutil.rmtree(directory, ignore_errors=True)
