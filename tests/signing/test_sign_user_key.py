"""The user's own key as pass 4 uses it: created once (and said so), never replaced, owner-checked.

Also the lazy package namespace (the stdlib-only parts load without
``cryptography``) and the strict statement time format.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from pystap.signing import SigningError, generate_signing_key, load_signing_key, statement, user_signing_key
from pystap.signing.keys import CERT_FILE, KEY_FILE


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("PYSTAP_SIGN_KEY_TYPE", "ed25519")
    return tmp_path / "cfg" / "pystap" / "signing"


def test_on_create_is_called_once_for_a_new_key(config):
    created = []
    key = user_signing_key(on_create=created.append)
    assert created == [key] and key.directory == config
    again = user_signing_key(on_create=created.append)
    assert created == [key] and again.keyid == key.keyid


def test_an_empty_directory_of_the_user_receives_the_key(config):
    config.mkdir(parents=True, mode=0o700)
    created = []
    user_signing_key(on_create=created.append)
    assert len(created) == 1 and (config / KEY_FILE).exists()


def _listing(directory):
    return sorted((p.name, p.is_symlink(), p.read_bytes() if p.is_file() and not p.is_symlink() else b"")
                  for p in directory.iterdir())


def test_a_certificate_without_its_key_is_not_replaced(config):
    user_signing_key()
    (config / KEY_FILE).unlink()
    before = _listing(config)
    with pytest.raises(SigningError, match="no signing key at"):
        user_signing_key()
    assert _listing(config) == before


def test_a_dangling_link_is_not_replaced(config, tmp_path):
    config.mkdir(parents=True, mode=0o700)
    (config / KEY_FILE).symlink_to(tmp_path / "absent")
    with pytest.raises(SigningError, match="symbolic link"):
        user_signing_key()
    assert (config / KEY_FILE).is_symlink() and not (tmp_path / "absent").exists()
    assert not (config / CERT_FILE).exists()


def test_the_directory_must_belong_to_the_user(config):
    generate_signing_key(config, key_type="ed25519")
    os.chown(config, 40123, 40123)
    with pytest.raises(SigningError, match=r"must be owned by uid 0 \(it is owned by uid 40123\)"):
        user_signing_key()


def test_a_linked_directory_is_refused(config, tmp_path):
    generate_signing_key(tmp_path / "elsewhere", key_type="ed25519")
    config.parent.mkdir(parents=True)
    config.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(SigningError, match="symbolic link or not a directory"):
        user_signing_key()


def test_load_with_owner(tmp_path):
    key = generate_signing_key(tmp_path / "k", key_type="ed25519")
    assert load_signing_key(tmp_path / "k", owner_uid=os.geteuid()).keyid == key.keyid
    os.chown(tmp_path / "k" / KEY_FILE, 40123, 40123)
    with pytest.raises(SigningError, match="refusing to use signing key .* must be owned by uid"):
        load_signing_key(tmp_path / "k", owner_uid=os.geteuid())
    assert load_signing_key(tmp_path / "k").keyid == key.keyid  # no owner asked: mode checks only


def test_stdlib_parts_load_without_cryptography():
    code = ("import sys, json\n"
            "import pystap.signing\n"
            "from pystap.signing import envelope, safe_files, statement\n"
            "before = 'cryptography' in sys.modules\n"
            "from pystap.signing import verify, SignerStore\n"
            "print(json.dumps([before, 'cryptography' in sys.modules, callable(verify)]))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == [False, True, True]
    import pystap.signing as package

    assert set(package.__all__) <= set(dir(package))
    with pytest.raises(AttributeError):
        package.no_such_name  # noqa: B018


@pytest.mark.parametrize("text", ["2026-1-31T12:00:00Z", "2026-01-31T12:00:00", "2026-01-31 12:00:00Z",
                                  "2026-02-30T12:00:00Z", "\uff12\uff10\uff12\uff16-01-31T12:00:00Z", "2026-01-31T12:00:00Z\n"])
def test_statement_times_are_strict(text):
    with pytest.raises(ValueError):
        statement.parse_time(text)


def test_statement_time_round_trip():
    when = datetime(2026, 1, 31, 12, 0, 5, tzinfo=UTC)
    assert statement.parse_time(statement.format_time(when)) == when
