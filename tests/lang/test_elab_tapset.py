"""The built-in tapset: function table, .stp/.stpm files, the index cache."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
from pathlib import Path

import pytest

import pystap.runtime
from pystap.lang.context import ParseContext
from pystap.policy.functions import FunctionPrivilege
from pystap.tapset import builtins, loader


def _runtime_names() -> set[str]:
    names: set[str] = set()
    for m in pkgutil.iter_modules(pystap.runtime.__path__):
        mod = importlib.import_module(f"pystap.runtime.{m.name}")
        table = getattr(mod, "FUNCTIONS", None)
        if isinstance(table, dict):
            names |= set(table)
    return names


def test_table_entries_are_structured() -> None:
    b = builtins.lookup("substr", 3)
    assert b is not None and b.returns.value == "string" and b.privilege is FunctionPrivilege.UNPRIVILEGED
    assert builtins.lookup("user_string", 1).privilege is FunctionPrivilege.MYPROC
    assert builtins.lookup("user_string", 1).user_memory
    assert builtins.lookup("kernel_string", 1).privilege is FunctionPrivilege.PRIVILEGED
    assert builtins.lookup("printk", 2).privilege is FunctionPrivilege.GURU
    assert builtins.arities("tokenize") == [1, 2]


def test_bad_table_line_is_refused() -> None:
    with pytest.raises(ValueError):
        builtins._parse("X nope()")
    with pytest.raises(ValueError):
        builtins._parse("U a()\nU a()")


def test_runtime_names_agree_with_the_table() -> None:
    """Every function the runtime implements is declared here, under the same name."""
    assert _runtime_names() - builtins.NAMES == set()


def test_every_declared_function_has_a_runtime_implementation() -> None:
    """Every function pass 2 accepts (guru ones aside) exists in the assembled runtime registry,
    if only as a stub that refuses with the reason (so a module never fails on a missing name)."""
    registry = pystap.runtime.FUNCTIONS
    missing = {b.name for b in builtins.BUILTINS.values() if b.privilege is not FunctionPrivilege.GURU} - set(registry)
    # STOCK_TABLE declarations exist for SystemTap's pass-2 answers only: pass 3 refuses
    # every call to them (UNAVAILABLE), so no module can name one.
    stock = {b.name for b in builtins.STOCK.values()}
    assert stock <= set(builtins.UNAVAILABLE)
    assert missing - stock == set()


def test_library_files_parse_and_macros_load() -> None:
    ctx = ParseContext()
    files = loader.load_library(ctx, (), None, use_cache=False)
    names = {Path(f.name).name for f in files}
    assert {"null.stp", "oneshot.stp", "init.stp", "assert.stp", "timer_profile.stp"} <= names
    assert {"choose_defined", "try_assign", "prints", "prints1", "prints9"} <= set(ctx.library_macros)


def test_index_cache_selects_needed_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    loader.load_library(ParseContext(), (), None)  # builds the index
    index_file = tmp_path / "pystap" / "tapset-index.json"
    data = json.loads(index_file.read_text())
    assert data["version"] == loader.INDEX_VERSION and data["files"]
    warm = loader.load_library(ParseContext(), (), loader.script_words("probe oneshot { print(NULL) }"))
    assert sorted(Path(f.name).name for f in warm) == ["null.stp", "oneshot.stp"]


def test_corrupt_index_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    (tmp_path / "pystap").mkdir()
    (tmp_path / "pystap" / "tapset-index.json").write_text("{not json")
    assert loader.load_index() == {}
    files = loader.load_library(ParseContext(), (), {"NULL"})
    assert [Path(f.name).name for f in files] == ["null.stp"] or len(files) >= 1


def test_symlinked_or_huge_tapset_files_are_skipped(tmp_path: Path) -> None:
    real = tmp_path / "real.stp"
    real.write_text("function ok() { return 1 }\n")
    (tmp_path / "link.stp").symlink_to(real)
    os.mkfifo(tmp_path / "fifo.stp")  # would block a plain open()
    big = tmp_path / "big.stp"
    big.write_bytes(b"#" * (loader.MAX_TAPSET_FILE + 1))
    found = {Path(f.path).name for f in loader.find_files([str(tmp_path)], with_builtin=False)}
    assert found == {"real.stp"}
