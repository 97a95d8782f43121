"""Persisted error counts in SQLite or PostgreSQL: the ``buttress_error_events`` table.

One row per (minute, category, severity, component) holding a count, added to
with an upsert; the table comes from buttress's migration ``0008_system_health``
(``check_system_health()`` reads it on PostgreSQL). A database without it raises
``MissingTableError`` naming the migration.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from buttress.backends import SqlBackend, from_db_time
from buttress.monitoring.errors._store import MinuteCount
from buttress.monitoring.errors._values import PERSIST_SECONDS, TABLE, ErrorCount, check_aware

__all__ = ["SqlErrorEvents", "read_error_counts"]

T = TypeVar("T")

_UPSERT = (
    f"INSERT INTO {TABLE} (bucket, category, severity, component, count) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (bucket, category, severity, component) "
    f"DO UPDATE SET count = {TABLE}.count + excluded.count"
)


async def _explained(backend: SqlBackend, step: Callable[[], Awaitable[T]]) -> T:
    try:
        return await step()
    except Exception as exc:
        missing = await backend.dialect.explain_missing(backend, exc, "ErrorStats", [TABLE])
        if missing is not None:
            raise missing from exc
        raise


class SqlErrorEvents:
    """``ErrorEventStore`` over a ``SqliteBackend`` or ``PostgresBackend``."""

    def __init__(self, backend: SqlBackend) -> None:
        self._backend = backend
        self._dialect = backend.dialect

    async def add(self, counts: Sequence[MinuteCount]) -> None:
        rows = [(self._dialect.to_db_time(minute), *rest) for minute, *rest in counts]
        sql = self._dialect.placeholders(_UPSERT)
        await _explained(self._backend, lambda: self._backend.executemany(sql, rows))

    async def prune(self, older_than: datetime) -> None:
        sql = self._dialect.placeholders(f"DELETE FROM {TABLE} WHERE bucket < ?")
        cutoff = self._dialect.to_db_time(older_than)
        await self._backend.execute(sql, cutoff)

    def __repr__(self) -> str:
        return f"SqlErrorEvents({self._dialect})"


async def read_error_counts(
    backend: SqlBackend, since: datetime, until: datetime | None = None
) -> list[ErrorCount]:
    """The persisted per-minute counts overlapping ``[since, until]``, oldest first.

    Raises ``MissingTableError`` when migration ``0008_system_health`` has not run.
    """
    check_aware("since", since)
    if until is not None:
        check_aware("until", until)
    dialect = backend.dialect
    sql = f"SELECT bucket, category, severity, component, count FROM {TABLE} WHERE bucket > ?"
    args: list[object] = [dialect.to_db_time(since - timedelta(seconds=PERSIST_SECONDS))]
    if until is not None:
        sql += " AND bucket <= ?"
        args.append(dialect.to_db_time(until))
    sql += " ORDER BY bucket, category, severity, component"
    query = dialect.placeholders(sql)
    rows = await _explained(backend, lambda: backend.fetch(query, *args))
    return [
        ErrorCount(
            from_db_time(row["bucket"]),
            PERSIST_SECONDS,
            str(row["category"]),
            str(row["severity"]),
            str(row["component"]),
            int(row["count"]),
        )
        for row in rows
    ]
