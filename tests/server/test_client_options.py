"""The translator's ``--client-options`` (what the server's child runs) and the client's option table."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from pystap import modfile
from pystap.cli import stap
from pystap.server import remote

HELLO = 'probe begin { println("hi"); exit() }'


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = stap.main(list(argv), io.StringIO(""), out, err)
    return rc, out.getvalue(), err.getvalue()


def test_options_after_client_options_meet_the_client_table() -> None:
    assert run("--client-options", "-k", "-p2", "-e", HELLO) == (
        1, "", "ERROR: -k invalid with --client-options\n")
    assert run("--client-options", "--use-server=h:1", "-p2", "-e", HELLO) == (
        1, "", "ERROR: --use-server is invalid with --client-options\n")
    assert run("--client-options", "--privilege=stapusr", "-I", "/tmp", "-D", "A=1", "-p2", "-e", HELLO) == (
        1, "", "You can't specify -I, -D when --privilege=stapusr is specified.\n")


def test_options_before_client_options_are_the_servers(tmp_path: Path) -> None:
    rc, out, err = run("-I", str(tmp_path), "-D", "MAXACTION=100", "--client-options", "--privilege=stapusr",
                       "-p2", "-e", HELLO)
    assert (rc, err) == (0, ""), err
    assert "begin" in out


def test_client_options_never_reach_pass_5(tmp_path: Path) -> None:
    rc, out, err = run("--disable-cache", "--no-sign", "--client-options", "-p5", "-m", "m", "-e", HELLO)
    assert (rc, err) == (0, "")
    assert out == f"{tmp_path / 'm.stapmod'}\n"
    assert not (tmp_path / "m.stapmod.sgn").exists()


def test_target_options_are_recorded(tmp_path: Path) -> None:
    rc, out, err = run("--no-sign", "-p4", "-m", "t", "-r", "6.0.0-other", "-a", "aarch64", "-e", HELLO)
    assert rc == 0, err
    module = modfile.load((tmp_path / "t.stapmod").read_bytes())
    assert (module.release, module.arch) == ("6.0.0-other", "aarch64")
    rc, out, err = run("--no-sign", "-m", "u", "-r", "6.0.0-other", "-e", HELLO)
    assert rc == 0 and err == "WARNING: kernel release/architecture mismatch with host forces last-pass 4.\n"
    assert out == f"{tmp_path / 'u.stapmod'}\n"


def test_optional_values_are_found_where_getopt_finds_options() -> None:
    f = stap._optional_values
    assert f(["--use-server", "-p4", "x.stp"]) == ["--use-server=", "-p4", "x.stp"]
    assert f(["--use-server", "--trust-servers", "--list-s"]) == ["--use-server=", "--trust-servers=",
                                                                   "--list-servers="]
    assert f(["-e", "--use-server", "--use-server"]) == ["-e", "--use-server", "--use-server="]
    assert f(["-pe", "--use-server"]) == ["-pe", "--use-server="]  # -p takes "e": the next is an option again
    assert f(["-ve", "--use-server"]) == ["-ve", "--use-server"]  # -e's value
    assert f(["--sign-key", "--use-server"]) == ["--sign-key", "--use-server"]
    assert f(["x.stp", "--use-server"]) == ["x.stp", "--use-server"]
    assert f(["--", "--use-server"]) == ["--", "--use-server"]
    o = stap.parse_args(["--use-server", "--use-server=h:1", "x.stp", "arg"])
    assert (o.use_server, o.script_file, o.args) == (["", "h:1"], "x.stp", ["arg"])
    assert stap.parse_args(["--trust-servers=ssl"]).script_file is None


def test_every_translator_option_is_classified_for_use_server() -> None:
    classified = remote.FORWARDED | remote.PACKED | remote.TARGET | remote.LOCAL | remote.REFUSED
    short = {"-" + c for c in re.sub(":", "", stap._SHORT)} - {"-h", "-V"}
    long = {"--" + n.rstrip("=") for n in stap._LONG} - {"--help", "--version"}
    refused = set(stap.UNSUPPORTED) | {"--dyninst"}  # the CLI refuses them before any request is made
    assert sorted((short | long) - classified - refused) == []
    assert not (remote.FORWARDED & remote.LOCAL)
