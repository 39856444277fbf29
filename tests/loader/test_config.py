"""pystapd's configuration: every key known and typed, defaults when absent."""

from pathlib import Path

import pytest

from pystap import paths
from pystap.loader import config


def test_defaults_when_the_file_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("PYSTAP_SYSCONFDIR", str(tmp_path))
    monkeypatch.delenv("PYSTAP_SOCKET", raising=False)
    cfg = config.load()
    assert cfg.socket == Path("/run/pystap/pystapd.sock")
    assert cfg.signer_store == tmp_path / "staprun"
    assert cfg.blessed_dir == paths.blessed_dir()
    assert cfg.groups == {"stapusr": "stapusr", "stapsys": "stapsys", "stapdev": "stapdev"}
    with pytest.raises(config.ConfigError, match="no such file"):
        config.load(tmp_path / "absent.toml", required=True)


def test_full_file():
    cfg = config.parse(
        'socket = "/s"\nblessed_dir = "/b"\nsigner_store = "/k"\nlog_file = "/l"\n'
        '[groups]\nstapusr = 41001\nstapsys = "wheel"\n'
        "[limits]\nmax_sessions = 3\nrequest_timeout = 2\n",
        Path("t.toml"),
    )
    assert (cfg.socket, cfg.blessed_dir, cfg.signer_store, cfg.log_file) == tuple(
        map(Path, ("/s", "/b", "/k", "/l")))
    assert cfg.groups == {"stapusr": 41001, "stapsys": "wheel", "stapdev": "stapdev"}
    assert cfg.limits.max_sessions == 3 and cfg.limits.request_timeout == 2.0
    assert cfg.group_gids()["stapusr"] == 41001


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sockett = '/s'", "unknown key 'sockett'"),
        ("socket = 'relative'", "'socket' must be an absolute path"),
        ("socket = 5", "'socket' must be an absolute path"),
        ("[groups]\nstaproot = 1", "unknown group 'staproot'"),
        ("[groups]\nstapusr = true", "must be a group name or a gid"),
        ("[groups]\nstapusr = -4", "not a valid gid"),
        ("groups = 3", "[groups] must be a table"),
        ("[limits]\nmax_sessions = 0", "must be positive"),
        ("[limits]\nmax_sessions = 1.5", "must be a number"),
        ("[limits]\nspeed = 1", "unknown key 'speed' in [limits]"),
        ("[limits]\nmax_module_bytes = 99999999999", "may not exceed"),
        ("socket = ", "t.toml: "),
    ],
)
def test_errors_name_the_key(text, message):
    with pytest.raises(config.ConfigError) as info:
        config.parse(text, Path("t.toml"))
    assert message in str(info.value)
