"""Pass 1-2 view of the printf format parser, which lives in :mod:`pystap.printf_format`.

It moved to the top of the package so the runtime compiles formats with the
very same parser (the import rules forbid ``runtime/`` to import ``lang/``);
this module keeps the translator's import path.
"""

from pystap.printf_format import FormatComponent, FormatError, memory_dump_refusal, parse_format

__all__ = ["FormatComponent", "FormatError", "memory_dump_refusal", "parse_format"]
