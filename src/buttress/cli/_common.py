"""What every ``buttress`` sub-command shares: opening the backend, printing, parsing times.

A handler's body gets a connected backend; buttress errors become one line on
stderr (they name the field and rule, never a value) and exit code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING

from buttress.errors import ButtressError, ValidationError

if TYPE_CHECKING:
    from buttress.backends import Backend

__all__ = ["add_action", "os_user", "parse_time", "print_json", "run_with_backend"]


def run_with_backend(
    args: argparse.Namespace, command: str, body: Callable[[Backend], Awaitable[int]]
) -> int:
    """Connect to ``--dsn`` (or the default), run ``body``, close; errors exit 2."""

    async def main() -> int:
        from buttress._connect import connect
        from buttress.cli import default_dsn

        async with connect(getattr(args, "dsn", None) or default_dsn()) as backend:
            return await body(backend)

    try:
        return asyncio.run(main())
    except ButtressError as exc:
        print(f"buttress {command}: {exc}", file=sys.stderr)
        return 2


def print_json(value: object) -> None:
    print(json.dumps(value, indent=2))


def os_user() -> str | None:
    """The login name, for ``--updated-by``/``--deployed-by`` defaults (None when unknown)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):
        return None


def parse_time(field: str, text: str | None) -> datetime | None:
    """An aware ISO 8601 time from the command line, or None when not given."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(field, "must be an ISO 8601 time like 2024-05-01T12:00:00Z") from None
    if value.tzinfo is None:
        raise ValidationError(field, "must carry a timezone (for example Z or +02:00)")
    return value


def add_action(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    name: str,
    handler: Callable[[argparse.Namespace], int],
    help: str,
) -> argparse.ArgumentParser:
    """One leaf action (``buttress config get``…) taking ``--dsn``/``--json`` from ``common``."""
    parser = commands.add_parser(name, parents=[common], help=help, description=help)
    parser.set_defaults(handler=handler)
    return parser
