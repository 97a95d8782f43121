"""The SQL dialect: what differs between SQLite and PostgreSQL, asked of one object.

Stores write each statement once with ``?`` placeholders and ISO timestamps in
mind; the dialect turns them into what the driver takes, and finds buttress's
own tables (or says which are missing). A ``Dialect`` is also the plain string
``"sqlite"`` or ``"postgresql"``, so ``backend.dialect == "sqlite"`` keeps working
for code that only needs the name. No other module branches on the dialect's name
for these jobs.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from buttress._exceptions import SchemaMissingError

__all__ = [
    "DIALECTS",
    "OWN_TABLES",
    "POSTGRESQL",
    "SQLITE",
    "Dialect",
    "Executor",
    "MissingTableError",
    "Reader",
    "from_db_time",
]


class Reader(Protocol):
    """Anything that can run a query: a SQL backend or one of its connections."""

    async def fetch(self, sql: str, *args: object) -> list[Any]: ...


class Executor(Protocol):
    """Anything that can run a statement: a SQL backend or one of its connections."""

    async def execute(self, sql: str, *args: object) -> int: ...


OWN_TABLES: Final[dict[str, str]] = {
    "buttress_config": "0002_config",
    "buttress_config_history": "0002_config",
    "buttress_change_counters": "0002_config",
    "buttress_flags": "0003_flags",
    "buttress_flag_history": "0003_flags",
    "buttress_health_history": "0005_health_history",
    "buttress_deployments": "0004_deployments",
    "buttress_rate_limits": "0006_rate_limits",
    "buttress_rate_limit()": "0006_rate_limits",
    "buttress_rate_limit_one()": "0010_rate_limit_single_key",
    "buttress_breaker_state": "0007_breaker_state",
    "buttress_breaker_step()": "0007_breaker_state",
    "buttress_error_events": "0008_system_health",
    "buttress_integrity_backup": "0009_integrity_backup",
}
"""buttress's own tables and functions, and the packaged migration creating each."""


class MissingTableError(SchemaMissingError):
    """A store's tables (or functions) do not exist: buttress's own migrations have
    not run on this database (opened with ``migrate=False``, or never migrated).

    ``tables`` names what is missing (a function as ``name()``); ``migrations``
    the packaged migrations that create it.
    """

    def __init__(self, component: str, tables: Iterable[str]) -> None:
        self.component = component
        self.tables = tuple(tables)
        self.migrations = tuple(sorted({OWN_TABLES.get(t, "?") for t in self.tables}))
        many = len(self.tables) > 1
        super().__init__(
            f"{component}: {'tables' if many else 'table'} {', '.join(self.tables)} "
            f"{'are' if many else 'is'} missing (created by buttress's "
            f"{'migrations' if len(self.migrations) > 1 else 'migration'} "
            f"{', '.join(self.migrations)}, namespace 'buttress'); "
            "run `buttress migrate` or connect with migrate=True "
            "(the default), or call `await buttress.migrations.apply_builtin(backend)`"
        )


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class Dialect(str):
    """One SQL dialect; the instances are ``SQLITE`` and ``POSTGRESQL``."""

    __slots__ = ()

    @property
    def name(self) -> str:
        return str(self)

    def placeholders(self, sql: str) -> str:
        """``sql`` (written with ``?``) in the driver's placeholder style; a ``?``
        inside a literal, a quoted identifier or a comment is left alone."""
        return sql

    def to_db_time(self, value: datetime) -> object:
        """A timestamp as this dialect stores it.

        SQLite: fixed-width UTC text, so that comparing the text orders by time.
        """
        return _aware(value).astimezone(UTC).isoformat(timespec="microseconds")

    def to_db_bool(self, value: bool) -> object:
        """A boolean as this dialect stores it."""
        return int(value)

    for_update: str = ""
    """What ``SELECT ... `` needs at its end to lock the rows it reads in a transaction
    (nothing on SQLite, where a write transaction already holds the database)."""

    json_cast: str = ""
    """The cast that makes a text parameter a JSON value (``::jsonb`` on PostgreSQL)."""

    async def notify(self, conn: Executor, channel: str, payload: str) -> None:
        """Tell listeners on ``channel`` (inside a transaction: at its commit).

        Nothing to do where nobody can listen (SQLite: readers poll a counter).
        """
        return

    @staticmethod
    def from_db_time(value: object) -> datetime:
        """A stored timestamp (either dialect's form) as an aware ``datetime``."""
        if isinstance(value, datetime):
            return _aware(value)
        if isinstance(value, str):
            return _aware(datetime.fromisoformat(value))
        raise TypeError(f"not a timestamp: {type(value).__name__}")

    async def missing_tables(
        self, conn: Reader, tables: Iterable[str], functions: Mapping[str, str] | None = None
    ) -> list[str]:
        """Those of ``tables`` (then of ``functions``: ``name()`` -> full signature)
        that do not exist, in the order given. One catalog query."""
        raise NotImplementedError

    async def require_tables(self, conn: Reader, component: str, tables: Iterable[str]) -> None:
        """Raise ``MissingTableError`` naming every one of ``tables`` that does not exist.

        Stores call it when they open, so a database opened with
        ``migrate=False`` fails there, not with a driver error on a later read.
        """
        missing = await self.missing_tables(conn, tables)
        if missing:
            raise MissingTableError(component, missing)

    def names_missing_object(self, exc: BaseException) -> bool:
        """Whether a driver error says a table or function does not exist."""
        return False

    async def explain_missing(
        self,
        conn: Reader,
        exc: BaseException,
        component: str,
        tables: Iterable[str],
        functions: Mapping[str, str] | None = None,
    ) -> MissingTableError | None:
        """The ``MissingTableError`` behind a failed statement, if that is what it was.

        Asked only after a failure, so a migrated database pays nothing per call.
        """
        if not self.names_missing_object(exc):
            return None
        try:
            missing = await self.missing_tables(conn, tables, functions)
        except Exception:  # noqa: BLE001 - the statement's own failure is reported instead
            return None
        return MissingTableError(component, missing) if missing else None

    def __repr__(self) -> str:
        return f"Dialect({str(self)!r})"


class _Sqlite(Dialect):
    __slots__ = ()

    def names_missing_object(self, exc: BaseException) -> bool:
        return "no such table" in str(exc)

    async def missing_tables(
        self, conn: Reader, tables: Iterable[str], functions: Mapping[str, str] | None = None
    ) -> list[str]:
        wanted = tuple(tables)
        marks = ", ".join("?" for _ in wanted)
        rows = await conn.fetch(
            f"SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ({marks})", *wanted
        )
        present = {str(row["name"]) for row in rows}
        return [t for t in wanted if t not in present]


# undefined_function, undefined_table, undefined_object (a %ROWTYPE of a dropped table).
_UNDEFINED: Final = frozenset({"42883", "42P01", "42704"})


# What may hold a "?" that is not a placeholder: literals, quoted identifiers,
# comments and dollar-quoted bodies. Anything else that is "?" is a placeholder.
_NOT_PLACEHOLDER = re.compile(
    r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/|(\$[A-Za-z_]*\$).*?\1|\?""",
    re.DOTALL,
)


@functools.lru_cache(maxsize=512)
def _numbered(sql: str) -> str:
    number = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal number
        if match.group(0) != "?":
            return match.group(0)
        number += 1
        return f"${number}"

    return _NOT_PLACEHOLDER.sub(replace, sql)


class _Postgres(Dialect):
    __slots__ = ()

    for_update = " FOR UPDATE"
    json_cast = "::jsonb"

    def placeholders(self, sql: str) -> str:
        return _numbered(sql)

    def to_db_time(self, value: datetime) -> object:
        return _aware(value)

    def to_db_bool(self, value: bool) -> object:
        return value

    async def notify(self, conn: Executor, channel: str, payload: str) -> None:
        await conn.execute("SELECT pg_notify($1, $2)", channel, payload)

    def names_missing_object(self, exc: BaseException) -> bool:
        return getattr(exc, "sqlstate", None) in _UNDEFINED

    async def missing_tables(
        self, conn: Reader, tables: Iterable[str], functions: Mapping[str, str] | None = None
    ) -> list[str]:
        wanted = tuple(tables)
        signatures = dict(functions or {})
        # to_regclass/to_regprocedure resolve through search_path, as the stores'
        # unqualified names do.
        rows = await conn.fetch(
            "SELECT name FROM unnest($1::text[]) AS name WHERE to_regclass(name) IS NULL "
            "UNION ALL SELECT name FROM unnest($2::text[], $3::text[]) AS f(name, signature) "
            "WHERE to_regprocedure(signature) IS NULL",
            list(wanted),
            list(signatures),
            list(signatures.values()),
        )
        missing = {str(row["name"]) for row in rows}
        return [t for t in (*wanted, *signatures) if t in missing]


SQLITE: Final[Dialect] = _Sqlite("sqlite")
POSTGRESQL: Final[Dialect] = _Postgres("postgresql")
DIALECTS: Final[dict[str, Dialect]] = {"sqlite": SQLITE, "postgresql": POSTGRESQL}

from_db_time = Dialect.from_db_time
"""A stored timestamp (either dialect's form) as an aware ``datetime``."""
