# ruff: noqa: ASYNC109  (``timeout=`` mirrors asyncpg's per-call timeout and is handed to it)
"""``Transaction``: statements on the one connection of a ``Database.transaction()``.

Each statement is timed and counted through the ``Database`` that opened it;
none is retried on its own, since a failed statement aborts the transaction.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from buttress.db._options import check_timeout

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

__all__ = ["Transaction"]

_Op = Callable[..., Awaitable[Any]]


class StatementTimer(Protocol):
    """What a transaction needs of its ``Database``: a name and the timed run."""

    @property
    def name(self) -> str: ...

    async def _timed(
        self,
        conn: PoolConnectionProxy[asyncpg.Record] | None,
        op: _Op,
        sql: str,
        args: tuple[object, ...],
        seconds: float | None,
    ) -> Any: ...


class Transaction:
    """Statements on one connection inside ``Database.transaction()``; timed, never retried."""

    __slots__ = ("_conn", "_db", "_timeout")

    def __init__(
        self,
        db: StatementTimer,
        conn: PoolConnectionProxy[asyncpg.Record],
        timeout: float | None,
    ) -> None:
        self._db = db
        self._conn = conn
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"<Transaction on {self._db.name!r}>"

    @property
    def connection(self) -> PoolConnectionProxy[asyncpg.Record]:
        """The pinned asyncpg connection (for what this class does not cover)."""
        return self._conn

    def _seconds(self, timeout: float | None) -> float | None:
        if timeout is None:
            return self._timeout
        return check_timeout("timeout", timeout, optional=False)

    async def fetch(
        self, sql: str, *args: object, timeout: float | None = None
    ) -> list[asyncpg.Record]:
        result: list[asyncpg.Record] = await self._db._timed(
            self._conn, self._conn.fetch, sql, args, self._seconds(timeout)
        )
        return result

    async def fetchrow(
        self, sql: str, *args: object, timeout: float | None = None
    ) -> asyncpg.Record | None:
        result: asyncpg.Record | None = await self._db._timed(
            self._conn, self._conn.fetchrow, sql, args, self._seconds(timeout)
        )
        return result

    async def fetchval(
        self, sql: str, *args: object, column: int = 0, timeout: float | None = None
    ) -> Any:
        op: _Op = self._conn.fetchval
        if column:
            op = functools.partial(op, column=column)
        return await self._db._timed(self._conn, op, sql, args, self._seconds(timeout))

    async def execute(self, sql: str, *args: object, timeout: float | None = None) -> str:
        result: str = await self._db._timed(
            self._conn, self._conn.execute, sql, args, self._seconds(timeout)
        )
        return result

    async def executemany(
        self, sql: str, args: Iterable[Sequence[object]], *, timeout: float | None = None
    ) -> None:
        await self._db._timed(
            self._conn, self._conn.executemany, sql, (list(args),), self._seconds(timeout)
        )
