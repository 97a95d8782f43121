"""In-process state for rate limiters: one dict of key -> state per limiter shape.

Memory stays bounded: when a table has doubled since its last sweep, keys whose
state has fully expired (an absent key decides exactly like them) are dropped and
the dict is rebuilt, so a million keys that go quiet are given back. The cost is
amortised O(1) per new key.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Final

from buttress.ratelimit._algorithms import Algorithm

__all__ = ["MIN_SWEEP", "MemoryTable", "shared_table"]

MIN_SWEEP: Final = 1024
"""Tables smaller than this are never swept (not worth the walk)."""


class MemoryTable:
    """The states of one limiter shape (algorithm and period), behind one lock."""

    __slots__ = ("__weakref__", "algorithm", "data", "lock", "period", "sweep_at")

    def __init__(self, algorithm: Algorithm[Any], period: int) -> None:
        self.algorithm = algorithm
        self.period = period
        self.data: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.sweep_at = MIN_SWEEP

    def sweep(self, now: int) -> int:
        """Drop expired keys (call with ``lock`` held); returns how many were dropped."""
        expires_at = self.algorithm.expires_at
        period = self.period
        before = len(self.data)
        # A fresh dict, because CPython dicts never shrink their table on delete.
        self.data = {k: s for k, s in self.data.items() if expires_at(s, period) > now}
        self.sweep_at = max(MIN_SWEEP, 2 * len(self.data))
        return before - len(self.data)


_SHARED: weakref.WeakKeyDictionary[object, dict[str, MemoryTable]] = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()


def shared_table(
    backend: object | None, namespace: str, algorithm: Algorithm[Any], period: int
) -> MemoryTable:
    """The table for ``namespace``: private when ``backend`` is None, else shared by
    every limiter of the same shape on that memory backend."""
    if backend is None:
        return MemoryTable(algorithm, period)
    with _SHARED_LOCK:
        tables = _SHARED.setdefault(backend, {})
        table = tables.get(namespace)
        if table is None:
            table = tables[namespace] = MemoryTable(algorithm, period)
        return table
