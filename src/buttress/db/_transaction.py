# ruff: noqa: ASYNC109  (``timeout=`` mirrors asyncpg's per-call timeout and is handed to it)
"""``Transaction``: statements on the one connection of a ``Database.transaction()``.

Each statement is timed and counted through the ``Database`` that opened it;
none is retried on its own, since a failed statement aborts the transaction.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from buttress.db._options import check_timeout

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

__all__ = ["Transaction"]

_Op = Callable[..., Awaitable[Any]]


Timed = Callable[[_Op, str, tuple[object, ...], float | None], Awaitable[Any]]
"""``timed(op, sql, args, seconds)``: one statement on the transaction's connection,
timed and counted by the ``Database`` that opened it."""


@attrs.define(eq=False, weakref_slot=False)
class Transaction:
    """Statements on one connection inside ``Database.transaction()``; timed, never retried."""

    _name: str
    _conn: PoolConnectionProxy[asyncpg.Record]
    _timed: Timed
    _timeout: float | None

    def __repr__(self) -> str:
        return f"<Transaction on {self._name!r}>"

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
        result: list[asyncpg.Record] = await self._timed(
            self._conn.fetch, sql, args, self._seconds(timeout)
        )
        return result

    async def fetchrow(
        self, sql: str, *args: object, timeout: float | None = None
    ) -> asyncpg.Record | None:
        result: asyncpg.Record | None = await self._timed(
            self._conn.fetchrow, sql, args, self._seconds(timeout)
        )
        return result

    async def fetchval(
        self, sql: str, *args: object, column: int = 0, timeout: float | None = None
    ) -> Any:
        op: _Op = self._conn.fetchval
        if column:
            op = functools.partial(op, column=column)
        return await self._timed(op, sql, args, self._seconds(timeout))

    async def execute(self, sql: str, *args: object, timeout: float | None = None) -> str:
        result: str = await self._timed(self._conn.execute, sql, args, self._seconds(timeout))
        return result

    async def executemany(
        self, sql: str, args: Iterable[Sequence[object]], *, timeout: float | None = None
    ) -> None:
        await self._timed(self._conn.executemany, sql, (list(args),), self._seconds(timeout))
