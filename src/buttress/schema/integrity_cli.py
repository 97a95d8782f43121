"""``buttress integrity check|cleanup|undo`` and ``buttress audit``: from a shell.

Plain ``(args) -> int`` handlers over ``IntegrityChecker`` and ``SecurityAudit``
with declarations read from ``--schema FILE``; ``register`` wires them into the
``buttress`` parser. Exit codes: 0 clean, 1 violations or warnings, 2
critical findings, bad input or an unusable backend.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from buttress.backends import Backend
from buttress.errors import ButtressError
from buttress.schema.audit import SecurityAudit
from buttress.schema.integrity import IntegrityChecker, load_declarations

if TYPE_CHECKING:
    from buttress.cli.doctor import DoctorContext, Finding

__all__ = ["audit", "check", "cleanup", "register", "security_section", "undo"]

Printable = tuple[dict[str, object], str, int]
Body = Callable[[Backend, argparse.Namespace], Awaitable[Printable]]


def _run(args: argparse.Namespace, body: Body, *, migrate: bool) -> int:
    async def main() -> Printable:
        from buttress._connect import connect
        from buttress.cli import default_dsn

        # Only a real cleanup or an undo writes, and only they need buttress's
        # backup table; reading commands leave the database as they found it.
        async with connect(getattr(args, "dsn", None) or default_dsn(), migrate=migrate) as db:
            return await body(db, args)

    try:
        payload, text, code = asyncio.run(main())
    except (ButtressError, OSError) as exc:
        if getattr(args, "json", False):
            print(json.dumps({"ok": False, "error": str(exc), "type": type(exc).__name__}))
        else:
            print(
                f"buttress {getattr(args, 'command', None) or 'integrity'}: {exc}", file=sys.stderr
            )
        return 2
    print(json.dumps(payload, indent=2, default=str) if getattr(args, "json", False) else text)
    return code


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


async def _check(db: Backend, args: argparse.Namespace) -> Printable:
    report = await _checker(db, args).check()
    return report.to_dict(), report.render_text(), report.exit_code


async def _cleanup(db: Backend, args: argparse.Namespace) -> Printable:
    result = await _checker(db, args).cleanup(dry_run=args.dry_run)
    return result.to_dict(), result.render_text(), 0


async def _undo(db: Backend, args: argparse.Namespace) -> Printable:
    result = await _checker(db, args).undo(args.run_id)
    return result.to_dict(), result.render_text(), 0


async def _audit(db: Backend, args: argparse.Namespace) -> Printable:
    declared = load_declarations(args.schema) if args.schema else None
    roles = list(args.allowed_role) or (declared.allowed_roles if declared else None)
    report = await SecurityAudit(
        db,
        tables=declared.security if declared else (),
        allowed_roles=roles,
        allow_superuser=args.allow_superuser or bool(declared and declared.allow_superuser),
        db_schema=args.db_schema,
    ).audit()
    return report.to_dict(), report.render_text(), report.exit_code


def check(args: argparse.Namespace) -> int:
    """Report duplicate groups and orphaned rows."""
    return _run(args, _check, migrate=False)


def cleanup(args: argparse.Namespace) -> int:
    """Clean up with a backup (``--dry-run`` lists what would change)."""
    return _run(args, _cleanup, migrate=not args.dry_run)


def undo(args: argparse.Namespace) -> int:
    """Restore the rows a cleanup run changed."""
    return _run(args, _undo, migrate=True)


def audit(args: argparse.Namespace) -> int:
    """Security findings: superuser connection, row-level security, owners, writers."""
    return _run(args, _audit, migrate=False)


async def security_section(ctx: DoctorContext) -> list[Finding]:
    """The doctor's ``security`` section: the audit's findings on PostgreSQL, with
    the ``[audit]`` declarations of the doctor's ``--schema`` file when given."""
    from buttress.backends import SqlBackend
    from buttress.cli.doctor import Finding, Level

    if not isinstance(ctx.backend, SqlBackend):
        return []
    if ctx.backend.dialect != "postgresql":
        return [Finding("security", "audit", Level.OK, "not applicable on SQLite (no roles)")]
    declared = load_declarations(ctx.schema_path) if ctx.schema_path else None
    report = await SecurityAudit(
        ctx.backend,
        tables=declared.security if declared else (),
        allowed_roles=declared.allowed_roles if declared else None,
        allow_superuser=bool(declared and declared.allow_superuser),
    ).audit()
    levels = {"critical": Level.CRITICAL, "warning": Level.WARNING}
    findings = [
        Finding("security", f.code, levels.get(f.severity, Level.OK), f"{f.object}: {f.message}")
        for f in report.findings
    ]
    return findings or [Finding("security", "audit", Level.OK, "no findings")]


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """Add ``integrity`` (check|cleanup|undo) and ``audit``; ``common`` has --dsn and --json."""
    integrity = subparsers.add_parser(
        "integrity", help="find and clean up duplicates and orphans the schema declares"
    )
    commands = integrity.add_subparsers(dest="integrity_command", metavar="ACTION", required=True)

    def add(
        name: str, handler: Callable[[argparse.Namespace], int], help: str
    ) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, parents=[common], help=help, description=help)
        parser.add_argument("--schema", required=True, help="schema file (.toml or .json)")
        parser.add_argument(
            "--db-schema", default="public", help="PostgreSQL schema holding the tables"
        )
        parser.add_argument(
            "--sample-limit", type=int, default=5, help="samples per expectation (default 5)"
        )
        parser.set_defaults(handler=handler)
        return parser

    add("check", check, "report violations; exit 0 clean, 1 violations, 2 failure")
    p = add("cleanup", cleanup, "remove duplicates and orphans, backing every row up first")
    p.add_argument("--dry-run", action="store_true", help="list what would change, change nothing")
    p.add_argument(
        "--max-rows", type=int, default=10_000, help="refuse to change more rows (default 10000)"
    )
    p = add("undo", undo, "restore the rows a cleanup run changed")
    p.add_argument("run_id", help="the run id a cleanup printed")

    parser = subparsers.add_parser(
        "audit",
        parents=[common],
        help="security findings (PostgreSQL); exit 0 clean, 1 warnings, 2 critical",
    )
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
    parser.set_defaults(handler=audit)
