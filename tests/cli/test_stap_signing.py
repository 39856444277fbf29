"""Pass 4 signs every module: the user's key (created on first use) or --sign-key, in the cache too.

In-process runs as the invoking user; the same behaviour for other users
(and the unprivileged run through pystapd) is in test_stap_unprivileged.py.
"""

from __future__ import annotations

import io
import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pystap import modfile
from pystap.cli.stap import main
from pystap.signing import SignerStore, envelope, generate_signing_key, load_signing_key, verify

SCRIPT = 'probe begin { println("hi"); exit() }'
OTHER = 'probe begin { println("other"); exit() }'


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main(list(argv), stdin=io.StringIO(""), stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(autouse=True)
def _dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("PYSTAP_SIGN_KEY_TYPE", raising=False)
    monkeypatch.chdir(tmp_path)


def key_dir(tmp_path: Path) -> Path:
    return tmp_path / "config" / "pystap" / "signing"


def statement_of(sgn: Path) -> dict:
    return json.loads(envelope.decode(sgn.read_bytes()).payload)


def verified(module: Path, *keys) -> dict:
    """The verified statement of ``module``'s .sgn under a store trusting ``keys``."""
    store = SignerStore.from_certificates([k.certificate for k in keys])
    verdict = verify(module.read_bytes(), Path(f"{module}.sgn").read_bytes(), store, datetime.now(UTC))
    assert verdict.ok, verdict.message
    return verdict.statement


def build(*args: str, script: str = SCRIPT) -> tuple[Path, str]:
    rc, out, err = run("-p4", *args, "-e", script)
    assert rc == 0, err
    return Path(out.strip()), err


def test_first_build_creates_the_key_with_a_note_and_signs(tmp_path: Path) -> None:
    module, err = build()
    directory = key_dir(tmp_path)
    key = load_signing_key(directory)
    fingerprint = ":".join(key.fingerprint[i:i + 2] for i in range(0, 64, 2))
    assert err == (f"Created a module-signing key in {directory}; to trust the modules it signs, an "
                   f"administrator runs: pystap-authorize-cert {directory}/signing-cert.pem --signer "
                   f"--expect-fingerprint {fingerprint} --max-privilege stapusr --only-uid {os.getuid()}\n")
    assert stat.S_IMODE(os.stat(directory / "signing-key.pem").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert key.key_type == "ml-dsa-65"
    claims = verified(module, key)
    parsed = modfile.load(module.read_bytes())
    assert claims["privilege"] == parsed.privilege == "stapdev"
    assert claims["name"] == parsed.name and module.name == parsed.name + ".stapmod"
    assert claims["keyid"] == key.keyid
    # the second build (another script) uses the same key and says nothing
    other, err2 = build(script=OTHER)
    assert err2 == "" and other != module
    assert verified(other, key)["keyid"] == key.keyid


def test_privilege_level_is_bound_in_the_signature() -> None:
    module, _ = build("--privilege=stapusr")
    claims = statement_of(Path(f"{module}.sgn"))
    assert claims["privilege"] == "stapusr" == modfile.load(module.read_bytes()).privilege


def test_module_stays_deterministic_signature_is_separate(tmp_path: Path) -> None:
    first, _ = build("--disable-cache")
    data, sgn = first.read_bytes(), Path(f"{first}.sgn").read_bytes()
    first.unlink()
    Path(f"{first}.sgn").unlink()
    second, _ = build("--disable-cache")
    assert second == first and second.read_bytes() == data
    assert Path(f"{second}.sgn").exists() and Path(f"{second}.sgn").read_bytes() != b""
    assert statement_of(Path(f"{second}.sgn"))["module_sha256"] == json.loads(
        envelope.decode(sgn).payload)["module_sha256"]


def test_cached_module_keeps_a_good_signature_and_replaces_a_bad_one(tmp_path: Path) -> None:
    module, _ = build()
    sgn = Path(f"{module}.sgn")
    before = sgn.read_bytes()
    again, _ = build()
    assert again == module and sgn.read_bytes() == before  # still good: not signed again
    key = load_signing_key(key_dir(tmp_path))

    sgn.unlink()  # missing
    rc, _, err = run("-p4", "-v", "-e", SCRIPT)
    assert rc == 0 and "Pass 4: using cached" in err
    verified(module, key)

    sgn.write_bytes(b"garbage")  # unreadable
    build()
    verified(module, key)

    other_module, _ = build(script=OTHER)  # a valid signature, but of another module
    sgn.write_bytes(Path(f"{other_module}.sgn").read_bytes())
    build()
    verified(module, key)


def test_cached_module_is_signed_again_when_the_key_changes(tmp_path: Path) -> None:
    module, _ = build()
    old = load_signing_key(key_dir(tmp_path))
    new = generate_signing_key(key_dir(tmp_path), key_type="ed25519", replace=True)
    assert new.keyid != old.keyid
    again, err = build()
    assert again == module and err == ""
    assert verified(module, new)["keyid"] == new.keyid


def test_sign_key_option_directory_and_key_file(tmp_path: Path) -> None:
    team = generate_signing_key(tmp_path / "team", key_type="ecdsa-p256")
    module, err = build("--sign-key", str(tmp_path / "team"))
    assert err == ""
    assert verified(module, team)["keyid"] == team.keyid
    assert not key_dir(tmp_path).exists(), "the user's own key is not created when --sign-key is given"
    other = generate_signing_key(tmp_path / "other", key_type="ed25519")
    again, _ = build(f"--sign-key={tmp_path / 'other' / 'signing-key.pem'}")  # cache hit, other key
    assert again == module
    assert verified(module, other)["keyid"] == other.keyid


def test_sign_key_errors_are_clear(tmp_path: Path) -> None:
    rc, _, err = run("-p4", "--sign-key", str(tmp_path / "absent"), "-e", SCRIPT)
    assert rc == 1
    assert f"no signing key at {tmp_path / 'absent'}" in err
    assert err.endswith("Pass 4: compilation failed.  [man error::pass4]\n")
    rc, _, err = run("-p4", "--sign-key", "k", "--no-sign", "-e", SCRIPT)
    assert rc == 1 and "You can't specify --sign-key and --no-sign together." in err


def test_sign_module_signs_an_existing_module(tmp_path: Path) -> None:
    rc, out, err = run("-p4", "--no-sign", "-m", "mymod", "-e", SCRIPT)
    assert rc == 0, err
    module = tmp_path / "mymod.stapmod"
    assert out == f"{module}\n" and not Path(f"{module}.sgn").exists()
    rc, out, err = run("--sign-module", str(module))
    assert rc == 0, err
    assert out == f"{module}.sgn\n"
    verified(module, load_signing_key(key_dir(tmp_path)))
    (tmp_path / "junk.stapmod").write_bytes(b"not a module")
    rc, _, err = run("--sign-module=junk.stapmod")
    assert rc == 1 and "cannot sign: not a valid pystap module" in err
    rc, _, err = run("--sign-module=x.stapmod", "-e", SCRIPT)
    assert rc == 1 and "no script may be given" in err


def test_no_sign_removes_a_stale_signature(tmp_path: Path) -> None:
    build("-m", "mymod")
    sgn = tmp_path / "mymod.stapmod.sgn"
    assert sgn.exists()
    build("-m", "mymod", "--no-sign", script=OTHER)  # new bytes: the old .sgn would read as "altered"
    assert not sgn.exists()
    build("-m", "mymod", script=OTHER)
    build("-m", "mymod", "--no-sign", script=OTHER)  # same bytes: the matching .sgn may stay
    assert sgn.exists()


def test_module_name_copy_from_cache_is_signed(tmp_path: Path) -> None:
    cached, _ = build()
    rc, out, err = run("-p4", "-m", "named", "-e", SCRIPT)
    assert rc == 0, err
    named = tmp_path / "named.stapmod"
    assert Path(out.strip()) == named
    verified(named, load_signing_key(key_dir(tmp_path)))
    verified(cached, load_signing_key(key_dir(tmp_path)))


# -- a key that cannot be used: clear error, and nothing is replaced or lost ---------------------------


def _snapshot(directory: Path) -> dict[str, tuple[bool, bytes | str]]:
    result: dict[str, tuple[bool, bytes | str]] = {}
    for entry in sorted(directory.iterdir()):
        result[entry.name] = (True, os.readlink(entry)) if entry.is_symlink() else (False, entry.read_bytes())
    return result


def _refused(tmp_path: Path, *expected: str, script: str = OTHER) -> None:
    """A build that must sign fails with ``expected`` in the message and leaves the key directory alone."""
    directory = key_dir(tmp_path)
    before = _snapshot(directory)
    rc, out, err = run("-p4", "-e", script)
    assert rc == 1 and out == ""
    for text in expected:
        assert text in err
    assert "--sign-key=PATH" in err and "--no-sign" in err
    assert err.endswith("Pass 4: compilation failed.  [man error::pass4]\n")
    assert _snapshot(directory) == before, "the key directory must be left exactly as it was"
    assert "Created a module-signing key" not in err


def test_corrupt_key_file(tmp_path: Path) -> None:
    build()
    (key_dir(tmp_path) / "signing-key.pem").write_bytes(b"-----BEGIN PRIVATE KEY-----\nbroken\n")
    _refused(tmp_path, f"cannot load signing key {key_dir(tmp_path) / 'signing-key.pem'}")


@pytest.mark.parametrize("script", [OTHER, SCRIPT], ids=["new-module", "cached-module"])
def test_key_file_of_another_owner(tmp_path: Path, script: str) -> None:
    build()
    os.chown(key_dir(tmp_path) / "signing-key.pem", 40123, 40123)
    _refused(tmp_path, "must be owned by uid", "(it is owned by uid 40123)", script=script)


@pytest.mark.parametrize("script", [OTHER, SCRIPT], ids=["new-module", "cached-module"])
def test_key_file_readable_by_others(tmp_path: Path, script: str) -> None:
    build()
    os.chmod(key_dir(tmp_path) / "signing-key.pem", 0o644)
    _refused(tmp_path, "is accessible by the group or others (mode 0644)", script=script)


def test_symlinked_key_file(tmp_path: Path) -> None:
    elsewhere = generate_signing_key(tmp_path / "elsewhere", key_type="ed25519")
    directory = key_dir(tmp_path)
    directory.mkdir(parents=True, mode=0o700)
    (directory / "signing-key.pem").symlink_to(elsewhere.directory / "signing-key.pem")
    (directory / "signing-cert.pem").write_bytes((elsewhere.directory / "signing-cert.pem").read_bytes())
    _refused(tmp_path, "it is a symbolic link")
    assert (elsewhere.directory / "signing-key.pem").exists()


def test_dangling_symlinked_key_file_is_not_replaced(tmp_path: Path) -> None:
    directory = key_dir(tmp_path)
    directory.mkdir(parents=True, mode=0o700)
    (directory / "signing-key.pem").symlink_to(tmp_path / "nowhere.pem")
    _refused(tmp_path, "signing-key.pem")
    assert not (tmp_path / "nowhere.pem").exists()


def test_symlinked_key_directory(tmp_path: Path) -> None:
    elsewhere = generate_signing_key(tmp_path / "elsewhere", key_type="ed25519")
    (tmp_path / "config" / "pystap").mkdir(parents=True)
    key_dir(tmp_path).symlink_to(elsewhere.directory)
    rc, _, err = run("-p4", "-e", SCRIPT)
    assert rc == 1 and "is a symbolic link or not a directory" in err
    assert key_dir(tmp_path).is_symlink()


@pytest.mark.parametrize("script", [OTHER, SCRIPT], ids=["new-module", "cached-module"])
def test_group_writable_key_directory(tmp_path: Path, script: str) -> None:
    build()
    os.chmod(key_dir(tmp_path), 0o770)
    _refused(tmp_path, "must not be writable by the group or others (mode 0770)", script=script)


def test_certificate_without_key_is_not_overwritten(tmp_path: Path) -> None:
    build()
    (key_dir(tmp_path) / "signing-key.pem").unlink()
    _refused(tmp_path, "no signing key at")


def test_a_signature_of_another_owner_is_replaced(tmp_path: Path) -> None:
    module, _ = build("-m", "shared")
    sgn = Path(f"{module}.sgn")
    os.chown(sgn, 40123, 40123)  # e.g. planted in a shared directory: never trusted unchecked
    build("-m", "shared")
    assert os.stat(sgn).st_uid == os.geteuid()
    verified(module, load_signing_key(key_dir(tmp_path)))


def _pystap_on_a_terminal(argv: list[str], answers: list[str], cwd: Path) -> tuple[int, str]:
    """Run pystap with a pseudo-terminal as its controlling terminal; type ``answers`` at each
    passphrase prompt.  Returns (exit status, everything it wrote)."""
    import pty
    import select
    import sys

    pid, fd = pty.fork()
    if pid == 0:  # the child: its own session, the pty's slave as controlling terminal
        os.chdir(cwd)
        os.execv(sys.executable, [sys.executable, "-m", "pystap.cli.stap", *argv])
    text = b""
    pending = list(answers)
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], 30)
            if not ready:
                break
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            text += chunk
            if pending and text.endswith(b": ") and b"Passphrase" in text.splitlines()[-1]:
                os.write(fd, pending.pop(0).encode() + b"\n")
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), text.decode(errors="replace")


def test_encrypted_sign_key_asks_for_its_passphrase_on_the_terminal(tmp_path: Path) -> None:
    key = generate_signing_key(tmp_path / "enc", key_type="ed25519", passphrase="s3cret")
    rc, text = _pystap_on_a_terminal(["-p4", "--sign-key", str(tmp_path / "enc"), "-e", SCRIPT],
                                     ["wrong", "s3cret"], tmp_path)
    assert rc == 0, text
    assert text.count(f"Passphrase for signing key {tmp_path / 'enc'}: ") == 2
    module = Path(text.strip().splitlines()[-1].strip())  # -p4 prints the module's path
    assert verified(module, key)["privilege"] == "stapdev"


def test_encrypted_sign_key_without_a_terminal_is_a_clear_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    generate_signing_key(tmp_path / "enc", key_type="ed25519", passphrase="s3cret")
    r = subprocess.run([sys.executable, "-m", "pystap.cli.stap", "-p4", "--sign-key", str(tmp_path / "enc"),
                        "-e", SCRIPT], cwd=tmp_path, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                       start_new_session=True, timeout=60, check=False)
    assert r.returncode == 1
    assert "is encrypted and there is no terminal to ask for its passphrase" in r.stderr
    assert not list(tmp_path.glob("*.sgn"))
