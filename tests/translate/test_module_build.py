"""Pass 3-4: deterministic modules, -p3/-p4, -m, the module cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.translate.conftest import stap

from pystap import modfile

pytestmark = pytest.mark.timeout(30)

SCRIPT = 'global a; probe begin { a[1] = 2; printf("%d\\n", a[1]); exit() } probe timer.ms(100) { a[2]++ }'


def test_p3_prints_canonical_module():
    r = stap("-w", "-p3", "-e", SCRIPT)
    assert r.rc == 0, r.err
    data = r.out.encode("ascii")
    module = modfile.load(data)
    assert modfile.dump(module) == data
    assert module.privilege == "stapdev"
    assert module.name.startswith("stap_")
    assert [(p.family, p.point) for p in module.probes][:2] == [("begin", "begin"), ("timer", "timer.ms(100)")]
    assert module.probes[1].params == {"interval_ns": 100_000_000, "randomize_ns": 0}
    assert "def probe_0(c):" in module.code
    assert module.options["limits"]["MAXNESTING"] >= 1


def test_build_is_deterministic(tmp_path):
    first = stap("-w", "-p3", "--disable-cache", "-e", SCRIPT).out
    second = stap("-w", "-p3", "--disable-cache", "-e", SCRIPT).out
    assert first == second
    other = stap("-w", "-p3", "--disable-cache", "-DMAXSTRINGLEN=100", "-e", SCRIPT).out
    assert json.loads(other)["name"] != json.loads(first)["name"]


def test_p4_writes_module_and_cache_hit(private_cache):
    r = stap("-w", "-p4", "-e", SCRIPT)
    assert r.rc == 0
    path = Path(r.out.strip())
    assert path.parent == private_cache / "pystap" / "modules"
    data = path.read_bytes()
    assert path.name == modfile.load(data).name + ".stapmod"
    r2 = stap("-w", "-p4", "-v", "-e", SCRIPT)
    assert r2.out == r.out
    assert "using cached" in r2.err
    assert path.read_bytes() == data


def test_clean_cache(private_cache):
    path = Path(stap("-w", "-p4", "-e", SCRIPT).out.strip())
    assert path.exists()
    r = stap("-w", "-p4", "--clean-cache", "-v", "-e", SCRIPT)
    assert "using cached" not in r.err
    assert Path(r.out.strip()).exists()


def test_module_name_option(tmp_path):
    r = stap("-w", "-p4", "-m", "mymod", "-e", SCRIPT)
    assert r.rc == 0
    assert Path(r.out.strip()) == tmp_path / "mymod.stapmod"
    assert modfile.load((tmp_path / "mymod.stapmod").read_bytes()).name == "mymod"
    bad = stap("-w", "-p4", "-m", "../evil", "-e", SCRIPT)
    assert bad.rc == 1
    assert "-m" in bad.err
    assert not (tmp_path.parent / "evil.stapmod").exists()


def test_module_written_without_following_symlinks(tmp_path):
    (tmp_path / "victim").write_text("keep")
    (tmp_path / "mymod.stapmod").symlink_to(tmp_path / "victim")
    r = stap("-w", "-p4", "-m", "mymod", "-e", SCRIPT)
    assert r.rc == 0
    assert (tmp_path / "victim").read_text() == "keep"
    assert not (tmp_path / "mymod.stapmod").is_symlink()


def test_bad_define():
    r = stap("-w", "-p3", "-DMAXACTION=lots", "-e", SCRIPT)
    assert r.rc == 1
    assert "-D MAXACTION=lots: the value must be an integer" in r.err
    assert "Pass 3: translation failed." in r.err
