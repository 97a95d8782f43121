"""SQL helpers shared by the config, flag and deployment stores.

Statements are written once with ``?`` placeholders and translated for
PostgreSQL's ``$n``; timestamps are ``timestamptz`` on PostgreSQL and ISO 8601
text on SQLite. The tables come from buttress's packaged migrations;
``require_tables`` turns their absence into one clear ``MissingTableError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from structlog.typing import FilteringBoundLogger

from buttress.backends import SqlBackend, SqlConnection
from buttress.errors import SchemaMissingError

__all__ = [
    "OWN_TABLES",
    "MissingTableError",
    "bump_counter",
    "from_db_time",
    "listen_forever",
    "placeholders",
    "read_counter",
    "require_tables",
    "to_db_time",
]


@functools.lru_cache(maxsize=256)
def placeholders(sql: str, dialect: str) -> str:
    """``sql`` with each ``?`` as ``$1``, ``$2``... on PostgreSQL (no ``?`` sits in a literal)."""
    if dialect != "postgresql":
        return sql
    parts = sql.split("?")
    out = [parts[0]]
    for number, part in enumerate(parts[1:], start=1):
        out.append(f"${number}{part}")
    return "".join(out)


OWN_TABLES: dict[str, str] = {
    "buttress_config": "0002_config",
    "buttress_config_history": "0002_config",
    "buttress_change_counters": "0002_config",
    "buttress_flags": "0003_flags",
    "buttress_flag_history": "0003_flags",
    "buttress_health_history": "0005_health_history",
    "buttress_deployments": "0004_deployments",
    "buttress_rate_limits": "0006_rate_limits",
    "buttress_rate_limit()": "0006_rate_limits",  # PostgreSQL only: the decision function
    "buttress_error_events": "0008_system_health",
    "buttress_integrity_backup": "0009_integrity_backup",
}
"""Each of these stores' tables and the packaged migration that creates it."""


class MissingTableError(SchemaMissingError):
    """A store's tables do not exist: buttress's own migrations have not run
    on this database (it was opened with ``migrate=False``)."""

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


async def require_tables(backend: SqlBackend, component: str, tables: Iterable[str]) -> None:
    """Raise ``MissingTableError`` naming every one of ``tables`` that does not exist.

    One catalog query. Stores call it when they open, so a database opened
    with ``migrate=False`` fails there, not with a driver error on a later read.
    """
    wanted = tuple(tables)
    if backend.dialect == "postgresql":
        # to_regclass resolves through search_path, as the stores' unqualified names do.
        rows = await backend.fetch(
            "SELECT name FROM unnest($1::text[]) AS name WHERE to_regclass(name) IS NULL",
            list(wanted),
        )
        missing = {str(row["name"]) for row in rows}
    else:
        marks = ", ".join("?" for _ in wanted)
        rows = await backend.fetch(
            f"SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ({marks})",
            *wanted,
        )
        missing = set(wanted) - {str(row["name"]) for row in rows}
    if missing:
        raise MissingTableError(component, [t for t in wanted if t in missing])


async def read_counter(backend: SqlBackend, counter: str) -> int:
    """The change counter's value: it moves on every committed change."""
    value = await backend.fetchval(
        placeholders("SELECT value FROM buttress_change_counters WHERE name = ?", backend.dialect),
        counter,
    )
    return int(value or 0)


async def bump_counter(tx: SqlConnection, counter: str) -> None:
    """Move the counter inside a write transaction; its row lock also serialises writers."""
    await tx.execute(
        placeholders(
            "UPDATE buttress_change_counters SET value = value + 1 WHERE name = ?", tx.dialect
        ),
        counter,
    )


def to_db_time(value: datetime, dialect: str) -> object:
    return value if dialect == "postgresql" else value.astimezone(UTC).isoformat()


def from_db_time(value: object) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    raise TypeError(f"not a timestamp: {type(value).__name__}")


_RECONNECT_DELAY = 0.5
_LIVENESS_INTERVAL = 2.0


async def listen_forever(
    backend: object,
    channel: str,
    *,
    on_connected: Callable[[], None],
    on_payload: Callable[[str], Awaitable[None]],
    on_lost: Callable[[], None],
    log: FilteringBoundLogger,
) -> None:
    """Hold one pooled PostgreSQL connection LISTENing on ``channel``, forever.

    Payloads are handled one at a time, in arrival order. ``on_connected`` runs
    after every (re)subscription, so callers can reload whatever they may have
    missed; ``on_lost`` runs when the connection fails, before reconnecting.
    Cancel the task to stop; it also ends once the backend is closed.
    """
    pool: Any = getattr(backend, "pool", None)
    if pool is None:
        return
    payloads: asyncio.Queue[str] = asyncio.Queue()

    def on_notify(_conn: object, _pid: int, _channel: str, payload: str) -> None:
        payloads.put_nowait(payload)

    while not getattr(backend, "closed", False):  # a closed backend will not come back
        try:
            async with pool.acquire() as conn:
                await conn.add_listener(channel, on_notify)
                try:
                    on_connected()
                    while True:
                        try:
                            payload = await asyncio.wait_for(
                                payloads.get(), timeout=_LIVENESS_INTERVAL
                            )
                        except TimeoutError:
                            await conn.fetchval("SELECT 1")  # notices a dead connection
                            continue
                        await on_payload(payload)
                finally:
                    with contextlib.suppress(Exception):
                        await conn.remove_listener(channel, on_notify)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any driver failure means: reconnect
            on_lost()
            log.warning("listener_lost", channel=channel, error=type(exc).__name__)
            await asyncio.sleep(_RECONNECT_DELAY)
