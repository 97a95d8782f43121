"""``buttress migrate [apply|status|validate|rollback VERSION|baseline [VERSION]]``.

``migrate`` (``apply``) is the one command that creates: the SQLite file when
it is missing, buttress's own tables, then the application's migrations from
``--dir``. ``--dry-run``, ``--validate-only``, ``status`` and ``validate`` only
look (a missing SQLite file is an error; nothing is created). ``rollback`` and
``baseline`` work on a database that exists. Exit codes: 0 ok, 1 warnings (or
pending, for status), 2 errors.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Awaitable, Callable

from buttress.backends import Backend
from buttress.cli._common import Access, Reply, Subparsers, add_command, fail, run
from buttress.migrations import MigrationStatus, Migrator, builtin_migrator

__all__ = ["register"]

Action = Callable[[Migrator, argparse.Namespace], Awaitable[Reply]]


def _only_own(args: argparse.Namespace) -> bool:
    """No application migrations: no directory was named and ./migrations does not exist."""
    return not args.dir_given and not os.path.isdir(args.dir)


def _no_app_line(args: argparse.Namespace) -> str:
    return f"no application migrations ({args.dir} does not exist)"


def _own_summary(status: MigrationStatus) -> str:
    if status.pending:
        return (
            f"buttress: {len(status.pending)} of its own migrations pending "
            f"({', '.join(status.pending)}); run `buttress migrate`"
        )
    return f"buttress: {len(status.applied)} of its own migrations applied, none pending"


async def _apply(m: Migrator, args: argparse.Namespace) -> Reply:
    """Apply buttress's own pending migrations, then the application's.

    A deployment pipeline runs this once, before the new version starts
    (``--dry-run``, ``--force`` apply to the application's files). Without a
    migrations directory only buttress's own tables are set up.
    """
    own_migrator = builtin_migrator(m.backend, environment=args.environment)
    own = (await own_migrator.migrate(dry_run=args.dry_run)).applied
    verb = "would apply" if args.dry_run else "applied"
    lines = [f"buttress: {verb} {len(own)} migration(s)", *(f"  {o}" for o in own)]
    payload: dict[str, object] = {"buttress_applied": list(own)}
    if _only_own(args):
        payload.update(applied=[], dry_run=args.dry_run)
        lines.append(_no_app_line(args))
        return Reply(payload, "\n".join(lines))
    result = await m.migrate(dry_run=args.dry_run, force=args.force)
    payload.update(result.to_dict())
    return Reply(payload, "\n".join([*lines, result.render_text()]))


async def _status(m: Migrator, args: argparse.Namespace) -> Reply:
    own = await builtin_migrator(m.backend, environment=args.environment).status()
    lines = [_own_summary(own)]
    lines += [f"  error   {e}" for e in own.report.errors]
    payload: dict[str, object] = {"buttress_pending": list(own.pending)}
    code = own.exit_code
    if _only_own(args):
        lines.append(_no_app_line(args))
    else:
        app = await m.status(category=args.category)
        payload.update(app.to_dict())
        lines.append(app.render_text())
        code = max(code, app.exit_code)
    return Reply(payload, "\n".join(lines), code)


async def _validate(m: Migrator, args: argparse.Namespace) -> Reply:
    own = await builtin_migrator(m.backend, environment=args.environment).validate()
    if _only_own(args):
        payload = {**own.to_dict(), "buttress_errors": list(own.errors)}
        return Reply(payload, "\n".join([own.render_text(), _no_app_line(args)]), own.exit_code)
    report = await m.validate()
    payload = {**report.to_dict(), "buttress_errors": list(own.errors)}
    lines = [f"buttress: {e}" for e in own.errors] + [report.render_text()]
    return Reply(payload, "\n".join(lines), max(own.exit_code, report.exit_code))


async def _rollback(m: Migrator, args: argparse.Namespace) -> Reply:
    undone = await m.rollback(args.version)
    text = "\n".join([f"rolled back {len(undone)} migration(s)", *(f"  {u}" for u in undone)])
    return Reply({"rolled_back": list(undone)}, text)


async def _baseline(m: Migrator, args: argparse.Namespace) -> Reply:
    recorded = await m.baseline(args.version)
    text = "\n".join(
        [f"recorded {len(recorded)} migration(s) as applied", *(f"  {r}" for r in recorded)]
    )
    return Reply({"baselined": list(recorded)}, text)


def _run(args: argparse.Namespace, action: Action, access: Access) -> int:
    async def body(backend: Backend) -> Reply:
        migrator = Migrator(
            backend, args.dir, namespace=args.namespace, environment=args.environment
        )
        return await action(migrator, args)

    return run(args, body, access=access)


def _dispatch(args: argparse.Namespace) -> int:
    from_env = os.environ.get("BUTTRESS_MIGRATIONS_DIR")
    args.dir_given = args.dir is not None or bool(from_env)
    args.dir = args.dir or from_env or "migrations"
    action = args.action
    if action == "apply" and args.validate_only:
        action = "validate"
    args.command_name = "migrate" if action == "apply" else f"migrate {action}"
    if action == "rollback" and args.version is None:
        return fail(args, "migrate rollback needs VERSION (0 undoes everything)", "UsageError")
    if action == "apply":
        # Only a real run creates (the SQLite file, then the tables); a dry run looks.
        return _run(args, _apply, Access.EXISTING if args.dry_run else Access.CREATE)
    actions: dict[str, Action] = {
        "status": _status,
        "validate": _validate,
        "rollback": _rollback,
        "baseline": _baseline,
    }
    return _run(args, actions[action], Access.EXISTING)


def register(subparsers: Subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``migrate``; ``common`` carries ``--dsn`` and ``--json``."""
    help = "create buttress's tables and apply, inspect, roll back or baseline migrations"
    parser = add_command(subparsers, common, "migrate", _dispatch, help)
    parser.add_argument(
        "action",
        nargs="?",
        default="apply",
        choices=("apply", "baseline", "rollback", "status", "validate"),
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
        "--env",
        dest="environment",
        default=None,
        help="environment name (default: $BUTTRESS_ENV); production refuses "
        "destructive files without opt-in",
    )
    parser.add_argument(
        "--category",
        default=None,
        help="status: only migrations tagged '-- category: NAME' (core, security, ...)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="list what would run, change nothing"
    )
    parser.add_argument("--validate-only", action="store_true", help="validate and exit")
    parser.add_argument(
        "--force", action="store_true", help="apply despite checksum drift or missing files"
    )
