"""The local read cache of a started ``ConfigStore``, and how it learns of changes.

Invalidation, in order of preference: the store's push (PostgreSQL
LISTEN/NOTIFY drops one key at once); else the store's change counter, read at
most every ``refresh_interval`` seconds (everything is dropped when it moved).
An epoch stops a read that raced an invalidation from caching a stale row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from buttress._context import cancel_and_wait
from buttress.clock import Clock
from buttress.config._store import ConfigBackendStore, StoredEntry

__all__ = ["ReadCache"]

Loader = Callable[[str], Awaitable[StoredEntry | None]]


class ReadCache:
    """Resolved rows by key for one ``ConfigStore`` view; inert until ``start()``.

    It is also the store's ``Subscriber``: the store pushes it the keys that change.
    """

    __slots__ = (
        "_checked_at",
        "_clock",
        "_epoch",
        "_listener",
        "_push_live",
        "_refresh_interval",
        "_rows",
        "_store",
        "_token",
        "active",
    )

    def __init__(self, store: ConfigBackendStore, clock: Clock, refresh_interval: float) -> None:
        self._store = store
        self._clock = clock
        self._refresh_interval = refresh_interval
        self._rows: dict[str, StoredEntry | None] = {}
        self._epoch = 0
        self._token: int | None = None
        self._checked_at = 0.0
        self._push_live = False
        self._listener: asyncio.Task[None] | None = None
        self.active = False

    def start(self) -> None:
        """Begin caching (only for stores other processes can change); idempotent."""
        if self.active or not self._store.shared:
            return
        self.active = True
        self._token = None
        self._listener = asyncio.get_running_loop().create_task(
            self._store.listen(self)
        )

    async def stop(self) -> None:
        listener, self._listener = self._listener, None
        await cancel_and_wait(listener)
        self.active = False
        self._push_live = False
        self.invalidate(None)

    def invalidate(self, key: str | None) -> None:
        """Drop ``key`` (None: everything)."""
        self._epoch += 1
        if key is None:
            self._rows.clear()
        else:
            self._rows.pop(key, None)

    async def get(self, key: str, load: Loader) -> StoredEntry | None:
        """The cached row for ``key``, loading (and caching) it with ``load`` on a miss."""
        await self._check()
        if key in self._rows:
            return self._rows[key]
        epoch = self._epoch
        row = await load(key)
        if epoch == self._epoch:
            self._rows[key] = row
        return row

    async def _check(self) -> None:
        if self._push_live:
            return
        now = self._clock.monotonic()
        if self._token is not None and now - self._checked_at < self._refresh_interval:
            return
        token = await self._store.change_token()
        self._checked_at = now
        if token != self._token:
            self.invalidate(None)
            self._token = token

    def connected(self) -> None:
        self.invalidate(None)  # changes made while nobody listened
        self._push_live = True

    async def received(self, payload: str) -> None:
        self.invalidate(payload)

    def lost(self) -> None:
        self._push_live = False
        self.invalidate(None)
