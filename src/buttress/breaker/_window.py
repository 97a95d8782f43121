"""Sliding windows of call outcomes for the failure-rate trigger.

``CountWindow`` remembers the last N outcomes; ``TimeWindow`` remembers the
outcomes of the last ``duration`` seconds in ``BUCKETS`` buckets, so its
memory is fixed whatever the call rate. Both are pure: time is passed in.
"""

from __future__ import annotations

import math
from typing import Protocol

__all__ = ["BUCKETS", "CountWindow", "OutcomeWindow", "TimeWindow"]

BUCKETS = 10
"""A time window of D seconds is kept as 10 buckets of D/10 seconds each."""


class OutcomeWindow(Protocol):
    def add(self, failed: bool, now: float) -> None: ...
    def totals(self, now: float) -> tuple[int, int]:
        """``(calls, failures)`` currently inside the window."""
        ...

    def clear(self) -> None: ...


class CountWindow:
    """The last ``size`` outcomes, as a ring of 0/1 bytes plus running sums."""

    __slots__ = ("_calls", "_failures", "_next", "_ring", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._ring = bytearray(size)
        self._next = 0
        self._calls = 0
        self._failures = 0

    def add(self, failed: bool, now: float) -> None:
        slot = self._next
        if self._calls == self.size:
            self._failures -= self._ring[slot]
        else:
            self._calls += 1
        self._ring[slot] = 1 if failed else 0
        self._failures += 1 if failed else 0
        self._next = (slot + 1) % self.size

    def totals(self, now: float) -> tuple[int, int]:
        return self._calls, self._failures

    def clear(self) -> None:
        self._ring = bytearray(self.size)
        self._next = 0
        self._calls = 0
        self._failures = 0


def bucket_of(now: float, width: float) -> int:
    """The bucket index a timestamp falls in (shared with the reference model)."""
    return math.floor(now / width)


class TimeWindow:
    """Outcomes whose bucket is one of the last ``BUCKETS`` buckets of ``duration/BUCKETS`` s.

    An outcome therefore stays counted for between ``duration * 0.9`` and
    ``duration`` seconds, depending on where in its bucket it landed.
    """

    __slots__ = ("_bucket_ids", "_calls", "_failures", "duration", "width")

    def __init__(self, duration: float) -> None:
        self.duration = duration
        self.width = duration / BUCKETS
        self._bucket_ids = [-1 << 62] * BUCKETS
        self._calls = [0] * BUCKETS
        self._failures = [0] * BUCKETS

    def add(self, failed: bool, now: float) -> None:
        bucket = bucket_of(now, self.width)
        slot = bucket % BUCKETS
        if self._bucket_ids[slot] != bucket:
            self._bucket_ids[slot] = bucket
            self._calls[slot] = 0
            self._failures[slot] = 0
        self._calls[slot] += 1
        if failed:
            self._failures[slot] += 1

    def totals(self, now: float) -> tuple[int, int]:
        oldest = bucket_of(now, self.width) - BUCKETS
        calls = failures = 0
        for slot in range(BUCKETS):
            if self._bucket_ids[slot] > oldest:
                calls += self._calls[slot]
                failures += self._failures[slot]
        return calls, failures

    def clear(self) -> None:
        self._bucket_ids = [-1 << 62] * BUCKETS
        self._calls = [0] * BUCKETS
        self._failures = [0] * BUCKETS
