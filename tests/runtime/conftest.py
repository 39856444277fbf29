"""Hand-built modules, so the runtime is tested without the translator."""

from __future__ import annotations

import io

from pystap.modfile import Module, ProbeEntry
from pystap.runtime import RunOptions, run_module


def module(code: str, probes: list[tuple[str, str, dict]], privilege: str = "stapusr", **kw) -> Module:
    entries = tuple(ProbeEntry(id=i, family=f, point=f if f != "timer" else "timer.ms(1)", handler=h, params=p)
                    for i, (f, h, p) in enumerate(probes))
    return Module(name="stap_test", translator="test", privilege=privilege, release="r", arch="x86_64",
                  script_digest="0" * 64, probes=entries, code=code, **kw)


def run(mod: Module, credentials: int = 0xE, events=None, **opts) -> tuple[int, str, str]:
    out, err = io.BytesIO(), io.BytesIO()
    rc = run_module(mod, credentials=credentials, options=RunOptions(stdout=out, stderr=err, **opts), events=events)
    return rc, out.getvalue().decode("latin-1"), err.getvalue().decode("latin-1")
