"""Pass 3: each uprobe captures exactly what its handler reads; what cannot be captured is refused."""

from __future__ import annotations

from pathlib import Path

from tests.probes.conftest import build, build_error, fetch_of

COMM = "comm=$comm:string"


def fn(target: Path, name: str, suffix: str = "") -> str:
    return f'process("{target}").function("{name}"){suffix}'


def test_only_what_the_handler_reads_is_fetched(target: Path) -> None:
    m = build(f"probe {fn(target, 'add')} {{ println(pid()) }}")
    assert fetch_of(m, "add") == [COMM]
    m = build(f"probe {fn(target, 'add', '.return')} {{ println($return, returnval()) }}")
    assert fetch_of(m, "add") == [COMM, "retval=$retval:s64"]


def test_dwarf_parameters_are_typed_by_the_abi(target: Path) -> None:
    m = build(f"probe {fn(target, 'small')} {{ println($u, $s, $w) }} "
              f"probe {fn(target, 'greet')} {{ println($who, $n) }} "
              f"probe {fn(target, 'scale')} {{ println($k) }}")
    assert fetch_of(m, "small") == [COMM, "v_u=%di:u8", "v_s=%si:s16", "v_w=%dx:u32"]
    assert fetch_of(m, "greet") == [COMM, "v_who=%di:u64", "v_n=%si:s32"]
    # a double travels in an SSE register: the int after it is still the first integer register
    assert fetch_of(m, "scale") == [COMM, "v_k=%di:s32"]


def test_registers_and_arguments(target: Path) -> None:
    m = build(f'probe {fn(target, "many")} {{ println(int_arg(2), long_arg(8), register("rax"), u_register("al"),'
              ' uaddr()) }')
    assert fetch_of(m, "many") == [COMM, "r__si=%si:u64", "s__2=$stack2:u64", "r__ax=%ax:u64", "r__ip=%ip:u64"]
    # a run-time argument number: the six register arguments are captured
    m = build(f"probe {fn(target, 'many')} {{ for (i = 1; i < 3; i++) println(int_arg(i)) }}")
    assert fetch_of(m, "many") == [COMM] + [f"r__{r}=%{r}:u64" for r in ("di", "si", "dx", "cx", "r8", "r9")]


def test_user_memory_is_captured_at_the_hit(target: Path) -> None:
    m = build(f'probe {fn(target, "greet")} {{ println(user_string($who), user_string(pointer_arg(1)),'
              ' user_int(user_long(register("rsp")) + 4), user_string_n($who + 1, 2)) }')
    assert fetch_of(m, "greet") == [
        COMM, "v_who=%di:u64", "u__1=+0(%di):string", "u__2=+0(%di):string", "r__di=%di:u64",
        "u__3=+4(+0(%sp)):s32", "u__4=+0(%sp):s64", "r__sp=%sp:u64", "u__5=+1(%di):string"]
    assert "_b_user_string(c, '$u__1', _wrap(c.fields.get('$who', 0)))" in m.code


def test_captures_through_locals_and_functions(target: Path) -> None:
    m = build(f"function name_of:string () {{ return user_string(pointer_arg(1)) }} "
              f"probe {fn(target, 'greet')} {{ p = $who; println(user_string(p), name_of()) }}")
    assert fetch_of(m, "greet") == [COMM, "v_who=%di:u64", "u__1=+0(%di):string", "u__2=+0(%di):string",
                                    "r__di=%di:u64"]


def test_return_value_capture(target: Path) -> None:
    m = build(f"probe {fn(target, 'greet', '.return')} {{ println(user_string_quoted($return)) }}")
    assert fetch_of(m, "greet") == [COMM, "retval=$retval:s64", "u__1=+0($retval):string"]


def test_mark_arguments_are_captured_on_demand(target: Path) -> None:
    m = build(f'probe process("{target}").mark("note") {{ println($arg1, " ", user_string($arg2), " ", $$name,'
              ' " ", probefunc()) }')
    fetch = fetch_of(m, "note")
    assert fetch[0] == COMM and fetch[1].startswith("arg1=") and fetch[1].endswith(":s32")
    value = fetch[2].split("=", 1)[1].rsplit(":", 1)[0]
    assert fetch[2].startswith("arg2=") and fetch[3] == f"u__1=+0({value}):string"
    (probe,) = m.probes
    assert probe.params["semaphore"] > 0 and probe.params["func"] == "main"
    assert "'note'" in m.code  # $$name is a constant of the probe point


def test_refusals_say_what_is_supported(target: Path) -> None:
    err = build_error(f"probe {fn(target, 'greet')} {{ x = $n * 2; println(user_string(x)) }}")
    assert "semantic error: user_string() can read only user memory captured at the probe hit: its address" \
           " must be a probe-time value" in err
    assert "identifier 'user_string' at <input>:1:" in err
    err = build_error('probe begin { println(user_string(1000000)) }')
    assert "user_string() cannot read user memory in a 'begin' probe: only process(...).function" in err
    err = build_error(f'probe {fn(target, "greet")} {{ r = "rdi"; println(register(r)) }}')
    assert "register() needs a literal register name" in err
    err = build_error(f'probe {fn(target, "greet")} {{ println(register("eflags")) }}')
    assert "register 'eflags' cannot be captured by a uprobe" in err
    err = build_error(f'probe {fn(target, "greet")} {{ println(register("bogus")) }}')
    assert "semantic error: Unknown register: bogus" in err
    err = build_error(f'probe {fn(target, "greet")} {{ println(user_long(user_long(user_long(user_long($who)))))}}')
    assert "reads through more than 3 pointers" in err
    err = build_error(f'probe {fn(target, "greet")} {{ println(user_buffer_quoted($who, 4, 10)) }}')
    assert "function user_buffer_quoted() is not available with pystap (it reads a buffer of run-time" in err
    err = build_error(f'probe {fn(target, "greet")} {{ println(kernel_string($who)) }}')
    assert "kernel_string() is not available with pystap (this kernel offers no kernel memory" in err


def test_constant_faulting_addresses_need_no_capture() -> None:
    m = build('probe begin { println(user_string(0, "bad")); exit() }')
    assert "_b_user_string(c, None, 0, 'bad')" in m.code


def test_parameter_errors(target: Path, target_nodebug: Path) -> None:
    err = build_error(f"probe {fn(target, 'scale')} {{ println($f) }}")
    assert "target variable '$f' is not available: floating-point parameters are passed in SSE registers" in err
    err = build_error(f"probe {fn(target, 'sum3')} {{ println($k) }}")
    assert "target variable '$k' is not available: its location follows parameter 'p' passed by value" in err
    err = build_error(f"probe {fn(target_nodebug, 'greet')} {{ println($n) }}")
    assert f"target variable '$n' is not available: {target_nodebug} has no debug information (rebuild it" \
           " with -g for $parameters)" in err
    err = build_error(f"probe {fn(target, 'greet')} {{ println($nosuch) }}")
    assert "unable to find local 'nosuch' near this probe point" in err


def test_kernel_functions_are_refused() -> None:
    err = build_error('probe kernel.function("vfs_read") { println(1) }')
    assert "semantic error: probe point not available on this kernel (this kernel has no kprobes and refuses" \
           " fentry under lockdown)" in err
    err = build_error('probe module("ext4").function("*") { println(1) }')
    assert "probe point not available on this kernel" in err


def test_offsets_beyond_the_kernels_int_are_refused(target: Path) -> None:
    m = build(f"probe {fn(target, 'greet')} {{ println(user_string($who - 0x7fff0000)) }}")
    assert fetch_of(m, "greet")[-1] == "u__1=-0x7fff0000(%di):string"
    err = build_error(f"probe {fn(target, 'greet')} {{ println(user_string($who + 0x80000000)) }}")
    assert "offset 2147483648 is too large for a uprobe capture (the kernel takes offsets of at most" \
           " 2147483647 bytes)" in err


def test_parms_capture_every_parameter(target: Path) -> None:
    m = build(f"probe {fn(target, 'greet')} {{ println($$parms$) }}")
    assert fetch_of(m, "greet") == [COMM, "v_who=%di:u64", "u__1=+0(%di):string", "v_n=%si:s32"]
    m = build(f"probe {fn(target, 'small')} {{ println($$vars) }}")  # the same: no locals at entry
    assert fetch_of(m, "small") == [COMM, "v_u=%di:u8", "v_s=%si:s16", "v_w=%dx:u32"]


def test_target_variables_are_read_only(target: Path) -> None:
    for body in ("$a = 5", "$a++"):
        err = build_error(f"probe {fn(target, 'add')} {{ {body} }}", "-g")
        assert "semantic error: writing a target variable is not supported by pystap (handlers run after the" \
               " hit, outside the traced process): identifier '$a'" in err
    err = build_error(f"probe {fn(target, 'add')} {{ $a = 5 }}")
    assert "write to target variable not permitted; need stap -g" in err


def test_return_probes_read_parameters_captured_at_the_entry(target: Path) -> None:
    m = build(f"probe {fn(target, 'greet', '.return')} {{ println(user_string($who), $n, $return) }}")
    ret, entry = m.probes
    assert (ret.handler, ret.params["return"], ret.params["fetch"]) == (
        "probe_0", True, [COMM, "retval=$retval:s64"])
    # a companion entry probe on the same function captures them; the runtime pairs it per thread
    assert (entry.handler, entry.point, entry.params["return"], entry.params["offset"]) == (
        "probe_0_entry", ret.point[: -len(".return")], False, ret.params["offset"])
    assert entry.params["fetch"] == [COMM, "v_who=%di:u64", "u__1=+0(%di):string", "v_n=%si:s32"]
    assert entry.myproc and ret.myproc


def test_capture_limits_and_non_uprobe_families(target: Path) -> None:
    reads = ", ".join(f"user_string($who + {i})" for i in range(40))
    err = build_error(f"probe {fn(target, 'greet')} {{ println({reads}) }}")
    assert "would capture 42 values at each hit (pystapd allows 32); split the probe" in err
    err = build_error("probe process.syscall { println(user_string($arg1)) }")
    assert "user_string() cannot read user memory in a 'process.syscall' probe: only process(...).function," \
           " .statement, .mark and .plt probes capture user memory at the hit" in err
    err = build_error("probe syscall.read { println(user_string($arg2)) }")
    assert "user_string() in a syscall probe can read only the path arguments the kernel captures" in err
