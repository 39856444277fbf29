"""``pystaprun MODULE [var=value ...]``: run a compiled module (argv → pystap.loader.client).

Options are staprun's where they make sense: ``-o FILE``, ``-c CMD``,
``-x PID``, ``-v`` (repeatable), ``-T MS``; plus ``--socket`` to reach a
pystapd on another path (also ``PYSTAP_SOCKET``).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from pystap.loader.client import RunRequest, run

_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", re.DOTALL)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"ERROR: {message}", file=sys.stderr)
        raise SystemExit(1)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pystaprun", description="Run a pystap module (through pystapd unless root).")
    parser.add_argument("-v", dest="verbose", action="count", default=0, help="more verbose output")
    parser.add_argument("-o", dest="output", type=Path, help="send the module's output to FILE")
    parser.add_argument("-c", dest="command", help="start CMD and make it the target process")
    parser.add_argument("-x", dest="target_pid", type=int, help="make PID the target process")
    parser.add_argument("-T", dest="timeout_ms", type=int, help="output flush timeout in milliseconds")
    parser.add_argument("--socket", type=Path,
                        help="pystapd socket (default $PYSTAP_SOCKET or the system one)")
    parser.add_argument("module", help="module file, or a bare NAME for the blessed directory")
    parser.add_argument("assignments", nargs="*", metavar="var=value", help="initial values of globals")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command is not None and args.target_pid is not None:
        print("ERROR: You can't specify the '-c' and '-x' options together.", file=sys.stderr)
        return 1
    if args.target_pid is not None and args.target_pid <= 0:
        print(f"ERROR: invalid target process id {args.target_pid}", file=sys.stderr)
        return 1
    if args.timeout_ms is not None and args.timeout_ms <= 0:
        print(f"ERROR: invalid timeout {args.timeout_ms}", file=sys.stderr)
        return 1
    assignments: dict[str, str] = {}
    for item in args.assignments:
        match = _ASSIGNMENT.fullmatch(item)
        if match is None:
            print(f"ERROR: invalid module option '{item}' (expected var=value)", file=sys.stderr)
            return 1
        assignments[match.group(1)] = match.group(2)
    request = RunRequest(
        module=args.module, globals=assignments, output=args.output, command=args.command,
        target_pid=args.target_pid, verbose=args.verbose, timeout_ms=args.timeout_ms, socket=args.socket,
    )
    try:
        return run(request)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
