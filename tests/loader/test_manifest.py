"""The loader's own check of the probe manifest against the module's declared level."""

import pytest

from pystap import modfile
from pystap.loader import manifest
from pystap.loader.decision import authorize

from .conftest import make_module


def entry(family, point="p", handler="h", params=None, id=0):
    return modfile.ProbeEntry(id=id, family=family, point=point, handler=handler, params=params or {})


@pytest.mark.parametrize(
    ("level", "family", "ok"),
    [
        ("stapusr", "begin", True),
        ("stapusr", "process.function", True),
        ("stapusr", "kernel.trace", False),
        ("stapusr", "timer.profile", False),
        ("stapsys", "kernel.trace", True),
        ("stapdev", "syscall", True),
        ("stapdev", "no.such.family", False),
    ],
)
def test_family_against_level(level, family, ok):
    module = modfile.load(make_module(level, probes=(entry(family, point="x"),)))
    problems = manifest.check(module)
    assert (problems == []) is ok
    if not ok and family != "no.such.family":
        assert problems == [f"ERROR: probe point 'x' (probe #0): probe point is not allowed for --privilege={level}"]


@pytest.mark.parametrize(
    ("probe", "message"),
    [
        (entry("begin", point=""), "empty or oversized probe point"),
        (entry("begin", handler="os.system"), "invalid handler"),
        (entry("begin", params={"x": "a" * 5000}), "string parameter too long"),
        (entry("begin", params={"x": [[1]]}), "nested list"),
        (entry("begin", params={"bad key": 1}), "invalid parameter name"),
    ],
)
def test_malformed_entries(probe, message):
    module = modfile.load(make_module("stapdev", probes=(probe,)))
    assert any(message in p for p in manifest.check(module))


def test_root_cannot_load_a_stapusr_module_that_declares_kernel_probes(tmp_path):
    data = make_module("stapusr", probes=(entry("kernel.trace", point="kernel.trace(\"sched_switch\")"),))
    outcome = authorize(uid=0, credentials=0xE, module_bytes=data, sgn=None, module_path="/m.stapmod",
                        module_fd=None, blessed_dir=tmp_path, signer_store=tmp_path)
    assert not outcome.decision.allowed
    assert outcome.decision.rule == "manifest"
    assert "not allowed for --privilege=stapusr" in outcome.decision.messages[0]
