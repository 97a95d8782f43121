"""Query statistics in bounded memory, and the snapshot ``Database.stats()`` returns.

``QueryRecorder`` keeps running totals plus a ring of the last ``window``
latencies and outcomes; p95 and the error rate are read from that ring, so
memory stays fixed however many queries run. It has no lock: a ``Database``
lives on one event loop, and recording never awaits.
"""

from __future__ import annotations

import enum
import math
from array import array
from collections.abc import Mapping
from types import MappingProxyType

import attrs

from buttress._exceptions import ValidationError
from buttress.errors import ErrorCategory

__all__ = ["DatabaseStats", "OperationKind", "QueryRecorder", "percentile"]


class OperationKind(enum.StrEnum):
    """What a statement does, for choosing its circuit breaker."""

    READ = "read"
    WRITE = "write"
    BULK = "bulk"


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of ``values`` (0.0 when empty); sorts a copy."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _frozen_counts(value: Mapping[str, int]) -> Mapping[str, int]:
    return MappingProxyType(dict(value))


def _frozen_states(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(value))


@attrs.frozen(slots=True)
class DatabaseStats:
    """What a ``Database`` has done since it was created (or last ``reset_stats``).

    ``queries`` counts calls (a retried call is one query; ``retries`` counts
    the extra attempts); ``failures`` the calls that raised in the end.
    ``avg_latency_ms`` covers every query; ``p95_latency_ms`` and ``error_rate``
    cover the last ``window`` queries. ``errors`` counts failures by
    ``ErrorCategory`` value; ``breakers`` maps operation kind to breaker state.
    """

    queries: int
    failures: int
    retries: int
    slow_queries: int
    avg_latency_ms: float
    p95_latency_ms: float
    max_latency_ms: float
    error_rate: float
    window: int
    errors: Mapping[str, int] = attrs.field(converter=_frozen_counts, eq=False, hash=False)
    breakers: Mapping[str, str] = attrs.field(converter=_frozen_states, eq=False, hash=False)

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready values, for metrics adapters and ``--json`` output: every
        field, the mappings as plain dicts."""
        return {
            name: dict(value) if isinstance(value, Mapping) else value
            for name, value in attrs.asdict(self, recurse=False).items()
        }


class QueryRecorder:
    """Running totals and a fixed-size ring of recent latencies and outcomes."""

    __slots__ = (
        "_failed",
        "_latencies",
        "_size",
        "errors",
        "failures",
        "max_seconds",
        "queries",
        "retries",
        "slow_queries",
        "total_seconds",
    )

    def __init__(self, window: int = 1024) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValidationError("window", "must be an integer >= 1")
        self._size = window
        self._latencies = array("d", bytes(8 * window))
        self._failed = bytearray(window)
        self.queries = 0
        self.failures = 0
        self.retries = 0
        self.slow_queries = 0
        self.total_seconds = 0.0
        self.max_seconds = 0.0
        self.errors: dict[str, int] = {}

    @property
    def window(self) -> int:
        return self._size

    def record(self, seconds: float) -> None:
        """One successful query that took ``seconds``."""
        slot = self.queries % self._size
        self._latencies[slot] = seconds
        self._failed[slot] = 0
        self.queries += 1
        self.total_seconds += seconds
        if seconds > self.max_seconds:
            self.max_seconds = seconds

    def record_failure(self, seconds: float, category: ErrorCategory) -> None:
        """One query that raised, classified as ``category``."""
        slot = self.queries % self._size
        self._latencies[slot] = seconds
        self._failed[slot] = 1
        self.queries += 1
        self.failures += 1
        self.total_seconds += seconds
        if seconds > self.max_seconds:
            self.max_seconds = seconds
        key = category.value
        self.errors[key] = self.errors.get(key, 0) + 1

    def error_rate(self) -> float:
        """Failed fraction of the last ``window`` queries (0.0 before any)."""
        filled = min(self.queries, self._size)
        if not filled:
            return 0.0
        return sum(self._failed[:filled]) / filled

    def snapshot(self, breakers: Mapping[str, str]) -> DatabaseStats:
        filled = min(self.queries, self._size)
        recent = self._latencies[:filled].tolist()
        average = self.total_seconds / self.queries if self.queries else 0.0
        return DatabaseStats(
            queries=self.queries,
            failures=self.failures,
            retries=self.retries,
            slow_queries=self.slow_queries,
            avg_latency_ms=average * 1000.0,
            p95_latency_ms=percentile(recent, 0.95) * 1000.0,
            max_latency_ms=self.max_seconds * 1000.0,
            error_rate=self.error_rate(),
            window=filled,
            errors=self.errors,
            breakers=breakers,
        )
