"""Generated handlers driven with synthetic kernel records, as pystapd delivers them.

The records use the daemon's wire format (``pystap.kernel.installer.wire_fields``):
context ``pid tid cpu comm`` (``uid euid`` when the stapusr gate proves them) and
the probe's values as ``$name``; the tests assert the exact output.
"""

from __future__ import annotations

from pathlib import Path

from tests.probes.conftest import HERE, build, probe_id, run

from pystap.kernel.installer import wire_fields

GREET_LINE = next(i for i, line in enumerate((HERE / "ctx_target.c").read_text().splitlines(), 1)
                  if " greet(" in line)


def ctx(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {"pid": 4242, "tid": 4243, "cpu": 1, "comm": "ctx"}
    base.update(kw)
    return base


def test_context_functions_in_a_function_probe(target: Path) -> None:
    m = build(f'probe process("{target}").function("greet") {{'
              ' printf("%d %d %d %s %s %s|%s|%d|%d %d\\n", pid(), tid(), cpu(), execname(), pp(), probefunc(),'
              ' user_string($who), $n, int_arg(2), register("esi")) }')
    pid = probe_id(m, "greet")
    rc, out, err = run(m, [(pid, ctx(**{"$who": 0x4000, "$n": 7, "$u__1": "hello", "$r__si": 0xFFFFFFFF00000007}))])
    assert (rc, err) == (0, "")
    # pp() names the function as SystemTap does with debug information: NAME@FILE:LINE
    point = f'process("{target}").function("greet@{HERE / "ctx_target.c"}:{GREET_LINE}")'
    assert out == f"4242 4243 1 ctx {point} greet|hello|7|7 7\n"


def test_arguments_registers_and_sign_extension(target: Path) -> None:
    m = build(f'probe process("{target}").function("many") {{'
              ' printf("%d %d %d %d %d %d %d\\n", int_arg(1), uint_arg(1), long_arg(1), ulong_arg(1),'
              ' long_arg(8), register("al"), u_register("ax")) }')
    minus_two = (1 << 64) - 2
    rc, out, err = run(m, [(0, ctx(**{"$r__di": minus_two, "$s__2": 8, "$r__ax": 0x1234_5681}))])
    assert (rc, err) == (0, "")
    assert out == f"-2 {0xFFFFFFFE} -2 -2 8 -127 {0x5681}\n"


def test_return_probe(target: Path) -> None:
    m = build(f'probe process("{target}").function("greet").return {{'
              ' printf("%d %d %s %s\\n", $return, returnval(), returnstr(1), pp()) }')
    records = [(0, ctx(**{"$return": 12})), (0, ctx(**{"$return": -2}))]
    rc, out, err = run(m, records)
    assert (rc, err) == (0, "")
    point = f'process("{target}").function("greet@{HERE / "ctx_target.c"}:{GREET_LINE}").return'
    assert out == f"12 12 12 {point}\n-2 -2 -2 (ENOENT) {point}\n"


def test_user_string_fault_is_a_run_time_error(target: Path) -> None:
    script = (f'probe process("{target}").function("greet") {{'
              ' println(user_string_quoted($who)); println(user_string($who, "<bad>"));'
              ' println(user_string($who)) }')
    m = build(script)
    col = script.index("println(user_string($who))") + 1
    # the kernel delivers a faulting string fetch as null (JSON) -> None
    rc, out, err = run(m, [(0, ctx(**{"$who": 0x7FFF1000, "$u__1": None}))])
    assert rc == 1
    assert out == "0x7fff1000\n<bad>\n"
    # SystemTap names the tapset's line; pystap the statement that called the reader
    assert err.splitlines()[0] == ("ERROR: user string copy fault -14 at 0x7fff1000 [man error::fault] near"
                                   f" identifier 'println' at <input>:1:{col}")
    assert "WARNING: Number of errors: 1, skipped probes: 0" in err


def test_null_pointer_faults_without_a_capture(target: Path) -> None:
    m = build(f'probe process("{target}").function("greet") {{'
              ' printf("[%d] [%s]\\n", user_int($who), user_string_warn($who)) }')
    rc, out, err = run(m, [(0, ctx(**{"$who": 0, "$u__1": 99, "$u__2": "stale"}))])
    assert rc == 0 and out == "[0] []\n"
    assert err == "WARNING: user string copy fault -14 at 0x0 [man error::fault]\n"


def test_mark_probe(target: Path) -> None:
    m = build(f'probe process("{target}").mark("note") {{ printf("%s %s %d %s\\n", $$provider, $$name, $arg1,'
              ' user_string($arg2)) }')
    rc, out, err = run(m, [(0, ctx(**{"$arg1": -5, "$arg2": 0x5000, "$u__1": "noted"}))])
    assert (rc, err, out) == (0, "", "ctx note -5 noted\n")


def test_records_from_the_daemon_wire_format(target: Path) -> None:
    """The same record through the daemon's own field mapping (fetch names -> $names)."""
    m = build(f'probe process("{target}").function("greet") {{ printf("%s %d %s\\n", execname(), $n,'
              ' user_string($who)) }')
    kernel = {"_pid": 7, "_tid": 7, "_cpu": 0, "comm": "ctx", "v_n": 7, "v_who": 0x5000, "u__1": "hi"}
    rc, out, err = run(m, [(0, wire_fields(kernel, uid=1000))])
    assert (rc, err, out) == (0, "", "ctx 7 hi\n")


def test_kernel_trace_exec_fields() -> None:
    m = build('probe kernel.trace("sched:sched_process_exec") { printf("%s %d %d %s\\n", $filename, $pid,'
              ' $old_pid, execname()) }')
    record = {"pid": 900, "tid": 900, "cpu": 0, "$filename": "/usr/bin/true", "$pid": 900, "$old_pid": 900}
    rc, out, err = run(m, [(0, record)])
    assert (rc, err, out) == (0, "", "/usr/bin/true 900 900 true\n")


def test_process_lifecycle_and_syscalls() -> None:
    m = build('probe process.begin { printf("begin %s %d\\n", execname(), pid()) }'
              ' probe process.syscall { printf("sys %d %d %d\\n", $syscall, $arg1, int_arg(1)) }'
              ' probe process.syscall.return { printf("ret %d %d\\n", $syscall, $return) }')
    begin = {"pid": 5, "tid": 5, "cpu": 0, "$filename": "/usr/bin/sleep", "$pid": 5, "$old_pid": 5}
    sys = {"pid": 5, "tid": 5, "cpu": 0, "$syscall": 1, "$arg1": (1 << 64) - 1, "$arg2": 0}
    ret = {"pid": 5, "tid": 5, "cpu": 0, "$syscall": 1, "$return": -9}
    rc, out, err = run(m, [(0, begin), (1, sys), (2, ret)])
    assert (rc, err) == (0, "")
    assert out == "begin sleep 5\nsys 1 -1 -1\nret 1 -9\n"


def test_syscall_tapset_locals() -> None:
    m = build('probe syscall.openat { printf("%s(%s) %s %d\\n", name, argstr, filename, flags) }'
              ' probe syscall.openat.return { printf("%s = %s %d\\n", name, retstr, retval) }'
              ' probe syscall.close { printf("%s %s %d\\n", name, argstr, fd) }')
    entry = {"pid": 1, "tid": 1, "cpu": 0, "$syscall": 257, "$arg1": (1 << 64) - 100, "$arg2": 0x7000,
             "$arg3": 0o2000000 | 0o100 | 1, "$arg4": 0o644, "$arg2_str": "/tmp/x\"y", "$name": "openat"}
    ret = {"pid": 1, "tid": 1, "cpu": 0, "$syscall": 257, "$return": -2}
    close = {"pid": 1, "tid": 1, "cpu": 0, "$syscall": 3, "$arg1": 4}
    rc, out, err = run(m, [(0, entry), (1, ret), (2, close)])
    assert (rc, err) == (0, "")
    assert out == ('openat(AT_FDCWD, "/tmp/x\\"y", O_WRONLY|O_CREAT|O_CLOEXEC, 0644) "/tmp/x\\"y" 524353\n'
                   "openat = -2 (ENOENT) -2\n"
                   "close 4 4\n")


def test_syscall_path_strings_through_user_string() -> None:
    m = build('probe syscall.unlink { println(user_string($arg1)) }')
    rc, out, err = run(m, [(0, {"pid": 1, "tid": 1, "cpu": 0, "$arg1": 0x7000, "$arg1_str": "/tmp/gone"})])
    assert (rc, err, out) == (0, "", "/tmp/gone\n")


def test_uid_functions_use_the_gated_record(target: Path) -> None:
    m = build(f'probe process("{target}").function("add") {{ printf("%d %d %d\\n", uid(), euid(),'
              ' is_myproc()) }')
    rc, out, err = run(m, [(0, ctx(uid=4321, euid=4321))])
    assert (rc, err, out) == (0, "", "4321 4321 0\n")


def test_parms_pretty_printing(target: Path) -> None:
    m = build(f'probe process("{target}").function("greet") {{ println($$parms); println($$parms$) }}'
              f' probe process("{target}").function("greet").return {{ println($$return, " ", $$return$) }}')
    rc, out, err = run(m, [(0, ctx(**{"$who": 0x5004, "$n": -7, "$u__1": 'say "hi"'})),
                           (1, ctx(**{"$return": 12}))])
    assert (rc, err) == (0, "")
    assert out == ('who=0x5004 n=0xfffffffffffffff9\n'
                   'who="say \\"hi\\"" n=-7\n'
                   'return=0xc return=12\n')


def test_syscall_any_names_the_call() -> None:
    m = build('probe syscall_any { printf("%s %d\\n", name, $syscall) }'
              ' probe syscall_any.return { printf("%s %s\\n", name, retstr) }')
    rc, out, err = run(m, [(0, {"pid": 1, "tid": 1, "cpu": 0, "$syscall": 39}),
                           (1, {"pid": 1, "tid": 1, "cpu": 0, "$syscall": 0, "$return": -4})])
    assert (rc, err, out) == (0, "", "getpid 39\nread -4 (EINTR)\n")


def test_plt_and_statement_probes(target: Path) -> None:
    from pystap.probes import elfsyms

    greet = elfsyms.load(str(target)).functions["greet"]
    m = build(f'probe process("{target}").plt("strlen") {{ println($$name, " ", user_string(pointer_arg(1))) }}'
              f' probe process("{target}").statement({greet:#x}) {{ println(probefunc(), " ", int_arg(2)) }}')
    plt, stmt = probe_id(m, "plt"), probe_id(m, "statement")
    rc, out, err = run(m, [(plt, ctx(**{"$r__di": 0x5000, "$u__1": "hello"})), (stmt, ctx(**{"$r__si": 7}))])
    assert (rc, err, out) == (0, "", "strlen hello\ngreet 7\n")


def test_process_end_and_threads() -> None:
    m = build('probe process.end { printf("end %s %d\\n", execname(), pid()) }'
              ' probe process.thread.begin { printf("thread %d of %d\\n", tid(), pid()) }')
    end = {"pid": 30, "tid": 30, "cpu": 0, "comm": "worker", "$pid": 30, "$prio": 120, "$group_dead": 1}
    thread = {"pid": 30, "tid": 31, "cpu": 1, "comm": "worker", "$pid": 31, "$clone_flags": 0x10000}
    rc, out, err = run(m, [(1, thread), (0, end)])
    assert (rc, err, out) == (0, "", "thread 31 of 30\nend worker 30\n")


def test_return_probe_pairs_entry_values_per_thread(target: Path) -> None:
    m = build(f'probe process("{target}").function("greet").return {{ printf("%d %s -> %d\\n", $n,'
              ' user_string($who), $return) }')
    ret, entry = (probe_id(m, ".return"), next(p.id for p in m.probes if p.handler.endswith("_entry")))
    records = [
        (entry, ctx(tid=1, **{"$n": 1, "$who": 0x5000, "$u__1": "outer"})),
        (entry, ctx(tid=1, **{"$n": 2, "$who": 0x5000, "$u__1": "inner"})),  # recursion
        (entry, ctx(tid=2, **{"$n": 3, "$who": 0x5000, "$u__1": "other thread"})),
        (ret, ctx(tid=1, **{"$return": 20})),
        (ret, ctx(tid=2, **{"$return": 30})),
        (ret, ctx(tid=1, **{"$return": 10})),
        (ret, ctx(tid=1, **{"$return": 0})),  # its entry was before the probe was armed
    ]
    rc, out, err = run(m, records)
    assert rc == 1
    assert out == "2 inner -> 20\n3 other thread -> 30\n1 outer -> 10\n"
    assert "ERROR: user string copy fault -14 at 0x0 [man error::fault]" in err
