"""The ``buttress`` command line: argument parsing and dispatch.

Each sub-command lives in its own module with a ``register(subparsers, common)``
function; this module only assembles them. Exit codes: 0 ok, 1 warnings,
2 errors (argparse's usage errors exit 2 as well).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from buttress._version import __version__

__all__ = ["DEFAULT_DSN", "build_parser", "main"]

DEFAULT_DSN = "sqlite:///buttress.db"


def default_dsn() -> str:
    """``BUTTRESS_DSN`` when set and not empty, else the embedded SQLite file."""
    return os.environ.get("BUTTRESS_DSN") or DEFAULT_DSN


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="buttress",
        description="Operate the reliability parts of a Python service.",
    )
    parser.add_argument("--version", action="version", version=f"buttress {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dsn",
        default=None,
        help="backend to use (default: $BUTTRESS_DSN, else %(default_dsn)s)".replace(
            "%(default_dsn)s", DEFAULT_DSN
        ),
    )
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")

    from buttress.cli import doctor
    from buttress.config import cli as config_cli
    from buttress.deploy import cli as deploy_cli
    from buttress.flags import cli as flags_cli
    from buttress.migrations import cli as migrations_cli
    from buttress.monitoring import cli as monitoring_cli
    from buttress.monitoring import errors_cli
    from buttress.schema import cli as schema_cli
    from buttress.schema import integrity_cli

    doctor.register(subparsers, common)
    migrations_cli.register(subparsers, common)
    schema_cli.register(subparsers, common)
    integrity_cli.register(subparsers, common)
    config_cli.register(subparsers, common)
    flags_cli.register(subparsers, common)
    deploy_cli.register(subparsers, common)
    monitoring_cli.register(subparsers, common)
    errors_cli.register(subparsers, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from buttress.log import configure_logging

    # The command line is an application: its logs go to stderr, redacted, so
    # stdout carries only the report (and stays valid JSON under --json).
    configure_logging(level=os.environ.get("BUTTRESS_LOG_LEVEL") or "WARNING")
    if getattr(args, "dsn", None) is None and hasattr(args, "dsn"):
        args.dsn = default_dsn()
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    code: int = handler(args)
    return code
