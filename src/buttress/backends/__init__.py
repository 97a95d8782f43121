"""Backends: where buttress's state lives, chosen by one DSN, and the storage seam.

``await open_backend(dsn)`` (or ``async with open_backend(dsn) as backend``)
opens a ``MemoryBackend``, ``SqliteBackend``, ``PostgresBackend`` or
``RedisBackend``; ``buttress.connect`` does the same and then applies
buttress's own migrations. ``store_for(backend, seam)`` hands a capability the
store that serves it on that backend (the table is ``STORES``); a SQL backend's
``dialect`` writes what differs between SQLite and PostgreSQL. Drivers
(asyncpg, redis) are imported only when their scheme is opened.
"""

from buttress.backends._base import Backend, Row, SqlBackend, SqlConnection, require_sql
from buttress.backends._changes import bump_counter, read_counter
from buttress.backends._connect import BACKENDS, Connecting, Prepare, backend_class, open_backend
from buttress.backends._dialect import (
    DIALECTS,
    OWN_TABLES,
    POSTGRESQL,
    SQLITE,
    Dialect,
    MissingTableError,
    from_db_time,
)
from buttress.backends._dsn import BackendKind, redact_dsn
from buttress.backends._registry import STORES, Seam, resolve_store, store_for, supported_kinds
from buttress.backends.memory import MemoryBackend
from buttress.backends.postgres import PostgresBackend
from buttress.backends.redis import RedisBackend
from buttress.backends.sqlite import SqliteBackend

__all__ = [
    "BACKENDS",
    "DIALECTS",
    "OWN_TABLES",
    "POSTGRESQL",
    "SQLITE",
    "STORES",
    "Backend",
    "BackendKind",
    "Connecting",
    "Dialect",
    "MemoryBackend",
    "MissingTableError",
    "PostgresBackend",
    "Prepare",
    "RedisBackend",
    "Row",
    "Seam",
    "SqlBackend",
    "SqlConnection",
    "SqliteBackend",
    "backend_class",
    "bump_counter",
    "from_db_time",
    "open_backend",
    "read_counter",
    "redact_dsn",
    "require_sql",
    "resolve_store",
    "store_for",
    "supported_kinds",
]
