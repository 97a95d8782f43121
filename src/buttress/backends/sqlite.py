"""The embedded SQLite backend: stdlib ``sqlite3`` behind a small async pool.

Each pooled connection is used by one worker thread at a time. Files use WAL, a
busy timeout and foreign keys, and write transactions start with BEGIN IMMEDIATE,
so several processes on one machine can share a database file safely.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, ClassVar, Final, TypeVar

from buttress._exceptions import BackendError, BackendUnavailableError, UnsupportedBackendError
from buttress.backends._base import Row, SqlBackend, SqlConnection
from buttress.backends._dialect import SQLITE, Dialect
from buttress.backends._dsn import DSN
from buttress.backends._options import check_known, opt_bool, opt_int, opt_seconds

__all__ = ["SqliteBackend"]

T = TypeVar("T")

MEMORY: Final = ":memory:"
_OPTIONS = frozenset({"busy_timeout", "max_size", "create"})
_CLOSE_WAIT = 5.0


def _open(
    path: str, busy_timeout: float, *, check_same_thread: bool, create: bool = True
) -> sqlite3.Connection:
    # isolation_level=None: sqlite3 must not open transactions behind our back;
    # transaction() issues BEGIN IMMEDIATE itself.
    target, uri = path, False
    if path != MEMORY and not create:
        # mode=rw: a file that vanished since open() is an error, never a new file.
        target, uri = f"file:{urllib.parse.quote(path)}?mode=rw", True
    conn = sqlite3.connect(
        target,
        timeout=busy_timeout,
        isolation_level=None,
        check_same_thread=check_same_thread,
        uri=uri,
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        # Reads the header: a file that is not a database fails here, at open,
        # not on whichever statement first touches it.
        conn.execute("PRAGMA schema_version")
        if path != MEMORY and create:
            # Only a backend allowed to create sets the file up: looking at a
            # database (create=False) must not switch its journal mode for good.
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL is durable across application crashes in WAL mode; only an OS
            # crash can lose the last commits.
            conn.execute("PRAGMA synchronous = NORMAL")
    except BaseException:
        conn.close()
        raise
    return conn


def _prepare_file(path: str, *, create: bool) -> None:
    """Refuse a missing file unless ``create``; then create it empty, readable and
    writable by its owner only (it will hold configuration, secrets among it,
    history and backups). A file that exists is left as its owner made it."""
    if os.path.exists(path):
        return
    if not create:
        raise BackendUnavailableError(
            f"SQLite database {path} does not exist (nothing was created); "
            "create it with `buttress migrate`"
        )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise BackendUnavailableError(
            f"cannot create SQLite database at {path}: {exc.strerror}"
        ) from None
    os.close(fd)


def _rows(cursor: sqlite3.Cursor) -> list[Row]:
    names = [column[0] for column in cursor.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _execute(conn: sqlite3.Connection, sql: str, args: Sequence[object]) -> int:
    return max(0, conn.execute(sql, args).rowcount)


def _executemany(conn: sqlite3.Connection, sql: str, args: list[Sequence[object]]) -> None:
    conn.executemany(sql, args)


def _fetch(conn: sqlite3.Connection, sql: str, args: Sequence[object]) -> list[Row]:
    return _rows(conn.execute(sql, args))


def _fetchrow(conn: sqlite3.Connection, sql: str, args: Sequence[object]) -> Row | None:
    cursor = conn.execute(sql, args)
    row = cursor.fetchone()
    if row is None:
        return None
    names = [column[0] for column in cursor.description or ()]
    return dict(zip(names, row, strict=True))


def _fetchval(conn: sqlite3.Connection, sql: str, args: Sequence[object]) -> Any:
    row = conn.execute(sql, args).fetchone()
    return None if row is None else row[0]


def split_script(sql: str) -> list[str]:
    """Split ``sql`` into complete statements using SQLite's own tokenizer.

    ``executescript`` would COMMIT an open transaction first, so scripts are run
    statement by statement instead (triggers with inner ``;`` stay whole).
    """
    statements: list[str] = []
    buffer = ""
    for piece in sql.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \t\r\n;"):
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip(" \t\r\n;"):
        statements.append(buffer.rstrip(";").strip())
    return statements


def _execute_script(conn: sqlite3.Connection, sql: str) -> None:
    for statement in split_script(sql):
        conn.execute(statement)


class _Session:
    """SQL on one pinned connection (implements ``SqlConnection``)."""

    dialect: ClassVar[Dialect] = SQLITE

    def __init__(self, backend: SqliteBackend, conn: sqlite3.Connection) -> None:
        self._backend = backend
        self._conn = conn

    async def execute(self, sql: str, *args: object) -> int:
        return await self._backend._call(self._conn, _execute, sql, args)

    async def executemany(self, sql: str, args: Iterable[Sequence[object]]) -> None:
        await self._backend._call(self._conn, _executemany, sql, list(args))

    async def execute_script(self, sql: str) -> None:
        await self._backend._call(self._conn, _execute_script, sql)

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        return await self._backend._call(self._conn, _fetch, sql, args)

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        return await self._backend._call(self._conn, _fetchrow, sql, args)

    async def fetchval(self, sql: str, *args: object) -> Any:
        return await self._backend._call(self._conn, _fetchval, sql, args)

    def __repr__(self) -> str:
        return f"<SqliteSession {self._backend.dsn!r}>"


class SqliteBackend(SqlBackend):
    """SQLite through stdlib ``sqlite3``; ``?`` placeholders.

    Options: ``busy_timeout`` (seconds to wait for another writer, default 5),
    ``max_size`` (pooled connections, default 4; an in-memory database has 1),
    ``create`` (default True: a missing file is created, readable and writable
    by its owner only; False: a missing file is an error and nothing is created,
    which is how the command line opens a database it only looks at).
    """

    kind = "sqlite"
    schemes = ("sqlite",)
    dialect: ClassVar[Dialect] = SQLITE

    def __init__(
        self, dsn: DSN, *, busy_timeout: float, max_size: int, create: bool = True
    ) -> None:
        super().__init__(dsn.redacted)
        assert dsn.database is not None
        self.path: str = dsn.database if dsn.database == MEMORY else os.path.abspath(dsn.database)
        self.busy_timeout = busy_timeout
        self.create = create
        # Every connection to ":memory:" is a different database: keep exactly one.
        self.max_size = 1 if self.path == MEMORY else max_size
        self._executor = ThreadPoolExecutor(self.max_size, thread_name_prefix="buttress-sqlite")
        self._slots = asyncio.Semaphore(self.max_size)
        self._idle: list[sqlite3.Connection] = []
        self._all: list[sqlite3.Connection] = []

    @classmethod
    async def open(cls, dsn: DSN, options: dict[str, object]) -> SqliteBackend:
        check_known("sqlite", options, _OPTIONS)
        busy_timeout = opt_seconds(options, "busy_timeout", 5.0)
        assert busy_timeout is not None
        create = opt_bool(options, "create", True)
        backend = cls(
            dsn,
            busy_timeout=busy_timeout,
            max_size=opt_int(options, "max_size", 4, minimum=1),
            create=create,
        )
        if backend.path != MEMORY:
            _prepare_file(backend.path, create=create)
        try:
            await backend.ping()
        except BaseException:
            await backend.close()
            raise
        return backend

    def connect_sync(self) -> sqlite3.Connection:
        """A new ``sqlite3.Connection`` to the same file for sync hot paths.

        Same settings as the pool (WAL, busy timeout, foreign keys, autocommit:
        issue ``BEGIN IMMEDIATE`` yourself for write transactions). The caller
        owns and closes it; it is bound to the calling thread.
        """
        if self.path == MEMORY:
            raise UnsupportedBackendError(
                "connect_sync() needs a SQLite file: an in-memory database is private "
                "to its one connection"
            )
        return _open(self.path, self.busy_timeout, check_same_thread=True, create=self.create)

    async def _call(self, conn: sqlite3.Connection, fn: Callable[..., T], *args: object) -> T:
        job = self._executor.submit(fn, conn, *args)
        waiter = asyncio.wrap_future(job)
        try:
            return await asyncio.shield(waiter)
        except asyncio.CancelledError:
            if not job.cancel():
                await self._interrupt(conn, job, waiter)
            raise

    @staticmethod
    async def _interrupt(
        conn: sqlite3.Connection, job: Future[Any], waiter: asyncio.Future[Any]
    ) -> None:
        # The worker thread cannot be cancelled: interrupt its statement until it
        # returns, so the connection is idle before anyone else checks it out.
        # A second cancellation must not cut this short.
        while not job.done():
            conn.interrupt()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([waiter], timeout=0.05)

    async def _new_connection(self) -> sqlite3.Connection:
        loop = asyncio.get_running_loop()
        try:
            conn = await loop.run_in_executor(
                self._executor,
                lambda: _open(
                    self.path, self.busy_timeout, check_same_thread=False, create=self.create
                ),
            )
        except sqlite3.Error as exc:
            reason = str(exc)
        else:
            self._all.append(conn)
            return conn
        raise BackendUnavailableError(f"cannot open SQLite database at {self.path}: {reason}")

    @asynccontextmanager
    async def _checkout(self) -> AsyncIterator[sqlite3.Connection]:
        if self._closed:
            raise BackendError(f"{self!r} is closed")
        async with self._slots:
            conn = self._idle.pop() if self._idle else await self._new_connection()
            try:
                yield conn
            finally:
                self._idle.append(conn)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[SqlConnection]:
        async with self._checkout() as conn:
            yield _Session(self, conn)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqlConnection]:
        async with self._checkout() as conn:
            # IMMEDIATE takes the write lock up front: a deferred transaction that
            # later upgrades can fail with SQLITE_BUSY that no timeout resolves.
            await self._call(conn, _execute, "BEGIN IMMEDIATE", ())
            try:
                yield _Session(self, conn)
            except BaseException:
                await self._rollback(conn)
                raise
            try:
                await self._call(conn, _execute, "COMMIT", ())
            except BaseException:
                # A failed COMMIT leaves the transaction open; never pool it that way.
                await self._rollback(conn)
                raise

    async def _rollback(self, conn: sqlite3.Connection) -> None:
        with contextlib.suppress(sqlite3.Error):
            await self._call(conn, _execute, "ROLLBACK", ())

    async def execute(self, sql: str, *args: object) -> int:
        async with self._checkout() as conn:
            return await self._call(conn, _execute, sql, args)

    async def executemany(self, sql: str, args: Iterable[Sequence[object]]) -> None:
        async with self.transaction() as tx:
            await tx.executemany(sql, args)

    async def execute_script(self, sql: str) -> None:
        # Atomic, as a multi-statement script is on PostgreSQL.
        async with self.transaction() as tx:
            await tx.execute_script(sql)

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        async with self._checkout() as conn:
            return await self._call(conn, _fetch, sql, args)

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        async with self._checkout() as conn:
            return await self._call(conn, _fetchrow, sql, args)

    async def fetchval(self, sql: str, *args: object) -> Any:
        async with self._checkout() as conn:
            return await self._call(conn, _fetchval, sql, args)

    async def _ping(self) -> None:
        await self.fetchval("SELECT 1")

    async def _close(self) -> None:
        # Wait (bounded) for connections in use to come back, then close them all.
        taken = 0
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_CLOSE_WAIT):
                for _ in range(self.max_size):
                    await self._slots.acquire()
                    taken += 1
        connections, self._all, self._idle = self._all, [], []
        loop = asyncio.get_running_loop()
        for conn in connections:
            with contextlib.suppress(sqlite3.Error):
                await loop.run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=False)
        for _ in range(taken):
            self._slots.release()
