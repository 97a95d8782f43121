"""What a breaker tells its listeners: state changes and per-call outcomes.

Events are small frozen values; they are only built when someone listens, so a
breaker without call listeners allocates nothing per call.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import attrs

from buttress.breaker._state import BreakerState

__all__ = [
    "CallEvent",
    "CallFailed",
    "CallIgnored",
    "CallListener",
    "CallRejected",
    "CallSucceeded",
    "StateChange",
    "StateListener",
]


@attrs.frozen(slots=True)
class StateChange:
    """The circuit ``breaker`` moved from ``old`` to ``new`` at ``at`` because of ``reason``."""

    breaker: str
    old: BreakerState
    new: BreakerState
    reason: str
    at: datetime


@attrs.frozen(slots=True)
class CallSucceeded:
    """A call counted as a success (``duration`` in seconds)."""

    breaker: str
    duration: float


@attrs.frozen(slots=True)
class CallFailed:
    """A call counted as a failure: an exception, a bad result, or too slow.

    ``error`` is the exception, or ``None`` for a failing result or a slow call.
    """

    breaker: str
    duration: float
    error: BaseException | None


@attrs.frozen(slots=True)
class CallIgnored:
    """A call was cancelled or interrupted; it says nothing about the dependency."""

    breaker: str
    duration: float
    error: BaseException


@attrs.frozen(slots=True)
class CallRejected:
    """The breaker refused a call without running it."""

    breaker: str
    retry_after: float


CallEvent = CallSucceeded | CallFailed | CallIgnored | CallRejected
StateListener = Callable[[StateChange], object]
CallListener = Callable[[CallEvent], object]
