"""``buttress schema check|plan|fix``: the SchemaValidator on the command line.

Plain ``(args) -> int`` handlers plus ``register(subparsers, common)`` for the
main parser. Exit codes: 0 matches, 1 warnings only, 2 errors (or failure).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from buttress.errors import ButtressError
from buttress.schema.loading import load_schema
from buttress.schema.report import SchemaReport
from buttress.schema.validator import SchemaValidator

__all__ = ["check", "fix", "plan", "register"]


def _emit(args: argparse.Namespace, payload: dict[str, object], text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(payload, indent=2, default=str))
    else:
        print(text)


def _fail(args: argparse.Namespace, error: Exception) -> int:
    if getattr(args, "json", False):
        print(json.dumps({"ok": False, "error": str(error), "type": type(error).__name__}))
    else:
        print(f"error: {error}", file=sys.stderr)
    return 2


async def _validator_run(args: argparse.Namespace, action: str) -> tuple[SchemaReport, list[str]]:
    from buttress._connect import connect

    schema = load_schema(args.schema)
    async with connect(args.dsn, migrate=False) as backend:
        validator = SchemaValidator(backend, schema, db_schema=args.db_schema)
        statements: list[str] = []
        if action == "plan":
            statements = await validator.plan()
        elif action == "fix":
            statements = await validator.fix(dry_run=args.dry_run)
        return await validator.validate(), statements


def _run(args: argparse.Namespace, action: str) -> int:
    try:
        report, statements = asyncio.run(_validator_run(args, action))
    except (ButtressError, OSError) as exc:
        return _fail(args, exc)
    payload: dict[str, object] = report.to_dict()
    text = report.render_text()
    if action != "check":
        payload["statements"] = statements
        payload["dry_run"] = bool(getattr(args, "dry_run", False))
        verb = "applied" if action == "fix" and not args.dry_run else "planned"
        listing = "\n".join(f"  {s};" for s in statements) or "  (nothing to do)"
        text = f"{verb} {len(statements)} statement(s):\n{listing}\n{text}"
    _emit(args, payload, text)
    return report.exit_code


def check(args: argparse.Namespace) -> int:
    """Compare the database with the declared schema."""
    return _run(args, "check")


def plan(args: argparse.Namespace) -> int:
    """Print the SQL a fix would run."""
    return _run(args, "plan")


def fix(args: argparse.Namespace) -> int:
    """Apply the safe fixes (``--dry-run`` prints them only)."""
    return _run(args, "fix")


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser | None = None,
) -> None:
    parents = [common] if common is not None else []
    parser = subparsers.add_parser("schema", help="check the database against a declared schema")
    actions = parser.add_subparsers(dest="schema_command", metavar="ACTION", required=True)
    for name, handler, help_text in (
        ("check", check, "report drift; exit 0 ok, 1 warnings, 2 errors"),
        ("plan", plan, "print the SQL a fix would run (creates only)"),
        ("fix", fix, "apply the safe fixes in one transaction"),
    ):
        sub = actions.add_parser(name, parents=parents, help=help_text)
        sub.add_argument("--schema", required=True, help="schema file (.toml or .json)")
        sub.add_argument(
            "--db-schema",
            default="public",
            help="PostgreSQL schema holding the tables (default: public)",
        )
        if name == "fix":
            sub.add_argument("--dry-run", action="store_true", help="print, change nothing")
        if common is None:
            sub.add_argument("--dsn", required=True)
            sub.add_argument("--json", action="store_true")
        sub.set_defaults(handler=handler)
