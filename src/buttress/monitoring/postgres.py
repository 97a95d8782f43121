"""What a PostgreSQL database is doing, as numeric metrics for ``HealthHistory.record``.

``collect_postgres_metrics`` reads connections, size, the largest tables,
cache hit ratio, query times (``pg_stat_statements`` when installed, else an
instrumented client's ``stats()``) and recent errors in one or two round
trips, and merges the application's own counters. It only reads.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Protocol

from buttress._exceptions import UnsupportedBackendError, ValidationError
from buttress.backends import Backend, SqlBackend
from buttress.log import get_logger
from buttress.monitoring._service import check_metrics
from buttress.monitoring.errors import TABLE as ERROR_TABLE
from buttress.monitoring.errors import ErrorStats

__all__ = ["TABLE_SIZE_PREFIX", "StatsSource", "collect_postgres_metrics"]

TABLE_SIZE_PREFIX = "db_table_size_mb:"
"""``db_table_size_mb:<schema>.<table>``: one metric per table among the largest."""

_MB = 1024 * 1024

# Round trip one: everything the catalogs and statistics views always have,
# plus which optional relations exist (referring to a missing one fails the
# whole statement, so they are read in a second trip only when present).
_OVERVIEW = """
SELECT
    count(*) FILTER (WHERE a.state = 'active') AS active,
    count(*) FILTER (WHERE a.state = 'idle') AS idle,
    count(*) FILTER (WHERE a.state LIKE 'idle in transaction%') AS idle_in_transaction,
    count(*) AS connections,
    current_setting('max_connections')::integer AS max_connections,
    pg_database_size(current_database()) AS size_bytes,
    (SELECT d.blks_hit FROM pg_stat_database AS d WHERE d.datname = current_database())
        AS blocks_hit,
    (SELECT d.blks_read FROM pg_stat_database AS d WHERE d.datname = current_database())
        AS blocks_read,
    (SELECT COALESCE(json_agg(json_build_array(t.name, t.bytes)), '[]'::json) FROM (
        SELECT n.nspname || '.' || c.relname AS name, pg_total_relation_size(c.oid) AS bytes
        FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'm')
          AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg\\_toast%'
        ORDER BY bytes DESC, name LIMIT $1
    ) AS t)::text AS largest,
    to_regclass('pg_stat_statements') IS NOT NULL AS has_statements,
    to_regclass($2) IS NOT NULL AS has_errors
FROM pg_stat_activity AS a
WHERE a.datname = current_database()
"""

# Round trip two, built from the parts that exist. pg_stat_statements 1.8+
# (PostgreSQL 13+) names the columns *_exec_time; $1 is the slow threshold.
_STATEMENTS = """
(SELECT json_build_array(sum(s.calls), sum(s.total_exec_time),
                         count(*) FILTER (WHERE s.mean_exec_time > $1::float8))::text
 FROM pg_stat_statements AS s
 WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
) AS statements"""
_ERRORS = f"""
(SELECT COALESCE(sum(e.count), 0)::float8 FROM {ERROR_TABLE} AS e
 WHERE e.bucket >= now() - interval '1 hour') AS errors_last_hour"""


# metric -> the attribute names a client's stats may use for it, first found wins
# (the generic names, then ``buttress.db.DatabaseStats``'s).
_CLIENT_ATTRIBUTES = (
    ("db_queries_total", ("total_queries", "queries")),
    ("db_query_avg_ms", ("average_ms", "avg_latency_ms")),
    ("db_query_p95_ms", ("p95_ms", "p95_latency_ms")),
    ("db_slow_queries", ("slow_queries",)),
    ("db_query_error_rate", ("error_rate",)),
)


class StatsSource(Protocol):
    """An instrumented database client: anything with ``stats()`` (sync or async).

    ``stats()`` returns an object whose ``total_queries`` and ``slow_queries``
    are counts, ``average_ms`` and ``p95_ms`` latencies in milliseconds and
    ``error_rate`` a fraction; any may be missing or None. ``buttress.db``'s
    names (``queries``, ``avg_latency_ms``, ``p95_latency_ms``) work too.
    """

    def stats(self) -> object: ...


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


async def _client_metrics(client: StatsSource) -> dict[str, float]:
    stats = client.stats()
    if inspect.isawaitable(stats):
        stats = await stats
    found: dict[str, float] = {}
    for metric, names in _CLIENT_ATTRIBUTES:
        for name in names:
            number = _number(getattr(stats, name, None))
            if number is not None:
                found[metric] = number
                break
    return found


def _postgres(backend: Backend) -> SqlBackend:
    if isinstance(backend, SqlBackend) and backend.dialect == "postgresql":
        return backend
    kind = getattr(backend, "kind", None)
    raise UnsupportedBackendError(
        f"collect_postgres_metrics needs a postgresql backend, not {kind!r}"
    )


def _largest(text: object) -> dict[str, float]:
    import json

    parsed = json.loads(text) if isinstance(text, str) else []
    return {
        f"{TABLE_SIZE_PREFIX}{name}"[:200]: round(float(size) / _MB, 3)
        for name, size in parsed
        if isinstance(name, str) and isinstance(size, int | float)
    }


async def collect_postgres_metrics(
    backend: Backend,
    *,
    client: StatsSource | None = None,
    errors: ErrorStats | None = None,
    extra: Mapping[str, float] | None = None,
    largest_tables: int = 5,
    slow_query_ms: float = 1000.0,
) -> dict[str, float]:
    """The database's metrics now, named for ``HealthHistory.record(report, metrics=...)``.

    Always: ``db_connections_active``, ``db_connections_idle``,
    ``db_connections_idle_in_transaction``, ``db_connections_total``,
    ``db_connections_max``, ``db_size_mb``, ``db_table_size_mb:<schema>.<table>``
    for the ``largest_tables`` largest, and ``db_cache_hit_ratio`` (0-1, once
    any block was read). Query times: ``db_queries_total``, ``db_query_avg_ms``
    and ``db_slow_queries`` (statements whose mean exceeds ``slow_query_ms``)
    from ``pg_stat_statements`` when it is installed, else from ``client``,
    which also adds ``db_query_p95_ms`` and ``db_query_error_rate``.
    ``errors_last_hour`` from ``errors`` (an ``ErrorStats``), else from
    ``buttress_error_events`` when it exists.
    ``extra`` adds the application's counters (names must not collide).
    """
    sql = _postgres(backend)
    if isinstance(largest_tables, bool) or not isinstance(largest_tables, int):
        raise ValidationError("largest_tables", "must be an int >= 0")
    if not 0 <= largest_tables <= 100:
        raise ValidationError("largest_tables", "must be an int between 0 and 100")
    slow = _number(slow_query_ms)
    if slow is None or slow <= 0:
        raise ValidationError("slow_query_ms", "must be a finite number of milliseconds > 0")
    if client is not None and not callable(getattr(client, "stats", None)):
        raise ValidationError("client", "must have a stats() method")
    if errors is not None and not isinstance(errors, ErrorStats):
        raise ValidationError("errors", f"must be an ErrorStats, not {type(errors).__name__}")
    if extra is not None and not isinstance(extra, Mapping):
        raise ValidationError("extra", f"must be a mapping, not {type(extra).__name__}")

    row = await sql.fetchrow(_OVERVIEW, largest_tables, ERROR_TABLE)
    assert row is not None  # an aggregate without GROUP BY always returns one row
    metrics: dict[str, float] = {
        "db_connections_active": float(row["active"]),
        "db_connections_idle": float(row["idle"]),
        "db_connections_idle_in_transaction": float(row["idle_in_transaction"]),
        "db_connections_total": float(row["connections"]),
        "db_connections_max": float(row["max_connections"]),
        "db_size_mb": round(float(row["size_bytes"]) / _MB, 3),
    }
    hit, read = float(row["blocks_hit"] or 0), float(row["blocks_read"] or 0)
    if hit + read > 0:
        metrics["db_cache_hit_ratio"] = round(hit / (hit + read), 6)
    metrics.update(_largest(row["largest"]))

    metrics.update(
        await _second_trip(
            sql,
            statements=bool(row["has_statements"]),
            errors=errors is None and bool(row["has_errors"]),
            slow_ms=slow,
        )
    )
    if client is not None:
        # pg_stat_statements sees every client of the database, so its numbers
        # win; the client adds what the view lacks (p95, error rate).
        for name, value in (await _client_metrics(client)).items():
            metrics.setdefault(name, value)
    if errors is not None:
        metrics["errors_last_hour"] = errors.metrics()["errors_last_hour"]
    metrics.update(check_metrics("extra", extra, taken=metrics))
    return metrics


async def _second_trip(
    sql: SqlBackend, *, statements: bool, errors: bool, slow_ms: float
) -> dict[str, float]:
    found: dict[str, float] = {}
    if statements:
        try:
            row = await sql.fetchrow(
                "SELECT " + ", ".join([_STATEMENTS, *([_ERRORS] if errors else [])]), slow_ms
            )
        except Exception as exc:  # noqa: BLE001 - installed but not preloaded, or too old
            get_logger("monitoring").info("pg_stat_statements_unreadable", error=type(exc).__name__)
        else:
            assert row is not None
            found.update(_statements(row["statements"]))
            if errors:
                found["errors_last_hour"] = float(row["errors_last_hour"])
            return found
    if errors:
        value = await sql.fetchval("SELECT " + _ERRORS)
        found["errors_last_hour"] = float(value or 0)
    return found


def _statements(text: object) -> dict[str, float]:
    import json

    parsed = json.loads(text) if isinstance(text, str) else None
    if not isinstance(parsed, list) or len(parsed) != 3:
        return {}
    calls, total_ms, slow = (_number(value) for value in parsed)
    if not calls or total_ms is None or slow is None:
        return {}
    return {
        "db_queries_total": calls,
        "db_query_avg_ms": round(total_ms / calls, 3),
        "db_slow_queries": slow,
    }
