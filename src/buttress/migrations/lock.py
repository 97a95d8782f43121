"""One migrator at a time per database, with a lock that cannot go stale.

PostgreSQL: a session advisory lock on the migrator's pinned connection; it
dies with the session, so a crashed migrator never leaves it behind. SQLite: an
``flock`` on a file next to the database, released by the OS when the process
dies (an in-memory database uses an in-process lock). Waiting is bounded; a
timeout names who holds the lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import weakref
from collections.abc import AsyncIterator, Callable
from typing import IO

from buttress.backends import SqlBackend, SqlConnection
from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.migrations.errors import MigrationError

__all__ = ["ADVISORY_LOCK_KEY", "MigrationLockTimeout", "migration_lock"]

ADVISORY_LOCK_KEY = 0x42757474  # "Butt": fits in 31 bits, so pg_locks shows it in objid
_POLL = 0.05

_HOLDER_QUERY = """
SELECT a.pid, a.usename, a.application_name, a.client_addr::text AS client_addr,
       a.backend_start, a.state
  FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
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


async def _wait(attempt: Callable[[], object], clock: Clock, lock_timeout: float) -> bool:
    deadline = clock.monotonic() + lock_timeout
    while True:
        result = attempt()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return True
        if clock.monotonic() >= deadline:
            return False
        await clock.sleep(_POLL)


@contextlib.asynccontextmanager
async def _postgres_lock(
    conn: SqlConnection, clock: Clock, lock_timeout: float
) -> AsyncIterator[None]:
    async def attempt() -> bool:
        return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", ADVISORY_LOCK_KEY))

    if not await _wait(attempt, clock, lock_timeout):
        row = await conn.fetchrow(_HOLDER_QUERY, ADVISORY_LOCK_KEY)
        holder = "an unknown session (it may just have released it)"
        if row is not None:
            holder = (
                f"backend pid {row['pid']} (user {row['usename']}, application "
                f"{row['application_name'] or '-'}, client {row['client_addr'] or 'local'}, "
                f"connected {row['backend_start']:%Y-%m-%d %H:%M:%S%z})"
            )
        raise MigrationLockTimeout(lock_timeout, holder)
    try:
        yield
    finally:
        # The pool's reset also runs pg_advisory_unlock_all(); this is the tidy path.
        with contextlib.suppress(Exception):
            await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)


_MEMORY_LOCKS: weakref.WeakKeyDictionary[SqlBackend, asyncio.Lock] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def _sqlite_lock(path: str, clock: Clock, lock_timeout: float) -> AsyncIterator[None]:
    import fcntl  # POSIX; imported here so the module still imports elsewhere

    handle: IO[str] = open(path + "-migrate.lock", "a+")  # noqa: SIM115, ASYNC230 - a local lock file, held across awaits
    try:

        def attempt() -> bool:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        if not await _wait(attempt, clock, lock_timeout):
            handle.seek(0)
            text = handle.read().strip()
            try:
                info = json.loads(text)
                holder = f"pid {info['pid']} on {info['host']} since {info['since']}"
            except (ValueError, KeyError, TypeError):
                holder = "an unknown process"
            raise MigrationLockTimeout(lock_timeout, holder)
        handle.seek(0)
        handle.truncate()
        handle.write(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "since": clock.now().isoformat(timespec="seconds"),
                }
            )
        )
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        handle.close()


@contextlib.asynccontextmanager
async def migration_lock(
    backend: SqlBackend,
    conn: SqlConnection,
    *,
    lock_timeout: float = 30.0,
    clock: Clock = SYSTEM_CLOCK,
) -> AsyncIterator[None]:
    """Hold the database's migration lock for the duration of the block.

    ``conn`` is the migrator's pinned connection (PostgreSQL's lock is per session).
    """
    if backend.dialect == "postgresql":
        async with _postgres_lock(conn, clock, lock_timeout):
            yield
        return
    path = getattr(backend, "path", ":memory:")
    if path == ":memory:" or os.name != "posix":
        lock = _MEMORY_LOCKS.setdefault(backend, asyncio.Lock())
        try:
            async with asyncio.timeout(lock_timeout):
                await lock.acquire()
        except TimeoutError:
            raise MigrationLockTimeout(lock_timeout, "another migrator in this process") from None
        try:
            yield
        finally:
            lock.release()
        return
    async with _sqlite_lock(str(path), clock, lock_timeout):
        yield
