"""What the metrics adapters share: buttress's events reduced to catalogue signals.

``Observer`` subscribes to ``buttress.events`` and to every circuit breaker's
listeners, reduces each event to a ``Signal``'s bounded label values, and hands
them to the adapter's ``Recorder`` for that signal. It also holds, weakly, the
``Database`` clients and ``ErrorStats`` an adapter was told to observe, read at
collection time.
``ObservingAdapter`` is the install/uninstall life both adapters lead.
"""

from __future__ import annotations

import abc
import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol, Self

from buttress.adapters._catalogue import (
    BREAKER_CALL,
    BREAKER_STATE_VALUES,
    BREAKER_TRANSITION,
    ERROR,
    FLAG_EVALUATION,
    HEALTH_RESULT,
    HEALTH_STATUS_VALUES,
    MIGRATION,
    RATELIMIT_DECISION,
    Labels,
    Signal,
)
from buttress.errors import ValidationError
from buttress.events import (
    BREAKER_CREATED,
    ERROR_COUNTED,
    FLAG_EVALUATED,
    HEALTH_CHECKED,
    MIGRATION_RAN,
    RATELIMIT_DECIDED,
    ErrorCounted,
    HealthChecked,
    Listener,
    MigrationRan,
    RateLimitDecided,
    Topic,
)

if TYPE_CHECKING:
    from buttress.breaker import CallEvent, CircuitBreaker, StateChange
    from buttress.db import Database, DatabaseStats
    from buttress.flags import FlagEvaluation
    from buttress.monitoring.errors import ErrorRateRule, ErrorStats

__all__ = [
    "UNKNOWN_FLAG_LABEL",
    "Observer",
    "ObservingAdapter",
    "Recorder",
    "SignalRecorder",
]


class Recorder(Protocol):
    """Records one happening of a signal: its label values, its level, its duration
    and the amount a counter adds (1 unless the happening counts several)."""

    def __call__(
        self, labels: Labels, level: float | None, seconds: float | None, amount: float = 1, /
    ) -> None: ...


class SignalRecorder(abc.ABC):
    """Feeds the metrics the catalogue feeds from one signal (at most one of each kind)."""

    __slots__ = ()

    def recorder(self) -> Recorder:
        """The cheapest way to record this signal: a lone counter (the busiest
        signals, flag evaluations and rate-limit decisions) needs no dispatch."""
        return self._count if self._counter_only() else self._record

    @abc.abstractmethod
    def _counter_only(self) -> bool:
        """True when the signal feeds a counter and no gauge or histogram."""

    @abc.abstractmethod
    def _count(
        self, labels: Labels, level: float | None, seconds: float | None, amount: float = 1, /
    ) -> None:
        """Records into the lone counter."""

    @abc.abstractmethod
    def _record(
        self, labels: Labels, level: float | None, seconds: float | None, amount: float = 1, /
    ) -> None:
        """Records into whichever of counter, gauge and histogram the signal feeds."""


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


def _ignore(
    labels: Labels, level: float | None, seconds: float | None, amount: float = 1, /
) -> None:
    return None


class _ErrorSource:
    """An observed ``ErrorStats`` (weakly) and the rules its alert level is judged by."""

    __slots__ = ("rules", "stats")

    def __init__(self, stats: ErrorStats, rules: tuple[ErrorRateRule, ...]) -> None:
        self.stats = weakref.ref(stats)
        self.rules = rules


class Observer:
    """Feeds each signal's ``Recorder`` from buttress's events while started."""

    def __init__(self, recorders: Mapping[Signal, Recorder]) -> None:
        def recorder(signal: Signal) -> Recorder:
            return recorders.get(signal, _ignore)

        # Built once: topics and breakers forget a listener by identity.
        self._on_state = _on_transition(recorder(BREAKER_TRANSITION))
        self._on_call = _on_call(recorder(BREAKER_CALL))
        self._on_evaluation = _on_evaluation(recorder(FLAG_EVALUATION))
        self._on_health = _on_health(recorder(HEALTH_RESULT))
        self._on_migration = _on_migration(recorder(MIGRATION))
        self._on_decision = _on_decision(recorder(RATELIMIT_DECISION))
        self._on_error = _on_error(recorder(ERROR))
        self._lock = threading.Lock()
        self._started = False
        self._attached: weakref.WeakSet[CircuitBreaker] = weakref.WeakSet()
        self._by_name: weakref.WeakValueDictionary[str, CircuitBreaker] = (
            weakref.WeakValueDictionary()
        )
        # Named explicitly by the application, so kept across stop()/start();
        # weakly, so that a dropped client stops being reported.
        self._databases: weakref.WeakValueDictionary[str, Database] = weakref.WeakValueDictionary()
        self._errors: dict[str, _ErrorSource] = {}

    @property
    def started(self) -> bool:
        return self._started

    def start(self) -> None:
        """Subscribe, and attach to every breaker alive now; idempotent."""
        with self._lock:
            if self._started:
                return
            self._started = True
        for topic, listener in self._subscriptions():
            topic.subscribe(listener)
        # No breaker can exist before its module is imported; don't import it for nothing.
        if "buttress.breaker" in sys.modules:
            from buttress.breaker import breakers

            for breaker in breakers:
                self._attach(breaker)

    def stop(self) -> None:
        """Unsubscribe and detach from every breaker; idempotent."""
        with self._lock:
            if not self._started:
                return
            self._started = False
        for topic, listener in self._subscriptions():
            topic.unsubscribe(listener)
        for breaker in list(self._attached):
            breaker.remove_listener(self._on_state)
            breaker.remove_listener(self._on_call)
        self._attached = weakref.WeakSet()
        self._by_name = weakref.WeakValueDictionary()

    def _subscriptions(self) -> tuple[tuple[Topic[Any], Listener[Any]], ...]:
        """Each topic followed while started, with the listener that follows it."""
        return (
            (BREAKER_CREATED, self._attach),
            (FLAG_EVALUATED, self._on_evaluation),
            (HEALTH_CHECKED, self._on_health),
            (MIGRATION_RAN, self._on_migration),
            (RATELIMIT_DECIDED, self._on_decision),
            (ERROR_COUNTED, self._on_error),
        )

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

    def observe_errors(self, stats: ErrorStats, rules: Iterable[ErrorRateRule], name: str) -> None:
        """Report ``stats``'s alert level under ``rules`` as ``name``.

        A name observed again now means the newer statistics; statistics
        observed again under another name move there.
        """
        from buttress.monitoring.errors import ErrorRateRule, ErrorStats

        if not isinstance(stats, ErrorStats):
            raise ValidationError("stats", "must be a buttress.monitoring.errors.ErrorStats")
        if not isinstance(name, str) or not name:
            raise ValidationError("name", "must be a non-empty string")
        checked = tuple(rules)
        if not checked:
            raise ValidationError("rules", "must hold at least one ErrorRateRule")
        for index, rule in enumerate(checked):
            if not isinstance(rule, ErrorRateRule):
                raise ValidationError(f"rules[{index}]", "must be an ErrorRateRule")
        with self._lock:
            self._forget_errors(stats)
            self._errors[name] = _ErrorSource(stats, checked)

    def forget_errors(self, stats: ErrorStats) -> None:
        """Stop reporting ``stats``; nothing happens if it was not observed."""
        with self._lock:
            self._forget_errors(stats)

    def _forget_errors(self, stats: ErrorStats) -> None:
        for known, source in list(self._errors.items()):
            if source.stats() in (stats, None):
                del self._errors[known]

    def error_levels(self) -> list[tuple[str, int]]:
        """``(name, alert level)`` of every observed ``ErrorStats`` still alive, by name.

        Counts are copied under the statistics' lock and judged outside it, so
        a scrape costs the threads that count errors next to nothing.
        """
        with self._lock:
            items = sorted(self._errors.items())
        levels = []
        for name, source in items:
            stats = source.stats()
            if stats is not None:
                levels.append((name, int(stats.alert_level(source.rules))))
        return levels

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


# How each event becomes its signal's label values, level and duration. Each is a
# closure over its recorder: a free variable is the cheapest thing to call on a
# path every breaker call or flag evaluation takes.


def _on_transition(record: Recorder) -> Callable[[StateChange], None]:
    def changed(change: StateChange) -> None:
        record((change.breaker, change.old.value, change.new.value), None, None)

    return changed


def _on_call(record: Recorder) -> Callable[[CallEvent], None]:
    outcomes = _CALL_OUTCOMES

    def called(event: CallEvent) -> None:
        # A rejected call never ran: it has no duration.
        record((event.breaker, outcomes[type(event)]), None, getattr(event, "duration", None))

    return called


def _on_evaluation(record: Recorder) -> Callable[[FlagEvaluation], None]:
    def evaluated(evaluation: FlagEvaluation) -> None:
        # ``_value_`` is the plain attribute behind ``.value``, which on Python 3.11
        # is a descriptor costing hundreds of ns: this runs on every evaluation.
        reason = evaluation.reason._value_
        flag = evaluation.key
        if reason == "UNKNOWN_FLAG" or (reason == "ERROR" and not _plausible_flag_key(flag)):
            flag = UNKNOWN_FLAG_LABEL
        record((flag, reason), None, None)

    return evaluated


def _on_health(record: Recorder) -> Callable[[HealthChecked], None]:
    def checked(event: HealthChecked) -> None:
        result = event.result
        # The readiness pseudo-component runs nothing: it has no latency to report.
        latency = None if event.component == "readiness" else result.latency_ms / 1000.0
        record((event.component,), HEALTH_STATUS_VALUES[result.status.value], latency)

    return checked


def _on_migration(record: Recorder) -> Callable[[MigrationRan], None]:
    def ran(event: MigrationRan) -> None:
        record((event.namespace, event.outcome), None, event.duration)

    return ran


def _on_decision(record: Recorder) -> Callable[[RateLimitDecided], None]:
    def decided(event: RateLimitDecided) -> None:
        record((event.limiter, "true" if event.allowed else "false"), None, None)

    return decided


def _on_error(record: Recorder) -> Callable[[ErrorCounted], None]:
    def counted(event: ErrorCounted) -> None:
        # The component stays out of the labels: ``record(component=...)`` takes
        # any string, and categories and severities are small fixed sets.
        record((event.category, event.severity), None, None, event.count)

    return counted


def _plausible_flag_key(key: str) -> bool:
    # An ERROR evaluation of a well-formed key is a real flag whose rules failed;
    # anything else was a caller passing garbage (an unhashable key, say).
    from buttress._checks import validate_key

    try:
        validate_key("key", key)
    except ValidationError:
        return False
    return True


class ObservingAdapter:
    """The life both metrics adapters lead: ``install()`` starts an ``Observer``
    feeding their recorders, ``uninstall()`` stops it; database clients can be
    observed at any time. Subclasses hook ``_register``/``_unregister``."""

    def __init__(self, recorders: Mapping[Signal, Recorder]) -> None:
        self._lock = threading.Lock()
        self._observer = Observer(recorders)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(installed={self.installed})"

    @property
    def installed(self) -> bool:
        return self._observer.started

    def install(self) -> Self:
        """Start recording; idempotent. Returns ``self``."""
        with self._lock:
            if not self._observer.started:
                self._register()
                self._observer.start()
        return self

    def uninstall(self) -> None:
        """Stop recording; idempotent. A later ``install()`` carries on from the same values."""
        with self._lock:
            if self._observer.started:
                self._observer.stop()
                self._unregister()

    def _register(self) -> None:
        """Called by ``install()`` under the lock; raising leaves the adapter uninstalled."""

    def _unregister(self) -> None:
        """Called by ``uninstall()`` under the lock, after recording stopped."""

    def observe_database(self, db: Database, *, name: str | None = None) -> None:
        """Report ``db``'s statistics (the ``buttress_db_*`` / ``buttress.db.*``
        metrics) with the label ``database=name`` (``db.name`` when None), read
        at collection time while installed.

        Held weakly: a client that is garbage-collected is no longer reported.
        Kept across ``uninstall()``/``install()``.
        """
        self._observer.observe_database(db, name)

    def forget_database(self, db: Database) -> None:
        """Stop reporting ``db``'s statistics; nothing happens if it was not observed."""
        self._observer.forget_database(db)

    def observe_errors(
        self,
        stats: ErrorStats,
        *,
        rules: Iterable[ErrorRateRule] | None = None,
        name: str = "default",
    ) -> None:
        """Report ``stats``'s error-rate alert level under ``rules`` (the
        ``buttress_error_rate_alert`` / ``buttress.error_rate.alert`` gauge,
        label ``collector=name``), judged at collection time while installed.

        ``rules`` default to ``ErrorRateRule()`` (warn above 10 errors a
        minute). Held weakly; kept across ``uninstall()``/``install()``. The
        error counter needs no observing: every ``ErrorStats`` publishes its counts.
        """
        if rules is None:
            from buttress.monitoring.errors import ErrorRateRule

            rules = (ErrorRateRule(),)
        self._observer.observe_errors(stats, rules, name)

    def forget_errors(self, stats: ErrorStats) -> None:
        """Stop reporting ``stats``'s alert level; nothing happens if it was not observed."""
        self._observer.forget_errors(stats)

    def __enter__(self) -> Self:
        return self.install()

    def __exit__(self, *exc_info: object) -> None:
        self.uninstall()
