"""Prometheus metrics for buttress (``pip install 'buttress[prometheus]'``).

``PrometheusMetrics(registry).install()`` registers buttress's metrics in a
``prometheus_client`` registry and feeds them from ``buttress.events`` and every
circuit breaker, and reads observed ``buttress.db.Database`` clients at scrape
time; ``uninstall()`` takes them out again. This module owns only the metric
names and their types; what an event means is ``_observe``'s business.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Final, Self

from buttress.adapters._observe import (
    BREAKER_STATE_VALUES,
    HEALTH_STATUS_VALUES,
    Observer,
    check_buckets,
)
from buttress.errors import MissingDependencyError, ValidationError

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("prometheus-client", "prometheus") from exc

if TYPE_CHECKING:
    from buttress.db import Database

__all__ = ["DEFAULT_MIGRATION_BUCKETS", "PrometheusMetrics"]

DEFAULT_MIGRATION_BUCKETS: Final = (0.01, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0, 1800.0)
"""Buckets of ``buttress_migration_seconds``: migrations take seconds to minutes."""


class _BreakerStateCollector(Collector):
    """``buttress_breaker_state``, read from the live breakers at scrape time."""

    def __init__(self, observer: Observer) -> None:
        self._observer = observer

    def describe(self) -> Iterable[Metric]:
        yield self._family()

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        for name, value in self._observer.breaker_states():
            family.add_metric([name], value)
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "buttress_breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
            labels=["breaker"],
        )


_DatabaseFamilies = tuple[
    CounterMetricFamily,
    CounterMetricFamily,
    CounterMetricFamily,
    CounterMetricFamily,
    GaugeMetricFamily,
    GaugeMetricFamily,
    GaugeMetricFamily,
]


class _DatabaseCollector(Collector):
    """``buttress_db_*``, read from the observed ``Database`` clients at scrape time.

    The client keeps the totals itself, so queries cost nothing extra here.
    """

    def __init__(self, observer: Observer) -> None:
        self._observer = observer

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        observed = self._observer.database_stats()
        if not observed:
            # An application without a Database gets no empty buttress_db_* families.
            return ()
        families = self._families()
        queries, errors, slow, retries, average, p95, breakers = families
        for name, stats in observed:
            queries.add_metric([name], stats.queries)
            for category, count in sorted(stats.errors.items()):
                errors.add_metric([name, category], count)
            slow.add_metric([name], stats.slow_queries)
            retries.add_metric([name], stats.retries)
            average.add_metric([name], stats.avg_latency_ms / 1000.0)
            p95.add_metric([name], stats.p95_latency_ms / 1000.0)
            for kind, state in sorted(stats.breakers.items()):
                breakers.add_metric([name, kind], BREAKER_STATE_VALUES[state])
        return families

    @staticmethod
    def _families() -> _DatabaseFamilies:
        db = ["database"]
        return (
            CounterMetricFamily(
                "buttress_db_queries",
                "Queries run by a buttress.db client (a retried query counts once).",
                labels=db,
            ),
            CounterMetricFamily(
                "buttress_db_errors",
                "Queries that failed in the end, by error category.",
                labels=["database", "category"],
            ),
            CounterMetricFamily(
                "buttress_db_slow_queries",
                "Queries slower than the client's slow_query_threshold.",
                labels=db,
            ),
            CounterMetricFamily(
                "buttress_db_retries",
                "Extra attempts made after transient errors.",
                labels=db,
            ),
            GaugeMetricFamily(
                "buttress_db_latency_average_seconds",
                "Average query latency since the client started counting.",
                labels=db,
            ),
            GaugeMetricFamily(
                "buttress_db_latency_p95_seconds",
                "95th percentile query latency over the client's recent window.",
                labels=db,
            ),
            GaugeMetricFamily(
                "buttress_db_breaker_state",
                "State of the breaker per operation kind: 0 closed, 1 half-open, 2 open.",
                labels=["database", "kind"],
            ),
        )


class PrometheusMetrics:
    """buttress's metrics in a Prometheus registry (the default one if ``registry`` is None).

    >>> from prometheus_client import CollectorRegistry
    >>> metrics = PrometheusMetrics(CollectorRegistry()).install()
    >>> metrics.uninstall()

    ``buckets`` are the histogram buckets of call and health-check latencies
    (prometheus_client's defaults, 5 ms to 10 s, when None).
    ``observe_database(db)`` adds a ``buttress.db.Database``'s statistics.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        buckets: Sequence[float] | None = None,
        migration_buckets: Sequence[float] = DEFAULT_MIGRATION_BUCKETS,
    ) -> None:
        if registry is None:
            registry = REGISTRY
        elif not isinstance(registry, CollectorRegistry):
            raise ValidationError("registry", "must be a prometheus_client.CollectorRegistry")
        latency = (
            check_buckets("buckets", buckets) if buckets is not None else Histogram.DEFAULT_BUCKETS
        )
        slow = check_buckets("migration_buckets", migration_buckets)
        self.registry = registry
        self._lock = threading.Lock()
        self._installed = False
        self._observer = Observer(self)
        # Created unregistered: install() registers them and uninstall() removes them.
        self.breaker_transitions: Counter = Counter(
            "buttress_breaker_transitions_total",
            "Circuit breaker state changes.",
            ["breaker", "from_state", "to_state"],
            registry=None,
        )
        self.breaker_calls: Counter = Counter(
            "buttress_breaker_calls_total",
            "Calls through a circuit breaker, by outcome (success, failure, ignored, rejected).",
            ["breaker", "outcome"],
            registry=None,
        )
        self.breaker_call_seconds: Histogram = Histogram(
            "buttress_breaker_call_seconds",
            "Duration of calls a circuit breaker let through, by outcome.",
            ["breaker", "outcome"],
            buckets=latency,
            registry=None,
        )
        self.ratelimit_decisions: Counter = Counter(
            "buttress_ratelimit_decisions_total",
            "Rate limiter decisions, by limiter and whether the request was allowed.",
            ["limiter", "allowed"],
            registry=None,
        )
        self.flag_evaluations: Counter = Counter(
            "buttress_flag_evaluations_total",
            "Feature flag evaluations, by flag and the rule that decided.",
            ["flag", "reason"],
            registry=None,
        )
        self.health_status: Gauge = Gauge(
            "buttress_health_status",
            "Latest health check result: 0 healthy, 1 degraded, 2 unhealthy.",
            ["component"],
            registry=None,
        )
        self.health_check_seconds: Histogram = Histogram(
            "buttress_health_check_seconds",
            "Duration of health checks.",
            ["component"],
            buckets=latency,
            registry=None,
        )
        self.migrations: Counter = Counter(
            "buttress_migrations_total",
            "Migrations applied, failed or rolled back.",
            ["namespace", "outcome"],
            registry=None,
        )
        self.migration_seconds: Histogram = Histogram(
            "buttress_migration_seconds",
            "Duration of migrations, by outcome.",
            ["namespace", "outcome"],
            buckets=slow,
            registry=None,
        )
        self._state = _BreakerStateCollector(self._observer)
        self._databases = _DatabaseCollector(self._observer)
        self._children: dict[tuple[str, ...], _Child] = {}

    def __repr__(self) -> str:
        return f"PrometheusMetrics(installed={self._installed})"

    @property
    def installed(self) -> bool:
        return self._installed

    def install(self) -> Self:
        """Register the metrics and start recording; idempotent. Returns ``self``.

        Raises ``ValidationError`` when the registry already holds metrics of
        these names (another ``PrometheusMetrics`` installed there).
        """
        with self._lock:
            if self._installed:
                return self
            done: list[Collector] = []
            try:
                for collector in self._collectors():
                    self.registry.register(collector)
                    done.append(collector)
            except ValueError as exc:
                for collector in done:
                    self.registry.unregister(collector)
                raise ValidationError(
                    "registry", f"already holds buttress metrics ({exc}); uninstall those first"
                ) from None
            self._installed = True
        self._observer.start()
        return self

    def uninstall(self) -> None:
        """Stop recording and unregister the metrics; idempotent. Values are kept
        for a later ``install()``."""
        with self._lock:
            if not self._installed:
                return
            self._installed = False
            self._observer.stop()
            for collector in self._collectors():
                self.registry.unregister(collector)

    def observe_database(self, db: Database, *, name: str | None = None) -> None:
        """Export ``db``'s statistics as ``buttress_db_*`` with label ``database=name``
        (``db.name`` when None), read at scrape time while installed.

        Held weakly: a client that is garbage-collected disappears from the
        next scrape. Kept across ``uninstall()``/``install()``.
        """
        self._observer.observe_database(db, name)

    def forget_database(self, db: Database) -> None:
        """Stop exporting ``db``'s statistics; nothing happens if it was not observed."""
        self._observer.forget_database(db)

    def __enter__(self) -> Self:
        return self.install()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.uninstall()

    def _collectors(self) -> Iterator[Collector]:
        yield self._state
        yield self._databases
        yield self.breaker_transitions
        yield self.breaker_calls
        yield self.breaker_call_seconds
        yield self.ratelimit_decisions
        yield self.flag_evaluations
        yield self.health_status
        yield self.health_check_seconds
        yield self.migrations
        yield self.migration_seconds

    # MetricsSink: called from the observer, in whatever thread published the event.

    def breaker_transition(self, breaker: str, from_state: str, to_state: str) -> None:
        self.breaker_transitions.labels(breaker, from_state, to_state).inc()

    def breaker_call(self, breaker: str, outcome: str, duration: float | None) -> None:
        # labels() takes a lock and builds a key; a call path deserves the cached child.
        key = ("call", breaker, outcome)
        child = self._children.get(key)
        if child is None:
            child = _Child(
                self.breaker_calls.labels(breaker, outcome),
                None
                if outcome == "rejected"
                else self.breaker_call_seconds.labels(breaker, outcome),
            )
            self._children[key] = child
        child.count.inc()
        if duration is not None and child.seconds is not None:
            child.seconds.observe(duration)

    def ratelimit_decision(self, limiter: str, allowed: bool) -> None:
        key = ("rl", limiter, "true" if allowed else "false")
        child = self._children.get(key)
        if child is None:
            child = _Child(self.ratelimit_decisions.labels(limiter, key[2]), None)
            self._children[key] = child
        child.count.inc()

    def flag_evaluation(self, flag: str, reason: str) -> None:
        key = ("flag", flag, reason)
        child = self._children.get(key)
        if child is None:
            child = _Child(self.flag_evaluations.labels(flag, reason), None)
            self._children[key] = child
        child.count.inc()

    def health_result(self, component: str, status: str, latency: float | None) -> None:
        self.health_status.labels(component).set(HEALTH_STATUS_VALUES[status])
        if latency is not None:
            self.health_check_seconds.labels(component).observe(latency)

    def migration(self, namespace: str, outcome: str, duration: float) -> None:
        self.migrations.labels(namespace, outcome).inc()
        self.migration_seconds.labels(namespace, outcome).observe(duration)


class _Child:
    __slots__ = ("count", "seconds")

    def __init__(self, count: Counter, seconds: Histogram | None) -> None:
        self.count = count
        self.seconds = seconds
