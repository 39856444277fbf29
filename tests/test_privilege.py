"""Levels, names and credentials exactly as SystemTap's privilege.h computes them."""

import pytest

from pystap import privilege as P


def test_bit_values_are_systemtaps():
    assert (P.PR_NONE, P.PR_UNKNOWN, P.PR_STAPUSR, P.PR_STAPSYS, P.PR_STAPDEV) == (0, 1, 2, 4, 8)
    assert P.PR_ALL == 0xE and P.PR_PRIVILEGED == 0xC


@pytest.mark.parametrize(
    ("actual", "required", "expected"),
    [(0xE, 0x2, True), (0x2, 0x4, False), (0x6, 0x4, True), (0x6, 0x8, False), (0x0, 0x0, True), (0xC, 0x6, False)],
)
def test_contains(actual, required, expected):
    assert P.contains(actual, required) is expected


@pytest.mark.parametrize(
    ("bits", "translator", "runtime"),
    [(0xE, "stapdev", "stapdev"), (0x6, "stapsys", "stapsys"), (0x2, "stapusr", "stapusr"),
     (0x0, "none", "unknown"), (0x1, "unknown", "unknown")],
)
def test_names(bits, translator, runtime):
    assert P.name(bits) == translator
    assert P.name(bits, runtime=True) == runtime


def test_level_from_name_is_exact():
    assert P.Level.from_name("stapsys") is P.Level.STAPSYS
    with pytest.raises(ValueError, match="Invalid argument 'STAPUSR' for --privilege."):
        P.Level.from_name("STAPUSR")


GROUPS = {"stapusr": 41001, "stapsys": 41002, "stapdev": 41003}


@pytest.mark.parametrize(
    ("uid", "gids", "expected"),
    [
        (0, [], P.PR_ALL),
        (40000, [100], P.PR_NONE),
        (40000, [100, 41001], P.PR_STAPUSR),
        (40000, [41002], P.PR_STAPUSR | P.PR_STAPSYS),
        (40000, [41003], P.PR_ALL),  # stapdev implies the lower levels
        (40000, [41001, 41002, 41003], P.PR_ALL),
    ],
)
def test_credentials_from_groups(uid, gids, expected):
    assert P.credentials_from_groups(uid, gids, GROUPS) == expected


def test_no_groups_at_all_means_no_credentials():
    assert P.credentials_from_groups(5, [41001], {"stapusr": None, "stapsys": None, "stapdev": None}) == 0


def test_group_overrides_accept_gids_and_names():
    gids = P.system_group_gids({"stapusr": 41001, "stapsys": "41002", "stapdev": "root"})
    assert gids == {"stapusr": 41001, "stapsys": 41002, "stapdev": 0}
