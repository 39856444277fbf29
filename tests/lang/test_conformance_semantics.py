"""Pass-1/2 behaviour pinned after running SystemTap's own testsuite (parseok,
parseko, semok, semko) through pystap: each case is a disagreement that was
fixed, written here as a short script of our own that shows the same rule.

The expectations are SystemTap's (5.x language): where Debian's stap 4.8
differs (PR30570 landed in 5.0) the newer behaviour is the one asserted.
"""

from __future__ import annotations

import io

import pytest

from pystap.cli.stap import main


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def stap(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main(list(argv), stdin=io.StringIO(""), stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


# -- a global declared with a size is an array ---------------------------------------------------


def test_sized_global_used_as_scalar_statistic_is_an_arity_error() -> None:
    rc, _, err = stap("-p2", "-e", "global counts[10]\nprobe begin { println(@sum(counts)) }")
    assert rc == 1
    assert "semantic error: inconsistent arity: identifier 'counts' at <input>:1:8" in err


def test_sized_global_used_as_array_is_fine() -> None:
    rc, _, err = stap("-p2", "-e", "global counts[10]\nprobe begin { counts[1] <<< 2; println(@sum(counts[1])) }")
    assert rc == 0, err


# -- overloads that can never be reached --------------------------------------------------------

UNREACHABLE = "instance of overloaded function will never be reached"


def test_overload_after_one_without_next_is_dropped_with_a_warning() -> None:
    script = "function greet() { println(1) }\nfunction greet() { println(2) }\nprobe begin { greet() }"
    rc, out, err = stap("-p2", "-e", script)
    assert rc == 0
    assert f"WARNING: {UNREACHABLE}: identifier 'greet' at <input>:2:10" in err
    assert out.count("greet:") == 1  # only the reachable overload is elaborated


def test_unreachable_overload_fails_under_dash_W() -> None:
    script = "function greet() { println(1) }\nfunction greet() { println(2) }\nprobe begin { greet() }"
    rc, _, err = stap("-W", "-p2", "-e", script)
    assert rc == 1
    assert f"semantic error: {UNREACHABLE} (warning treated as error)" in err


def test_overload_reached_through_next_is_kept() -> None:
    script = (
        "function pick(x) { if (x > 1) next; return 1 }\n"
        "function pick(x) { return 2 }\n"
        "probe begin { println(pick(3)) }"
    )
    rc, out, err = stap("-W", "-p2", "-e", script)
    assert rc == 0, err
    assert out.count("pick:") == 2


# -- embedded C may not be handed an aggregate ---------------------------------------------------


def test_statistics_global_named_by_embedded_pragma_is_refused() -> None:
    script = "global hits\nprobe begin { hits <<< 1; println(%{ /* pragma:read:hits */ 0 %}) }"
    rc, _, err = stap("-g", "-p2", "-e", script)
    assert rc == 1
    assert "semantic error: Aggregates not available in embedded-C: identifier 'hits' at <input>:1:8" in err


def test_scalar_global_named_by_embedded_pragma_is_fine() -> None:
    script = "global hits\nprobe begin { hits = 1; println(%{ /* pragma:read:hits */ 0 %}) }"
    rc, _, err = stap("-g", "-p2", "-e", script)
    assert rc == 0, err


# -- PR30570: empty try blocks and unused catch variables -----------------------------------------


@pytest.mark.parametrize(
    "script",
    [
        "probe begin { try { } catch (oops) { println(oops) } exit() }",
        "probe begin { try { println(1) } catch (oops) { } }",
        "global oops = 10\nprobe begin { try { } catch (oops) { } exit() }",
        'global oops = "text"\nprobe begin { try { } catch (oops) { println(oops) } exit() }',
    ],
)
def test_elided_try_catch_leaves_no_type_constraint(script: str) -> None:
    rc, _, err = stap("-p2", "-e", script)
    assert rc == 0, err


def test_unoptimised_catch_into_a_long_global_is_still_a_type_error() -> None:
    rc, _, err = stap("-u", "-p2", "-e", "global oops = 10\nprobe begin { try { } catch (oops) { } }")
    assert rc == 1
    assert "type mismatch" in err


# -- string literal gluing across comments (PR 14360, not before 2.0) -----------------------------


def test_strings_glue_across_a_comment() -> None:
    rc, out, _ = stap("-p1", "-e", 'probe begin { print("ab" /* note */ "cd") }')
    assert rc == 0 and '"abcd"' in out


def test_compatible_1_8_keeps_comment_separated_strings_apart() -> None:
    rc, _, err = stap("-p1", "--compatible=1.8", "-e", 'probe begin { print("ab" /* note */ "cd") }')
    assert rc == 1
    assert "parse error: expected one of ', )'" in err and "saw: string 'cd' at <input>:1:37" in err


def test_compatible_1_8_still_glues_across_whitespace() -> None:
    rc, out, _ = stap("-p1", "--compatible=1.8", "-e", 'probe begin { print("ab"\n  "cd") }')
    assert rc == 0 and '"abcd"' in out


# -- "**" matches across probe point components ----------------------------------------------------


def test_double_glob_spans_components() -> None:
    rc, out, err = stap("-p2", "-e", "probe ti**es(5) { println(1) }")
    assert rc == 0, err
    assert "timer.jiffies(5)" in out


def test_double_glob_with_no_match_is_a_mismatch() -> None:
    rc, _, err = stap("-p2", "-e", "probe nothing**here { }")
    assert rc == 1
    assert "probe point mismatch: didn't find any wildcard matches" in err


def test_wildcard_onto_an_unavailable_family_says_unavailable() -> None:
    rc, _, err = stap("-p2", "-e", 'probe kern*.function("vfs_read") { }')
    assert rc == 1
    assert "not available on this kernel" in err and "mismatch" not in err


# -- SystemTap tapset functions pystap declares but does not implement --------------------------


def test_kernel_tapset_function_is_refused_for_stapusr_not_unresolved() -> None:
    rc, _, err = stap("--privilege=stapusr", "-p2", "-e", "probe begin { println(task_uid(0)) }")
    assert rc == 1
    assert (
        "semantic error: function may not be used when --privilege=stapusr is specified: "
        "identifier 'task_uid'" in err
    )
    assert "unresolved function" not in err


def test_kernel_tapset_function_through_a_script_function_is_refused_for_stapusr() -> None:
    script = "function who() { return task_euid(0) }\nprobe begin { println(who()) }"
    rc, _, err = stap("--unprivileged", "-p2", "-e", script)
    assert rc == 1
    assert "function may not be used when --privilege=stapusr is specified" in err


def test_kernel_tapset_function_passes_pass_2_for_stapsys_and_stops_in_pass_3() -> None:
    script = "probe begin { println(htonl(1)) }"
    rc, _, err = stap("--privilege=stapsys", "-p2", "-e", script)
    assert rc == 0, err
    rc, _, err = stap("-p3", "-e", script)
    assert rc == 1
    assert "function htonl() is not available with pystap" in err


def test_guru_writer_from_the_stock_tapset_needs_dash_g() -> None:
    rc, _, err = stap("-p2", "-e", "probe begin { set_kernel_char(0, 0) }")
    assert rc == 1
    assert "function may not be used unless -g is specified" in err


def test_user_stack_helpers_are_myproc_functions() -> None:
    rc, _, err = stap("--unprivileged", "-p2", "-e", "probe begin { println(ucallers(2)) }")
    assert "may not be used" not in err
    assert rc == 0, err


# -- calls to functions that change nothing, in a void context ---------------------------------


def test_pure_call_statement_keeps_only_its_side_effects() -> None:
    script = (
        "global seen\n"
        "function twice(x) { return 2 * x }\n"
        "function shout(x) { println(x); return x }\n"
        "probe begin { twice(seen = 4); shout(5); twice(7); strlen(sprint(twice(seen = 2) + 1)); exit() }"
    )
    rc, out, err = stap("-p2", "-v", "-e", script)
    assert rc == 0, err
    body = out[out.index("begin /* <- begin */") :]
    assert "(__global_seen) = (4);\nshout(5);\n(__global_seen) = (2);\nexit();" in body
    assert "twice(" not in body
    # ``seen`` is now only written, so it is displayed at the end, as SystemTap does
    assert 'printf("seen=%d\\n", __global_seen);' in body


def test_function_writing_a_global_is_not_pure() -> None:
    script = "global hits\nfunction bump() { hits++; return hits }\nprobe begin { bump(); println(hits); exit() }"
    rc, out, err = stap("-p2", "-v", "-e", script)
    assert rc == 0, err
    assert "bump();" in out
