"""Change counters: how a process learns that another one changed shared rows.

Every committed change to config, flags or deployments moves a named counter
in ``buttress_change_counters`` (migration ``0002_config``), inside the
writer's transaction; a cache compares the counter with what it last saw.
Push (PostgreSQL's LISTEN/NOTIFY) is ``SqlBackend.listen``; this is the poll.
"""

from __future__ import annotations

from typing import Any, Protocol

from buttress.backends._dialect import Dialect

__all__ = ["bump_counter", "read_counter"]


class _Executor(Protocol):
    @property
    def dialect(self) -> Dialect: ...

    async def execute(self, sql: str, *args: object) -> int: ...

    async def fetchval(self, sql: str, *args: object) -> Any: ...


async def read_counter(conn: _Executor, counter: str) -> int:
    """The change counter's value: it moves on every committed change."""
    value = await conn.fetchval(
        conn.dialect.placeholders("SELECT value FROM buttress_change_counters WHERE name = ?"),
        counter,
    )
    return int(value or 0)


async def bump_counter(tx: _Executor, counter: str) -> None:
    """Move the counter inside a write transaction; its row lock also serialises writers."""
    await tx.execute(
        tx.dialect.placeholders(
            "UPDATE buttress_change_counters SET value = value + 1 WHERE name = ?"
        ),
        counter,
    )
