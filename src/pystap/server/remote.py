"""``pystap --use-server``: passes 1-4 on a compile server, pass 5 here.

The request carries exactly what the server needs (SystemTap's
``server_args``, spec §2.5), built from the parsed command line:

* the options of :data:`FORWARDED`, in command-line order, plus
  ``--privilege`` when pass 5 selected it for this user;
* the script file as ``script/NAME`` (stdin as ``script/-``);
* each ``-I DIR`` as ``tapset/N`` with DIR's ``*.stp``/``*.stpm`` files, read
  through the directory's descriptor with ``O_NOFOLLOW`` (links are not sent);
* the target (``-r``/``-a``, else this host) and the allowlisted locale
  variables (:func:`pystap.policy.environment.client_locale`).

Nothing else of the client's environment is sent.  An option that is not
classified here is refused (new options must be classified, as in the policy
table).  The server's stdout and stderr are replayed and its status is the
exit status; a module comes back with the server's ``.sgn``.  ``-p4`` saves
both in the current directory and prints the module's path; pass 5 runs the
module through the normal pass-5 path (``pystapd`` for everyone but root),
so the loader's ladder judges the server's signature.  The client itself
never decides anything by that signature.
"""

from __future__ import annotations

import errno
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from pystap.policy.environment import client_locale
from pystap.server import protocol
from pystap.server.spec import ServerSpec, SpecError, complete, known_servers, parse_spec
from pystap.signing import safe_files

FORWARDED = frozenset({
    "-v", "-p", "-e", "-m", "-g", "-u", "-w", "-W", "-c", "-x", "-D", "-o", "-s", "-b", "-l", "-L",
    "--privilege", "--unprivileged", "--compatible", "--semantic-keep-going", "--skip-badvars", "--vp",
    "--suppress-time-limits", "--dump-probe-types", "--dump-probe-aliases", "--dump-functions",
    "-t", "-E", "-d", "-P", "--prologue-searching", "-q", "--check-version", "--suppress-handler-errors",
    "--modinfo",
})
PACKED = frozenset({"-I"})  # sent with the request's files
TARGET = frozenset({"-r", "-a"})  # sent as the request's sysinfo
LOCAL = frozenset({  # pass 5 or the client's own business: never sent
    "-G", "-T", "-k", "--disable-cache", "--clean-cache", "--use-server", "--trust-servers", "--list-servers",
    "-F", "-S", "--tmpdir", "--poison-cache", "--download-debuginfo", "--save-uprobes", "--ldd",
    "--all-modules", "--runtime", "--bpf", "--use-server-on-error", "--rlimit-as", "--rlimit-cpu",
    "--rlimit-nproc", "--rlimit-stack", "--rlimit-fsize",
})
REFUSED = frozenset({"--sign-key", "--sign-module", "--no-sign", "--client-options"})  # the server signs
MAX_SCRIPT = 16 * 1024 * 1024
MAX_TAPSET_FILE = 4 * 1024 * 1024
MSG_NO_SERVER = "Unable to connect to a server."


class RemoteError(Exception):
    """The request cannot be made; the message is printed as is."""


# -- what is sent -------------------------------------------------------------------------------------


def _script_name(path: str) -> str:
    if path == "-":
        return "script/-"
    base = os.path.basename(path)
    name = f"script/{base}"
    return name if protocol.FILE_NAME.fullmatch(name) else "script/script.stp"


def _read_script(o: Any, stdin: TextIO) -> bytes:
    path = o.script_file
    if path == "-":
        source: BinaryIO | None = getattr(stdin, "buffer", None)
        if source is not None:
            data = source.read(MAX_SCRIPT + 1)
        else:
            data = stdin.read().encode("latin-1", "replace")
    else:
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_SCRIPT + 1)
        except OSError:
            raise RemoteError(f"Input file '{path}' is missing.\nPass 1: parse failed.  [man error::pass1]") \
                from None
    if len(data) > MAX_SCRIPT:
        raise RemoteError(f"Script file '{path}' is too large.")
    return data


def read_tapset_dir(directory: str, rel: str, warnings: list[str]) -> dict[str, bytes]:
    """The ``*.stp``/``*.stpm`` files of one ``-I`` directory (flat, as the loader reads it)."""
    if os.path.realpath(directory) == "/":
        raise RemoteError("Unable to send / to the server")
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        warnings.append(f"WARNING: cannot read tapset directory {directory}: {exc.strerror or exc}")
        return {}
    files: dict[str, bytes] = {}
    try:
        for name in sorted(os.listdir(dir_fd)):
            if not name.endswith((".stp", ".stpm")):
                continue
            path = os.path.join(directory, name)
            if not protocol.FILE_NAME.fullmatch(f"{rel}/{name}"):
                warnings.append(f"WARNING: not sending {path} to the server: unsupported file name")
                continue
            try:
                files[f"{rel}/{name}"] = safe_files.read_regular(name, MAX_TAPSET_FILE, dir_fd=dir_fd,
                                                                 what=path)
            except OSError as exc:
                reason = "it is a symbolic link" if exc.errno == errno.ELOOP else (exc.strerror or str(exc))
                warnings.append(f"WARNING: not sending {path} to the server: {reason}")
    finally:
        os.close(dir_fd)
    return files


def build_request(o: Any, stdin: TextIO, warnings: list[str]) -> protocol.Request:
    """The request for this command line (see the module documentation)."""
    from pystap.privilege import PR_STAPDEV, name

    options: list[tuple[str, str | None]] = []
    files: dict[str, bytes] = {}
    count = 0
    for option, value in o.raw:
        if option in FORWARDED:
            options.append((option, value))
        elif option in PACKED:
            rel = f"tapset/{count}"
            count += 1
            if not protocol.TAPSET_DIR.fullmatch(rel):
                raise RemoteError("Too many -I directories for a compile server")
            files.update(read_tapset_dir(value, rel, warnings))
            options.append(("-I", rel))
        elif option in TARGET or option in LOCAL:
            continue
        elif option in REFUSED:
            raise RemoteError(f"You can't specify {option} and --use-server together: the compile server "
                              "signs the modules it builds.")
        else:
            raise RemoteError(f"ERROR: {option} cannot be used with --use-server")
    if not o.privilege_given and o.privilege != PR_STAPDEV:
        options.append(("--privilege", name(o.privilege)))  # selected for this user (pass 5)
    script = None
    if o.script is None and o.script_file is not None:
        script = _script_name(o.script_file)
        files[script] = _read_script(o, stdin)
    return protocol.Request(
        release=o.release or os.uname().release,
        arch=o.arch or platform.machine(),
        options=tuple(options),
        script=script,
        args=tuple(o.args),
        files=files,
        locale=client_locale(os.environ),
    )


# -- where it is sent ----------------------------------------------------------------------------------


def server_specs(values: list[str]) -> list[ServerSpec]:
    """The servers ``--use-server`` names, completed from the known-servers files."""
    known, problems = known_servers()
    specs: list[ServerSpec] = []
    for value in values:
        if value == "":
            specs.extend(k for k in known if k.port is not None)
            continue
        spec = parse_spec(value)
        found = complete(spec, known)
        if not found:
            raise SpecError(f"Unable to find a suitable compile server.  [man stap-server]\n"
                            f"No servers matched the selection criteria of {value}.")
        specs.extend(found)
    if not specs and problems:
        raise SpecError("\n".join(problems))
    return specs


def _write(out: TextIO, data: bytes) -> None:
    if not data:
        return
    out.flush()
    buffer = getattr(out, "buffer", None)
    if buffer is not None:
        buffer.write(data)
        buffer.flush()
    else:
        out.write(data.decode("utf-8", "replace"))


def _compile(specs: list[ServerSpec], body: bytes, verbose: int, err: TextIO) -> protocol.Response:
    from pystap.server import tlsclient
    from pystap.signing import SslPeerStore
    from pystap.signing.certificates import show_fingerprint

    store = SslPeerStore.combined()
    failures: list[str] = []
    for spec in specs:
        try:
            sock, peer = tlsclient.open_connection(spec)
        except tlsclient.ConnectError as exc:
            failures.append(str(exc))
            continue
        try:
            problem = tlsclient.trust_problem(peer, store)
            if problem is not None:
                failures.append(problem)
                continue
            warning = tlsclient.hostname_warning(peer)
            if warning:
                err.write(warning + "\n")
            if verbose:
                err.write(f"Using the compile server at {peer.shown_address} (SHA-256 fingerprint "
                          f"{show_fingerprint(peer.fingerprint)}).\n")
            try:
                return protocol.decode_response(tlsclient.exchange(sock, body))
            except (tlsclient.ConnectError, protocol.ProtocolError) as exc:
                raise RemoteError(f"The compile server at {peer.shown_address} failed: {exc}") from None
        finally:
            sock.close()
    if store.warnings and failures:
        failures.extend(f"WARNING: {w}" for w in store.warnings)
    raise RemoteError("\n".join([*failures, MSG_NO_SERVER]))


# -- what comes back ------------------------------------------------------------------------------------


def _save(directory: Path, response: protocol.Response) -> Path:
    assert response.module_name is not None and response.module is not None and response.signature is not None
    dir_fd = safe_files.open_dir(directory)
    try:
        safe_files.write_atomic(dir_fd, response.module_name, response.module, 0o644)
        safe_files.write_atomic(dir_fd, response.module_name + ".sgn", response.signature, 0o644)
    finally:
        os.close(dir_fd)
    return directory / response.module_name


def _wants_module(o: Any) -> bool:
    return o.last_pass >= 4 and o.list_probes is None and o.dump is None


def compile_and_run(o: Any, stdin: TextIO, out: TextIO, err: TextIO) -> int:
    warnings: list[str] = []
    request = build_request(o, stdin, warnings)
    for warning in warnings:
        err.write(warning + "\n")
    specs = server_specs(o.use_server)
    if not specs:
        raise RemoteError(f"Unable to find a suitable compile server.  [man stap-server]\n{MSG_NO_SERVER}")
    response = _compile(specs, protocol.encode_request(request), o.verbose, err)
    _write(out, response.stdout)
    _write(err, response.stderr)
    if response.rc != 0 or not _wants_module(o):
        return 1 if response.rc != 0 else 0
    if response.module is None:
        err.write("No module was returned by the server.\n")
        return 1
    from pystap import modfile

    try:
        module = modfile.load(response.module)
    except modfile.ModuleFormatError as exc:
        err.write(f"The server returned an invalid module: {exc}\n")
        return 1
    if o.last_pass == 4 or o.module is not None:
        path = _save(Path.cwd(), response)
        if o.last_pass == 4:
            out.write(f"{path}\n")
            out.flush()
            return 0
        return _run_pass5(o, module, path, out, err)
    scratch = Path(tempfile.mkdtemp(prefix="pystap-remote-"))
    try:
        return _run_pass5(o, module, _save(scratch, response), out, err)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run_pass5(o: Any, module: Any, path: Path, out: TextIO, err: TextIO) -> int:
    from pystap.translate.driver import run_pass5

    if o.verbose:
        err.write("Pass 5: starting run.\n")
        err.flush()
    rc = run_pass5(o, module, path, out, err)
    if rc != 0:
        err.write("Pass 5: run failed.  [man error::pass5]\n")
    elif o.verbose:
        err.write("Pass 5: run completed\n")
    return rc


def run_remote(o: Any, stdin: TextIO, out: TextIO, err: TextIO) -> int | None:
    """``--trust-servers``, ``--list-servers`` and ``--use-server`` for the ``pystap`` command.

    Returns the exit status, or None when a script remains to be compiled
    locally (trust or listing requested without ``--use-server``).
    """
    try:
        if o.trust_servers is not None:
            from pystap.server.trust import manage_trust

            rc = manage_trust(o.trust_servers, server_specs(o.use_server), stdin=stdin, err=err,
                              verbose=o.verbose)
            if rc != 0:
                return rc
        if o.list_servers is not None:
            from pystap.server.listing import list_servers

            list_servers(o.list_servers, o.use_server, release=o.release or os.uname().release,
                         arch=o.arch or platform.machine(), err=err)
        if o.script is None and o.script_file is None and o.list_probes is None and o.dump is None:
            return 0
        if not o.use_server:
            return None
        return compile_and_run(o, stdin, out, err)
    except (RemoteError, SpecError) as exc:
        err.write(f"{exc}\n")
        return 1
