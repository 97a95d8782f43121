"""Flags in SQLite or PostgreSQL, with a change counter and, on PostgreSQL, LISTEN/NOTIFY.

Every write is one transaction that first bumps the ``flags`` change counter
(serialising writers on that row), then updates the flag and appends its
history row, then (PostgreSQL) NOTIFYs ``buttress_flags`` with the key, which
the server delivers at commit. The tables come from buttress's migrations
``0002_config`` (the counters) and ``0003_flags``; ``open`` only checks them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from buttress._context import cancel_and_wait
from buttress.backends import SqlBackend, SqlConnection, bump_counter, from_db_time, read_counter
from buttress.flags._store import ChangeCallback
from buttress.flags._values import Flag, FlagAction, FlagChange
from buttress.log import get_logger

__all__ = ["CHANNEL", "SqlFlagStore"]

CHANNEL = "buttress_flags"
_COUNTER = "flags"


_TABLES = ("buttress_flags", "buttress_flag_history", "buttress_change_counters")


def _encode(flag: Flag | None) -> str | None:
    return None if flag is None else json.dumps(flag.to_dict(), sort_keys=True)


def _decode(text: object) -> Flag | None:
    if text is None:
        return None
    # Stored under an earlier release's rules, maybe: what today's refuse is noted, not raised.
    return Flag.from_dict(json.loads(str(text)), stored=True)


def _change(row: Mapping[str, Any]) -> FlagChange:
    action: FlagAction = row["action"]
    return FlagChange(
        row["key"],
        int(row["version"]),
        action,
        from_db_time(row["changed_at"]),
        row["changed_by"],
        row["reason"],
        _decode(row["old_data"]),
        _decode(row["new_data"]),
    )


class SqlFlagStore:
    """``FlagStore`` over a ``SqliteBackend`` or ``PostgresBackend``."""

    def __init__(self, backend: SqlBackend) -> None:
        self._backend = backend
        self._dialect = backend.dialect
        self._listener: asyncio.Task[None] | None = None
        self._subscribers: list[ChangeCallback] = []
        self._log = get_logger("flags", store=self._dialect)
        self._q = backend.dialect.placeholders

    @property
    def pushes(self) -> bool:
        # PostgreSQL pushes, but a notification can be lost while the listener
        # reconnects; polling stays on as the safety net, so never claim it is enough.
        return False

    @property
    def listens(self) -> bool:
        # LISTEN/NOTIFY on PostgreSQL, unless a transaction pooler sits in between.
        return self._backend.pushes

    async def open(self) -> None:
        await self._dialect.require_tables(self._backend, "FeatureFlags", _TABLES)

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        await cancel_and_wait(listener)

    async def change_token(self) -> int:
        return await read_counter(self._backend, _COUNTER)

    async def load(self) -> tuple[dict[str, Flag], int]:
        # Token first: a change landing in between makes the token older than the
        # data, which costs one extra reload, never a missed change.
        token = await self.change_token()
        rows = await self._backend.fetch("SELECT key, data FROM buttress_flags")
        flags: dict[str, Flag] = {}
        for row in rows:
            try:
                flag = _decode(row["data"])
            except (ValueError, TypeError):
                self._log.error("flags.stored_flag_unreadable", key=row["key"])
                continue
            if flag is not None:
                flags[flag.key] = flag
        return flags, token

    async def get(self, key: str) -> Flag | None:
        data = await self._backend.fetchval(
            self._q("SELECT data FROM buttress_flags WHERE key = ?"), key
        )
        return _decode(data)

    async def _begin_change(self, tx: SqlConnection, key: str) -> tuple[Flag | None, int]:
        await bump_counter(tx, _COUNTER)
        old = _decode(
            await tx.fetchval(self._q("SELECT data FROM buttress_flags WHERE key = ?"), key)
        )
        last = await tx.fetchval(
            self._q("SELECT COALESCE(MAX(version), 0) FROM buttress_flag_history WHERE key = ?"),
            key,
        )
        return old, int(last) + 1

    async def _finish_change(self, tx: SqlConnection, change: FlagChange) -> None:
        await tx.execute(
            self._q(
                "INSERT INTO buttress_flag_history (key, version, action, changed_at, "
                "changed_by, reason, old_data, new_data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            ),
            change.key,
            change.version,
            change.action,
            self._dialect.to_db_time(change.changed_at),
            change.changed_by,
            change.reason,
            _encode(change.old),
            _encode(change.new),
        )
        await self._dialect.notify(tx, CHANNEL, change.key)

    async def put(
        self, flag: Flag, *, changed_by: str | None, reason: str | None, at: datetime
    ) -> FlagChange:
        async with self._backend.transaction() as tx:
            old, version = await self._begin_change(tx, flag.key)
            await tx.execute(
                self._q(
                    "INSERT INTO buttress_flags (key, data, version, updated_at, updated_by) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
                    "data = excluded.data, version = excluded.version, "
                    "updated_at = excluded.updated_at, updated_by = excluded.updated_by"
                ),
                flag.key,
                _encode(flag),
                version,
                self._dialect.to_db_time(at),
                changed_by,
            )
            action: FlagAction = "create" if old is None else "update"
            change = FlagChange(flag.key, version, action, at, changed_by, reason, old, flag)
            await self._finish_change(tx, change)
        return change

    async def remove(
        self, key: str, *, changed_by: str | None, reason: str | None, at: datetime
    ) -> FlagChange | None:
        async with self._backend.transaction() as tx:
            old, version = await self._begin_change(tx, key)
            if old is None:
                return None  # the counter bump rolls back with nothing else to commit
            await tx.execute(self._q("DELETE FROM buttress_flags WHERE key = ?"), key)
            change = FlagChange(key, version, "delete", at, changed_by, reason, old, None)
            await self._finish_change(tx, change)
        return change

    async def history(self, key: str, limit: int) -> list[FlagChange]:
        rows = await self._backend.fetch(
            self._q(
                "SELECT key, version, action, changed_at, changed_by, reason, old_data, new_data "
                "FROM buttress_flag_history WHERE key = ? ORDER BY version DESC LIMIT ?"
            ),
            key,
            limit,
        )
        return [_change(row) for row in rows]

    async def subscribe(self, callback: ChangeCallback) -> Callable[[], None]:
        self._subscribers.append(callback)
        if self._backend.pushes and self._listener is None:
            self._listener = asyncio.get_running_loop().create_task(self._listen())

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def _emit(self, key: str | None, flag: Flag | None) -> None:
        for callback in tuple(self._subscribers):
            callback(key, flag)

    async def _listen(self) -> None:
        await self._backend.listen(CHANNEL, _ChangeFeed(self))

    def __repr__(self) -> str:
        return f"SqlFlagStore({self._dialect})"


class _ChangeFeed:
    """The backend's subscriber for one ``SqlFlagStore``: notified keys become change events."""

    __slots__ = ("_store",)

    def __init__(self, store: SqlFlagStore) -> None:
        self._store = store

    def connected(self) -> None:
        self._store._emit(None, None)  # reload what we may have missed

    async def received(self, payload: str) -> None:
        # Fetched after the notification, one key at a time: a later fetch
        # always sees a state at least as new, so the snapshot never regresses.
        self._store._emit(payload, await self._store.get(payload))

    def lost(self) -> None:
        return None
