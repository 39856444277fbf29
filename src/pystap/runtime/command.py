"""``-c CMD``: the target command, forked early and held at a gate until the probes are armed.

SystemTap starts the command only after the module's probes are registered
and its begin probes ran, so that nothing the command does is missed, and
``target()`` is the command's pid from the first begin probe on.  The child
is therefore forked first and blocks reading one byte from a pipe; whoever
arms the probes (pystapd, for the client) attaches to that pid while the
child still waits, before its exec.  ``release(True)`` lets it exec the
command (argv split like a shell would, no shell run); ``release(False)``
makes it exit without running anything.

Standard library only: ``pystaprun`` forks the command before it asks
pystapd for a grant, so the daemon can attach to the pid.
"""

from __future__ import annotations

import errno
import os
import shlex
import shutil
import signal
import time


class HeldCommand:
    """A forked ``-c`` command waiting at its gate; ``pid`` is ``target()``."""

    def __init__(self, command: str) -> None:
        argv = shlex.split(command)
        if not argv:
            raise OSError(errno.EINVAL, "empty command")
        exe = argv[0] if "/" in argv[0] else shutil.which(argv[0])
        if exe is None or not os.access(exe, os.X_OK):
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))
        self.command = command
        gate_r, gate_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:  # child: wait for the gate, then become the command
            status = 127
            try:
                os.close(gate_w)
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
                    signal.signal(sig, signal.SIG_DFL)  # the command gets default dispositions
                if os.read(gate_r, 1) == b"g":
                    os.execvp(argv[0], argv)  # noqa: S606 - -c runs a program, never a shell
                status = 1
            except OSError as exc:
                os.write(2, f"ERROR: cannot run command '{command}': {exc.strerror}\n".encode())
            finally:
                os._exit(status)
        os.close(gate_r)
        self.pid = pid
        self._gate: int | None = gate_w
        self.status: int | None = None
        try:
            self.pidfd: int | None = os.pidfd_open(pid)
        except OSError:
            self.pidfd = None

    def release(self, go: bool = True) -> None:
        """Open the gate: exec the command (``go``) or make the child exit unrun."""
        if self._gate is None:
            return
        try:
            os.write(self._gate, b"g" if go else b"x")
        except OSError:
            pass
        finally:
            os.close(self._gate)
            self._gate = None

    def stop(self, grace: float = 2.0) -> int | None:
        """Reap the command, terminating it first when it is still running; its wait status."""
        self.release(go=False)
        if self.status is None:
            try:
                done, status = os.waitpid(self.pid, os.WNOHANG)
                if done == 0:
                    os.kill(self.pid, signal.SIGTERM)
                    deadline = time.monotonic() + grace
                    while done == 0 and time.monotonic() < deadline:
                        time.sleep(0.01)
                        done, status = os.waitpid(self.pid, os.WNOHANG)
                    if done == 0:
                        os.kill(self.pid, signal.SIGKILL)
                        done, status = os.waitpid(self.pid, 0)
                self.status = status
            except ChildProcessError:
                self.status = -1
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        return self.status
