"""pystap: SystemTap's tracing pipeline in Python, with signed modules for unprivileged users.

The package is split into rooms (see docs/design.md): the language front end and
translator run as the invoking user; only ``loader`` and ``kernel`` ever run as root,
and they never import the language or the code generator.
"""

__version__ = "0.1.0"
