"""Where persisted error counts live: the store protocol and its seam.

Counting always happens in process (``ErrorStats``); a store only receives
per-minute counts to add up, and forgets the old ones. On a memory backend (or
none) nothing is persisted: the seam answers ``None`` there.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from buttress._seam import Seam

__all__ = ["ERROR_EVENT_STORES", "ErrorEventStore", "MinuteCount", "in_process"]

MinuteCount = tuple[datetime, str, str, str, int]
"""(minute, category, severity, component, count) to add to the stored count."""


@runtime_checkable
class ErrorEventStore(Protocol):
    """The persisted side of ``ErrorStats``: add counts, forget old ones."""

    async def add(self, counts: Sequence[MinuteCount]) -> None:
        """Add each count to its (minute, category, severity, component) row, atomically."""
        ...

    async def prune(self, older_than: datetime) -> None:
        """Delete the rows of minutes before ``older_than``."""
        ...


ERROR_EVENT_STORES: Seam[ErrorEventStore | None] = Seam(
    "error_events", "ErrorStats", ErrorEventStore
)
"""Where ``ErrorStats`` persists its counts on a backend (``buttress.backends.STORES``)."""


def in_process(backend: object) -> None:
    """On a memory backend the counts stay in the ``ErrorStats`` object."""
    return
