"""The option allowlist: every option x level, safety patterns, order independence,
unclassified options, --privilege parsing and the compile-server client mode."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pystap.policy import options as O
from pystap.policy.options import check_options
from pystap.privilege import Level

USR, SYS, DEV = Level.STAPUSR, Level.STAPSYS, Level.STAPDEV

# A valid value for every option that takes one (valid at stapdev).
SAMPLE = {
    "-e": "probe begin {}", "-E": "probe end {}", "-p": "2", "--vp": "01", "--compatible": "4.8",
    "-l": "begin", "-L": "begin", "--privilege": "stapusr", "-o": "out.txt", "-s": "4", "-S": "4,2",
    "-T": "5", "-c": "ls", "-x": "1", "-d": "/bin/true", "-G": "x=1", "-m": "mymod", "--tmpdir": "tmp",
    "--sign-key": "keys", "--sign-module": "m.stapmod", "--use-server": "host", "--use-server-on-error": "yes", "--list-servers": "all",
    "--trust-servers": "ssl", "-r": "6.1.0-amd64", "-a": "x86_64", "-I": "tapsets", "-D": "MAXACTION=100",
    "-B": "V=1", "-R": "runtime", "--modinfo": "a=b", "--sysroot": "root", "--sysenv": "A=B",
    "--runtime": "kernel", "--debug": "parse", "--remote": "host", "--prologue-searching": "never",
    "--download-debuginfo": "no", "--monitor": "5", "--target-namespace": "1", "--rlimit-as": "100000000",
    "--rlimit-cpu": "60", "--rlimit-nproc": "100", "--rlimit-stack": "8388608", "--rlimit-fsize": "1000000",
}

# Independent expectations, written by hand: (stapusr, stapsys, stapdev) accepted?
ALLOWED = set("""-e -E -p -v --vp -h -V -u -w -W -t -P --prologue-searching --skip-badvars --compatible
--check-version --semantic-keep-going --suppress-handler-errors --dump-probe-types --dump-probe-aliases
--dump-functions -l -L --privilege --unprivileged -o -b -s -F -S -T -c -x -d -G -m -k --tmpdir --disable-cache
--poison-cache --clean-cache --sign-key --sign-module --no-sign --use-server --use-server-on-error --list-servers
--trust-servers --download-debuginfo -r -a -I -q --debug -i --save-uprobes --monitor --rlimit-as --rlimit-cpu
--rlimit-nproc --rlimit-stack --rlimit-fsize --runtime --bpf --dyninst""".split())
DEV_ONLY = set("""-g --suppress-time-limits -D -B -R --modinfo --sysroot --sysenv --target-namespace --ldd
--all-modules --remote --remote-prefix""".split())


def test_every_row_has_a_hand_written_expectation():
    names = {row.name for row in O.OPTIONS}
    assert names == ALLOWED | DEV_ONLY, "classify the new option in this test too"
    assert not ALLOWED & DEV_ONLY


def _pair(row):
    if not row.takes_value:
        return (row.name, None)
    return (row.name, SAMPLE.get(row.name, "x"))


@pytest.mark.parametrize("row", O.OPTIONS, ids=lambda r: r.name)
@pytest.mark.parametrize("level", [USR, SYS, DEV], ids=lambda lv: lv.label)
def test_option_by_level(row, level):
    opts = [_pair(row)]
    if row.name == "--suppress-time-limits":
        opts.append(("-g", None))
    if row.name == "--privilege":
        opts = [("--privilege", level.label)]
    errors = check_options(opts, level)
    expected_ok = row.name in ALLOWED or level is DEV
    assert (errors == []) is expected_ok, errors
    if not expected_ok:
        if row.name in ("-g", "--suppress-time-limits"):
            assert errors == [f"You can't specify -g and --privilege={level.label} together."]
        else:
            assert errors == [f"You can't specify {row.name} when --privilege={level.label} is specified."]


@pytest.mark.parametrize("level", [USR, SYS, DEV], ids=lambda lv: lv.label)
def test_aliases_are_the_same_row(level):
    assert check_options([("--help", None), ("--version", None), ("--interactive", None)], level) == []
    assert O.lookup("--interactive") is O.lookup("-i")
    # -P takes no value, --prologue-searching an optional one: two rows, one rule
    assert O.lookup("--prologue-searching").levels == O.lookup("-P").levels
    assert check_options([("--prologue-searching", None), ("--prologue-searching", "auto")], USR) == []
    assert O.lookup("--privilege=stapsys") is O.lookup("--privilege")


@pytest.mark.parametrize("level", [USR, SYS], ids=lambda lv: lv.label)
def test_unclassified_options_are_refused_below_stapdev(level):
    errors = check_options([("--frobnicate", None), ("-p", "2"), ("--new-thing", "x")], level)
    assert errors == [f"You can't specify --frobnicate, --new-thing when --privilege={level.label} is specified."]


def test_unclassified_options_are_fine_for_stapdev_but_never_from_a_client():
    assert check_options([("--frobnicate", None)], DEV) == []
    assert check_options([("--frobnicate", None)], DEV, client=True) == [
        "ERROR: --frobnicate is invalid with --client-options"
    ]


# -- safety patterns ---------------------------------------------------------------------------

PATTERN_CASES = [
    ("-D", "MAXACTION", True), ("-D", "maxaction=-5", True), ("-D", "A=B_c9", True), ("-D", "9X", False),
    ("-D", "A=B;rm", False), ("-D", "A B", False), ("-D", "A=\n", False), ("-D", "", False),
    ("-G", "x=1", True), ("-G", "X_y=a.b-c", True), ("-G", "x=", False), ("-G", "x=$(id)", False),
    ("-m", "mod_1", True), ("-m", "MOD.ko", True), ("-m", "a-b", False), ("-m", "../x", False),
    ("-a", "x86_64", True), ("-a", "arm-v7", True), ("-a", "x/y", False),
    ("-S", "10", True), ("-S", "10,3", True), ("-S", "10,", False), ("-S", "a", False),
    ("--modinfo", "license=GPL v2", True), ("--modinfo", "=x", False),
]


@pytest.mark.parametrize(("opt", "value", "ok"), PATTERN_CASES)
def test_safety_patterns_apply_at_stapdev(opt, value, ok):
    errors = check_options([(opt, value)], DEV)
    if ok:
        assert errors == []
    else:
        row = O.lookup(opt)
        shown = value.removesuffix(".ko") if opt == "-m" else value
        assert errors == [
            f"ERROR: Safety pattern mismatch for {row.pattern.label} ('{shown}' vs. '{row.pattern.regex}') rc=1"
        ]


def test_safety_pattern_text_is_systemtaps():
    assert check_options([("-D", "a;b")], DEV) == [
        "ERROR: Safety pattern mismatch for -D parameter ('a;b' vs. '^[a-z_][a-z_0-9]*(=-?[a-z_0-9]+)?$') rc=1"
    ]


def test_patterns_are_case_insensitive_and_anchored():
    assert O.PAT_D.matches("MaxAction=Ten")
    assert not O.PAT_D.matches("x=1\n")
    assert not O.PAT_TMPDIR.matches("/tmp/x\n")
    assert O.PAT_TMPDIR.matches("/TMP/A-b_c.d")


def test_module_name_is_truncated_before_the_check():
    long_name = "a" * 100
    assert check_options([("-m", long_name)], USR) == []


@pytest.mark.parametrize("level", [USR, SYS], ids=lambda lv: lv.label)
def test_release_but_never_a_path_below_stapdev(level):
    assert check_options([("-r", "6.1.0-13-amd64")], level) == []
    assert check_options([("-r", "/home/u/linux")], level) == [
        "ERROR: Safety pattern mismatch for -r parameter ('/home/u/linux' vs. '^[a-z0-9_.+-]+$') rc=1"
    ]
    assert check_options([("-r", "/home/u/linux")], DEV) == []


# -- --privilege parsing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("opts", "level", "errors"),
    [
        ([("--privilege", "stapusr")], USR, []),
        ([("--privilege=stapsys", None)], SYS, []),
        ([("--unprivileged", None)], USR, []),
        ([("--unprivileged", None), ("--privilege", "stapusr")], USR, []),
        ([("--privilege", "stapusr"), ("--privilege", "stapsys")], USR, ["Privilege level may be set only once."]),
        ([("--unprivileged", None), ("--privilege", "stapdev")], USR, ["Privilege level may be set only once."]),
        ([("--privilege", "STAPUSR")], None, ["Invalid argument 'STAPUSR' for --privilege."]),
        ([("--privilege", "root")], None, ["Invalid argument 'root' for --privilege."]),
        ([("--privilege", "")], None, ["Invalid argument '' for --privilege."]),
    ],
)
def test_parse_privilege(opts, level, errors):
    assert O.parse_privilege(opts) == (level, errors)


def test_privilege_errors_are_reported_by_check_options():
    assert check_options([("--privilege", "bogus")], DEV) == ["Invalid argument 'bogus' for --privilege."]
    errs = check_options([("--privilege", "stapusr"), ("--privilege", "stapdev"), ("--privilege", "stapsys")], USR)
    assert errs == ["Privilege level may be set only once."]


# -- cross-option rules, independent of order --------------------------------------------------


@pytest.mark.parametrize("order", [0, 1])
def test_suppress_time_limits_needs_g_anywhere(order):
    opts = [("--suppress-time-limits", None), ("-g", None)]
    if order:
        opts.reverse()
    assert check_options(opts, DEV) == []  # SystemTap wants -g first; we do not
    assert check_options([("--suppress-time-limits", None)], DEV) == [
        "ERROR --suppress-time-limits requires guru mode (-g)"
    ]
    assert check_options([("--suppress-time-limits", None)], USR) == [
        "ERROR --suppress-time-limits requires guru mode (-g)"
    ]


def test_c_and_x_together():
    assert check_options([("-x", "1"), ("-c", "ls")], DEV) == ["You can't specify -c and -x together."]


@pytest.mark.parametrize("level", [USR, SYS], ids=lambda lv: lv.label)
def test_guru_with_a_lower_level(level):
    for opts in ([("-g", None), ("--privilege", level.label)], [("--privilege", level.label), ("-g", None)]):
        assert check_options(opts, level) == [f"You can't specify -g and --privilege={level.label} together."]


MIXED = [("-g", None), ("-I", "d"), ("-R", "r"), ("-D", "X"), ("-p", "2"), ("--frob", None), ("-m", "m"),
         ("-c", "ls"), ("-x", "1"), ("--suppress-time-limits", None), ("-B", "V=1"), ("-v", None)]


@settings(max_examples=60, deadline=None)
@given(st.permutations(MIXED), st.sampled_from([USR, SYS, DEV]), st.booleans())
def test_order_does_not_change_the_verdict(perm, level, client):
    def named(errors):
        # which options each message names, regardless of the order they are listed in
        return sorted(tuple(sorted(e.split(" when ")[0].removeprefix("You can't specify ").split(", ")))
                      if e.startswith("You can't specify") and " when " in e else (e,) for e in errors)

    assert named(check_options(perm, level, client=client)) == named(check_options(MIXED, level, client=client))


# -- compile-server client mode (SystemTap's --client-options table) -------------------------------


def test_client_mode_below_stapdev_joins_every_occurrence():
    opts = [("--privilege", "stapusr"), ("-I", "/tmp"), ("-m", "ab"), ("-D", "X"), ("-I", "/x")]
    assert check_options(opts, USR, client=True) == [
        "You can't specify -I, -m, -D, -I when --privilege=stapusr is specified."
    ]
    assert check_options(opts[1:], DEV, client=True) == []


@pytest.mark.parametrize("opt", ["-R", "-k", "-q", "-B", "--debug", "--sysroot", "--sysenv", "-i"])
def test_client_mode_invalid(opt):
    row = O.lookup(opt)
    pair = (opt, SAMPLE.get(opt, "x") if row.takes_value else None)
    assert check_options([pair], DEV, client=True) == [f"ERROR: {opt} invalid with --client-options"]


@pytest.mark.parametrize("opt", ["--tmpdir", "--use-server", "--list-servers", "--trust-servers", "--disable-cache",
                                 "--poison-cache", "--clean-cache", "--ldd", "--all-modules", "--remote",
                                 "--remote-prefix", "--modinfo", "-G", "--sign-key", "--runtime", "--bpf",
                                 "--dyninst", "--save-uprobes", "--monitor", "--target-namespace",
                                 "--download-debuginfo", "--rlimit-as", "--rlimit-cpu", "--rlimit-nproc",
                                 "--rlimit-stack", "--rlimit-fsize"])
def test_client_mode_is_invalid(opt):
    row = O.lookup(opt)
    pair = (opt, SAMPLE.get(opt, "x") if row.takes_value else None)
    assert check_options([pair], DEV, client=True) == [f"ERROR: {opt} is invalid with --client-options"]


def test_client_mode_release_pattern_applies_to_everybody():
    assert check_options([("-r", "/tmp")], DEV, client=True) == [
        "ERROR: Safety pattern mismatch for -r parameter from client ('/tmp' vs. '^[a-z0-9_.+-]+$') rc=1"
    ]
    assert check_options([("-r", "6.1.0")], USR, client=True) == []


def test_client_mode_allowed_options_still_follow_the_level():
    assert check_options([("-p", "4"), ("-v", None), ("--privilege", "stapusr")], USR, client=True) == []
    assert check_options([("-g", None)], USR, client=True) == [
        "You can't specify -g and --privilege=stapusr together."
    ]


def test_missing_value_is_an_error_not_a_crash():
    assert check_options([("-I", None)], DEV) == ["ERROR: -I requires an argument"]
    assert check_options([("--use-server", None)], DEV) == []


def test_combinations_of_refusals_are_all_reported():
    errs = check_options([("-g", None), ("-R", "r"), ("-c", "x"), ("-x", "1")], SYS)
    assert errs == [
        "You can't specify -R when --privilege=stapsys is specified.",
        "You can't specify -c and -x together.",
        "You can't specify -g and --privilege=stapsys together.",
    ]


def test_every_level_rule_is_known():
    for row, level in itertools.product(O.OPTIONS, Level):
        assert isinstance(row.levels[level], O.Rule)
        if row.levels[level] is O.Rule.CHECK:
            assert row.pattern is not None, row.name


@pytest.mark.parametrize("value", ["A" * 1_000_000 + ";", "A\x00B", "A=B\nC", "\u0130", "\u212a=1", "x" * 10_000 + "=1\n"])
def test_hostile_values_are_refused_cleanly(value):
    for opt in ("-D", "-G", "-a", "-S", "--modinfo"):
        errors = check_options([(opt, value)], DEV)
        assert len(errors) == 1 and errors[0].startswith("ERROR: Safety pattern mismatch for "), (opt, errors)


def test_empty_option_list_is_fine_everywhere():
    for level in Level:
        assert check_options([], level) == [] and check_options([], level, client=True) == []
