"""The ``buttress`` command line (also ``python -m buttress``).

Re-exports only: the parser and dispatch live in ``_main``, what every command
shares in ``_common``, and one module per command (``doctor``, ``migrate``,
``schema``, ``integrity`` and ``audit``, ``config``, ``flags``, ``deploy``,
``monitor``, ``errors``). Commands that only look never create a file, a table
or a lock; ``buttress migrate`` is what creates.
"""

from buttress.cli._common import DEFAULT_DSN, default_dsn
from buttress.cli._main import build_parser, main

__all__ = ["DEFAULT_DSN", "build_parser", "default_dsn", "main"]
