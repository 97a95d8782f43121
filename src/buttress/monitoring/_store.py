"""Where health history lives: the stored values, the store interface, the in-process store.

A store only loads and saves, ordered by (time, id); ``HealthHistory`` checks
input before a store sees it. ``HealthRecord.value`` is the one place that
knows how a series name (a metric, or ``latency:<component>``) maps onto a run.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol, runtime_checkable

import attrs

from buttress._seam import Seam
from buttress.monitoring._values import HealthRecord, Sample

__all__ = [
    "HISTORY_STORES",
    "HistoryStore",
    "MemoryHistoryStore",
]


@runtime_checkable
class HistoryStore(Protocol):
    """Where records live. Stores only load and save; ``HealthHistory`` checks input."""

    async def insert(self, record: HealthRecord) -> None:
        """Store ``record`` under a new id (its own ``id`` is ignored)."""
        ...

    async def recent(self, limit: int) -> list[HealthRecord]:
        """Newest first (by time, then id)."""
        ...

    async def series(
        self, metric: str, since: datetime | None, until: datetime | None
    ) -> list[Sample]:
        """Samples with ``since <= at < until`` that have ``metric``, oldest first."""
        ...

    async def last_before(self, metric: str, before: datetime) -> Sample | None:
        """The newest sample of ``metric`` strictly before ``before``."""
        ...

    async def prune(self, older_than: datetime | None, keep_rows: int | None) -> int:
        """Delete runs before ``older_than`` and all but the newest ``keep_rows``; count them."""
        ...

    async def count(self) -> int: ...


def _key(record: HealthRecord) -> tuple[datetime, int]:
    return (record.recorded_at, record.id)


HISTORY_STORES: Seam[HistoryStore] = Seam("health_history", "HealthHistory", HistoryStore)
"""Where ``HealthHistory`` finds its store on a backend (``buttress.backends.STORES``)."""


class MemoryHistoryStore:
    """``HistoryStore`` in this process, ordered by (time, id).

    ``backend`` is accepted (and ignored) so that every store is built the same way.
    """

    __slots__ = ("_lock", "_next_id", "_rows")

    def __init__(self, backend: object = None) -> None:
        self._rows: list[HealthRecord] = []
        self._next_id = 1
        self._lock = asyncio.Lock()

    async def insert(self, record: HealthRecord) -> None:
        async with self._lock:
            stored = attrs.evolve(record, id=self._next_id)
            self._next_id += 1
            bisect.insort(self._rows, stored, key=_key)

    async def recent(self, limit: int) -> list[HealthRecord]:
        async with self._lock:
            return self._rows[-limit:][::-1]

    def _between(self, since: datetime | None, until: datetime | None) -> list[HealthRecord]:
        lo = 0 if since is None else bisect.bisect_left(self._rows, since, key=_time)
        hi = len(self._rows) if until is None else bisect.bisect_left(self._rows, until, key=_time)
        return self._rows[lo:hi]

    async def series(
        self, metric: str, since: datetime | None, until: datetime | None
    ) -> list[Sample]:
        async with self._lock:
            return _samples(self._between(since, until), metric)

    async def last_before(self, metric: str, before: datetime) -> Sample | None:
        async with self._lock:
            for record in reversed(self._between(None, before)):
                value = record.value(metric)
                if value is not None:
                    return Sample(record.recorded_at, value)
            return None

    async def prune(self, older_than: datetime | None, keep_rows: int | None) -> int:
        async with self._lock:
            before = len(self._rows)
            if older_than is not None:
                del self._rows[: bisect.bisect_left(self._rows, older_than, key=_time)]
            if keep_rows is not None and len(self._rows) > keep_rows:
                del self._rows[: len(self._rows) - keep_rows]
            return before - len(self._rows)

    async def count(self) -> int:
        return len(self._rows)


def _time(record: HealthRecord) -> datetime:
    return record.recorded_at


def _samples(records: Iterable[HealthRecord], metric: str) -> list[Sample]:
    samples = []
    for record in records:
        value = record.value(metric)
        if value is not None:
            samples.append(Sample(record.recorded_at, value))
    return samples
