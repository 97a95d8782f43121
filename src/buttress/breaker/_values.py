"""The circuit breaker's values: settings, states and events, permits, stats and errors.

Frozen and validated once at the boundary (``BreakerConfig``); nothing here
decides a transition (that is ``_core``), reads a clock or does I/O.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from buttress._exceptions import ButtressError, ValidationError
from buttress.errors import Classification, ErrorCategory, Severity, register_classification

__all__ = [
    "Admitted",
    "BreakerConfig",
    "BreakerState",
    "BreakerStats",
    "CallEvent",
    "CallFailed",
    "CallIgnored",
    "CallListener",
    "CallRejected",
    "CallSucceeded",
    "CircuitOpenError",
    "Event",
    "Outcome",
    "Permit",
    "Rejected",
    "StateChange",
    "StateListener",
    "Transition",
    "wall_time",
]


Validator = Callable[[object, "attrs.Attribute[Any]", Any], None]


def _count(*, optional: bool = False) -> Validator:
    """An integer >= 1 (or None when optional)."""

    def check(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None and optional:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValidationError(
                attribute.name, f"must be an integer >= 1, got {type(value).__name__}"
            )

    return check


def _seconds(*, optional: bool = False) -> Validator:
    """A finite number of seconds > 0 (or None when optional)."""

    def check(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None and optional:
            return
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value <= 0
        ):
            raise ValidationError(attribute.name, "must be a finite number of seconds > 0")

    return check


def _fraction(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ValidationError(attribute.name, "must be a fraction in (0, 1]")


def _check_exclude(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, tuple):
        raise ValidationError("exclude", "must be a tuple of exception types")
    for item in value:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise ValidationError(
                "exclude", f"must contain exception types, got {type(item).__name__}"
            )


def _check_callable(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not callable(value):
        raise ValidationError(attribute.name, "must be a callable or None")


def _as_exclude(value: object) -> object:
    # Accept a single type or any iterable for convenience; validation follows.
    if isinstance(value, type):
        return (value,)
    if isinstance(value, list | set | frozenset):
        return tuple(value)
    return value


@attrs.frozen(kw_only=True)
class BreakerConfig:
    """Every option of a ``CircuitBreaker`` (see ``docs/breaker.md``).

    The circuit opens when ``failure_threshold`` consecutive calls fail, or
    when ``failure_rate_threshold`` is set and, over the sliding window (the
    last ``window_size`` calls, or the last ``window_duration`` seconds), at
    least ``minimum_calls`` calls were seen and the failed fraction reaches the
    threshold. Either trigger may be switched off with ``None``, not both.
    """

    failure_threshold: int | None = attrs.field(default=5, validator=_count(optional=True))
    recovery_timeout: float = attrs.field(default=30.0, validator=_seconds())
    half_open_max_calls: int = attrs.field(default=1, validator=_count())
    probe_timeout: float = attrs.field(default=60.0, validator=_seconds())
    failure_rate_threshold: float | None = attrs.field(default=None, validator=_fraction)
    window_size: int | None = attrs.field(default=None, validator=_count(optional=True))
    window_duration: float | None = attrs.field(default=None, validator=_seconds(optional=True))
    minimum_calls: int | None = attrs.field(default=None, validator=_count(optional=True))
    slow_call_threshold: float | None = attrs.field(default=None, validator=_seconds(optional=True))
    exclude: tuple[type[BaseException], ...] = attrs.field(
        default=(), converter=_as_exclude, validator=_check_exclude
    )
    failure_on_exception: Callable[[BaseException], bool] | None = attrs.field(
        default=None, validator=_check_callable
    )
    failure_on_result: Callable[[object], bool] | None = attrs.field(
        default=None, validator=_check_callable
    )

    def __attrs_post_init__(self) -> None:
        if self.failure_threshold is None and self.failure_rate_threshold is None:
            raise ValidationError(
                "failure_threshold",
                "may be None only when failure_rate_threshold is set",
            )
        if self.window_size is not None and self.window_duration is not None:
            raise ValidationError(
                "window_duration", "cannot be combined with window_size (choose one window)"
            )
        if self.failure_rate_threshold is None:
            for name in ("window_size", "window_duration", "minimum_calls"):
                if getattr(self, name) is not None:
                    raise ValidationError(name, "needs failure_rate_threshold to be set")
        if (
            self.window_size is not None
            and self.minimum_calls is not None
            and self.minimum_calls > self.window_size
        ):
            raise ValidationError("minimum_calls", "must be <= window_size")

    @property
    def uses_window(self) -> bool:
        return self.failure_rate_threshold is not None

    @property
    def effective_window_size(self) -> int | None:
        """The count window's length; 100 calls when the rate has no window given."""
        if self.failure_rate_threshold is None or self.window_duration is not None:
            return None
        return self.window_size if self.window_size is not None else 100

    @property
    def effective_minimum_calls(self) -> int:
        if self.minimum_calls is not None:
            return self.minimum_calls
        size = self.effective_window_size
        return min(10, size) if size is not None else 10


class BreakerState(enum.Enum):
    """Where the circuit is: letting calls through, failing fast, or probing."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Event(enum.Enum):
    """What can move the circuit from one state to another."""

    TRIP = "trip"
    RECOVERY_ELAPSED = "recovery_elapsed"
    PROBE_SUCCEEDED = "probe_succeeded"
    PROBE_FAILED = "probe_failed"
    RESET = "reset"
    FORCE_OPEN = "force_open"


class Outcome(enum.Enum):
    """How one call ended, as far as the circuit is concerned."""

    SUCCESS = "success"
    FAILURE = "failure"
    # Cancelled or interrupted (not an Exception): says nothing about the dependency.
    IGNORED = "ignored"


@attrs.frozen(slots=True)
class Transition:
    """A state change the machine made, for listeners and logs."""

    old: BreakerState
    new: BreakerState
    event: Event
    at: float


@attrs.frozen(slots=True)
class Permit:
    """The right to run one call; ``probe`` numbers a half-open probe."""

    epoch: int
    probe: int | None = None


@attrs.frozen(slots=True)
class Admitted:
    permit: Permit
    transition: Transition | None


@attrs.frozen(slots=True)
class Rejected:
    retry_after: float
    transition: Transition | None


class CircuitOpenError(ButtressError):
    """The circuit is open (or its half-open probes are all taken): the call never ran.

    ``retry_after`` is how many seconds to wait before a call could be let
    through; ``breaker_name`` says which breaker refused. Retry policies never
    retry this error blindly: they wait ``retry_after`` only if it fits their budget.
    """

    # Raised on the hot path of an open circuit: no Python-level __init__ runs;
    # the attributes are views over ``args``, which BaseException fills in C.
    if TYPE_CHECKING:

        def __init__(self, breaker_name: str, retry_after: float) -> None: ...

    @property
    def breaker_name(self) -> str:
        name: str = self.args[0]
        return name

    @property
    def retry_after(self) -> float:
        seconds: float = self.args[1]
        return seconds

    def __str__(self) -> str:
        return f"circuit breaker {self.breaker_name!r} is open; retry after {self.retry_after:.3f}s"


# The dependency is known to be failing: retrying before retry_after is pointless.
register_classification(
    CircuitOpenError, Classification(ErrorCategory.NETWORK, Severity.MEDIUM, False)
)


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
_E = TypeVar("_E")


def _event_builder(cls: type[_E], timing: str) -> Callable[[str, float], _E]:
    """``build(breaker, seconds)``: exactly ``cls(breaker, seconds)``, built faster;
    ``timing`` names the float field (``duration`` or ``retry_after``)."""
    new = object.__new__
    set_breaker, set_timing = cls.__dict__["breaker"].__set__, cls.__dict__[timing].__set__

    def build(breaker: str, seconds: float) -> _E:
        event: _E = new(cls)
        set_breaker(event, breaker)
        set_timing(event, seconds)
        return event

    return build


call_succeeded = _event_builder(CallSucceeded, "duration")
call_rejected = _event_builder(CallRejected, "retry_after")
_set_error = CallFailed.__dict__["error"].__set__
_failed_without_error = _event_builder(CallFailed, "duration")


def call_failed(breaker: str, duration: float, error: BaseException | None) -> CallFailed:
    """Exactly ``CallFailed(breaker, duration, error)``, built faster."""
    event = _failed_without_error(breaker, duration)
    _set_error(event, error)
    return event


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
