"""SQL helpers shared by the config and flag stores: placeholders, timestamps, LISTEN.

Statements are written once with ``?`` placeholders and translated for
PostgreSQL's ``$n``; timestamps are ``timestamptz`` on PostgreSQL and ISO 8601
text on SQLite. Tables are created with ``CREATE TABLE IF NOT EXISTS`` until
they move into buttress's own migrations.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from structlog.typing import FilteringBoundLogger

from buttress.backends import SqlBackend, SqlConnection

__all__ = [
    "bump_counter",
    "create_tables",
    "from_db_time",
    "listen_forever",
    "placeholders",
    "read_counter",
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


_COUNTERS_DDL = {
    "sqlite": "CREATE TABLE IF NOT EXISTS buttress_change_counters "
    "(name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "postgresql": "CREATE TABLE IF NOT EXISTS buttress_change_counters "
    "(name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
}


async def create_tables(backend: SqlBackend, ddl: str, counter: str) -> None:
    """Run ``ddl`` and make sure the change counter ``counter`` exists (idempotent)."""
    await backend.execute_script(ddl)
    await backend.execute(_COUNTERS_DDL[backend.dialect])
    await backend.execute(
        placeholders(
            "INSERT INTO buttress_change_counters (name, value) VALUES (?, 0) "
            "ON CONFLICT (name) DO NOTHING",
            backend.dialect,
        ),
        counter,
    )


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
