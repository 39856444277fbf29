"""Differential check against Debian's ``stap -p1`` (when installed): the same
scripts are accepted, and rejected with the same first message at the same place.

``parse_corpus.py`` records stap's answers, so ``test_parser.py`` checks them
everywhere; this test re-asks a live ``stap`` for a sample of the corpus, so
the recorded answers cannot silently drift from the real translator.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from parse_corpus import CASES, OK, STAP_CRASHES  # tests/lang is on sys.path (rootdir-less test dirs)
from tests.stap_peer import stand_in_kernel_tree

from pystap.lang.context import ParseContext
from pystap.lang.diagnostics import ParseErrors
from pystap.lang.parser import parse_file

STAP = shutil.which("stap")
# every 6th case (about 30 stap runs, a few seconds; the whole corpus takes a minute)
SAMPLE = [c for i, c in enumerate(CASES) if i % 6 == 0 and c[0] not in STAP_CRASHES]


def _tree(tmp: Path) -> Path:
    return stand_in_kernel_tree(tmp / "k")


def _stap_answer(tree: Path, src: str, args: list[str], guru: bool) -> object:
    assert STAP is not None
    cmd = [STAP, "-r", str(tree), "-p1", *(["-g"] if guru else []), "-e", src, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode == 0:
        return OK
    lines = [x for x in proc.stderr.splitlines() if not x.startswith("WARNING")]
    for i, x in enumerate(lines):
        if x.startswith("Input file"):
            return (x, 0, 0)
        if x.startswith("parse error: "):
            msg = [x[len("parse error: ") :]]
            j = i + 1
            while j < len(lines) and not re.match(r"^ +(saw|at): ", lines[j]):
                msg.append(lines[j])
                j += 1
            m = re.search(r":(\d+):(\d+)$", lines[j]) if j < len(lines) else None
            return ("\n".join(msg), int(m.group(1)), int(m.group(2))) if m else ("\n".join(msg), 0, 0)
    return ("unrecognised stap output", proc.stderr)


def _our_answer(src: str, args: list[str], guru: bool) -> object:
    try:
        parse_file(src, "<input>", ParseContext(kernel_config={}, args=args), privileged=guru)
    except ParseErrors as e:
        err = e.errors[0]
        if err.kind == "input" or err.tok is None:
            return (err.message, 0, 0)
        return (err.message, err.tok.loc.line, err.tok.loc.col)
    return OK


@pytest.mark.skipif(STAP is None, reason="Debian's systemtap is not installed")
def test_sample_agrees_with_stap(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    with ThreadPoolExecutor(2) as pool:
        theirs = list(pool.map(lambda c: _stap_answer(tree, c[1], c[2], c[3]), SAMPLE))
    mismatches = []
    for case, stap_says in zip(SAMPLE, theirs, strict=True):
        name, src, args, guru, recorded = case
        ours = _our_answer(src, args, guru)
        if not (ours == stap_says == recorded):
            mismatches.append((name, stap_says, ours, recorded))
    assert not mismatches
