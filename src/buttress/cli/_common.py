"""What every ``buttress`` command shares: the DSN, opening it, printing, exit codes.

A command is a body over an open backend that returns a ``Reply`` (the JSON
payload, the text, the outcome, lines for stderr). ``run`` opens ``--dsn`` as
the command's ``Access`` allows (no command but ``migrate`` creates a file or a
table, and none migrates), runs the body, prints the reply as text or
``--json`` and returns the exit code: 0 ok, 1 warning or not found, 2 error.
Any failure is one line naming the problem (a JSON error object under
``--json``) and exit 2: never a traceback, never a password.
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import functools
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeAlias, TypedDict, TypeVar

import attrs

from buttress.cli import _logs
from buttress.doctor import explain, open_existing
from buttress.errors import ButtressError, SchemaMissingError, ValidationError

if TYPE_CHECKING:
    from buttress.backends import Backend

__all__ = [
    "DEFAULT_DSN",
    "Access",
    "AddAction",
    "Audit",
    "Outcome",
    "Reply",
    "Subparsers",
    "action_group",
    "add_action",
    "add_audit_arguments",
    "add_command",
    "add_revert_arguments",
    "audit",
    "command_name",
    "component_handler",
    "default_dsn",
    "fail",
    "listing",
    "not_found",
    "os_user",
    "parse_time",
    "respond",
    "run",
]

DEFAULT_DSN = "sqlite:///buttress.db"


def default_dsn() -> str:
    """``BUTTRESS_DSN`` when set and not empty, else the embedded SQLite file."""
    return os.environ.get("BUTTRESS_DSN") or DEFAULT_DSN


class Outcome(enum.IntEnum):
    """How a command ended; its value is the exit code."""

    OK = 0
    WARNING = 1
    """Warnings found, or the thing asked for does not exist."""
    ERROR = 2
    """Critical findings, bad input, or a backend that cannot be used."""


class Access(enum.Enum):
    """How a command may open its database."""

    EXISTING = "existing"
    """As it is: a missing SQLite file is an error, nothing is created or migrated.
    Every command that only looks, and ``migrate status|validate|rollback|baseline``."""
    SET_UP = "set up"
    """As it is, and set up by ``buttress migrate`` (nothing of buttress's own pending):
    commands that write. They never migrate: they say to run ``buttress migrate``."""
    CREATE = "create"
    """A missing SQLite file is created: ``buttress migrate`` only, which then migrates."""


@attrs.frozen
class Reply:
    """What a command's body hands back to be printed."""

    payload: object
    """What ``--json`` prints on stdout (``json.dumps``, ``default=str``)."""
    text: str | None = None
    """What a human reads on stdout; None prints nothing."""
    outcome: int = Outcome.OK
    """The exit code: an ``Outcome``, or a level whose value is one (doctor, monitor)."""
    notes: tuple[str, ...] = ()
    """Lines for stderr in both modes (not found, a warning); each printed once."""


Body = Callable[["Backend"], Awaitable[Reply]]

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What each command module's ``register(subparsers, common)`` adds its command to."""

T = TypeVar("T")


def listing(
    items: Sequence[T], describe: Callable[[T], str], to_dict: Callable[[T], object], empty: str
) -> Reply:
    """A reply listing ``items``: one ``describe`` line each (``empty`` when there are
    none) and their ``to_dict`` forms for ``--json``."""
    text = "\n".join(describe(item) for item in items)
    return Reply([to_dict(item) for item in items], text or empty)


def not_found(note: str, payload: object = None) -> Reply:
    """The reply when the thing asked for does not exist: ``note`` on stderr, exit 1."""
    return Reply(payload, outcome=Outcome.WARNING, notes=(note,))


def command_name(args: argparse.Namespace) -> str:
    """``config get``, ``doctor``…: how messages name the command that failed."""
    return str(getattr(args, "command_name", None) or getattr(args, "command", None) or "")


def fail(args: argparse.Namespace, message: str, error_type: str = "Error") -> int:
    """Print one failure: a line on stderr, or a JSON error object on stdout; exit 2."""
    name = command_name(args)
    if getattr(args, "json", False):
        error = {"command": name, "message": message, "type": error_type}
        print(json.dumps({"ok": False, "error": error}, indent=2))
    else:
        print(f"buttress {name}: {message}" if name else f"buttress: {message}", file=sys.stderr)
    return int(Outcome.ERROR)


def respond(
    args: argparse.Namespace,
    produce: Callable[[], Coroutine[Any, Any, Reply]],
    *,
    writes: bool = False,
) -> int:
    """Run ``produce``, print its reply, return the exit code; a failure is one line, exit 2."""
    _logs.begin()
    try:
        reply = asyncio.run(produce())
    except _Explained as exc:
        return fail(args, str(exc), exc.error_type)
    except Exception as exc:  # noqa: BLE001  # every failure is one line, never a traceback
        dsn = getattr(args, "dsn", None)
        return fail(args, explain(exc, writes=writes, dsn=dsn), type(exc).__name__)
    if getattr(args, "json", False):
        print(json.dumps(reply.payload, indent=2, default=str))
    elif reply.text is not None:
        print(reply.text)
    for note in reply.notes:
        _logs.say(note)
    return int(reply.outcome)


class _Explained(ButtressError):
    """A failure already put in words (``error_type`` names the original exception)."""

    def __init__(self, message: str, error_type: str) -> None:
        super().__init__(message)
        self.error_type = error_type


async def _require_set_up(backend: Backend, dsn: str) -> None:
    from buttress.backends import SqlBackend
    from buttress.migrations import builtin_migrator

    if not isinstance(backend, SqlBackend):
        return
    try:
        pending = (await builtin_migrator(backend).status()).pending
    except ButtressError:
        raise
    except Exception as exc:
        # This check only reads: a missing privilege here needs a grant to read.
        raise _Explained(explain(exc, dsn=dsn), type(exc).__name__) from exc
    if pending:
        raise SchemaMissingError(
            f"this database is not set up for buttress ({len(pending)} of its own "
            f"migrations pending: {', '.join(pending)}); run `buttress migrate` first"
        )


def run(args: argparse.Namespace, body: Body, *, access: Access = Access.EXISTING) -> int:
    """Open ``--dsn`` as ``access`` allows, run ``body`` over it, close it, print the reply."""

    async def produce() -> Reply:
        from buttress.backends import open_backend

        dsn = getattr(args, "dsn", None) or default_dsn()
        if access is Access.CREATE:
            backend = await open_backend(dsn)
        else:
            backend = await open_existing(dsn)
        try:
            if access is Access.SET_UP:
                await _require_set_up(backend, dsn)
            return await body(backend)
        finally:
            await backend.close()

    return respond(args, produce, writes=access is not Access.EXISTING)


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
    commands: Subparsers,
    common: argparse.ArgumentParser,
    name: str,
    handler: Callable[[argparse.Namespace], int],
    help: str,
    *,
    group: str,
) -> argparse.ArgumentParser:
    """One leaf action (``buttress config get``…) taking ``--dsn``/``--json`` from ``common``."""
    parser = commands.add_parser(name, parents=[common], help=help, description=help)
    parser.set_defaults(handler=handler, command_name=f"{group} {name}")
    return parser


AddAction = Callable[..., argparse.ArgumentParser]
"""``add(name, handler, help)``: one leaf action of a command group (see ``add_action``)."""


def add_command(
    subparsers: Subparsers,
    common: argparse.ArgumentParser,
    name: str,
    handler: Callable[[argparse.Namespace], int],
    help: str,
    **options: Any,
) -> argparse.ArgumentParser:
    """A command without actions (``buttress doctor``...) taking ``--dsn``/``--json`` from
    ``common``; ``options`` go to ``add_parser`` (a ``description``...)."""
    parser = subparsers.add_parser(name, parents=[common], help=help, **options)
    parser.set_defaults(handler=handler, command_name=name)
    return parser


C = TypeVar("C")


def component_handler(
    make: Callable[[Backend, argparse.Namespace], C],
    action: Callable[[C, argparse.Namespace], Awaitable[Reply]],
    access: Access,
) -> Callable[[argparse.Namespace], int]:
    """The handler of a command whose ``action`` works on a component (a
    ConfigStore, FeatureFlags, a DeploymentLog) that ``make`` builds over the
    opened backend; a component with ``stop()`` is stopped afterwards."""

    def handle(args: argparse.Namespace) -> int:
        async def body(backend: Backend) -> Reply:
            component = make(backend, args)
            try:
                return await action(component, args)
            finally:
                stop = getattr(component, "stop", None)
                if stop is not None:
                    await stop()

        return run(args, body, access=access)

    return handle


def action_group(
    subparsers: Subparsers, common: argparse.ArgumentParser, group: str, help: str
) -> AddAction:
    """Add the command ``group`` (``buttress config``...), whose leaf actions the
    returned ``add(name, handler, help)`` declares; an action is required."""
    parser = subparsers.add_parser(group, parents=[common], help=help)
    commands = parser.add_subparsers(dest=f"{group}_command", metavar="ACTION", required=True)
    return functools.partial(add_action, commands, common, group=group)


def add_revert_arguments(parser: argparse.ArgumentParser) -> None:
    """``KEY VERSION`` and the audit arguments: what every ``revert`` action takes."""
    parser.add_argument("key")
    parser.add_argument("version", type=int, help="the history version to restore (see history)")
    add_audit_arguments(parser)


class Audit(TypedDict):
    """Who makes a change and why: the keyword arguments every audited write takes."""

    updated_by: str | None
    reason: str | None


def audit(args: argparse.Namespace) -> Audit:
    """What ``add_audit_arguments`` parsed, as the keyword arguments of a write."""
    return Audit(updated_by=args.updated_by, reason=args.reason)


def add_audit_arguments(parser: argparse.ArgumentParser) -> None:
    """``--updated-by`` (default: the OS user) and ``--reason``, kept in a change's history."""
    parser.add_argument(
        "--updated-by", default=os_user(), help="who makes the change (default: the OS user)"
    )
    parser.add_argument("--reason", help="why, kept in the history")
