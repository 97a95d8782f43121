"""The one ``schema_migrations`` table: its DDL per dialect, reads and writes.

Rows are keyed by (namespace, version), so buttress's own migrations
(namespace ``buttress``) and the application's never collide. Legacy tracking
tables of other tools are detected here so adoption can be offered.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

from buttress.backends import SqlConnection

__all__ = [
    "LEGACY_TABLES",
    "TRACKING_TABLE",
    "AppliedMigration",
    "TrackingState",
    "delete_applied",
    "ensure_table",
    "inspect_tracking",
    "read_applied",
    "record_applied",
]

TRACKING_TABLE = "schema_migrations"
LEGACY_TABLES = (
    "migrations",
    "_migrations",
    "schema_migrations",
    "schema_version",
    "alembic_version",
    "flyway_schema_history",
    "django_migrations",
    "knex_migrations",
    "goose_db_version",
    "__diesel_schema_migrations",
)
_OUR_COLUMNS = frozenset(
    {
        "namespace",
        "version",
        "name",
        "checksum",
        "checksum_algorithm",
        "applied_at",
        "execution_ms",
        "success",
        "applied_by",
    }
)

_DDL = {
    "sqlite": """CREATE TABLE IF NOT EXISTS schema_migrations (
    namespace TEXT NOT NULL,
    version INTEGER NOT NULL,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    checksum_algorithm TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    execution_ms INTEGER NOT NULL,
    success INTEGER NOT NULL,
    applied_by TEXT NOT NULL,
    PRIMARY KEY (namespace, version))""",
    "postgresql": """CREATE TABLE IF NOT EXISTS schema_migrations (
    namespace text NOT NULL,
    version integer NOT NULL,
    name text NOT NULL,
    checksum text NOT NULL,
    checksum_algorithm text NOT NULL,
    applied_at timestamptz NOT NULL,
    execution_ms integer NOT NULL,
    success boolean NOT NULL,
    applied_by text NOT NULL,
    PRIMARY KEY (namespace, version))""",
}


def _marks(dialect: str, count: int) -> list[str]:
    return [f"${i}" if dialect == "postgresql" else "?" for i in range(1, count + 1)]


@attrs.frozen
class AppliedMigration:
    namespace: str
    version: int
    name: str
    checksum: str
    checksum_algorithm: str
    applied_at: dt.datetime
    execution_ms: int
    success: bool
    applied_by: str

    @property
    def id(self) -> str:
        return f"{self.version:04d}_{self.name}"


@attrs.frozen
class TrackingState:
    """Whether our table exists, and which other tools' tracking tables do."""

    exists: bool
    legacy: tuple[str, ...]

    @property
    def conflicting(self) -> bool:
        """A ``schema_migrations`` of another shape sits where ours must go."""
        return TRACKING_TABLE in self.legacy


async def inspect_tracking(conn: SqlConnection, dialect: str) -> TrackingState:
    """One query: which tracking-like tables exist, and the shape of ours."""
    if dialect == "postgresql":
        rows = await conn.fetch(
            "SELECT c.relname AS tbl, a.attname AS col FROM pg_class c "
            "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 "
            "AND NOT a.attisdropped "
            "WHERE c.relkind IN ('r', 'p') AND pg_table_is_visible(c.oid) "
            "AND c.relname = ANY($1::text[])",
            list(LEGACY_TABLES),
        )
    else:
        marks = ", ".join("?" for _ in LEGACY_TABLES)
        rows = await conn.fetch(
            "SELECT m.name AS tbl, p.name AS col FROM sqlite_master m "
            "LEFT JOIN pragma_table_info(m.name) p "
            f"WHERE m.type = 'table' AND m.name IN ({marks})",
            *LEGACY_TABLES,
        )
    columns: dict[str, set[str]] = {}
    for row in rows:
        columns.setdefault(str(row["tbl"]), set()).add(str(row["col"]))
    ours = columns.pop(TRACKING_TABLE, None)
    exists = ours is not None and ours >= _OUR_COLUMNS
    if ours is not None and not exists:
        columns[TRACKING_TABLE] = ours
    return TrackingState(exists=exists, legacy=tuple(sorted(columns)))


async def ensure_table(conn: SqlConnection, dialect: str) -> None:
    await conn.execute(_DDL[dialect])


def _row(row: Any, dialect: str) -> AppliedMigration:
    applied_at = row["applied_at"]
    if isinstance(applied_at, str):
        applied_at = dt.datetime.fromisoformat(applied_at)
    return AppliedMigration(
        namespace=row["namespace"],
        version=int(row["version"]),
        name=row["name"],
        checksum=row["checksum"],
        checksum_algorithm=row["checksum_algorithm"],
        applied_at=applied_at,
        execution_ms=int(row["execution_ms"]),
        success=bool(row["success"]),
        applied_by=row["applied_by"],
    )


async def read_applied(
    conn: SqlConnection, dialect: str, namespace: str
) -> dict[int, AppliedMigration]:
    (mark,) = _marks(dialect, 1)
    rows = await conn.fetch(
        f"SELECT * FROM schema_migrations WHERE namespace = {mark} ORDER BY version", namespace
    )
    return {int(r["version"]): _row(r, dialect) for r in rows}


async def record_applied(conn: SqlConnection, dialect: str, entry: AppliedMigration) -> None:
    """Insert or replace the row for (namespace, version)."""
    marks = ", ".join(_marks(dialect, 9))
    applied_at: object = entry.applied_at
    success: object = entry.success
    if dialect == "sqlite":
        applied_at, success = entry.applied_at.isoformat(), int(entry.success)
    await conn.execute(
        "INSERT INTO schema_migrations (namespace, version, name, checksum, checksum_algorithm,"
        " applied_at, execution_ms, success, applied_by)"
        f" VALUES ({marks}) ON CONFLICT (namespace, version) DO UPDATE SET"
        " name = excluded.name, checksum = excluded.checksum,"
        " checksum_algorithm = excluded.checksum_algorithm, applied_at = excluded.applied_at,"
        " execution_ms = excluded.execution_ms, success = excluded.success,"
        " applied_by = excluded.applied_by",
        entry.namespace,
        entry.version,
        entry.name,
        entry.checksum,
        entry.checksum_algorithm,
        applied_at,
        entry.execution_ms,
        success,
        entry.applied_by,
    )


async def is_recorded(conn: SqlConnection, dialect: str, namespace: str, version: int) -> bool:
    first, second = _marks(dialect, 2)
    value = await conn.fetchval(
        f"SELECT success FROM schema_migrations WHERE namespace = {first} AND version = {second}",
        namespace,
        version,
    )
    return bool(value)


async def delete_applied(conn: SqlConnection, dialect: str, namespace: str, version: int) -> None:
    first, second = _marks(dialect, 2)
    await conn.execute(
        f"DELETE FROM schema_migrations WHERE namespace = {first} AND version = {second}",
        namespace,
        version,
    )
