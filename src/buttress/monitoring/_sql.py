"""Health history in SQLite or PostgreSQL: the ``buttress_health_history`` table.

The table comes from buttress's own migration ``0005_health_history``. One row
per run; components and metrics are JSON objects, read back per metric with
the database's JSON functions (``json_each`` on SQLite, ``->>`` on
PostgreSQL), so any metric name works without quoting rules. Times are
``timestamptz`` on PostgreSQL and fixed-width UTC text on SQLite, which sorts
like time.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from buttress.backends import POSTGRESQL, SQLITE, SqlBackend, from_db_time
from buttress.health.status import Status
from buttress.monitoring._values import LATENCY_PREFIX, ComponentRecord, HealthRecord, Sample

__all__ = ["TABLE", "SqlHistoryStore"]

TABLE = "buttress_health_history"
_COLUMNS = "id, recorded_at, status, version, components, metrics"

T = TypeVar("T")

# (value expression, "has a number" condition) for one metric, per dialect.
# On SQLite the metric's key is matched by json_each, never spliced into a path.
_SQLITE_METRIC = (
    f"SELECT h.recorded_at AS at, j.value AS value FROM {TABLE} AS h, json_each(h.metrics) AS j "
    "WHERE j.key = ? AND j.type IN ('integer', 'real')"
)
_SQLITE_LATENCY = (
    f"SELECT h.recorded_at AS at, json_extract(j.value, '$.latency_ms') AS value "
    f"FROM {TABLE} AS h, json_each(h.components) AS j "
    "WHERE j.key = ? AND json_type(j.value, '$.latency_ms') IN ('integer', 'real')"
)
_POSTGRES_METRIC = (
    f"SELECT h.recorded_at AS at, (h.metrics ->> ?::text)::float8 AS value FROM {TABLE} AS h "
    "WHERE jsonb_typeof(h.metrics -> ?::text) = 'number'"
)
_POSTGRES_LATENCY = (
    f"SELECT h.recorded_at AS at, (h.components -> ?::text ->> 'latency_ms')::float8 AS value "
    f"FROM {TABLE} AS h WHERE jsonb_typeof(h.components -> ?::text -> 'latency_ms') = 'number'"
)
# dialect -> ((metric query, latency query), how many times the key is bound)
_SERIES = {
    SQLITE: ((_SQLITE_METRIC, _SQLITE_LATENCY), 1),
    POSTGRESQL: ((_POSTGRES_METRIC, _POSTGRES_LATENCY), 2),
}


def _json_object(value: object) -> dict[str, Any]:
    parsed = json.loads(value) if isinstance(value, str | bytes) else value
    return parsed if isinstance(parsed, dict) else {}


def _record(row: Mapping[str, Any]) -> HealthRecord:
    components = {}
    for name, entry in _json_object(row["components"]).items():
        if isinstance(entry, dict):
            components[name] = ComponentRecord(
                Status(entry.get("status", "unhealthy")), float(entry.get("latency_ms", 0.0))
            )
    return HealthRecord(
        id=int(row["id"]),
        recorded_at=from_db_time(row["recorded_at"]),
        status=Status(row["status"]),
        version=row["version"],
        components=components,
        metrics={
            name: float(value)
            for name, value in _json_object(row["metrics"]).items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        },
    )


class SqlHistoryStore:
    """``HistoryStore`` over a ``SqliteBackend`` or ``PostgresBackend``."""

    def __init__(self, backend: SqlBackend) -> None:
        self._backend = backend
        self._dialect = backend.dialect
        self._q = backend.dialect.placeholders
        self._time = backend.dialect.to_db_time

    async def _run(self, step: Callable[[], Awaitable[T]]) -> T:
        try:
            return await step()
        except Exception as exc:
            missing = await self._dialect.explain_missing(
                self._backend, exc, "HealthHistory", [TABLE]
            )
            if missing is not None:
                raise missing from exc
            raise

    async def insert(self, record: HealthRecord) -> None:
        components = json.dumps(
            {name: c.to_dict() for name, c in record.components.items()}, allow_nan=False
        )
        metrics = json.dumps(record.metrics, allow_nan=False)
        cast = self._dialect.json_cast
        sql = self._q(
            f"INSERT INTO {TABLE} (recorded_at, status, version, components, metrics) "
            f"VALUES (?, ?, ?, ?{cast}, ?{cast})"
        )
        at = self._time(record.recorded_at)
        await self._run(
            lambda: self._backend.execute(
                sql, at, record.status.value, record.version, components, metrics
            )
        )

    async def recent(self, limit: int) -> list[HealthRecord]:
        sql = self._q(f"SELECT {_COLUMNS} FROM {TABLE} ORDER BY recorded_at DESC, id DESC LIMIT ?")
        rows = await self._run(lambda: self._backend.fetch(sql, limit))
        return [_record(row) for row in rows]

    def _metric_query(self, metric: str) -> tuple[str, list[object]]:
        latency = metric.startswith(LATENCY_PREFIX)
        key = metric[len(LATENCY_PREFIX) :] if latency else metric
        (metric_sql, latency_sql), binds = _SERIES[self._dialect]
        return (latency_sql if latency else metric_sql), [key] * binds

    async def series(
        self, metric: str, since: datetime | None, until: datetime | None
    ) -> list[Sample]:
        sql, args = self._metric_query(metric)
        if since is not None:
            sql += " AND h.recorded_at >= ?"
            args.append(self._time(since))
        if until is not None:
            sql += " AND h.recorded_at < ?"
            args.append(self._time(until))
        query = self._q(sql + " ORDER BY h.recorded_at, h.id")
        rows = await self._run(lambda: self._backend.fetch(query, *args))
        return [Sample(from_db_time(row["at"]), float(row["value"])) for row in rows]

    async def last_before(self, metric: str, before: datetime) -> Sample | None:
        sql, args = self._metric_query(metric)
        query = self._q(
            sql + " AND h.recorded_at < ? ORDER BY h.recorded_at DESC, h.id DESC LIMIT 1"
        )
        args.append(self._time(before))
        row = await self._run(lambda: self._backend.fetchrow(query, *args))
        return None if row is None else Sample(from_db_time(row["at"]), float(row["value"]))

    async def prune(self, older_than: datetime | None, keep_rows: int | None) -> int:
        deleted = 0
        if older_than is not None:
            by_age = self._q(f"DELETE FROM {TABLE} WHERE recorded_at < ?")
            cutoff = self._time(older_than)
            deleted += await self._run(lambda: self._backend.execute(by_age, cutoff))
        if keep_rows is not None:
            # The newest row beyond the limit; it and everything older go.
            boundary_sql = self._q(
                f"SELECT recorded_at, id FROM {TABLE} "
                "ORDER BY recorded_at DESC, id DESC LIMIT 1 OFFSET ?"
            )
            boundary = await self._run(lambda: self._backend.fetchrow(boundary_sql, keep_rows))
            if boundary is not None:
                by_count = self._q(
                    f"DELETE FROM {TABLE} WHERE recorded_at < ? OR (recorded_at = ? AND id <= ?)"
                )
                at, row_id = boundary["recorded_at"], boundary["id"]
                deleted += await self._run(lambda: self._backend.execute(by_count, at, at, row_id))
        return deleted

    async def count(self) -> int:
        value = await self._run(lambda: self._backend.fetchval(f"SELECT count(*) FROM {TABLE}"))
        return int(value or 0)
