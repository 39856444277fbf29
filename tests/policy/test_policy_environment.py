"""Environment variables that are translator input, and what crosses to a compile server."""

import os

import pytest

from pystap.policy import environment as E
from pystap.privilege import Level

USR, SYS, DEV = Level.STAPUSR, Level.STAPSYS, Level.STAPDEV


@pytest.mark.parametrize("var", ["PYSTAP_TAPSET", "PYSTAP_RUNTIME", "PYSTAP_DEBUGINFO_PATH"])
@pytest.mark.parametrize("level", [USR, SYS], ids=lambda lv: lv.label)
def test_input_variables_are_refused_below_stapdev(var, level):
    errors = E.check_environment({var: "/home/u/x"}, level)
    assert len(errors) == 1
    assert errors[0].startswith(f"ERROR: environment variable {var} may not be set when --privilege={level.label}")
    assert "use --privilege=stapdev" in errors[0]


@pytest.mark.parametrize("var", ["PYSTAP_TAPSET", "PYSTAP_RUNTIME", "PYSTAP_DEBUGINFO_PATH"])
def test_input_variables_are_fine_for_stapdev(var):
    assert E.check_environment({var: "/x"}, DEV) == []


def test_empty_input_variables_do_not_count():
    assert E.check_environment({"PYSTAP_TAPSET": ""}, USR) == []


def test_all_input_variables_are_reported_together():
    env = {"PYSTAP_TAPSET": "a", "PYSTAP_RUNTIME": "b", "PYSTAP_DEBUGINFO_PATH": "c"}
    assert len(E.check_environment(env, USR)) == 3


def test_xdg_data_dirs_only_matters_when_it_adds_a_tapset_dir(tmp_path):
    plain = tmp_path / "share"
    plain.mkdir()
    with_tapset = tmp_path / "other"
    (with_tapset / "pystap" / "tapset").mkdir(parents=True)
    env = {"XDG_DATA_DIRS": f"{plain}:relative/dir:"}
    assert E.check_environment(env, USR) == []
    env = {"XDG_DATA_DIRS": f"{plain}:{with_tapset}"}
    errors = E.check_environment(env, USR)
    assert len(errors) == 1 and str(with_tapset / "pystap" / "tapset") in errors[0]
    assert E.check_environment(env, DEV) == []
    assert E.tapset_dirs(env, DEV) == [with_tapset / "pystap" / "tapset"]


def test_xdg_tapset_symlink_to_nowhere_is_not_a_dir(tmp_path):
    (tmp_path / "pystap").mkdir()
    os.symlink(tmp_path / "missing", tmp_path / "pystap" / "tapset")
    assert E.xdg_tapset_dirs({"XDG_DATA_DIRS": str(tmp_path)}) == []


def test_trusted_tapset_dirs_are_empty_below_stapdev(tmp_path):
    env = {"PYSTAP_TAPSET": str(tmp_path)}
    assert E.tapset_dirs(env, USR) == [] and E.tapset_dirs(env, SYS) == []
    assert E.tapset_dirs(env, DEV) == [tmp_path]


@pytest.mark.parametrize(("value", "ok"), [("/tmp", True), ("/var/tmp/a-b_c.d", True), ("/tmp/a b", False),
                                             ("/tmp/$(x)", False), ("/tmp/\u00e9", False)])
@pytest.mark.parametrize("level", [USR, DEV], ids=lambda lv: lv.label)
def test_tmpdir_pattern_at_every_level(value, ok, level):
    errors = E.check_environment({"TMPDIR": value}, level)
    if ok:
        assert errors == []
    else:
        assert errors == [f"ERROR: Safety pattern mismatch for TMPDIR ('{value}' vs. '^[-/._0-9a-z]+$') rc=1"]


def test_client_sends_only_allowlisted_locale():
    env = {"LANG": "de_DE.UTF-8", "LC_ALL": "C", "LC_TIME": "bad value;", "PATH": "/bin",
           "PYSTAP_TAPSET": "/x", "LD_PRELOAD": "/evil.so", "LC_PAPER": "C"}
    assert E.client_locale(env) == {"LANG": "de_DE.UTF-8", "LC_ALL": "C"}


def test_server_parses_locale_with_systemtaps_messages():
    text = "LANG=en_US.UTF-8\nnoequals\nPATH=/bin\nLC_ALL=a b\n=x\n\nLC_CTYPE=C@euro\n"
    accepted, errors = E.server_locale(text)
    assert accepted == {"LANG": "en_US.UTF-8", "LC_CTYPE": "C@euro"}
    assert errors == [
        "Localization key=value line 'noequals' cannot be parsed",
        "Localization key 'PATH' not found in global list",
        "Localization value 'a b' contains illegal characters",
        "Localization key=value line '=x' cannot be parsed",
    ]


def test_server_locale_huge_input_is_handled():
    accepted, errors = E.server_locale("LANG=" + "a" * 100_000 + "\n" + "x\n" * 1000)
    assert accepted["LANG"] == "a" * 100_000 and len(errors) == 1000
