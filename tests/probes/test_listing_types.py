"""``pystap -L`` names a target variable's C type from the debug info, as ``stap -L`` does.

The expected line is what Debian's stap 4.8 prints for the same program (checked by hand against
it): modifiers after their type (``char const*``, ``int const* const``), aggregates with their
keyword, function pointers as ``int (*) (int)``; ``$$parms``-style names are not listed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from tests.probes.conftest import HERE, stap


@pytest.fixture(scope="module")
def prog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    out = tmp_path_factory.mktemp("ltypes") / "listing_types"
    subprocess.run(["gcc", "-O0", "-g", "-o", str(out), str(HERE / "listing_types.c")], check=True,
                   capture_output=True)
    return out


def test_parameter_types_are_listed_as_stap_names_them(prog: Path) -> None:
    rc, out, err = stap("-L", f'process("{prog}").function("types")')
    assert rc == 0, err
    assert out == (
        f'process("{prog}").function("types@{HERE / "listing_types.c"}:7") $s:char const* $argv:char** '
        "$p:struct pt* $n:long unsigned int $uu:union u* $x:enum e $fp:int (*) (int) $z:size_t "
        "$vp:int volatile* $cp:int const* const $v:void* $vf:int (*) (char const*, ...)\n")
