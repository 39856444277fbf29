"""The session engine with hand-written module code (the module ABI)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.runtime.conftest import module, run

from pystap import modfile
from pystap.privilege import PR_NONE, PR_STAPDEV, PR_STAPSYS, PR_STAPUSR

pytestmark = pytest.mark.timeout(30)

BEGIN_END = textwrap.dedent('''
    G_n = 0
    _GLOBALS = {"n": ("G_n", "long", 0)}
    def probe_0(c):
        c.w("begin\\n")
        _b_exit(c)
    def probe_1(c):
        c.w("end %d\\n" % G_n)
''')


@pytest.mark.parametrize(
    ("level", "creds", "name"),
    [("stapusr", PR_NONE, "unknown"), ("stapsys", PR_STAPUSR, "stapusr"),
     ("stapdev", PR_STAPUSR | PR_STAPSYS, "stapsys")],
)
def test_init_check_refuses(level, creds, name):
    mod = module(BEGIN_END, [("begin", "probe_0", {}), ("end", "probe_1", {})], privilege=level)
    rc, out, err = run(mod, credentials=creds)
    assert (rc, out) == (1, "")
    assert err == (f"ERROR: Your privilege credentials ({name}) are insufficient to run this module"
                   f" ({level} required).\n")


def test_init_check_accepts_and_globals():
    mod = module(BEGIN_END, [("begin", "probe_0", {}), ("end", "probe_1", {})], privilege="stapsys")
    assert run(mod, credentials=PR_STAPUSR | PR_STAPSYS) == (0, "begin\nend 0\n", "")
    assert run(mod, credentials=PR_STAPDEV | PR_STAPSYS | PR_STAPUSR, globals={"n": "0x10"}) == \
        (0, "begin\nend 16\n", "")


def test_sequence_order_ties_in_script_order():
    code = "".join(f"def probe_{i}(c):\n    c.w('{i}')\n" for i in range(5)) + "def probe_5(c):\n    _b_exit(c)\n"
    probes = [("begin", "probe_0", {"sequence": 5}), ("begin", "probe_1", {"sequence": -1}),
              ("begin", "probe_2", {}), ("begin", "probe_3", {"sequence": -1}), ("end", "probe_4", {}),
              ("begin", "probe_5", {"sequence": 9})]
    assert run(module(code, probes)) == (0, "13204", "")


def test_unknown_function_and_broken_code_are_refused():
    rc, _, err = run(module("def probe_0(c):\n    _b_no_such_thing(c)\n", [("begin", "probe_0", {})]))
    assert rc == 1 and "does not provide function 'no_such_thing'" in err
    rc, _, err = run(module("def probe_0(c):\n    return (\n", [("begin", "probe_0", {})]))
    assert rc == 1 and "module code does not compile" in err
    rc, _, err = run(module("x = 1\n", [("begin", "probe_0", {})]))
    assert rc == 1 and "missing handler 'probe_0'" in err
    rc, _, err = run(module("import os\n", [("begin", "probe_0", {})]))
    assert rc == 1 and "failed to initialise" in err


def test_module_code_gets_no_python_builtins():
    code = "def probe_0(c):\n    c.w(str(open))\n"
    rc, _, err = run(module(code, [("begin", "probe_0", {})]))
    assert rc == 1
    assert "name 'open' is not defined" in err or "NameError" in err or "ERROR" in err


class FakeEvents:
    """An EventSource: a pipe that is readable while batches remain."""

    def __init__(self, batches):
        self.batches = list(batches)
        self.r, self.w = os.pipe()
        os.write(self.w, b"x")

    def fileno(self):
        return self.r

    def read_batch(self):
        if not self.batches:
            os.read(self.r, 1)
            return []
        return self.batches.pop(0)

    def close(self):
        os.close(self.r)
        os.close(self.w)


def test_event_source_dispatch():
    code = textwrap.dedent('''
        G_a = _Map("a", 1, "stats")
        def probe_0(c):
            G_a.add(c.tid, c.fields["n"])
            if c.fields["n"] == 3:
                _b_exit(c)
        def probe_1(c):
            for k in _keys(G_a, 1, 1, None, None, None):
                c.w("%d %d %s\\n" % (k, _agg(G_a.stat(k), "@sum"), _b_execname(c)))
    ''')
    events = FakeEvents([[(0, {"tid": 7, "n": 1, "comm": "x"}), (0, {"tid": 5, "n": 2, "comm": "x"})],
                         [(9, {"tid": 1, "n": 5}), (0, {"tid": 7, "n": 3, "comm": "y"}), (0, {"tid": 7, "n": 99})]])
    try:
        rc, out, err = run(module(code, [("process.syscall", "probe_0", {}), ("end", "probe_1", {})]), events=events)
    finally:
        events.close()
    assert out == f"5 2 {_comm()}\n7 4 {_comm()}\n"
    assert rc == 0  # one record named an unknown probe id: counted as skipped, not an error
    assert err == "WARNING: Number of errors: 0, skipped probes: 1\n"


def _comm():
    with open(f"/proc/{os.getpid()}/comm") as f:
        return f.read().strip()


def test_timer_counts_skipped_ticks():
    code = textwrap.dedent('''
        G_n = 0
        def probe_0(c):
            global G_n
            G_n = _add(G_n, 1)
            if G_n == 1:
                _b_start_stopwatch(c, "w")
                while _b_read_stopwatch_ms(c, "w") < 30:
                    pass
            if G_n == 3:
                _b_exit(c)
        def probe_1(c):
            c.w("n=%d\\n" % G_n)
    ''')
    mod = module(code, [("timer", "probe_0", {"interval_ns": 2_000_000}), ("end", "probe_1", {})])
    rc, out, err = run(mod)
    assert (rc, out) == (0, "n=3\n")
    assert err.startswith("WARNING: Number of skipped timer ticks: ")
    assert int(err.split(": ")[2].split()[0]) >= 5


def test_output_switch_file(tmp_path):
    code = 'def probe_0(c):\n    c.w("a\\n")\n    _b_switch_file(c)\n    c.w("b\\n")\n    _b_exit(c)\n'
    out = tmp_path / "o"
    assert run(module(code, [("begin", "probe_0", {})]), output=str(out))[0] == 0
    assert out.read_text() == "a\n"
    assert (tmp_path / "o.1").read_text() == "b\n"


def test_bad_output_path(tmp_path):
    rc, _, err = run(module(BEGIN_END, [("begin", "probe_0", {})]), output=str(tmp_path / "no" / "such"))
    assert rc == 1 and "cannot open output file" in err


RUNNER = textwrap.dedent('''
    import sys
    from pystap.modfile import Module, ProbeEntry
    from pystap.runtime import RunOptions, run_module
    code = (
        "def probe_0(c):\\n    c.w('ready\\\\n')\\n"
        "def probe_1(c):\\n    c.w('end target=%d\\\\n' % _b_target(c))\\n"
    )
    m = Module(name="stap_t", translator="t", privilege="stapusr", release="r", arch="x", script_digest="d",
               probes=(ProbeEntry(0, "begin", "begin", "probe_0", {}), ProbeEntry(1, "end", "end", "probe_1", {})),
               code=code)
    cmd = sys.argv[1] if len(sys.argv) > 1 else None
    sys.exit(run_module(m, credentials=2, options=RunOptions(command=cmd)))
''')


def test_sigint_and_sigterm_run_end_probes():
    for sig in (signal.SIGINT, signal.SIGTERM):
        proc = subprocess.Popen([sys.executable, "-c", RUNNER], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            assert proc.stdout.readline() == "ready\n"
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert (proc.returncode, out, err) == (0, "end target=0\n", "")


def test_command_target_and_end_when_it_exits(tmp_path):
    marker = tmp_path / "ran"
    proc = subprocess.run([sys.executable, "-c", RUNNER, f"touch {marker}"], capture_output=True, text=True,
                          timeout=20, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "ready"
    assert lines[1].startswith("end target=") and int(lines[1].split("=")[1]) > 0
    assert marker.exists()


def test_module_file_fuzz(tmp_path):
    """Truncations and corruptions of a real module are clear errors, never tracebacks."""
    mod = module(BEGIN_END, [("begin", "probe_0", {}), ("end", "probe_1", {})])
    data = modfile.dump(mod)
    from pystap.translate.module import read_module_file, write_module

    for cut in range(0, len(data), max(1, len(data) // 60)):
        path = write_module(data[:cut], tmp_path / "m.stapmod")
        with pytest.raises(modfile.ModuleFormatError):
            read_module_file(path)
    for pos in range(0, len(data), max(1, len(data) // 60)):
        for byte in (0x00, 0x22, 0x7B, 0xFF):
            bad = data[:pos] + bytes([byte]) + data[pos + 1:]
            try:
                loaded = modfile.load(bad)
            except modfile.ModuleFormatError:
                continue
            # still valid JSON of the right shape: the runtime must refuse or run it cleanly
            rc, _, _ = run(loaded)
            assert rc in (0, 1)
    newer = data.replace(b'"version": 1', b'"version": 2')
    with pytest.raises(modfile.ModuleFormatError, match="unsupported module format version 2"):
        modfile.load(newer)
    link = tmp_path / "link.stapmod"
    link.symlink_to(tmp_path / "m.stapmod")
    with pytest.raises(OSError):
        read_module_file(link)


def test_maxskipped_stops_the_session():
    code = "def probe_0(c):\n    pass\ndef probe_1(c):\n    c.w('end')\ndef probe_2(c):\n    c.w('error probe')\n"
    events = FakeEvents([[(77, {})] * 5])
    try:
        rc, out, err = run(module(code, [("process.syscall", "probe_0", {}), ("end", "probe_1", {}),
                                         ("error", "probe_2", {})]), events=events, limits={"MAXSKIPPED": 3})
    finally:
        events.close()
    assert (rc, out) == (1, "error probe")
    assert err == ("ERROR: Skipped too many probes, check MAXSKIPPED or try again with stap -t for more details.\n"
                   "WARNING: Number of errors: 1, skipped probes: 4\n")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_reader_never_crashes_on_random_bytes(data):
    try:
        modfile.load(data)
    except modfile.ModuleFormatError:
        pass


def test_code_and_header_privilege_must_agree():
    code = "_PRIVILEGE = 8\ndef probe_0(c):\n    c.w('x')\n    _b_exit(c)\n"
    rc, out, err = run(module(code, [("begin", "probe_0", {})], privilege="stapusr"))
    assert (rc, out) == (1, "")
    assert "another privilege level than its header declares" in err
    assert run(module(code, [("begin", "probe_0", {})], privilege="stapdev")) == (0, "x", "")
