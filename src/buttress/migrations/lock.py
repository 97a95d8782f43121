"""One migrator at a time per database: the lock lives in each migration's transaction.

PostgreSQL: a transaction-level advisory lock (``pg_try_advisory_xact_lock``),
so it works through a transaction pooler (PgBouncer) and ends with the
transaction, even when the migrator crashes. SQLite: the database's own write
lock (``BEGIN IMMEDIATE``): no lock file, nothing to go stale. Inside the lock
the migrator re-reads what is applied, so each migration runs exactly once
however many instances start together. Waiting is bounded by ``lock_timeout``
(polled on the injected clock); a timeout names who holds the lock.

Migrations that opt out of a transaction cannot hold either lock while they
run; on PostgreSQL they take the session-level advisory lock on a pinned
connection instead, which needs a direct connection, not a transaction pooler.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

from buttress.backends import SqlBackend, SqlConnection
from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.migrations.errors import MigrationError

__all__ = [
    "ADVISORY_LOCK_KEY",
    "MigrationLockTimeout",
    "migration_lock",
]

ADVISORY_LOCK_KEY = 0x42757474  # "Butt": fits in 31 bits, so pg_locks shows it in objid
_POLL = 0.05
_SQLITE_BUSY_MS = 50  # while polling for SQLite's write lock; the pool's value is restored

_HOLDER_QUERY = """
SELECT a.pid, a.usename, a.application_name, a.client_addr::text AS client_addr,
       a.backend_start, a.state
  FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
 WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = $1
"""


class MigrationLockTimeout(MigrationError):
    """Another migrator held the lock for longer than ``lock_timeout``."""

    def __init__(self, timeout: float, holder: str) -> None:
        self.timeout = timeout
        self.holder = holder
        super().__init__(
            f"another migrator holds the migration lock (held by {holder}); "
            f"gave up after {timeout:g}s"
        )


def whoami() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()}"


async def _wait(attempt: Callable[[], Awaitable[bool]], clock: Clock, lock_timeout: float) -> bool:
    deadline = clock.monotonic() + lock_timeout
    while True:
        if await attempt():
            return True
        if clock.monotonic() >= deadline:
            return False
        await clock.sleep(_POLL)


async def _postgres_holder(conn: SqlConnection) -> str:
    try:
        row = await conn.fetchrow(_HOLDER_QUERY, ADVISORY_LOCK_KEY)
    except Exception:  # noqa: BLE001 - the timeout is the error to report, not this read
        row = None
    if row is None:
        return "an unknown session (it may just have released it)"
    return (
        f"backend pid {row['pid']} (user {row['usename']}, application "
        f"{row['application_name'] or '-'}, client {row['client_addr'] or 'local'}, "
        f"connected {row['backend_start']:%Y-%m-%d %H:%M:%S%z})"
    )


async def _rollback(conn: SqlConnection) -> None:
    # A broken connection cannot roll back, but the server discards the
    # transaction anyway; the original error is the one worth raising.
    with contextlib.suppress(Exception):
        await conn.execute("ROLLBACK")


async def _begin_postgres(conn: SqlConnection, clock: Clock, lock_timeout: float) -> None:
    await conn.execute("BEGIN")

    async def attempt() -> bool:
        return bool(
            await conn.fetchval(
                "SELECT pg_catalog.pg_try_advisory_xact_lock($1)", ADVISORY_LOCK_KEY
            )
        )

    try:
        locked = await _wait(attempt, clock, lock_timeout)
        holder = "" if locked else await _postgres_holder(conn)
    except BaseException:
        await _rollback(conn)
        raise
    if not locked:
        await _rollback(conn)
        raise MigrationLockTimeout(lock_timeout, holder)


def _is_busy(exc: BaseException) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


async def _begin_sqlite(conn: SqlConnection, clock: Clock, lock_timeout: float) -> None:
    before = await conn.fetchval("PRAGMA busy_timeout")
    await conn.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_MS}")

    async def attempt() -> bool:
        try:
            await conn.execute("BEGIN IMMEDIATE")
        except Exception as exc:
            if _is_busy(exc):
                return False
            raise
        return True

    try:
        locked = await _wait(attempt, clock, lock_timeout)
    finally:
        await conn.execute(f"PRAGMA busy_timeout = {int(before)}")
    if not locked:
        raise MigrationLockTimeout(
            lock_timeout, "another connection writing to this database (SQLite's write lock)"
        )


async def _lock_session(conn: SqlConnection, clock: Clock, lock_timeout: float) -> None:
    async def attempt() -> bool:
        return bool(
            await conn.fetchval("SELECT pg_catalog.pg_try_advisory_lock($1)", ADVISORY_LOCK_KEY)
        )

    if not await _wait(attempt, clock, lock_timeout):
        raise MigrationLockTimeout(lock_timeout, await _postgres_holder(conn))


@contextlib.asynccontextmanager
async def migration_lock(
    backend: SqlBackend,
    conn: SqlConnection,
    *,
    transaction: bool = True,
    lock_timeout: float = 30.0,
    clock: Clock = SYSTEM_CLOCK,
) -> AsyncIterator[None]:
    """The database's migration lock on ``conn``.

    By default a transaction holding it: commits when the block ends, rolls back
    when it raises; the lock goes with the transaction either way.

    ``transaction=False``, for files that opt out of a transaction: on PostgreSQL
    the session advisory lock on the pinned ``conn`` (same key as the transaction
    lock, so the two exclude each other); on SQLite nothing can be held across
    statements without a transaction, so such files run unlocked.
    """
    if not transaction:
        if backend.dialect != "postgresql":
            yield
            return
        await _lock_session(conn, clock, lock_timeout)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(
                    conn.execute("SELECT pg_catalog.pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)
                )
        return
    if backend.dialect == "postgresql":
        await _begin_postgres(conn, clock, lock_timeout)
    else:
        await _begin_sqlite(conn, clock, lock_timeout)
    try:
        yield
    except BaseException:
        await _rollback(conn)
        raise
    try:
        await conn.execute("COMMIT")
    except BaseException:
        await _rollback(conn)  # a failed COMMIT leaves the transaction open
        raise
