"""docs/unprivileged.md is generated from the tables and must not drift from them."""

from pathlib import Path

from pystap.policy import docgen, options, probes
from pystap.policy.functions import FunctionPrivilege

REPO = Path(__file__).resolve().parents[2]


def test_committed_page_is_the_generated_one():
    committed = (REPO / docgen.DOC_PATH).read_text(encoding="utf-8")
    assert committed == docgen.render(docgen.builtin_functions(), docgen.tapset_script_functions()), (
        "run: python -m pystap.policy.docgen (from the repository root)"
    )


def test_page_covers_every_row():
    page = docgen.render([("pid", FunctionPrivilege.UNPRIVILEGED), ("printk", FunctionPrivilege.GURU)])
    for row in probes.FAMILIES:
        assert f"| {row.family} |" in page
    for row in options.OPTIONS:
        assert f"`{row.name}`" in page
    assert "**guru** (need `-g`): `printk`" in page
    assert "**privileged** (stapsys and stapdev): (none)" in page


def test_check_mode_detects_drift(tmp_path, capsys):
    out = tmp_path / "page.md"
    assert docgen.main(["--output", str(out)]) == 0
    assert docgen.main(["--check", "--output", str(out)]) == 0
    out.write_text(out.read_text() + "edited by hand\n")
    assert docgen.main(["--check", "--output", str(out)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert docgen.main(["--check", "--output", str(tmp_path / "missing.md")]) == 1


def test_queue_stats_script_functions_are_listed_as_unprivileged():
    derived = dict(docgen.tapset_script_functions())
    for name in ("qs_wait", "qs_run", "qs_done", "qs_time", "qsq_start", "qsq_print", "qsq_utilization",
                 "qsq_blocked", "qsq_wait_queue_length", "qsq_service_time", "qsq_wait_time", "qsq_throughput"):
        assert derived[name] is FunctionPrivilege.UNPRIVILEGED
    assert "_qs_update" not in derived  # private to queue_stats.stp
