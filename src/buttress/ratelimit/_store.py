"""What the limiter asks of a store, and the in-process store.

A shared store answers a batch of checks atomically: either every check in it
is admitted and consumed, or nothing is consumed. A single hit is a batch of
one. In process there is no round trip to save: the limiter decides on a
``MemoryTable`` itself, under the table's lock.

Memory stays bounded: when a table has doubled since its last sweep, keys whose
state has fully expired (an absent key decides exactly like them) are dropped and
the dict is rebuilt, so a million keys that go quiet are given back. The cost is
amortised O(1) per new key.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol, TypeAlias, runtime_checkable

from buttress._seam import Seam
from buttress.ratelimit._core import Algorithm
from buttress.ratelimit._values import Decision

__all__ = [
    "DEFAULT_MAX_KEYS",
    "MIN_SWEEP",
    "RATELIMIT_STORES",
    "Check",
    "MemoryStore",
    "MemoryTable",
    "Store",
]

Check: TypeAlias = tuple[Algorithm[Any], str, int, int, int]
"""One check: (algorithm, storage key, limit, period ns, cost)."""


Now: TypeAlias = Callable[[], int]
"""The limiter's wall clock in integer nanoseconds, for stores without a clock of their own."""


@runtime_checkable
class Store(Protocol):
    """A shared store (SQLite, Redis, PostgreSQL) seen by the limiter."""

    kind: str

    def decide(self, checks: Sequence[Check], consume: bool, now: Now) -> list[Decision]:
        """Sync twin of ``adecide``; async-only stores raise ``UnsupportedBackendError``."""
        ...

    async def adecide(self, checks: Sequence[Check], consume: bool, now: Now) -> list[Decision]:
        """Decide every check on the store's clock (``now`` where it has none);
        when ``consume`` and all are allowed, consume them all, atomically."""
        ...

    def reset(self, keys: Sequence[str]) -> None: ...

    async def areset(self, keys: Sequence[str]) -> None: ...


MIN_SWEEP: Final = 1024
"""Tables smaller than this are never swept (not worth the walk)."""

DEFAULT_MAX_KEYS: Final = 100_000
"""Live keys a table keeps at most (about 17 MiB of states); see ``MemoryTable``."""


class MemoryTable:
    """The states of one limiter shape (algorithm and period), behind one lock.

    Bounded: past ``max_keys`` live keys a sweep drops the expired ones and then,
    if the table is still too full, the keys nearest to being fully replenished
    (down to 90% of the cap), which hands a key back at most what it would have
    regained soonest anyway; a flood of new keys cannot grow memory without end.
    """

    __slots__ = ("algorithm", "data", "evicted", "lock", "max_keys", "period", "sweep_at")

    def __init__(
        self, algorithm: Algorithm[Any], period: int, max_keys: int = DEFAULT_MAX_KEYS
    ) -> None:
        self.algorithm = algorithm
        self.period = period
        self.max_keys = max_keys
        self.data: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.sweep_at = min(MIN_SWEEP, max_keys)
        self.evicted = 0
        """Live keys dropped because the table was full (a key flood)."""

    def sweep(self, now: int) -> int:
        """Drop expired keys, then, over the cap, the nearest-to-replenished ones
        (call with ``lock`` held); returns how many were dropped."""
        expires_at = self.algorithm.expires_at
        period = self.period
        before = len(self.data)
        # A fresh dict, because CPython dicts never shrink their table on delete.
        live = {k: s for k, s in self.data.items() if expires_at(s, period) > now}
        if len(live) > self.max_keys:
            keep = self.max_keys * 9 // 10
            ranked = heapq.nlargest(keep, live.items(), key=lambda kv: expires_at(kv[1], period))
            self.evicted += len(live) - keep
            live = dict(ranked)
        self.data = live
        self.sweep_at = min(max(MIN_SWEEP, 2 * len(self.data)), self.max_keys)
        return before - len(self.data)


class MemoryStore:
    """The rate-limit state of one ``MemoryBackend``: a table per limiter shape.

    Limiters of the same shape (algorithm, limit, period, prefix) on one memory
    backend share a table, as they would share rows in a database.
    """

    __slots__ = ("_lock", "_tables")

    kind = "memory"

    def __init__(self, backend: object = None) -> None:
        self._tables: dict[str, MemoryTable] = {}
        self._lock = threading.Lock()

    def table(
        self,
        namespace: str,
        algorithm: Algorithm[Any],
        period: int,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> MemoryTable:
        """The table of limiters named ``namespace``, made on first use (its first
        limiter's ``max_keys`` holds for all of them)."""
        with self._lock:
            table = self._tables.get(namespace)
            if table is None:
                table = self._tables[namespace] = MemoryTable(algorithm, period, max_keys)
            return table

    def __repr__(self) -> str:
        return f"MemoryStore(tables={len(self._tables)})"


RATELIMIT_STORES: Seam[Store | MemoryStore] = Seam("ratelimit", "RateLimiter", Store)
"""Where ``RateLimiter`` finds its store on a backend (``buttress.backends.STORES``)."""
