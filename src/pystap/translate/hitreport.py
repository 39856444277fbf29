"""What ``-t``'s probe hit report says about each probe besides its counters.

SystemTap prints, at the end of a ``-t`` session, one line per probe that ran::

    PP, (LOCATION), hits: N, cycles: MINmin/AVGavg/MAXmax, variance: V, from: A from: B, index: I

``PP`` is the resolved probe point, ``LOCATION`` the source position the
probe came from and the ``from:`` list its derivation.  The runtime knows
only the manifest, so pass 3 records ``[LOCATION, DERIVATION]`` per probe in
the module (``options["timing"]``) -- only with ``-t``, so other modules stay
byte-identical.  The rules, as ``stap -p3 -t`` generates them:

* LOCATION is the ``probe`` keyword of the user's probe; for a probe reached
  through aliases it is the probe point that named the innermost alias (the
  ``b`` of ``probe a = b``, or the user's own point).
* the derivation lists, innermost first, each alias expansion (the alias name
  that matched) and then the first probe point the user wrote, without
  ``?``/``!`` or conditions.  Probes that share one declaration share its
  first point (``probe begin, end`` gives ``from: begin`` for both).
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from pystap.lang import ast
from pystap.lang.aliases import AliasEntry, alias_text, component_text


def _plain(pp: ast.ProbePoint, count: int | None = None) -> str:
    comps = pp.components if count is None else pp.components[:count]
    return ".".join(component_text(c) for c in comps)


def _names(pattern: ast.ProbePoint, name: ast.ProbePoint) -> bool:
    """Whether the (possibly wildcarded) point ``pattern`` reaches the alias ``name``."""
    n = len(name.components)
    return len(pattern.components) >= n and fnmatchcase(_plain(name), _plain(pattern, n))


class _Index:
    """The aliases and probes of the included files, found by the texts pass 2 records."""

    def __init__(self, files: list[ast.StapFile]) -> None:
        self.steps: dict[str, tuple[ast.ProbeAlias, ast.ProbePoint]] = {}
        self.probes: dict[object, ast.Probe] = {}
        for f in files:
            for alias in f.aliases:
                for name in alias.names:
                    self.steps.setdefault(alias_text(AliasEntry(alias, name, f)), (alias, name))
            for probe in f.probes:
                self.probes.setdefault(probe.tok, probe)

    def label(self, p: ast.DerivedProbe) -> list[str]:
        steps = [self.steps.get(s) for s in p.derivation[:-1]]
        parts = [f" from: {_plain(found[1]) if found else text.split(' ', 1)[0]}"
                 for found, text in zip(steps, p.derivation[:-1], strict=True)]
        parts.append(f" from: {_plain(p.origin)}")
        location = p.tok.loc
        if steps and steps[0] is not None:
            inner = steps[0][1]
            outer = steps[1][0].points if len(steps) > 1 and steps[1] is not None else None
            if outer is None:
                user = self.probes.get(p.tok)
                outer = user.points if user is not None else [p.origin]
            site = next((pt for pt in outer if _names(pt, inner)), None)
            if site is not None:
                location = site.tok.loc
        return [str(location), "".join(parts)]


def probe_labels(script: ast.ElaboratedScript, probes: list[ast.DerivedProbe | None]) -> list[list[str]]:
    """``[location, derivation]`` for each module probe (in manifest order)."""
    index = _Index(list(script.files))
    return [index.label(p) if p is not None else ["", ""] for p in probes]
