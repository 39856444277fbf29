"""Copying syntax trees: one handler body can become several derived probes.

A user probe with three probe points (or one that matches a wildcard)
becomes three derived probes, each with its own locals, types and
optimisation; so each gets its own copy of the body.  Tokens are shared
(they are immutable); pass-2 links (``ref`` fields) are reset, because the
copy is resolved afresh.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any, TypeVar

from pystap.lang.ast import Node

N = TypeVar("N", bound=Node)

_FIELDS: dict[type, tuple[tuple[str, bool, Any, Any], ...]] = {}


def _plan(cls: type) -> tuple[tuple[str, bool, Any, Any], ...]:
    """Per class: (field name, is a pass-2 link, default factory, default value)."""
    plan = _FIELDS.get(cls)
    if plan is None:
        out = []
        for f in fields(cls):
            is_ref = bool(f.metadata.get("ref"))
            factory = f.default_factory if f.default_factory is not MISSING else None
            default = f.default if f.default is not MISSING else None
            out.append((f.name, is_ref, factory, default))
        plan = _FIELDS[cls] = tuple(out)
    return plan


def clone(node: N) -> N:
    """A structural copy of ``node`` (iterative, so deep trees are fine)."""
    memo: dict[int, Node] = {}
    root = _shallow(node)
    memo[id(node)] = root
    stack: list[tuple[Node, Node]] = [(node, root)]
    while stack:
        src, dst = stack.pop()
        for name, is_ref, factory, default in _plan(type(src)):
            if is_ref:
                object.__setattr__(dst, name, factory() if factory is not None else default)
                continue
            if name == "tok":
                continue
            value = getattr(src, name)
            if isinstance(value, Node):
                new = _shallow(value)
                stack.append((value, new))
                object.__setattr__(dst, name, new)
            elif isinstance(value, list):
                new_list: list[Any] = []
                for item in value:
                    if isinstance(item, Node):
                        new = _shallow(item)
                        stack.append((item, new))
                        new_list.append(new)
                    else:
                        new_list.append(item)
                object.__setattr__(dst, name, new_list)
    return root


def _shallow(node: N) -> N:
    cls = type(node)
    new = cls.__new__(cls)
    new.__dict__.update(node.__dict__)
    return new
