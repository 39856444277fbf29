"""``kernel.trace("SUBSYS:EVENT")`` / ``kernel.tracepoint("NAME")``: kernel tracepoints.

Tracepoints need no debuginfo, only the event list the kernel publishes in
tracefs.  When tracefs is readable the name (a glob) is expanded against it
and the event's fields become target variables (``$field``, read-only);
when it is not (the translator runs as the user; tracefs is root-only), a
literal name is resolved from the kernel's BTF, which every user can read
(:mod:`pystap.probes.btf_events`; the loader checks the event again on the
root side), and a glob is refused.
"""

from __future__ import annotations

import fnmatch
import os
from typing import Any

from pystap.lang.ast import ProbePoint, Type
from pystap.lang.diagnostics import SemanticError
from pystap.probes import btf_events
from pystap.probes.registry import STR, BuildContext, Built, shape

EVENT_DIRS = ("/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events")


def _events_dir() -> str | None:
    for d in EVENT_DIRS:
        if os.path.isdir(d) and os.access(d, os.R_OK | os.X_OK):
            return d
    return None


def list_tracepoints(events: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    try:
        systems = sorted(os.listdir(events))
    except OSError:
        return out
    for system in systems:
        sdir = os.path.join(events, system)
        if not os.path.isdir(sdir):
            continue
        try:
            names = sorted(os.listdir(sdir))
        except OSError:
            continue
        out.extend((system, n) for n in names if os.path.isdir(os.path.join(sdir, n)))
    return out


def event_fields(events: str, system: str, name: str) -> dict[str, Type]:
    """The event's own fields (not the common_ ones), from its ``format`` file."""
    fields: dict[str, Type] = {}
    try:
        with open(os.path.join(events, system, name, "format"), encoding="latin-1") as f:
            text = f.read(65536)
    except OSError:
        return fields
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("field:"):
            continue
        decl = line[len("field:") :].split(";", 1)[0].strip()
        ident = decl.split()[-1] if decl.split() else ""
        ident = ident.split("[", 1)[0]
        if not ident or ident.startswith("common_"):
            continue
        is_string = "char" in decl and ("[" in decl or "__data_loc" in decl)
        fields["$" + ident] = Type.STRING if is_string else Type.LONG
    return fields


def _btf_fields(system: str, event: str) -> dict[str, Type]:
    """Fields of ``system:event`` from the kernel's BTF (readable by every user), when tracefs is not."""
    try:
        found = btf_events.event_fields(event)
    except btf_events.BtfEventError as exc:
        raise SemanticError(f"cannot find the fields of tracepoint '{system}:{event}': tracefs is not "
                            f"readable and {exc}") from None
    if found is None:
        raise SemanticError(f"cannot find tracepoint '{system}:{event}': tracefs is not readable and the "
                            f"kernel's BTF has no record type 'trace_event_raw_{event}' (an event defined "
                            "from a shared event class needs tracefs to resolve; run as a user who can "
                            "read /sys/kernel/tracing)")
    return {"$" + name: Type.STRING if kind == "string" else Type.LONG for name, kind in found.items()}


def _field_resolver(fields: dict[str, Type]):
    def resolve(name: str, write: bool) -> Type:
        if name not in fields:
            raise SemanticError("unable to find tracepoint variable '" + name + "'")
        if write:
            raise SemanticError(f"write to tracepoint variable '{name}' not permitted; need stap -g")
        return fields[name]

    return resolve


def _build(kind: str):
    def build(pp: ProbePoint, args: dict[str, Any], ctx: BuildContext) -> list[Built]:
        pattern = args[kind]
        if kind == "trace" and ":" in pattern:
            sys_pat, ev_pat = pattern.split(":", 1)
        else:
            sys_pat, ev_pat = "*", pattern
        events = _events_dir()
        glob = any(ch in pattern for ch in "*?[")
        if events is None:
            if glob or sys_pat == "*":
                raise SemanticError(
                    f"cannot list kernel tracepoints (tracefs is not readable) for '{pattern}'"
                )
            fields = _btf_fields(sys_pat, ev_pat)
            return [
                Built(
                    point=f'kernel.trace("{sys_pat}:{ev_pat}")',
                    family="kernel.trace",
                    params={"system": sys_pat, "event": ev_pat},
                    context_vars=fields,
                    target=_field_resolver(fields),
                )
            ]
        out = []
        for system, name in list_tracepoints(events):
            if fnmatch.fnmatchcase(system, sys_pat) and fnmatch.fnmatchcase(name, ev_pat):
                fields = event_fields(events, system, name)
                out.append(
                    Built(
                        point=f'kernel.trace("{system}:{name}")',
                        family="kernel.trace",
                        params={"system": system, "event": name},
                        context_vars=fields,
                        target=_field_resolver(fields),
                    )
                )
        return out

    return build


SHAPES = [
    shape(f"kernel.trace({STR})", "kernel.trace", _build("trace")),
    shape(f"kernel.tracepoint({STR})", "kernel.trace", _build("tracepoint")),
]
