"""The blessed-directory proof works on descriptors and refuses every way of cheating."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pystap.loader import blessed

UID = 40101

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="ownership checks need root to chown")


def _members(d: Path) -> str:
    return ('ERROR: Members of the "stapusr" and "stapsys" groups can only use unsigned modules within\n'
            f'  the "{d}" directory.\n')


@pytest.fixture
def tree(tmp_path):
    d = tmp_path / "blessed"
    d.mkdir(mode=0o755)
    module = d / "m.stapmod"
    module.write_bytes(b"{}")
    module.chmod(0o644)
    return d, module


def prove(d: Path, path: Path | str, fd_path: Path | None = None):
    fd = os.open(fd_path or path, os.O_RDONLY)
    try:
        return blessed.prove(d, str(path), fd)
    finally:
        os.close(fd)


@root_only
def test_root_owned_module_in_root_owned_directory_is_proven(tree):
    d, module = tree
    assert prove(d, module).ok


@root_only
def test_nested_directories_are_walked_without_symlinks(tree):
    d, _ = tree
    (d / "sub").mkdir(mode=0o755)
    inner = d / "sub" / "n.stapmod"
    inner.write_bytes(b"{}")
    assert prove(d, inner).ok
    os.chown(d / "sub", UID, -1)
    assert prove(d, inner).messages == (_members(d / "sub") + "  That directory should be owned by root.",)


@root_only
def test_a_different_inode_with_the_claimed_path_is_refused(tree, tmp_path):
    d, module = tree
    other = tmp_path / "other.stapmod"
    other.write_bytes(b"{}")
    proof = prove(d, module, fd_path=other)
    assert not proof.ok
    assert proof.messages == (_members(d) + f'  Module "{module}" does not exist within that directory.',)


@root_only
def test_symlink_inside_the_directory_is_not_followed(tree, tmp_path):
    d, _ = tree
    target = tmp_path / "target.stapmod"
    target.write_bytes(b"{}")
    link = d / "link.stapmod"
    link.symlink_to(target)
    # the client claims the link's path but passes the target's fd
    proof = prove(d, link, fd_path=target)
    assert proof.messages == (_members(d) + f'  Module "{link}" does not exist within that directory.',)


@root_only
def test_symlinked_intermediate_directory_is_not_followed(tree, tmp_path):
    d, _ = tree
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.stapmod").write_bytes(b"{}")
    (d / "sub").symlink_to(elsewhere)
    claimed = d / "sub" / "x.stapmod"
    assert not prove(d, claimed, fd_path=elsewhere / "x.stapmod").ok


@root_only
@pytest.mark.parametrize("claimed", ["{d}/../blessed/m.stapmod", "{d}/./m.stapmod", "{d}m.stapmod", "{d}//m.stapmod"])
def test_path_tricks_are_not_within(tree, claimed):
    d, module = tree
    path = claimed.format(d=d)
    assert not prove(d, path, fd_path=module).ok


@root_only
def test_module_ownership_and_mode(tree):
    d, module = tree
    os.chown(module, UID, -1)
    module.chmod(0o666)
    assert prove(d, module).messages == (
        f'ERROR: The module "{module}" must be owned by root.',
        f'ERROR: The module "{module}" must not be world writable.',
    )


@root_only
def test_directory_ownership_mode_and_existence(tree, tmp_path):
    d, module = tree
    d.chmod(0o777)
    assert prove(d, module).messages == (_members(d) + "  That directory should not be world writable.",)
    d.chmod(0o755)
    os.chown(d, UID, -1)
    assert prove(d, module).messages == (_members(d) + "  That directory should be owned by root.",)
    missing = tmp_path / "missing"
    assert prove(missing, module).messages == (
        _members(missing) + "  Unable to canonicalize that directory: No such file or directory",
    )
    assert prove(module, module).messages == (_members(module) + "  That path must refer to a directory.",)


def test_no_fd_means_no_proof(tree):
    d, module = tree
    proof = blessed.prove(d, str(module), None)
    assert not proof.ok


@root_only
def test_open_by_name(tree):
    d, module = tree
    fd, path, problem = blessed.open_by_name(d, "m")
    assert problem is None and path == str(module)
    os.close(fd)
    for bad in ("../m", "a/b", "..", "", "x" * 300):
        fd, _, problem = blessed.open_by_name(d, bad)
        assert fd is None and "does not exist within that directory" in problem
    (d / "fifo.stapmod").unlink(missing_ok=True)
    os.mkfifo(d / "fifo.stapmod")
    fd, _, problem = blessed.open_by_name(d, "fifo")  # opened non-blocking: no hang
    assert fd is not None
    os.close(fd)


def test_valid_names():
    assert blessed.valid_name("stap_abc-1.2")
    assert not blessed.valid_name("a/b")
    assert not blessed.valid_name("..x")
    assert not blessed.valid_name(".hidden")
