"""Guru-only constructs: what needs ``-g``, and SystemTap's message for each.

One table, read by the pass-2 privilege check (``lang/privcheck.py``) and by
the generated user documentation, so the two cannot disagree.  ``-g`` is
itself stapdev-only, so every construct here is refused at stapusr and
stapsys, and at stapdev without ``-g``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GuruConstruct:
    key: str
    construct: str  # as the documentation names it
    message: str  # SystemTap's error text


GURU_CONSTRUCTS: tuple[GuruConstruct, ...] = (
    GuruConstruct("embedded-code", "embedded code `%{ … %}`",
                  "embedded code in unprivileged script; need stap -g"),
    GuruConstruct("embedded-expr", "embedded expression",
                  "embedded expression code in unprivileged script; need stap -g"),
    GuruConstruct("@const", '`@const("…")`', "using @const operator not permitted; need stap -g"),
    GuruConstruct("@kregister", "`@kregister(N)`", "using @kregister operator not permitted; need stap -g"),
    GuruConstruct("@kderef", "`@kderef(size, addr)`", "using @kderef operator not permitted; need stap -g"),
    GuruConstruct("write-target", "assignment to `$var` or `@var`",
                  "write to target variable not permitted; need stap -g"),
    GuruConstruct("write-cast", "assignment through `@cast`",
                  "write to @cast context variable not permitted; need stap -g"),
    GuruConstruct("write-autocast", "assignment through an autocast", "write not permitted; need stap -g"),
    GuruConstruct("write-tracepoint", "assignment to a tracepoint variable",
                  "write to tracepoint variable '{name}' not permitted; need stap -g"),
    GuruConstruct("write-verdict", "assignment to a netfilter `$verdict`",
                  "write to netfilter verdict requires guru mode; need stap -g"),
    GuruConstruct("absolute-probe", "probes on absolute kernel addresses",
                  "absolute statement probe in unprivileged script; need stap -g"),
)

MESSAGES: dict[str, str] = {c.key: c.message for c in GURU_CONSTRUCTS}
