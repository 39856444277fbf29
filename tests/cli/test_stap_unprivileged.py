"""``pystap`` run by users who are not root: their own signing key, automatic privilege, pystapd.

Real processes under other uids/gids via ``setpriv`` (no accounts: the
privilege groups are gids named in pystapd's configuration, which
``pystap`` reads too when the service is not running), each with a home
directory it owns under a temporary directory.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pystap import modfile
from pystap.loader import foreground
from pystap.signing import SignerStore, generate_signing_key, load_signing_key, trust_admin, verify

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="setpriv and pystapd need root")

UID = GID = 40100
GIDS = {"stapusr": 41001, "stapsys": 41002, "stapdev": 41003}
MEMBER_OF = {
    "stapusr": [GIDS["stapusr"]],
    "stapsys": [GIDS["stapsys"], GIDS["stapusr"]],
    "stapdev": [GIDS["stapdev"], GIDS["stapusr"]],
    "nogroup": [],
}
HELLO = 'probe begin { println("hi"); exit() }'
OTHER = 'probe begin { println("other"); exit() }'
AUTO_STAPUSR = ("--privilege=stapusr was automatically selected because you are a member of the group "
                "stapusr.  [man stap]\n")
AUTO_STAPSYS = ("--privilege=stapsys was automatically selected because you are a member of the groups "
                "stapusr and stapsys.  [man stap]\n")
NORMAL_USER = ("You are trying to run systemtap as a normal user.\n"
               'You should either be root, or be part of the group "stapusr" and possibly one of the groups '
               '"stapsys" or "stapdev".  [man stap]\n'
               "Try '--help' for more information.\n")


def must_be_signed(level: str) -> str:
    return (f"For users with the privilege level {level}, the module created by compiling your script must "
            "be signed by a signer the administrator trusts (pystap-authorize-cert --signer).\n")


@dataclass
class World:
    base: Path
    home: Path
    etc: Path
    signers: Path
    socket: Path

    @property
    def key_dir(self) -> Path:
        return self.home / ".config" / "pystap" / "signing"

    def env(self) -> dict[str, str]:
        return {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_CACHE_HOME": str(self.home / ".cache"),
            "PYSTAP_SOCKET": str(self.socket),
            "PYSTAP_SYSCONFDIR": str(self.etc),
            "LANG": "C.UTF-8",
        }

    def stap(self, who: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``pystap ARGS`` as uid 40100 in the groups of ``who`` (see MEMBER_OF)."""
        groups = MEMBER_OF[who]
        membership = ["--groups=" + ",".join(map(str, groups))] if groups else ["--clear-groups"]
        cmd = ["setpriv", f"--reuid={UID}", f"--regid={GID}", *membership, "--inh-caps=-all",
               sys.executable, "-m", "pystap.cli.stap", *args]
        return subprocess.run(cmd, env=self.env(), cwd=self.home, capture_output=True, text=True,
                              timeout=timeout, check=False)

    def modules(self) -> list[Path]:
        cache = self.home / ".cache" / "pystap" / "modules"
        return sorted(cache.glob("*.stapmod")) if cache.is_dir() else []


@pytest.fixture
def world() -> Iterator[World]:
    base = Path(tempfile.mkdtemp(prefix="pystap-cli-", dir="/tmp"))
    os.chmod(base, 0o755)
    home = base / "home"
    home.mkdir(mode=0o700)
    os.chown(home, UID, GID)
    etc = base / "etc"
    signers = etc / "staprun"
    signers.mkdir(parents=True, mode=0o755)
    (base / "blessed").mkdir(mode=0o755)
    (base / "run").mkdir(mode=0o755)
    w = World(base, home, etc, signers, base / "run" / "pystapd.sock")
    # pystapd's configuration: the privilege groups by gid (read by pystap when the service is down)
    foreground.write_config(etc / "pystapd.toml", socket=w.socket, blessed_dir=base / "blessed",
                            signer_store=signers, groups=GIDS)
    os.chmod(etc / "pystapd.toml", 0o644)
    try:
        yield w
    finally:
        shutil.rmtree(base, ignore_errors=True)


def verified(module: Path, key) -> dict:
    store = SignerStore.from_certificates([key.certificate])
    verdict = verify(module.read_bytes(), Path(f"{module}.sgn").read_bytes(), store, datetime.now(UTC))
    assert verdict.ok, verdict.message
    return verdict.statement


# -- the user's own key ------------------------------------------------------------------------------


def test_first_use_creates_the_users_key_with_a_note(world: World) -> None:
    r = world.stap("nogroup", "-p4", "-e", HELLO)  # compiling needs no group, as in SystemTap
    assert r.returncode == 0, r.stderr
    module = Path(r.stdout.strip())
    assert module.parent == world.home / ".cache" / "pystap" / "modules"
    key = load_signing_key(world.key_dir)
    lines = r.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"Created a module-signing key in {world.key_dir}; ")
    assert f"pystap-authorize-cert {world.key_dir}/signing-cert.pem --signer --expect-fingerprint " in lines[0]
    for path, mode in ((world.key_dir, 0o700), (world.key_dir / "signing-key.pem", 0o600)):
        st = os.lstat(path)
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (UID, mode)
    assert os.stat(module).st_uid == UID and os.stat(f"{module}.sgn").st_uid == UID
    assert verified(module, key)["keyid"] == key.keyid

    key_bytes = (world.key_dir / "signing-key.pem").read_bytes()
    r = world.stap("nogroup", "-p4", "-e", OTHER)
    assert r.returncode == 0 and r.stderr == ""
    other = Path(r.stdout.strip())
    assert other != module and verified(other, key)["keyid"] == key.keyid
    assert (world.key_dir / "signing-key.pem").read_bytes() == key_bytes


def test_sign_key_option_as_another_user(world: World) -> None:
    team = generate_signing_key(world.base / "team", key_type="ed25519")
    for path in (team.directory, team.directory / "signing-key.pem", team.directory / "signing-cert.pem"):
        os.chown(path, UID, GID)
    r = world.stap("nogroup", "-p4", f"--sign-key={team.directory}", "-e", HELLO)
    assert r.returncode == 0 and r.stderr == ""
    assert verified(Path(r.stdout.strip()), team)["keyid"] == team.keyid
    assert not world.key_dir.exists()


def test_a_key_directory_the_user_does_not_own_is_refused(world: World) -> None:
    planted = generate_signing_key(world.key_dir, key_type="ed25519")  # created by root
    os.chmod(world.key_dir, 0o755)
    for parent in (world.home / ".config", world.home / ".config" / "pystap"):
        os.chown(parent, UID, GID)
    before = sorted((p.name, p.read_bytes()) for p in world.key_dir.iterdir())
    r = world.stap("nogroup", "-p4", "-e", HELLO)
    assert r.returncode == 1
    assert (f"refusing to use the signing key: signing key directory {world.key_dir} must be owned by uid "
            f"{UID} (it is owned by uid 0)") in r.stderr
    assert r.stderr.endswith("Pass 4: compilation failed.  [man error::pass4]\n")
    assert sorted((p.name, p.read_bytes()) for p in world.key_dir.iterdir()) == before
    assert load_signing_key(world.key_dir).keyid == planted.keyid


def test_a_symlinked_key_file_is_refused(world: World) -> None:
    world.stap("nogroup", "-p4", "-e", HELLO)
    real = world.home / "real-key.pem"
    os.rename(world.key_dir / "signing-key.pem", real)
    (world.key_dir / "signing-key.pem").symlink_to(real)
    r = world.stap("nogroup", "-p4", "-e", OTHER)
    assert r.returncode == 1
    assert f"cannot read signing key {world.key_dir}/signing-key.pem: it is a symbolic link" in r.stderr
    assert (world.key_dir / "signing-key.pem").is_symlink() and real.exists()


# -- automatic privilege ------------------------------------------------------------------------------


def test_a_user_in_no_group_is_refused_before_any_pass(world: World) -> None:
    r = world.stap("nogroup", "-e", HELLO)
    assert (r.returncode, r.stdout, r.stderr) == (1, "", NORMAL_USER)
    assert not (world.home / ".cache").exists() and not world.key_dir.exists()


def test_stapusr_is_selected_and_explained_when_the_run_fails(world: World) -> None:
    r = world.stap("stapusr", "-e", 'probe kernel.function("vfs_read") { exit() }')
    assert r.returncode == 1
    assert "semantic error: probe point is not allowed for --privilege=stapusr" in r.stderr
    assert r.stderr.endswith("Pass 2: analysis failed.  [man error::pass2]\n" + AUTO_STAPUSR
                             + must_be_signed("stapusr"))


def test_stapsys_is_selected_and_explained_with_v(world: World) -> None:
    r = world.stap("stapsys", "-v", "-e", HELLO)  # no pystapd: pass 5 fails after the build
    assert r.returncode == 1
    assert r.stderr.startswith(AUTO_STAPSYS + must_be_signed("stapsys") + "Pass 1: parsed user script")
    assert r.stderr.count("automatically selected") == 1
    assert "Cannot reach pystapd" in r.stderr
    [module] = world.modules()
    assert modfile.load(module.read_bytes()).privilege == "stapsys"


def test_stapdev_keeps_the_default_level_and_explicit_levels_are_kept(world: World) -> None:
    r = world.stap("stapdev", "-e", HELLO)
    assert r.returncode == 1 and "automatically selected" not in r.stderr
    r = world.stap("stapusr", "--privilege=stapsys", "-e", OTHER)
    assert r.returncode == 1 and "automatically selected" not in r.stderr
    levels = sorted(modfile.load(m.read_bytes()).privilege for m in world.modules())
    assert levels == ["stapdev", "stapsys"]


def test_guru_mode_conflicts_with_the_selected_level(world: World) -> None:
    r = world.stap("stapusr", "-g", "-e", HELLO)
    assert r.returncode == 1
    assert "You can't specify -g and --privilege=stapusr together." in r.stderr


def test_passes_below_5_need_no_group_and_select_nothing(world: World) -> None:
    r = world.stap("stapusr", "-p4", "-e", HELLO)
    assert r.returncode == 0 and "automatically selected" not in r.stderr
    assert modfile.load(Path(r.stdout.strip()).read_bytes()).privilege == "stapdev"


# -- end to end through a real pystapd ---------------------------------------------------------------


def test_stapusr_runs_a_script_signed_with_a_trusted_key(world: World) -> None:
    with foreground.running(world.base, socket=world.socket, blessed_dir=world.base / "blessed",
                            signer_store=world.signers, groups=GIDS):
        r = world.stap("stapusr", "-e", HELLO)
        assert r.returncode == 1 and r.stdout == ""
        [module] = world.modules()
        key = load_signing_key(world.key_dir)
        assert r.stderr.startswith(f"Created a module-signing key in {world.key_dir}; ")
        assert (f"The module {module} is signed by key {key.keyid} ('O=pystap,CN=pystap module signer "
                in r.stderr)
        assert "which is not a trusted signer." in r.stderr
        assert f"Unable to verify the signature for the module {module}." in r.stderr
        assert r.stderr.endswith("Pass 5: run failed.  [man error::pass5]\n" + AUTO_STAPUSR
                                 + must_be_signed("stapusr"))
        assert verified(module, key)["privilege"] == "stapusr"

        trust_admin.add_certificate(world.signers, key.certificate, owner_uid=0, signer=True)
        r = world.stap("stapusr", "-e", HELLO)
        assert (r.returncode, r.stdout, r.stderr) == (0, "hi\n", "")

        r = world.stap("stapsys", "-e", OTHER)  # the same user's key signs a stapsys module
        assert (r.returncode, r.stdout, r.stderr) == (0, "other\n", "")

        r = world.stap("nogroup", "-e", HELLO)
        assert (r.returncode, r.stderr) == (1, NORMAL_USER)
