"""The gate programs' shape, the BTF reader on real and hostile blobs, and a verifier refusal."""

from __future__ import annotations

import os
import struct

import pytest

from pystap.kernel import bpf, btf

OFFSETS = btf.CredOffsets(task_cred=1736, cred_uid=8, cred_euid=24)


def insns(code: bytes) -> list[tuple[int, int, int, int, int]]:
    out = []
    for i in range(0, len(code), 8):
        op, regs, off, imm = struct.unpack_from("<BBhi", code, i)
        out.append((op, regs & 0xF, regs >> 4, off, imm))
    return out


@pytest.mark.parametrize("program", [bpf.euid_gate(OFFSETS, 1000), bpf.euid_set_gate(OFFSETS, 7)])
def test_every_failure_branch_lands_on_drop(program: bytes) -> None:
    code = insns(program)
    drop = len(code) - 2
    assert code[drop][0] == 0xB7 and code[drop][4] == 0 and code[-1][0] == 0x95  # r0 = 0; exit
    assert code[drop - 2][0] == 0xB7 and code[drop - 2][4] == 1  # r0 = 1; exit (keep)
    jumps = [(i, c) for i, c in enumerate(code) if c[0] in (0x55, 0x15)]
    assert jumps
    for i, c in jumps:
        assert i + 1 + c[3] == drop, f"jump at {i} goes to {i + 1 + c[3]}, not the drop label {drop}"


def test_gate_compares_the_euid_field() -> None:
    code = insns(bpf.euid_gate(OFFSETS, 4242))
    assert (0x07, 3, 0, 0, OFFSETS.task_cred) in code and (0x07, 3, 0, 0, OFFSETS.cred_euid) in code
    assert any(c[0] == 0x55 and c[4] == 4242 for c in code)
    with pytest.raises(ValueError):
        bpf.euid_gate(OFFSETS, -1)


def test_kernel_btf_offsets() -> None:
    if not os.path.exists(btf.VMLINUX):
        pytest.skip("kernel has no BTF")
    o = btf.cred_offsets()
    assert o.cred_euid == o.cred_uid + 16  # uid, gid, suid, sgid, euid: kuid_t/kgid_t are 4 bytes
    assert 0 < o.task_cred < 1 << 16


def _blob(types: bytes, strings: bytes) -> bytes:
    return struct.pack("<HBBIIIII", btf.MAGIC, 1, 0, 24, 0, len(types), len(types), len(strings)) + types + strings


def test_btf_reader_on_a_tiny_blob() -> None:
    strings = b"\0cred\0euid\0uid\0"
    int_t = struct.pack("<III", 0, 1 << 24, 4) + struct.pack("<I", 32)
    cred = struct.pack("<III", 1, (4 << 24) | 2, 8) + struct.pack("<III", 11, 1, 32) + struct.pack("<III", 6, 1, 0)
    found = btf.struct_members(_blob(int_t + cred, strings), {"cred"})
    assert found == {"cred": {"uid": 4, "euid": 0}}


@pytest.mark.parametrize("blob", [
    b"", b"\0" * 24, _blob(b"\xff" * 12, b"\0"),
    _blob(struct.pack("<III", 0, (4 << 24) | 60000, 0), b"\0"),
    struct.pack("<HBBIIIII", btf.MAGIC, 1, 0, 24, 0, 1 << 30, 0, 0),
    _blob(struct.pack("<III", 99, (4 << 24) | 1, 0) + struct.pack("<III", 0, 0, 0), b"\0"),
])
def test_btf_reader_refuses_hostile_blobs(blob: bytes) -> None:
    with pytest.raises(btf.BtfError):
        btf.struct_members(blob, {"cred", "task_struct"})


def test_missing_btf_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(btf.BtfError, match="cannot read kernel BTF"):
        btf.cred_offsets(str(tmp_path / "nope"))


def test_verifier_log_in_error() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (bpf)")
    with pytest.raises(bpf.BpfError, match="verifier: .*exit"):
        bpf.prog_load(bpf.mov_imm(0, 1), bpf.PROG_TYPE_KPROBE)
    with pytest.raises(ValueError):
        bpf.prog_load(b"\0" * 7, bpf.PROG_TYPE_KPROBE)


def test_syscall_string_template_shape() -> None:
    from pystap.kernel import syscallstrings

    code = insns(syscallstrings.program(3, 7, 257, (2,), nargs=4, drops_fd=5))
    # the ring-full branch lands on the drop counter, every exit returns 0
    (first_jump,) = [i for i, c in enumerate(code) if c[0] == 0x15][:1]
    target = first_jump + 1 + code[first_jump][3]
    assert code[target][0] == 0x62 and code[target][1] == 10  # *(u32 *)(fp - 4) = 0: the counter key
    assert code[target - 2][0] == 0xB7 and code[target - 1][0] == 0x95
    assert any(c[0] == 0xDB for c in code)  # the atomic add
    assert not any(c[0] == 0x79 and c[2] == 6 and c[3] >= 16 + 8 * 4 for c in code)  # no ctx read past arg 4
    with pytest.raises(ValueError):
        syscallstrings.program(3, 7, 257, (5,), nargs=4)
