"""``buttress schema check|plan|fix``: the database against a declared schema, from a shell.

``check`` and ``plan`` only look, and so does ``fix --dry-run``; ``fix``
creates the missing tables and columns the declaration names (never buttress's
own: it runs on a database ``buttress migrate`` has set up, and never
migrates). Exit codes: 0 matches, 1 warnings only, 2 errors (or failure).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from buttress.backends import Backend
from buttress.cli._common import Access, Reply, Subparsers, action_group, run
from buttress.schema import SchemaValidator, load_schema

__all__ = ["register"]


def _handler(action: str) -> Callable[[argparse.Namespace], int]:
    def handle(args: argparse.Namespace) -> int:
        dry_run = bool(getattr(args, "dry_run", False))

        async def body(backend: Backend) -> Reply:
            schema = load_schema(args.schema)
            validator = SchemaValidator(backend, schema, db_schema=args.db_schema)
            statements: list[str] = []
            if action == "plan":
                statements = await validator.plan()
            elif action == "fix":
                statements = await validator.fix(dry_run=dry_run)
            report = await validator.validate()
            payload: dict[str, object] = report.to_dict()
            text = report.render_text()
            if action != "check":
                payload["statements"] = statements
                payload["dry_run"] = dry_run
                verb = "applied" if action == "fix" and not dry_run else "planned"
                listing = "\n".join(f"  {s};" for s in statements) or "  (nothing to do)"
                text = f"{verb} {len(statements)} statement(s):\n{listing}\n{text}"
            return Reply(payload, text, report.exit_code)

        writes = action == "fix" and not dry_run
        return run(args, body, access=Access.SET_UP if writes else Access.EXISTING)

    return handle


def register(subparsers: Subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``schema`` and its actions; ``common`` carries ``--dsn`` and ``--json``."""
    add = action_group(subparsers, common, "schema", "check the database against a declared schema")
    for name, help_text in (
        ("check", "report drift; exit 0 ok, 1 warnings, 2 errors"),
        ("plan", "print the SQL a fix would run (creates only)"),
        ("fix", "apply the safe fixes in one transaction"),
    ):
        sub = add(name, _handler(name), help_text)
        sub.add_argument("--schema", required=True, help="schema file (.toml or .json)")
        sub.add_argument(
            "--db-schema",
            default="public",
            help="PostgreSQL schema holding the tables (default: public)",
        )
        if name == "fix":
            sub.add_argument("--dry-run", action="store_true", help="print, change nothing")
