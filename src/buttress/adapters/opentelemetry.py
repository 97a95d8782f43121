"""OpenTelemetry metrics for buttress (``pip install 'buttress[otel]'``).

``OpenTelemetryMetrics(meter_provider).install()`` creates buttress's
instruments on a ``Meter`` and feeds them from ``buttress.events``, every
circuit breaker and the observed ``buttress.db.Database`` clients. It needs
only ``opentelemetry-api``: the application's SDK (or none, making every
instrument a no-op) decides where the numbers go.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Final, Self

from buttress._version import __version__
from buttress.adapters._observe import (
    BREAKER_STATE_VALUES,
    HEALTH_STATUS_VALUES,
    Observer,
    check_buckets,
)
from buttress.errors import MissingDependencyError, ValidationError

try:
    from opentelemetry import metrics as otel_metrics
    from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation
    from opentelemetry.util.types import Attributes
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("opentelemetry-api", "otel") from exc

if TYPE_CHECKING:
    from buttress.db import Database, DatabaseStats

__all__ = ["DEFAULT_LATENCY_BUCKETS", "DEFAULT_MIGRATION_BUCKETS", "OpenTelemetryMetrics"]

DEFAULT_LATENCY_BUCKETS: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)
"""Bucket boundaries (seconds) advised for call and health-check durations; the
SDK's own defaults are meant for milliseconds."""

DEFAULT_MIGRATION_BUCKETS: Final = (0.01, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0, 1800.0)
"""Bucket boundaries (seconds) advised for migration durations."""


class OpenTelemetryMetrics:
    """buttress's metrics as OpenTelemetry instruments on the meter ``"buttress"``.

    ``meter_provider`` defaults to the global one (``opentelemetry.metrics``).
    ``call_durations=False`` skips ``buttress.breaker.call.duration``: a
    synchronous SDK histogram costs several µs per breaker call.
    ``observe_database(db)`` adds a ``buttress.db.Database``'s statistics.
    Instruments cannot be deleted in OpenTelemetry: ``uninstall()`` stops
    recording and makes the gauges and the database instruments report nothing.
    """

    def __init__(
        self,
        meter_provider: MeterProvider | None = None,
        *,
        buckets: Sequence[float] = DEFAULT_LATENCY_BUCKETS,
        migration_buckets: Sequence[float] = DEFAULT_MIGRATION_BUCKETS,
        call_durations: bool = True,
    ) -> None:
        if meter_provider is not None and not isinstance(meter_provider, MeterProvider):
            raise ValidationError("meter_provider", "must be an opentelemetry MeterProvider")
        self._buckets = check_buckets("buckets", buckets)
        self._migration_buckets = check_buckets("migration_buckets", migration_buckets)
        self._call_durations = bool(call_durations)
        self._lock = threading.Lock()
        self._installed = False
        self._observer = Observer(self)
        self._health: dict[str, int] = {}
        self._attributes: dict[tuple[str, ...], Attributes] = {}
        # The per-call counters are tallied here and reported by observable
        # counters when the SDK collects: a locked dict increment costs a small
        # fraction of a synchronous SDK counter's add().
        self._tally_lock = threading.Lock()
        self._calls: dict[tuple[str, ...], int] = {}
        self._decisions: dict[tuple[str, ...], int] = {}
        self._evaluations: dict[tuple[str, ...], int] = {}
        # The global provider may be a proxy until the application sets its SDK up;
        # instruments made on it start recording once it does.
        provider = meter_provider or otel_metrics.get_meter_provider()
        self.meter: Meter = provider.get_meter("buttress", __version__)
        self._create_instruments(self.meter)

    def __repr__(self) -> str:
        return f"OpenTelemetryMetrics(installed={self._installed})"

    @property
    def installed(self) -> bool:
        return self._installed

    def install(self) -> Self:
        """Start recording; idempotent. Returns ``self``."""
        with self._lock:
            if self._installed:
                return self
            self._installed = True
        self._observer.start()
        return self

    def uninstall(self) -> None:
        """Stop recording; idempotent. A later ``install()`` reuses the instruments."""
        with self._lock:
            if not self._installed:
                return
            self._installed = False
            self._observer.stop()

    def observe_database(self, db: Database, *, name: str | None = None) -> None:
        """Report ``db``'s statistics as ``buttress.db.*`` with attribute ``database=name``
        (``db.name`` when None), read when the SDK collects, while installed.

        Held weakly: a client that is garbage-collected is no longer reported.
        Kept across ``uninstall()``/``install()``.
        """
        self._observer.observe_database(db, name)

    def forget_database(self, db: Database) -> None:
        """Stop reporting ``db``'s statistics; nothing happens if it was not observed."""
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

    def _create_instruments(self, meter: Meter) -> None:
        meter.create_observable_gauge(
            "buttress.breaker.state",
            callbacks=[self._observe_breakers],
            description="Circuit breaker state: 0 closed, 1 half-open, 2 open.",
        )
        self.breaker_transitions = meter.create_counter(
            "buttress.breaker.transitions",
            unit="{transition}",
            description="Circuit breaker state changes.",
        )
        meter.create_observable_counter(
            "buttress.breaker.calls",
            callbacks=[self._observe_calls],
            unit="{call}",
            description="Calls through a circuit breaker, by outcome "
            "(success, failure, ignored, rejected).",
        )
        self.breaker_call_duration = meter.create_histogram(
            "buttress.breaker.call.duration",
            unit="s",
            description="Duration of calls a circuit breaker let through, by outcome.",
            explicit_bucket_boundaries_advisory=self._buckets,
        )
        meter.create_observable_counter(
            "buttress.ratelimit.decisions",
            callbacks=[self._observe_decisions],
            unit="{decision}",
            description="Rate limiter decisions, by limiter and whether the request was allowed.",
        )
        meter.create_observable_counter(
            "buttress.flag.evaluations",
            callbacks=[self._observe_evaluations],
            unit="{evaluation}",
            description="Feature flag evaluations, by flag and the rule that decided.",
        )
        meter.create_observable_gauge(
            "buttress.health.status",
            callbacks=[self._observe_health],
            description="Latest health check result: 0 healthy, 1 degraded, 2 unhealthy.",
        )
        self.health_check_duration = meter.create_histogram(
            "buttress.health.check.duration",
            unit="s",
            description="Duration of health checks.",
            explicit_bucket_boundaries_advisory=self._buckets,
        )
        self.migrations = meter.create_counter(
            "buttress.migrations",
            unit="{migration}",
            description="Migrations applied, failed or rolled back.",
        )
        self.migration_duration = meter.create_histogram(
            "buttress.migration.duration",
            unit="s",
            description="Duration of migrations, by outcome.",
            explicit_bucket_boundaries_advisory=self._migration_buckets,
        )
        self._create_database_instruments(meter)

    def _create_database_instruments(self, meter: Meter) -> None:
        def per_database(
            value: Callable[[DatabaseStats], float],
        ) -> Callable[[CallbackOptions], Iterable[Observation]]:
            def observe(options: CallbackOptions) -> Iterable[Observation]:
                if not self._installed:
                    return []
                return [
                    Observation(value(stats), self._attrs(("database",), (name,)))
                    for name, stats in self._observer.database_stats()
                ]

            return observe

        meter.create_observable_counter(
            "buttress.db.queries",
            callbacks=[per_database(lambda stats: stats.queries)],
            unit="{query}",
            description="Queries run by a buttress.db client (a retried query counts once).",
        )
        meter.create_observable_counter(
            "buttress.db.errors",
            callbacks=[self._observe_database_errors],
            unit="{error}",
            description="Queries that failed in the end, by error category.",
        )
        meter.create_observable_counter(
            "buttress.db.slow_queries",
            callbacks=[per_database(lambda stats: stats.slow_queries)],
            unit="{query}",
            description="Queries slower than the client's slow_query_threshold.",
        )
        meter.create_observable_counter(
            "buttress.db.retries",
            callbacks=[per_database(lambda stats: stats.retries)],
            unit="{retry}",
            description="Extra attempts made after transient errors.",
        )
        meter.create_observable_gauge(
            "buttress.db.latency.average",
            callbacks=[per_database(lambda stats: stats.avg_latency_ms / 1000.0)],
            unit="s",
            description="Average query latency since the client started counting.",
        )
        meter.create_observable_gauge(
            "buttress.db.latency.p95",
            callbacks=[per_database(lambda stats: stats.p95_latency_ms / 1000.0)],
            unit="s",
            description="95th percentile query latency over the client's recent window.",
        )
        meter.create_observable_gauge(
            "buttress.db.breaker.state",
            callbacks=[self._observe_database_breakers],
            description="State of the breaker per operation kind: 0 closed, 1 half-open, 2 open.",
        )

    def _observe_database_errors(self, options: CallbackOptions) -> Iterable[Observation]:
        if not self._installed:
            return []
        return [
            Observation(count, self._attrs(("database", "category"), (name, category)))
            for name, stats in self._observer.database_stats()
            for category, count in sorted(stats.errors.items())
        ]

    def _observe_database_breakers(self, options: CallbackOptions) -> Iterable[Observation]:
        if not self._installed:
            return []
        return [
            Observation(
                BREAKER_STATE_VALUES[state], self._attrs(("database", "kind"), (name, kind))
            )
            for name, stats in self._observer.database_stats()
            for kind, state in sorted(stats.breakers.items())
        ]

    def _observe_breakers(self, options: CallbackOptions) -> Iterable[Observation]:
        if not self._installed:
            return []
        return [
            Observation(value, self._attrs(("breaker",), (name,)))
            for name, value in self._observer.breaker_states()
        ]

    def _observe_health(self, options: CallbackOptions) -> Iterable[Observation]:
        if not self._installed:
            return []
        with self._lock:
            items = sorted(self._health.items())
        return [Observation(value, self._attrs(("component",), (name,))) for name, value in items]

    def _observe_calls(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._observe_tally(self._calls)

    def _observe_decisions(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._observe_tally(self._decisions)

    def _observe_evaluations(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._observe_tally(self._evaluations)

    def _observe_tally(self, tally: dict[tuple[str, ...], int]) -> list[Observation]:
        # Totals stay readable after uninstall(), frozen, as a synchronous counter's would.
        with self._tally_lock:
            items = list(tally.items())
        return [Observation(count, self._attributes[key]) for key, count in items]

    def _count(
        self, tally: dict[tuple[str, ...], int], keys: tuple[str, ...], values: tuple[str, ...]
    ) -> Attributes:
        attributes = self._attrs(keys, values)
        key = keys + values
        with self._tally_lock:
            tally[key] = tally.get(key, 0) + 1
        return attributes

    def _attrs(self, keys: tuple[str, ...], values: tuple[str, ...]) -> Attributes:
        # One dict per label set, built once: instruments are called on hot paths.
        # A plain dict, because the SDK handles it twice as fast as a read-only view;
        # nothing mutates it.
        cache_key = keys + values
        attributes = self._attributes.get(cache_key)
        if attributes is None:
            attributes = dict(zip(keys, values, strict=True))
            self._attributes[cache_key] = attributes
        return attributes

    # MetricsSink: called from the observer, in whatever thread published the event.

    def breaker_transition(self, breaker: str, from_state: str, to_state: str) -> None:
        attributes = self._attrs(
            ("breaker", "from_state", "to_state"), (breaker, from_state, to_state)
        )
        self.breaker_transitions.add(1, attributes)

    def breaker_call(self, breaker: str, outcome: str, duration: float | None) -> None:
        attributes = self._count(self._calls, ("breaker", "outcome"), (breaker, outcome))
        if duration is not None and self._call_durations:
            self.breaker_call_duration.record(duration, attributes)

    def ratelimit_decision(self, limiter: str, allowed: bool) -> None:
        self._count(
            self._decisions, ("limiter", "allowed"), (limiter, "true" if allowed else "false")
        )

    def flag_evaluation(self, flag: str, reason: str) -> None:
        self._count(self._evaluations, ("flag", "reason"), (flag, reason))

    def health_result(self, component: str, status: str, latency: float | None) -> None:
        with self._lock:
            self._health[component] = HEALTH_STATUS_VALUES[status]
        if latency is not None:
            self.health_check_duration.record(latency, self._attrs(("component",), (component,)))

    def migration(self, namespace: str, outcome: str, duration: float) -> None:
        attributes = self._attrs(("namespace", "outcome"), (namespace, outcome))
        self.migrations.add(1, attributes)
        self.migration_duration.record(duration, attributes)
