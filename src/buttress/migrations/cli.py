"""``buttress migrate [status|validate|rollback VERSION|baseline [VERSION]]``.

Plain ``(args) -> int`` handlers plus ``register(subparsers, common)`` for the
main parser. Exit codes: 0 ok, 1 warnings (or pending, for status), 2 errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable

from buttress.errors import ButtressError
from buttress.migrations.migrator import Migrator

__all__ = ["baseline", "migrate", "register", "rollback", "status", "validate"]

Printable = tuple[dict[str, object], str, int]


def _migrator_run(
    args: argparse.Namespace, body: Callable[[Migrator], Awaitable[Printable]]
) -> int:
    async def main() -> Printable:
        from buttress._connect import connect

        async with connect(args.dsn, migrate=False) as backend:
            migrator = Migrator(
                backend, args.dir, namespace=args.namespace, environment=args.environment
            )
            return await body(migrator)

    try:
        payload, text, code = asyncio.run(main())
    except (ButtressError, OSError) as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": str(exc), "type": type(exc).__name__}))
        else:
            print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(payload, indent=2, default=str) if args.json else text)
    return code


def migrate(args: argparse.Namespace) -> int:
    """Apply buttress's own pending migrations, then the application's.

    A deployment pipeline runs this once, before the new version starts
    (``--dry-run``, ``--validate-only``, ``--force`` apply to the application's
    files). Without a migrations directory only buttress's own tables are set up.
    """
    if args.validate_only:
        return validate(args)
    only_own = not args.dir_given and not os.path.isdir(args.dir)

    async def body(m: Migrator) -> Printable:
        from buttress.backends import SqlBackend
        from buttress.migrations.builtin import builtin_migrator

        own: tuple[str, ...] = ()
        if isinstance(m.backend, SqlBackend):
            own_result = await builtin_migrator(m.backend, environment=args.environment).migrate(
                dry_run=args.dry_run
            )
            own = own_result.applied
        verb = "would apply" if args.dry_run else "applied"
        lines = [f"buttress: {verb} {len(own)} migration(s)", *(f"  {o}" for o in own)]
        payload: dict[str, object] = {"buttress_applied": list(own)}
        if only_own:
            payload.update(applied=[], dry_run=args.dry_run)
            lines.append(f"no application migrations ({args.dir} does not exist)")
            return payload, "\n".join(lines), 0
        result = await m.migrate(dry_run=args.dry_run, force=args.force)
        payload.update(result.to_dict())
        return payload, "\n".join([*lines, result.render_text()]), 0

    return _migrator_run(args, body)


def status(args: argparse.Namespace) -> int:
    async def body(m: Migrator) -> Printable:
        report = await m.status(category=getattr(args, "category", None))
        return report.to_dict(), report.render_text(), report.exit_code

    return _migrator_run(args, body)


def validate(args: argparse.Namespace) -> int:
    async def body(m: Migrator) -> Printable:
        report = await m.validate()
        return report.to_dict(), report.render_text(), report.exit_code

    return _migrator_run(args, body)


def rollback(args: argparse.Namespace) -> int:
    if args.version is None:
        print("error: migrate rollback needs VERSION (0 undoes everything)", file=sys.stderr)
        return 2

    async def body(m: Migrator) -> Printable:
        undone = await m.rollback(args.version)
        text = "\n".join([f"rolled back {len(undone)} migration(s)", *(f"  {u}" for u in undone)])
        return {"rolled_back": list(undone)}, text, 0

    return _migrator_run(args, body)


def baseline(args: argparse.Namespace) -> int:
    async def body(m: Migrator) -> Printable:
        recorded = await m.baseline(args.version)
        text = "\n".join(
            [f"recorded {len(recorded)} migration(s) as applied", *(f"  {r}" for r in recorded)]
        )
        return {"baselined": list(recorded)}, text, 0

    return _migrator_run(args, body)


_ACTIONS: dict[str, Callable[[argparse.Namespace], int]] = {
    "apply": migrate,
    "status": status,
    "validate": validate,
    "rollback": rollback,
    "baseline": baseline,
}


def _dispatch(args: argparse.Namespace) -> int:
    from_env = os.environ.get("BUTTRESS_MIGRATIONS_DIR")
    args.dir_given = args.dir is not None or bool(from_env)
    args.dir = args.dir or from_env or "migrations"
    return _ACTIONS[args.action](args)


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser | None = None,
) -> None:
    parser = subparsers.add_parser(
        "migrate",
        parents=[common] if common is not None else [],
        help="apply, inspect, roll back or baseline SQL migrations",
    )
    parser.add_argument(
        "action",
        nargs="?",
        default="apply",
        choices=sorted(_ACTIONS),
        help="what to do (default: apply pending migrations)",
    )
    parser.add_argument(
        "version",
        nargs="?",
        type=int,
        help="rollback: undo everything after VERSION; baseline: up to VERSION",
    )
    parser.add_argument(
        "--dir",
        default=None,
        help="migrations directory (default: $BUTTRESS_MIGRATIONS_DIR or ./migrations)",
    )
    parser.add_argument("--namespace", default="app", help="migration namespace (default: app)")
    parser.add_argument(
        "--environment",
        default=None,
        help="environment name (default: $BUTTRESS_ENV); production refuses "
        "destructive files without opt-in",
    )
    parser.add_argument(
        "--category",
        default=None,
        help="status: only migrations tagged '-- category: NAME' (core, security, ...)",
    )
    parser.add_argument("--dry-run", action="store_true", help="list what would run")
    parser.add_argument("--validate-only", action="store_true", help="validate and exit")
    parser.add_argument(
        "--force", action="store_true", help="apply despite checksum drift or missing files"
    )
    if common is None:
        parser.add_argument("--dsn", required=True)
        parser.add_argument("--json", action="store_true")
    parser.set_defaults(handler=_dispatch)
