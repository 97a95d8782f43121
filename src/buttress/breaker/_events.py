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


# Per-call builders for the listener path. attrs' frozen __init__ looks up a
# bound object.__setattr__ and calls it per field; writing the slots through
# their descriptors builds the same value in about two thirds of the time.
_new = object.__new__
_succeeded_fields = (
    CallSucceeded.__dict__["breaker"].__set__,
    CallSucceeded.__dict__["duration"].__set__,
)
_failed_fields = (
    CallFailed.__dict__["breaker"].__set__,
    CallFailed.__dict__["duration"].__set__,
    CallFailed.__dict__["error"].__set__,
)
_rejected_fields = (
    CallRejected.__dict__["breaker"].__set__,
    CallRejected.__dict__["retry_after"].__set__,
)


def call_succeeded(breaker: str, duration: float) -> CallSucceeded:
    """Exactly ``CallSucceeded(breaker, duration)``, built faster."""
    event: CallSucceeded = _new(CallSucceeded)
    set_breaker, set_duration = _succeeded_fields
    set_breaker(event, breaker)
    set_duration(event, duration)
    return event


def call_failed(breaker: str, duration: float, error: BaseException | None) -> CallFailed:
    """Exactly ``CallFailed(breaker, duration, error)``, built faster."""
    event: CallFailed = _new(CallFailed)
    set_breaker, set_duration, set_error = _failed_fields
    set_breaker(event, breaker)
    set_duration(event, duration)
    set_error(event, error)
    return event


def call_rejected(breaker: str, retry_after: float) -> CallRejected:
    """Exactly ``CallRejected(breaker, retry_after)``, built faster."""
    event: CallRejected = _new(CallRejected)
    set_breaker, set_retry_after = _rejected_fields
    set_breaker(event, breaker)
    set_retry_after(event, retry_after)
    return event
