"""``buttress integrity check|cleanup|undo`` and ``buttress audit``: from a shell.

Bodies over ``IntegrityChecker`` and ``SecurityAudit`` with declarations read
from ``--schema FILE``, run by ``_common.run``. ``check``, ``cleanup --dry-run``
and ``audit`` only look; ``cleanup`` and ``undo`` write (every changed row is
backed up in buttress's own table first), on a database ``buttress migrate``
has set up. ``audit`` is for PostgreSQL; on SQLite it says it does not apply.
Exit codes: 0 clean, 1 violations or warnings, 2 critical findings, bad input
or an unusable backend.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable

from buttress.backends import Backend, SqlBackend
from buttress.cli._common import Access, Reply, Subparsers, action_group, add_command, run
from buttress.schema import SecurityAudit
from buttress.schema.integrity import IntegrityChecker, load_declarations

__all__ = ["register"]

Action = Callable[[Backend, argparse.Namespace], Awaitable[Reply]]

NOT_APPLICABLE = "not applicable on SQLite (no roles)"


def _handler(
    action: Action, access: Callable[[argparse.Namespace], Access]
) -> Callable[[argparse.Namespace], int]:
    def handle(args: argparse.Namespace) -> int:
        async def body(backend: Backend) -> Reply:
            return await action(backend, args)

        return run(args, body, access=access(args))

    return handle


def _looks(_args: argparse.Namespace) -> Access:
    return Access.EXISTING


def _writes(args: argparse.Namespace) -> Access:
    return Access.EXISTING if getattr(args, "dry_run", False) else Access.SET_UP


def _checker(db: Backend, args: argparse.Namespace) -> IntegrityChecker:
    declared = load_declarations(args.schema)
    return IntegrityChecker(
        db,
        declared.expectations,
        schema=declared.schema,
        db_schema=args.db_schema,
        sample_limit=args.sample_limit,
        max_rows=getattr(args, "max_rows", 10_000),
    )


async def _check(db: Backend, args: argparse.Namespace) -> Reply:
    report = await _checker(db, args).check()
    return Reply(report.to_dict(), report.render_text(), report.exit_code)


async def _cleanup(db: Backend, args: argparse.Namespace) -> Reply:
    result = await _checker(db, args).cleanup(dry_run=args.dry_run)
    return Reply(result.to_dict(), result.render_text(), result.exit_code)


async def _undo(db: Backend, args: argparse.Namespace) -> Reply:
    result = await _checker(db, args).undo(args.run_id)
    return Reply(result.to_dict(), result.render_text())


async def _audit(db: Backend, args: argparse.Namespace) -> Reply:
    declared = load_declarations(args.schema) if args.schema else None
    if isinstance(db, SqlBackend) and db.dialect != "postgresql":
        payload = {
            "ok": True,
            "dialect": str(db.dialect),
            "applicable": False,
            "message": NOT_APPLICABLE,
            "findings": [],
        }
        return Reply(payload, f"security audit: {NOT_APPLICABLE}")
    roles = list(args.allowed_role) or (declared.allowed_roles if declared else None)
    report = await SecurityAudit(
        db,
        tables=declared.security if declared else (),
        allowed_roles=roles,
        allow_superuser=args.allow_superuser or bool(declared and declared.allow_superuser),
        db_schema=args.db_schema,
    ).audit()
    return Reply({**report.to_dict(), "applicable": True}, report.render_text(), report.exit_code)


def register(subparsers: Subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``integrity`` (check|cleanup|undo) and ``audit``; ``common`` has --dsn and --json."""
    help = "find and clean up duplicates and orphans the schema declares"
    add_action = action_group(subparsers, common, "integrity", help)

    def add(
        name: str, handler: Callable[[argparse.Namespace], int], help: str
    ) -> argparse.ArgumentParser:
        parser = add_action(name, handler, help)
        parser.add_argument("--schema", required=True, help="schema file (.toml or .json)")
        parser.add_argument(
            "--db-schema", default="public", help="PostgreSQL schema holding the tables"
        )
        parser.add_argument(
            "--sample-limit", type=int, default=5, help="samples per expectation (default 5)"
        )
        return parser

    add(
        "check",
        _handler(_check, _looks),
        "report violations; exit 0 clean, 1 violations, 2 failure",
    )
    p = add(
        "cleanup",
        _handler(_cleanup, _writes),
        "remove duplicates and orphans, backing every row up first",
    )
    p.add_argument("--dry-run", action="store_true", help="list what would change, change nothing")
    p.add_argument(
        "--max-rows", type=int, default=10_000, help="refuse to change more rows (default 10000)"
    )
    p = add("undo", _handler(_undo, _writes), "restore the rows a cleanup run changed")
    p.add_argument("run_id", help="the run id a cleanup printed")

    help = (
        "security findings (PostgreSQL; not applicable on SQLite); exit 0 clean, "
        "1 warnings, 2 critical"
    )
    parser = add_command(subparsers, common, "audit", _handler(_audit, _looks), help)
    parser.add_argument("--schema", help="schema file with an [audit] section")
    parser.add_argument("--db-schema", default="public", help="PostgreSQL schema to audit")
    parser.add_argument(
        "--allowed-role",
        action="append",
        default=[],
        help="a role that may own or write objects (repeatable; overrides the file)",
    )
    parser.add_argument(
        "--allow-superuser", action="store_true", help="do not flag a superuser connection"
    )
