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

from buttress.cli._common import Reply, Subparsers, add_command, default_dsn, respond
from buttress.doctor import collect, render_text
from buttress.lifecycle.env import EnvVar, load_required_env, parse_env_spec

__all__ = ["register"]


def _wants_colour(stream: TextIO) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ


def _required_env(args: argparse.Namespace) -> tuple[EnvVar, ...]:
    """``--startup FILE``'s variables, then each ``--require-env``, first mention kept."""
    wanted = list(load_required_env(args.startup)) if args.startup else []
    wanted.extend(parse_env_spec(spec) for spec in args.require_env or ())
    seen: dict[str, EnvVar] = {}
    for var in wanted:
        seen.setdefault(var.name, var)
    return tuple(seen.values())


def doctor(args: argparse.Namespace) -> int:
    """Collect every section's findings; print them; exit with the worst level."""

    async def produce() -> Reply:
        report = await collect(
            getattr(args, "dsn", None) or default_dsn(),
            schema_path=args.schema,
            migrations_dir=args.migrations_dir,
            rules_path=args.rules,
            required_env=_required_env(args),
        )
        text = render_text(report, colour=_wants_colour(sys.stdout))
        return Reply(report.to_dict(), text, report.exit_code)

    # The doctor opens the backend itself: one it cannot reach is a finding, not a failure.
    return respond(args, produce)


def register(subparsers: Subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``doctor``; ``common`` carries ``--dsn`` and ``--json``."""
    help = (
        "check the backend, environment and setup, changing nothing; "
        "exit 0 ok, 1 warning, 2 critical"
    )
    parser = add_command(subparsers, common, "doctor", doctor, help)
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
    parser.add_argument(
        "--require-env",
        action="append",
        metavar="NAME[:KIND]",
        help="also require this environment variable to be set (KIND: str, int, float, "
        "bool, url); missing or malformed is critical. Repeat for more",
    )
    parser.add_argument(
        "--startup",
        default=None,
        metavar="FILE",
        help="also require the variables listed in FILE's [startup] require_env "
        "(TOML; pyproject.toml's [tool.buttress.startup] works too)",
    )
