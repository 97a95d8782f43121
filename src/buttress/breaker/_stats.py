"""``BreakerStats``: what a breaker reports about itself, as one frozen value."""

from __future__ import annotations

from datetime import datetime, timedelta

import attrs

from buttress.breaker._state import BreakerState

__all__ = ["BreakerStats", "wall_time"]


@attrs.frozen(slots=True)
class BreakerStats:
    """A snapshot of one breaker, for health checks, metrics and the CLI.

    Counters are cumulative over the breaker's life (``reset()`` keeps them);
    ``consecutive_failures`` is the current streak. ``window_calls`` and
    ``window_failures`` describe the failure-rate window (0 when unused). On a
    shared breaker the counters are this instance's, the state and streak the
    fleet's as last seen, and ``store_available`` says whether the store answers.
    """

    name: str
    state: BreakerState
    failure_count: int
    success_count: int
    consecutive_failures: int
    rejected_count: int
    last_failure_at: datetime | None
    opened_at: datetime | None
    probes_in_flight: int = 0
    window_calls: int = 0
    window_failures: int = 0
    shared: bool = False
    store_available: bool | None = None


def wall_time(wall_now: datetime, mono_now: float, mono_then: float | None) -> datetime | None:
    """The wall-clock time of a monotonic instant, given one pair read together."""
    if mono_then is None:
        return None
    return wall_now - timedelta(seconds=max(0.0, mono_now - mono_then))
