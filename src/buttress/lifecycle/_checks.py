"""The individual start-up checks, each returning a ``StartupCheck``.

Reaching the backend, listing tables (SQLite and PostgreSQL), the schema and
migrations (through ``SchemaValidator`` and ``Migrator`` when installed) and
custom checks. Error lines say what is wrong and how to fix it.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeAlias

from buttress._exceptions import ValidationError
from buttress._safe import safe_error_message, scrub
from buttress.lifecycle.report import StartupCheck

__all__ = [
    "StartupCheckFn",
    "StartupCheckResult",
    "check_migrations",
    "check_schema",
    "check_tables",
    "custom",
    "ping",
    "redact",
    "unreachable",
]

StartupCheckResult: TypeAlias = bool | str | Iterable[str] | None
StartupCheckFn: TypeAlias = Callable[[], StartupCheckResult | Awaitable[StartupCheckResult]]
"""A custom check: ``None``/``True`` passes; ``False``, an error line or several fail."""


def redact(dsn: str) -> str:
    try:
        backends = importlib.import_module("buttress.backends")
        shown = backends.redact_dsn(dsn)
    except (ImportError, AttributeError):
        return scrub(dsn)
    return str(shown)


def unreachable(what: str, exc: BaseException) -> str:
    detail = "timed out" if isinstance(exc, TimeoutError) else safe_error_message(exc)
    return (
        f"backend: cannot reach {what} ({detail}); check that the server is running "
        "and that the DSN's host, port, database and credentials are right"
    )


async def ping(backend: object) -> None:
    ping = getattr(backend, "ping", None)
    if not callable(ping):
        raise ValidationError("backend", "has no ping() method")
    result = ping()
    if inspect.isawaitable(result):
        await result


async def _existing_tables(backend: object) -> set[str] | None:
    fetch = getattr(backend, "fetch", None)
    dialect = getattr(backend, "dialect", None)
    if not callable(fetch):
        return None
    if dialect == "sqlite":
        rows = await fetch("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
    elif dialect == "postgresql":
        rows = await fetch(
            "SELECT table_name AS name FROM information_schema.tables "
            "WHERE table_schema = ANY(current_schemas(false))"
        )
    else:
        return None
    return {str(row["name"]) for row in rows}


async def check_tables(backend: object, required: tuple[str, ...]) -> StartupCheck:
    existing = await _existing_tables(backend)
    if existing is None:
        kind = getattr(backend, "kind", type(backend).__name__)
        return StartupCheck(
            "tables",
            "failed",
            (f"tables: cannot list tables on a {kind} backend; use a SQLite or PostgreSQL DSN",),
        )
    missing = [t for t in required if t not in existing]
    errors = tuple(
        f"table {t!r} is missing; run your migrations (e.g. `buttress migrate`) before starting"
        for t in missing
    )
    return StartupCheck("tables", "failed" if errors else "passed", errors)


async def check_schema(backend: object, schema: object) -> StartupCheck:
    from buttress.schema import SchemaValidator

    report = await SchemaValidator(backend, schema).validate()  # type: ignore[arg-type]  # checked by the validator
    errors = tuple(
        f"schema: {_finding(f)}; see `buttress schema plan` for the fix"
        for f in getattr(report, "errors", ())
    )
    warnings = tuple(f"schema: {_finding(f)}" for f in getattr(report, "warnings", ()))
    return StartupCheck("schema", "failed" if errors else "passed", errors, warnings)


def _finding(finding: object) -> str:
    where = ".".join(
        str(part)
        for part in (getattr(finding, "table", None), getattr(finding, "column", None))
        if part
    )
    message = scrub(str(getattr(finding, "message", finding)))
    return f"{where}: {message}" if where else message


def _names(items: object) -> list[str]:
    if not isinstance(items, Iterable) or isinstance(items, str):
        return []
    out = []
    for item in items:
        name = getattr(item, "name", None) or getattr(item, "version", None) or item
        out.append(str(name))
    return out


async def check_migrations(
    backend: object, directory: str | os.PathLike[str] | None
) -> StartupCheck:
    if directory is None or not await asyncio.to_thread(os.path.isdir, directory):
        return StartupCheck(
            "migrations",
            "failed",
            (f"migrations: directory {directory!s} does not exist; fix migrations_dir=",),
        )
    from buttress.migrations import Migrator

    migrator = Migrator(backend, directory)  # type: ignore[arg-type]  # checked by the migrator
    errors: list[str] = []
    warnings: tuple[str, ...] = ()
    validate = getattr(migrator, "validate", None)
    if callable(validate):
        report = await validate()
        problems = getattr(report, "errors", report)
        for problem in _names(problems) if not isinstance(problems, bool) else []:
            errors.append(f"migrations: {scrub(problem)}; fix the migration files or database")
        # Legacy tables, renamed files, a part-way run: worth reading, not worth refusing to start.
        warnings = tuple(f"migrations: {scrub(w)}" for w in _names(getattr(report, "warnings", ())))
    status = getattr(migrator, "status", None)
    if callable(status):
        state = await status()
        pending = _names(getattr(state, "pending", ()))
        if pending:
            errors.append(
                f"migrations: {len(pending)} not applied ({', '.join(pending[:5])}); "
                "run `buttress migrate` before starting"
            )
    return StartupCheck("migrations", "failed" if errors else "passed", tuple(errors), warnings)


def custom(name: str, fn: StartupCheckFn) -> Callable[[], Awaitable[StartupCheck]]:
    async def run_custom() -> StartupCheck:
        outcome: object = fn()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome is None or outcome is True:
            return StartupCheck(name, "passed")
        if outcome is False:
            return StartupCheck(name, "failed", (f"{name}: check failed",))
        if isinstance(outcome, str):
            return StartupCheck(name, "failed", (outcome,))
        if isinstance(outcome, Iterable):
            lines = tuple(str(line) for line in outcome)
            return StartupCheck(name, "failed" if lines else "passed", lines)
        return StartupCheck(
            name,
            "failed",
            (f"{name}: returned {type(outcome).__name__}; expected None, bool, str or lines",),
        )

    return run_custom
