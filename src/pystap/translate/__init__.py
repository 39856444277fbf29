"""Passes 3-4: code generation and module packaging.

Public API::

    build(elaborated: ElaboratedScript, options) -> (Module, bytes)

``options`` is a :class:`BuildOptions` (or an object/mapping with the same
names): ``module_name`` (``-m``), ``defines`` (``-D``), ``release``,
``arch``, ``hz``.  The bytes are canonical (:func:`pystap.modfile.dump`).
The module cache and file helpers live in :mod:`pystap.translate.module`.
"""

from pystap.translate.module import BuildError, BuildOptions, build

__all__ = ["BuildError", "BuildOptions", "build"]
