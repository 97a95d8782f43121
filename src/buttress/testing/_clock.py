"""``FakeClock``: a clock that moves only when the test says so.

It stands in for ``SystemClock``; ``await clock.sleep(s)`` advances the clock
instead of waiting, so back-offs, recovery timeouts and windows cost nothing.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta

__all__ = ["FakeClock"]

_DEFAULT_START = datetime(2024, 1, 1, tzinfo=UTC)


class FakeClock:
    """A manually driven clock for tests (implements ``buttress.clock.Clock``).

    >>> clock = FakeClock()
    >>> clock.advance(1.5)
    >>> clock.monotonic()
    1.5
    """

    __slots__ = ("_elapsed", "_start")

    def __init__(self, start: datetime | None = None) -> None:
        if start is None:
            start = _DEFAULT_START
        if start.tzinfo is None:
            raise ValueError("FakeClock(start=...): start must be timezone-aware")
        self._start = start.astimezone(UTC)
        self._elapsed = 0.0

    def monotonic(self) -> float:
        return self._elapsed

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    def time(self) -> float:
        """Seconds since the Unix epoch, like ``time.time()``."""
        return self.now().timestamp()

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (must be finite and >= 0)."""
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError("FakeClock.advance(seconds): seconds must be finite and >= 0")
        self._elapsed += seconds

    async def sleep(self, seconds: float) -> None:
        """Advance by ``seconds`` and yield to the event loop once, without waiting."""
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"FakeClock(now={self.now().isoformat()}, monotonic={self._elapsed})"
