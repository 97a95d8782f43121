"""The ``schema_migrations`` table and its history: DDL per dialect, reads and writes.

Rows are keyed by (namespace, version), so buttress's own migrations
(namespace ``buttress``) and the application's never collide; every apply,
failure, rollback and baseline is also appended to ``schema_migrations_history``.
Statements name the tables' schema. Legacy tracking tables of other tools are
detected here so adoption can be offered.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import attrs

from buttress.backends import Dialect, Row, SqlConnection

__all__ = [
    "HISTORY_TABLE",
    "LEGACY_TABLES",
    "TRACKING_TABLE",
    "AppliedMigration",
    "HistoryAction",
    "Tracking",
    "TrackingState",
    "inspect_tracking",
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

_COLUMNS_DDL = {
    "sqlite": """
    namespace TEXT NOT NULL,
    version INTEGER NOT NULL,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    checksum_algorithm TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    execution_ms INTEGER NOT NULL,
    success INTEGER NOT NULL,
    applied_by TEXT NOT NULL""",
    "postgresql": """
    namespace text NOT NULL,
    version integer NOT NULL,
    name text NOT NULL,
    checksum text NOT NULL,
    checksum_algorithm text NOT NULL,
    applied_at timestamptz NOT NULL,
    execution_ms integer NOT NULL,
    success boolean NOT NULL,
    applied_by text NOT NULL""",
}
_HISTORY_DDL = {
    "sqlite": """
    namespace TEXT NOT NULL,
    version INTEGER NOT NULL,
    name TEXT NOT NULL,
    action TEXT NOT NULL,
    at TEXT NOT NULL,
    by TEXT NOT NULL,
    checksum TEXT NOT NULL""",
    "postgresql": """
    namespace text NOT NULL,
    version integer NOT NULL,
    name text NOT NULL,
    action text NOT NULL,
    at timestamptz NOT NULL,
    by text NOT NULL,
    checksum text NOT NULL""",
}
HISTORY_TABLE = "schema_migrations_history"
"""Every apply, failure, rollback and baseline, newest last: the trail a rollback leaves."""

HistoryAction = Literal["applied", "failed", "rolled_back", "baselined"]


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
    """Whether our table exists, which other tools' tracking tables do, and in
    which PostgreSQL schema ours lives (or will be created)."""

    exists: bool
    legacy: tuple[str, ...]
    schema: str | None = None

    @property
    def conflicting(self) -> bool:
        """A ``schema_migrations`` of another shape sits where ours must go."""
        return TRACKING_TABLE in self.legacy


async def inspect_tracking(conn: SqlConnection) -> TrackingState:
    """One query: which tracking-like tables exist, the shape of ours and its schema."""
    schema: str | None = None
    if conn.dialect == "postgresql":
        rows = await conn.fetch(
            "SELECT c.relname AS tbl, a.attname AS col, n.nspname AS nsp, "
            "pg_catalog.current_schema() AS current "
            "FROM pg_catalog.pg_class c "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 "
            "AND NOT a.attisdropped "
            "WHERE c.relkind IN ('r', 'p') AND pg_catalog.pg_table_is_visible(c.oid) "
            "AND c.relname = ANY($1::text[])",
            list(LEGACY_TABLES),
        )
        found = [str(r["nsp"]) for r in rows if r["tbl"] == TRACKING_TABLE]
        # Where the table is, else where it would be created (public when the
        # search_path names no schema at all).
        current = await conn.fetchval("SELECT pg_catalog.current_schema()")
        schema = found[0] if found else str(current or "public")
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
    return TrackingState(exists=exists, legacy=tuple(sorted(columns)), schema=schema)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@attrs.frozen
class Tracking:
    """Reads and writes of the tracking tables, every statement naming their schema.

    Migrations may change ``search_path`` (every pg_dump file empties it), so
    buttress's own statements never rely on it.
    """

    dialect: Dialect
    schema: str | None = None

    def name(self, table: str) -> str:
        return table if self.schema is None else f"{_quote(self.schema)}.{table}"

    @property
    def table(self) -> str:
        return self.name(TRACKING_TABLE)

    def _q(self, sql: str) -> str:
        return self.dialect.placeholders(sql)

    def _time(self, value: dt.datetime) -> object:
        return self.dialect.to_db_time(value)

    async def ensure(self, conn: SqlConnection) -> None:
        """Create both tracking tables (a no-op for tables that exist)."""
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} ({_COLUMNS_DDL[self.dialect]},\n"
            "    PRIMARY KEY (namespace, version))"
        )
        await self.ensure_history(conn)

    async def ensure_history(self, conn: SqlConnection) -> None:
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {self.name(HISTORY_TABLE)} ({_HISTORY_DDL[self.dialect]})"
        )

    async def read_applied(
        self, conn: SqlConnection, namespace: str
    ) -> dict[int, AppliedMigration]:
        rows = await conn.fetch(
            self._q(f"SELECT * FROM {self.table} WHERE namespace = ? ORDER BY version"), namespace
        )
        return {int(r["version"]): _row(r) for r in rows}

    async def record_applied(self, conn: SqlConnection, entry: AppliedMigration) -> None:
        """Insert or replace the row for (namespace, version), and log it."""
        success = self.dialect.to_db_bool(entry.success)
        await conn.execute(
            self._q(
                f"INSERT INTO {self.table} (namespace, version, name, checksum, "
                "checksum_algorithm, applied_at, execution_ms, success, applied_by)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (namespace, version) DO UPDATE SET"
                " name = excluded.name, checksum = excluded.checksum,"
                " checksum_algorithm = excluded.checksum_algorithm,"
                " applied_at = excluded.applied_at, execution_ms = excluded.execution_ms,"
                " success = excluded.success, applied_by = excluded.applied_by"
            ),
            entry.namespace,
            entry.version,
            entry.name,
            entry.checksum,
            entry.checksum_algorithm,
            self._time(entry.applied_at),
            entry.execution_ms,
            success,
            entry.applied_by,
        )
        action: HistoryAction = "applied" if entry.success else "failed"
        if entry.applied_by.startswith("baseline "):
            action = "baselined"
        await self.log(conn, entry, action, entry.applied_at, entry.applied_by)

    async def log(
        self,
        conn: SqlConnection,
        entry: AppliedMigration,
        action: HistoryAction,
        at: dt.datetime,
        by: str,
    ) -> None:
        await conn.execute(
            self._q(
                f"INSERT INTO {self.name(HISTORY_TABLE)} "
                "(namespace, version, name, action, at, by, checksum) VALUES (?, ?, ?, ?, ?, ?, ?)"
            ),
            entry.namespace,
            entry.version,
            entry.name,
            action,
            self._time(at),
            by,
            entry.checksum,
        )

    async def is_recorded(self, conn: SqlConnection, namespace: str, version: int) -> bool:
        value = await conn.fetchval(
            self._q(f"SELECT success FROM {self.table} WHERE namespace = ? AND version = ?"),
            namespace,
            version,
        )
        return bool(value)

    async def roll_back(
        self, conn: SqlConnection, entry: AppliedMigration, at: dt.datetime, by: str
    ) -> None:
        """Remove the row of an undone migration, keeping the trail in the history."""
        await self.ensure_history(conn)
        await conn.execute(
            self._q(f"DELETE FROM {self.table} WHERE namespace = ? AND version = ?"),
            entry.namespace,
            entry.version,
        )
        await self.log(conn, entry, "rolled_back", at, by)

    async def history(self, conn: SqlConnection, namespace: str) -> list[Row]:
        """The trail of ``namespace``, oldest first (empty before the table exists)."""
        try:
            return await conn.fetch(
                self._q(
                    f"SELECT namespace, version, name, action, at, by, checksum "
                    f"FROM {self.name(HISTORY_TABLE)} WHERE namespace = ? ORDER BY at, version"
                ),
                namespace,
            )
        except Exception:  # noqa: BLE001 - a database older than the history table has none
            return []


def _row(row: Any) -> AppliedMigration:
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
