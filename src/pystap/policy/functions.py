"""Function privilege tags: what a built-in or tapset function declares about itself.

SystemTap classifies embedded-C functions by searching their code text for
``/* unprivileged */``, ``/* myproc-unprivileged */`` or ``/* guru */``; a
comment that happens to contain the words changes the policy.  pystap's
functions declare one of these tags as data (a field of the function's
table entry or declaration), and this module holds the one rule that reads
them, so the translator, the documentation and the tests agree.

A function written in the script language carries no tag: it is as
privileged as the functions it calls (checked transitively in
``lang/privcheck.py``).
"""

from __future__ import annotations

import enum

from pystap.privilege import PR_STAPSYS, Level, contains


class FunctionPrivilege(enum.Enum):
    """The four tags; the value is the word used in tables and documentation."""

    UNPRIVILEGED = "unprivileged"  # any level
    MYPROC = "myproc-unprivileged"  # any level; at stapusr only inside the user's own process
    PRIVILEGED = "privileged"  # stapsys and stapdev (the default: untagged means this)
    GURU = "guru"  # needs -g at the call site (or a trusted tapset caller)

    @classmethod
    def parse(cls, value: object) -> FunctionPrivilege:
        """A tag from its enum member or word; anything else is PRIVILEGED (fail closed)."""
        if isinstance(value, cls):
            return value
        if isinstance(value, enum.Enum):  # another module's enum with the same words
            value = value.value
        if isinstance(value, str):
            for tag in cls:
                if tag.value == value or tag.name == value.upper():
                    return tag
        return cls.PRIVILEGED


def allowed_at_level(tag: FunctionPrivilege, level: int) -> bool:
    """May a session at ``level`` call a function with ``tag`` (ignoring -g)?

    stapusr gets only the two unprivileged tags; stapsys and stapdev get every
    function (guru ones still need -g, see :func:`needs_guru`).
    """
    if contains(level, PR_STAPSYS) or contains(level, Level.STAPDEV):
        return True
    return tag in (FunctionPrivilege.UNPRIVILEGED, FunctionPrivilege.MYPROC)


def needs_guru(tag: FunctionPrivilege) -> bool:
    return tag is FunctionPrivilege.GURU


def reads_user_memory(tag: FunctionPrivilege) -> bool:
    """MYPROC functions read the current process's memory: the runtime must check
    that the process belongs to the user before they run (stapusr modules)."""
    return tag is FunctionPrivilege.MYPROC
