"""What the metrics adapters share: turning buttress events into label values.

``Observer`` subscribes to ``buttress.events`` and to every circuit breaker's
listeners, reduces each event to bounded label values, and hands them to a
``MetricsSink`` (the Prometheus or OpenTelemetry adapter). It also holds,
weakly, the ``Database`` clients an adapter was told to observe, whose
statistics are read at collection time. It knows nothing about either library.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, Protocol

from buttress.errors import ValidationError
from buttress.events import (
    BREAKER_CREATED,
    FLAG_EVALUATED,
    HEALTH_CHECKED,
    MIGRATION_RAN,
    RATELIMIT_DECIDED,
    HealthChecked,
    MigrationRan,
    RateLimitDecided,
)

if TYPE_CHECKING:
    from buttress.breaker import CallEvent, CircuitBreaker, StateChange
    from buttress.db import Database, DatabaseStats
    from buttress.flags import FlagEvaluation

__all__ = [
    "BREAKER_STATE_VALUES",
    "HEALTH_STATUS_VALUES",
    "UNKNOWN_FLAG_LABEL",
    "MetricsSink",
    "Observer",
    "check_buckets",
]

BREAKER_STATE_VALUES: Final = {"closed": 0, "half_open": 1, "open": 2}
"""The number a breaker-state gauge reports for each ``BreakerState`` value."""

HEALTH_STATUS_VALUES: Final = {"healthy": 0, "degraded": 1, "unhealthy": 2}
"""The number a health-status gauge reports for each ``Status`` value (higher is worse)."""

UNKNOWN_FLAG_LABEL: Final = "(unknown)"
"""The ``flag`` label of evaluations of keys that name no flag: callers may ask
for anything, and every distinct key would otherwise become a time series."""

_CALL_OUTCOMES: dict[type[object], str] = {}
"""Breaker call-event class -> ``outcome`` label; filled when the first breaker is
attached, so that this module does not import the breaker package itself."""


def _learn_call_outcomes() -> None:
    from buttress.breaker import CallFailed, CallIgnored, CallRejected, CallSucceeded

    _CALL_OUTCOMES.update(
        {
            CallSucceeded: "success",
            CallFailed: "failure",
            CallIgnored: "ignored",
            CallRejected: "rejected",
        }
    )


class MetricsSink(Protocol):
    """Where an ``Observer`` records; every argument is already a bounded label value."""

    def breaker_transition(self, breaker: str, from_state: str, to_state: str) -> None: ...

    def breaker_call(self, breaker: str, outcome: str, duration: float | None) -> None:
        """``duration`` is None for a rejected call, which never ran."""

    def ratelimit_decision(self, limiter: str, allowed: bool) -> None: ...

    def flag_evaluation(self, flag: str, reason: str) -> None: ...

    def health_result(self, component: str, status: str, latency: float | None) -> None:
        """``latency`` in seconds; None for the readiness flag, which runs nothing."""

    def migration(self, namespace: str, outcome: str, duration: float) -> None: ...


class Observer:
    """Feeds a ``MetricsSink`` from buttress's events while started."""

    def __init__(self, sink: MetricsSink) -> None:
        self._sink = sink
        self._lock = threading.Lock()
        self._started = False
        self._attached: weakref.WeakSet[CircuitBreaker] = weakref.WeakSet()
        self._by_name: weakref.WeakValueDictionary[str, CircuitBreaker] = (
            weakref.WeakValueDictionary()
        )
        # Bound once: breakers forget a listener by identity, and ``self.method``
        # is a new object at every access.
        self._on_state = self._state_changed
        self._on_call = self._called
        # Named explicitly by the application, so kept across stop()/start();
        # weakly, so that a dropped client stops being reported.
        self._databases: weakref.WeakValueDictionary[str, Database] = weakref.WeakValueDictionary()

    @property
    def started(self) -> bool:
        return self._started

    def start(self) -> None:
        """Subscribe, and attach to every breaker alive now; idempotent."""
        with self._lock:
            if self._started:
                return
            self._started = True
        BREAKER_CREATED.subscribe(self._attach)
        FLAG_EVALUATED.subscribe(self._flag_evaluated)
        HEALTH_CHECKED.subscribe(self._health_checked)
        MIGRATION_RAN.subscribe(self._migration_ran)
        RATELIMIT_DECIDED.subscribe(self._ratelimit_decided)
        # No breaker can exist before its module is imported; don't import it for nothing.
        registry = sys.modules.get("buttress.breaker")
        if registry is not None:
            for breaker in registry.breakers:
                self._attach(breaker)

    def stop(self) -> None:
        """Unsubscribe and detach from every breaker; idempotent."""
        with self._lock:
            if not self._started:
                return
            self._started = False
        BREAKER_CREATED.unsubscribe(self._attach)
        FLAG_EVALUATED.unsubscribe(self._flag_evaluated)
        HEALTH_CHECKED.unsubscribe(self._health_checked)
        MIGRATION_RAN.unsubscribe(self._migration_ran)
        RATELIMIT_DECIDED.unsubscribe(self._ratelimit_decided)
        for breaker in list(self._attached):
            breaker.remove_listener(self._on_state)
            breaker.remove_listener(self._on_call)
        self._attached = weakref.WeakSet()
        self._by_name = weakref.WeakValueDictionary()

    def breaker_states(self) -> list[tuple[str, int]]:
        """``(name, state value)`` for every observed breaker still alive, by name.

        Read at collection time, so a breaker whose recovery timeout has passed
        reads half-open even before a call moves it.
        """
        with self._lock:
            items = sorted(self._by_name.items())
        return [(name, BREAKER_STATE_VALUES[breaker.state.value]) for name, breaker in items]

    def observe_database(self, db: Database, name: str | None = None) -> None:
        """Report ``db``'s statistics under ``name`` (``db.name`` when None).

        A name observed again now means the newer client; a client observed
        again under another name moves there.
        """
        # Imported here: this module must not pull asyncpg-facing code into
        # ``import buttress.adapters.prometheus`` for applications without a Database.
        from buttress.db import Database

        if not isinstance(db, Database):
            raise ValidationError("db", "must be a buttress.db.Database")
        if name is None:
            name = db.name
        elif not isinstance(name, str) or not name:
            raise ValidationError("name", "must be a non-empty string")
        with self._lock:
            for known, other in list(self._databases.items()):
                if other is db:
                    del self._databases[known]
            self._databases[name] = db

    def forget_database(self, db: Database) -> None:
        """Stop reporting ``db``; nothing happens if it was not observed."""
        with self._lock:
            for known, other in list(self._databases.items()):
                if other is db:
                    del self._databases[known]

    def database_stats(self) -> list[tuple[str, DatabaseStats]]:
        """``(name, stats)`` of every observed client still alive, by name.

        ``stats()`` only copies counters and sorts the recent latency window, so
        a scrape from another thread costs the client's event loop nothing.
        """
        with self._lock:
            items = sorted(self._databases.items())
        return [(name, db.stats()) for name, db in items]

    def _attach(self, breaker: CircuitBreaker) -> None:
        with self._lock:
            if not self._started:
                return
            # The newest breaker with a name owns its state series, as in the registry.
            self._by_name[breaker.name] = breaker
            if breaker in self._attached:
                return
            self._attached.add(breaker)
        if not _CALL_OUTCOMES:
            _learn_call_outcomes()
        breaker.on_state_change(self._on_state)
        breaker.on_call(self._on_call)

    def _state_changed(self, change: StateChange) -> None:
        self._sink.breaker_transition(change.breaker, change.old.value, change.new.value)

    def _called(self, event: CallEvent) -> None:
        # A rejected call never ran: it has no duration.
        duration: float | None = getattr(event, "duration", None)
        self._sink.breaker_call(event.breaker, _CALL_OUTCOMES[type(event)], duration)

    def _flag_evaluated(self, evaluation: FlagEvaluation) -> None:
        # ``_value_`` is the plain attribute behind ``.value``, which on Python 3.11
        # is a descriptor costing hundreds of ns: this runs on every evaluation.
        reason = evaluation.reason._value_
        flag = evaluation.key
        if reason == "UNKNOWN_FLAG" or (reason == "ERROR" and not _plausible_flag_key(flag)):
            flag = UNKNOWN_FLAG_LABEL
        self._sink.flag_evaluation(flag, reason)

    def _health_checked(self, event: HealthChecked) -> None:
        result = event.result
        # The readiness pseudo-component runs nothing: it has no latency to report.
        latency = None if event.component == "readiness" else result.latency_ms / 1000.0
        self._sink.health_result(event.component, result.status.value, latency)

    def _migration_ran(self, event: MigrationRan) -> None:
        self._sink.migration(event.namespace, event.outcome, event.duration)

    def _ratelimit_decided(self, event: RateLimitDecided) -> None:
        self._sink.ratelimit_decision(event.limiter, event.allowed)


def _plausible_flag_key(key: str) -> bool:
    # An ERROR evaluation of a well-formed key is a real flag whose rules failed;
    # anything else was a caller passing garbage (an unhashable key, say).
    from buttress._checks import validate_key

    try:
        validate_key("key", key)
    except ValidationError:
        return False
    return True


def check_buckets(field: str, buckets: Sequence[float]) -> tuple[float, ...]:
    """``buckets`` as floats, or ``ValidationError`` unless they increase and are positive."""
    values = tuple(buckets)
    if (
        not values
        or any(isinstance(b, bool) or not isinstance(b, int | float) or not b > 0 for b in values)
        or list(values) != sorted(set(values))
    ):
        raise ValidationError(field, "must be increasing positive numbers of seconds")
    return tuple(float(b) for b in values)
