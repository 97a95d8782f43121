"""Backends: where buttress's state lives, chosen by one DSN, and the storage seam.

``await open_backend(dsn)`` (or ``async with open_backend(dsn) as backend``)
opens a ``MemoryBackend``, ``SqliteBackend``, ``PostgresBackend`` or
``RedisBackend``; ``buttress.connect`` does the same and then applies
buttress's own migrations. ``store_for(backend, seam)`` hands a capability the
store that serves it on that backend (the table is ``STORES``); a SQL backend's
``dialect`` writes what differs between SQLite and PostgreSQL. Drivers
(asyncpg, redis) are imported only when their scheme is opened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from buttress._seam import lazy_attributes, public_dir

if TYPE_CHECKING:
    from buttress._seam import STORES, Seam, resolve_store, store_for, supported_kinds
    from buttress.backends._base import (
        Backend,
        Row,
        SqlBackend,
        SqlConnection,
        Subscriber,
        require_sql,
    )
    from buttress.backends._changes import bump_counter, read_counter
    from buttress.backends._connect import (
        BACKENDS,
        Connecting,
        Prepare,
        backend_class,
        open_backend,
    )
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
    from buttress.backends._redis_topology import CrossSlotError
    from buttress.backends._resp import BlockingClient, PipelinedClient, ProtocolError, ReplyError
    from buttress.backends.memory import MemoryBackend
    from buttress.backends.postgres import PostgresBackend
    from buttress.backends.redis import RedisBackend
    from buttress.backends.sqlite import SqliteBackend

_LAZY: dict[str, str] = {
    "Backend": "buttress.backends._base",
    "Row": "buttress.backends._base",
    "SqlBackend": "buttress.backends._base",
    "SqlConnection": "buttress.backends._base",
    "Subscriber": "buttress.backends._base",
    "require_sql": "buttress.backends._base",
    "bump_counter": "buttress.backends._changes",
    "read_counter": "buttress.backends._changes",
    "BACKENDS": "buttress.backends._connect",
    "backend_class": "buttress.backends._connect",
    "Connecting": "buttress.backends._connect",
    "Prepare": "buttress.backends._connect",
    "open_backend": "buttress.backends._connect",
    "DIALECTS": "buttress.backends._dialect",
    "OWN_TABLES": "buttress.backends._dialect",
    "POSTGRESQL": "buttress.backends._dialect",
    "SQLITE": "buttress.backends._dialect",
    "Dialect": "buttress.backends._dialect",
    "MissingTableError": "buttress.backends._dialect",
    "from_db_time": "buttress.backends._dialect",
    "BackendKind": "buttress.backends._dsn",
    "CrossSlotError": "buttress.backends._redis_topology",
    "BlockingClient": "buttress.backends._resp",
    "PipelinedClient": "buttress.backends._resp",
    "ProtocolError": "buttress.backends._resp",
    "ReplyError": "buttress.backends._resp",
    "redact_dsn": "buttress.backends._dsn",
    "STORES": "buttress._seam",
    "Seam": "buttress._seam",
    "resolve_store": "buttress._seam",
    "store_for": "buttress._seam",
    "supported_kinds": "buttress._seam",
    "MemoryBackend": "buttress.backends.memory",
    "PostgresBackend": "buttress.backends.postgres",
    "RedisBackend": "buttress.backends.redis",
    "SqliteBackend": "buttress.backends.sqlite",
}


__getattr__ = lazy_attributes(__name__, _LAZY, globals())
__dir__ = public_dir(globals())


__all__ = [
    "BACKENDS",
    "DIALECTS",
    "OWN_TABLES",
    "POSTGRESQL",
    "SQLITE",
    "STORES",
    "Backend",
    "BackendKind",
    "BlockingClient",
    "Connecting",
    "CrossSlotError",
    "Dialect",
    "MemoryBackend",
    "MissingTableError",
    "PipelinedClient",
    "PostgresBackend",
    "Prepare",
    "ProtocolError",
    "RedisBackend",
    "ReplyError",
    "Row",
    "Seam",
    "SqlBackend",
    "SqlConnection",
    "SqliteBackend",
    "Subscriber",
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
