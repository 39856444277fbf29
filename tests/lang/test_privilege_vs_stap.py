"""Differential test: pystap and SystemTap's ``stap -p2`` agree on accept/refuse.

The scripts and stap's answers live in tests/data/privilege/vs_stap.json, so
the test runs fast and still checks pystap's side where ``stap`` is absent;
where it is present, stap's side is re-checked against the cache.  A case
counts only where both translators *resolve* it: accepted, or refused for a
privilege reason.  Anything else (no kernel debuginfo in the minimal build
tree, an unsupported probe family) is "unresolved" and compared no further.

Known disagreements are listed in KNOWN_DISAGREEMENTS with the reason; the
test also fails when one of them stops disagreeing, so the list stays true.

Regenerate the cache (needs stap): ``python tests/lang/test_privilege_vs_stap.py --update``;
re-check every cached answer: ``PYSTAP_STAP_FULL=1 pytest tests/lang/test_privilege_vs_stap.py``.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pystap.cli.stap import main as pystap_main

CASES_FILE = Path(__file__).resolve().parents[1] / "data" / "privilege" / "vs_stap.json"

# Messages that mean "refused for a privilege reason", in either translator.
PRIVILEGE_MARKERS = (
    "is not allowed for --privilege=",
    "may not be used when --privilege=",
    "may not be used unless -g is specified",
    "need stap -g",
    "requires guru mode",
    "You can't specify",
    "Privilege level may be set only once.",
    "for --privilege.",
)

KNOWN_DISAGREEMENTS: dict[str, str] = {
    "define-stapusr": "pystap refuses -D below stapdev also for local translation (overload limits are a "
                      "safety control; SystemTap refuses -D only for compile-server clients)",
}


def load_cases() -> list[dict]:
    return json.loads(CASES_FILE.read_text(encoding="utf-8"))["cases"]


def classify(rc: int, stderr: str) -> str:
    if rc == 0:
        return "accept"
    if any(m in stderr for m in PRIVILEGE_MARKERS):
        return "refuse"
    return "unresolved"


# -- stap's side ----------------------------------------------------------------------------------


def make_fake_kernel_tree(root: Path) -> Path:
    """The minimal stand-in for a kernel build tree that stap needs for passes 1-2."""
    root.mkdir(parents=True, exist_ok=True)
    config = b""
    try:
        with open("/proc/config.gz", "rb") as f:
            config = gzip.decompress(f.read())
    except OSError:
        pass
    (root / ".config").write_bytes(config)
    release = os.uname().release
    (root / "Makefile").write_text(f"KERNELRELEASE={release}\n")
    (root / "include" / "config").mkdir(parents=True, exist_ok=True)
    (root / "include" / "config" / "kernel.release").write_text(release + "\n")
    (root / "Module.symvers").touch()
    return root


def run_stap(stap: str, tree: Path, case: dict) -> dict:
    argv = [stap, "-r", str(tree), "-p2", *case["args"], "-e", case["script"]]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=tree, check=False)
    verdict = classify(proc.returncode, proc.stderr)
    lines = proc.stderr.splitlines()
    first = next((ln for ln in lines if any(m in ln for m in PRIVILEGE_MARKERS)), "")
    first = first or next((ln for ln in lines if "error" in ln or "ERROR" in ln), "")
    return {"verdict": verdict, "message": first}


@pytest.fixture(scope="module")
def stap_tree(tmp_path_factory):
    return make_fake_kernel_tree(tmp_path_factory.mktemp("kbuild"))


STAP = shutil.which("stap")


@pytest.mark.skipif(STAP is None, reason="SystemTap's stap is not installed: the cached answers are used")
def test_cached_stap_answers_are_current(stap_tree):
    # stap takes a few tenths of a second per script on an idle machine; a fixed
    # sample keeps this test short on a busy one.  PYSTAP_STAP_FULL=1 (or
    # --update) re-checks every case.
    cases = load_cases()
    if os.environ.get("PYSTAP_STAP_FULL") != "1":
        cases = cases[::6]
    with ThreadPoolExecutor(max_workers=2) as pool:
        fresh = list(pool.map(lambda c: run_stap(STAP, stap_tree, c), cases))
    stale = [(c["name"], c.get("stap"), f["verdict"]) for c, f in zip(cases, fresh, strict=True)
             if c.get("stap") != f["verdict"]]
    assert stale == [], "stap's answers changed; run this file with --update and review"


def test_cache_is_complete_and_well_formed():
    cases = load_cases()
    names = [c["name"] for c in cases]
    assert len(names) == len(set(names))
    for c in cases:
        assert c.get("stap") in ("accept", "refuse", "unresolved"), c["name"]
        assert isinstance(c["args"], list) and isinstance(c["script"], str)
    resolved = [c for c in cases if c["stap"] != "unresolved"]
    assert len(resolved) >= 40
    assert {"accept", "refuse"} <= {c["stap"] for c in resolved}
    assert set(KNOWN_DISAGREEMENTS) <= set(names)


# -- pystap's side -----------------------------------------------------------------------------------

_LOCATION = re.compile(r": (?:identifier|keyword|operator|string|number|embedded-code) '.*$|: keyword at .*$")


def core_message(line: str) -> str:
    """``semantic error: MSG: identifier 'x' at f:1:2`` -> ``MSG`` (option errors stay whole)."""
    for prefix in ("semantic error: ", "parse error: "):
        if line.startswith(prefix):
            return _LOCATION.sub("", line[len(prefix):])
    return line


def run_pystap(case: dict) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        rc = pystap_main(["-p2", *case["args"], "-e", case["script"]], stdin=io.StringIO(""), stdout=out,
                         stderr=err)
    except SystemExit as exc:  # a usage error path that exits
        rc = exc.code if isinstance(exc.code, int) else 1
    return classify(rc, err.getvalue()), err.getvalue()


@pytest.fixture(scope="module")
def private_cache(tmp_path_factory):
    # the translator keeps a tapset index in the user's cache: keep it in a tmp dir
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def ours(private_cache):
    return {c["name"]: run_pystap(c) for c in load_cases()}


@pytest.mark.parametrize("case", load_cases(), ids=lambda c: c["name"])
def test_pystap_agrees_with_stap(case, ours):
    verdict, stderr = ours[case["name"]]
    theirs = case["stap"]
    if "unresolved" in (verdict, theirs):
        return  # one of the two cannot translate it at all: nothing to compare
    if case["name"] in KNOWN_DISAGREEMENTS:
        assert verdict != theirs, f"{case['name']} agrees now: remove it from KNOWN_DISAGREEMENTS"
        return
    assert verdict == theirs, stderr
    if theirs == "refuse":
        # the same reason, in SystemTap's words
        assert core_message(case["stap_message"]) in stderr, (case["stap_message"], stderr)


def test_enough_cases_are_compared(ours):
    compared = [c for c in load_cases() if "unresolved" not in (c["stap"], ours[c["name"]][0])]
    assert len(compared) >= 60
    assert sum(1 for c in compared if c["stap"] == "refuse") >= 30


def update() -> None:
    if STAP is None:
        raise SystemExit("stap is not installed")
    data = json.loads(CASES_FILE.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        tree = make_fake_kernel_tree(Path(tmp) / "kbuild")
        with ThreadPoolExecutor(max_workers=2) as pool:
            answers = list(pool.map(lambda c: run_stap(STAP, tree, c), data["cases"]))
    for case, answer in zip(data["cases"], answers, strict=True):
        case["stap"] = answer["verdict"]
        case["stap_message"] = answer["message"].replace(tmp, "<kbuild>")
    CASES_FILE.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] == ["--update"]:
        update()
    else:
        raise SystemExit(__doc__)
