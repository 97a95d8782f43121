"""Backends: where buttress's state lives, chosen by one DSN.

``await connect(dsn)`` (or ``async with connect(dsn) as backend``) opens a
``MemoryBackend``, ``SqliteBackend``, ``PostgresBackend`` or ``RedisBackend``.
Drivers (asyncpg, redis) are imported only when their scheme is opened.
"""

from buttress.backends._base import Backend, Row, SqlBackend, SqlConnection, require_sql
from buttress.backends._connect import Connecting, connect
from buttress.backends._dsn import BackendKind, redact_dsn
from buttress.backends.memory import MemoryBackend
from buttress.backends.postgres import PostgresBackend
from buttress.backends.redis import RedisBackend
from buttress.backends.sqlite import SqliteBackend

__all__ = [
    "Backend",
    "BackendKind",
    "Connecting",
    "MemoryBackend",
    "PostgresBackend",
    "RedisBackend",
    "Row",
    "SqlBackend",
    "SqlConnection",
    "SqliteBackend",
    "connect",
    "redact_dsn",
    "require_sql",
]
