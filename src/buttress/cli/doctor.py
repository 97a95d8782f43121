"""``buttress doctor``: parse the options, run ``buttress.doctor.collect``, print the report.

The sections live in ``buttress.doctor`` (an application can serve the same
report); here is only the command. It only looks: the database is opened as
it is (a missing SQLite file is a finding, nothing is created) and never
migrated. Exit codes: 0 ok, 1 warning (pending migrations among them),
2 critical.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TextIO

from buttress.cli._common import Reply, default_dsn, respond
from buttress.doctor import collect, render_text

__all__ = ["register"]


def _wants_colour(stream: TextIO) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ


def doctor(args: argparse.Namespace) -> int:
    """Collect every section's findings; print them; exit with the worst level."""

    async def produce() -> Reply:
        report = await collect(
            getattr(args, "dsn", None) or default_dsn(),
            schema_path=args.schema,
            migrations_dir=args.migrations_dir,
            rules_path=args.rules,
        )
        text = render_text(report, colour=_wants_colour(sys.stdout))
        return Reply(report.to_dict(), text, report.exit_code)

    # The doctor opens the backend itself: one it cannot reach is a finding, not a failure.
    return respond(args, produce)


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """Add ``doctor``; ``common`` carries ``--dsn`` and ``--json``."""
    parser = subparsers.add_parser(
        "doctor",
        parents=[common],
        help="check the backend, environment and setup, changing nothing; "
        "exit 0 ok, 1 warning, 2 critical",
    )
    parser.add_argument(
        "--schema", default=None, help="also check the database against this TOML/JSON schema"
    )
    parser.add_argument(
        "--migrations-dir",
        default=None,
        help="also check the application's migrations in this directory",
    )
    parser.add_argument(
        "--rules",
        default=None,
        help="also run these anomaly rules (TOML, as for `buttress monitor --rules`) "
        "over the recorded health history",
    )
    parser.set_defaults(handler=doctor, command_name="doctor")
