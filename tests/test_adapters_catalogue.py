"""One metric catalogue: both adapters expose exactly it, and the docs list exactly it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest

pytest.importorskip("prometheus_client")  # the prometheus extra
pytest.importorskip("opentelemetry.sdk.metrics")  # opentelemetry-sdk (dev)

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import Gauge, Histogram, InMemoryMetricReader, Sum
from prometheus_client import CollectorRegistry

from buttress.adapters import opentelemetry as otel_adapter
from buttress.adapters import prometheus as prometheus_adapter
from buttress.adapters._catalogue import (
    BREAKERS,
    CATALOGUE,
    HEALTH_RESULT,
    LATENCY,
    RATELIMIT_DECISION,
    Event,
    Kind,
    Metric,
    Read,
)
from buttress.adapters.opentelemetry import OpenTelemetryMetrics
from buttress.adapters.prometheus import PrometheusMetrics
from buttress.breaker import CircuitBreaker
from buttress.db import Database
from buttress.events import (
    MIGRATION_RAN,
    RATELIMIT_DECIDED,
    MigrationRan,
    RateLimitDecided,
)
from buttress.flags import FeatureFlags, Flag
from buttress.health import HealthRegistry
from buttress.monitoring.errors import ErrorStats
from buttress.testing import FakeClock

DOCS = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"

Exposed = set[tuple[str, str, str, str, frozenset[str]]]
"""(name, type, unit, description, label names) of every metric an adapter exposes."""


class Boom(Exception):
    pass


def boom() -> None:
    raise Boom


class _Refused:
    """A pool whose every connection attempt fails, so queries fail with a category."""

    def acquire(self, timeout: float | None = None) -> _Refused:
        return self

    async def __aenter__(self) -> None:
        raise ConnectionRefusedError("no database here (test)")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


ERROR_STATS = ErrorStats()
"""Observed by both adapters (held weakly by them: this keeps it alive)."""


@pytest.fixture
def both() -> Iterator[tuple[CollectorRegistry, InMemoryMetricReader, Database]]:
    """Both adapters installed at once, observing one database client and error statistics."""
    registry, reader = CollectorRegistry(), InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    db = Database(
        _Refused(),  # type: ignore[arg-type]  # only its failures are needed
        name="main",
        retry=None,
        breakers={"read": CircuitBreaker("catalogue-db-read", registry=None)},
    )
    with PrometheusMetrics(registry) as prom, OpenTelemetryMetrics(provider) as otel:
        prom.observe_database(db)
        otel.observe_database(db)
        prom.observe_errors(ERROR_STATS)
        otel.observe_errors(ERROR_STATS)
        yield registry, reader, db
    provider.shutdown()


async def feed_every_signal(db: Database) -> None:
    """At least one sample for every metric the catalogue holds."""
    clock = FakeClock()
    breaker = CircuitBreaker("catalogue", failure_threshold=1, clock=clock, registry=None)
    breaker.call(lambda: clock.advance(0.1))
    with pytest.raises(Boom):
        breaker.call(boom)  # a failure, and a transition to open
    RATELIMIT_DECIDED.publish(RateLimitDecided("login", True))
    flags = FeatureFlags(refresh_interval=None)
    await flags.upsert(Flag("beta", "Beta", enabled=True))
    flags.evaluate("beta")
    health = HealthRegistry()
    health.register("db", lambda: True, run_in_thread=False)
    await health.run()
    MIGRATION_RAN.publish(MigrationRan("shop", "0001_users", "applied", 0.5))
    with pytest.raises(ConnectionRefusedError):
        await db.fetchval("SELECT 1")  # an error with a category
    ERROR_STATS.record("network", "medium", "catalogue")


def from_prometheus(registry: CollectorRegistry) -> Exposed:
    exposed: Exposed = set()
    for family in registry.collect():
        label_sets = {frozenset(s.labels) - {"le"} for s in family.samples}
        assert len(label_sets) == 1, f"{family.name} has samples with different labels"
        (labels,) = label_sets
        exposed.add((family.name, family.type, "", family.documentation, labels))
    return exposed


def from_opentelemetry(reader: InMemoryMetricReader) -> Exposed:
    data = reader.get_metrics_data()
    assert data is not None
    exposed: Exposed = set()
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points = metric.data.data_points
                label_sets = {frozenset(p.attributes or {}) for p in points}
                assert len(label_sets) == 1, f"{metric.name} has points with different attributes"
                (labels,) = label_sets
                if isinstance(metric.data, Histogram):
                    kind = "histogram"
                elif isinstance(metric.data, Gauge):
                    kind = "gauge"
                else:
                    assert isinstance(metric.data, Sum)
                    kind = "counter" if metric.data.is_monotonic else "up_down_counter"
                unit, description = metric.unit or "", metric.description or ""
                exposed.add((metric.name, kind, unit, description, labels))
    return exposed


def prometheus_expected(catalogue: tuple[Metric, ...]) -> Exposed:
    # Prometheus has no up-down type, and no units beyond the ``_seconds`` in a name.
    kinds = {Kind.UP_DOWN_COUNTER: "gauge"}
    return {
        (m.prometheus_name, kinds.get(m.kind, m.kind.value), "", m.description, frozenset(m.labels))
        for m in catalogue
    }


def opentelemetry_expected(catalogue: tuple[Metric, ...]) -> Exposed:
    return {(m.name, m.kind.value, m.unit, m.description, frozenset(m.labels)) for m in catalogue}


async def test_both_adapters_expose_exactly_the_catalogue(
    both: tuple[CollectorRegistry, InMemoryMetricReader, Database],
) -> None:
    registry, reader, db = both
    await feed_every_signal(db)
    prometheus, opentelemetry = from_prometheus(registry), from_opentelemetry(reader)
    assert prometheus == prometheus_expected(CATALOGUE)
    assert opentelemetry == opentelemetry_expected(CATALOGUE)
    # Each entry once in each: the same metrics with the same labels, under two names.
    assert len(prometheus) == len(opentelemetry) == len(CATALOGUE)


def documented() -> set[tuple[str, str, str, tuple[str, ...]]]:
    """(Prometheus name, OpenTelemetry name, type, labels) of every row of the docs' tables."""
    rows = set()
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not cells[0].startswith("`buttress_"):
            continue
        labels = re.sub(r"\([^)]*\)", "", cells[3])  # value hints such as (`true`/`false`)
        rows.add(
            (
                cells[0].strip("`"),
                cells[1].strip("`"),
                cells[2],
                tuple(re.findall(r"`(\w+)`", labels)),
            )
        )
    return rows


def test_the_docs_list_exactly_the_catalogue() -> None:
    def row(metric: Metric) -> tuple[str, str, str, tuple[str, ...]]:
        suffix = "_total" if metric.kind is Kind.COUNTER else ""
        kind = metric.kind.value + (" (s)" if metric.unit == "s" else "")
        return (metric.prometheus_name + suffix, metric.name, kind, metric.labels)

    assert documented() == {row(metric) for metric in CATALOGUE}


async def test_an_entry_added_to_the_catalogue_is_rendered_by_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    extra = Metric(
        "buttress.breaker.calls.in_flight",
        Kind.UP_DOWN_COUNTER,
        "{call}",
        "Calls a breaker is running right now (a test entry).",
        ("breaker",),
        Read(BREAKERS, lambda state: [((), 3.0)]),
    )
    catalogue = (*CATALOGUE, extra)
    monkeypatch.setattr(prometheus_adapter, "CATALOGUE", catalogue)
    monkeypatch.setattr(otel_adapter, "CATALOGUE", catalogue)
    registry, reader = CollectorRegistry(), InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    with PrometheusMetrics(registry), OpenTelemetryMetrics(provider):
        breaker = CircuitBreaker("in-flight", registry=None)
        breaker.call(lambda: None)
        value = registry.get_sample_value(
            "buttress_breaker_calls_in_flight", {"breaker": "in-flight"}
        )
        assert value == 3.0
        families = [f for f in registry.collect() if f.name == "buttress_breaker_calls_in_flight"]
        assert families[0].type == "gauge"  # Prometheus has no up-down type
        found = {m for m in from_opentelemetry(reader) if m[0] == extra.name}
        assert found == opentelemetry_expected((extra,))
    provider.shutdown()


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"name": "breaker.calls"}, "buttress"),
        ({"kind": Kind.HISTOGRAM}, "buckets"),
        ({"buckets": LATENCY}, "buckets"),
        ({"labels": ("breaker",)}, "labels"),
        ({"kind": Kind.UP_DOWN_COUNTER}, "read"),
    ],
)
def test_the_catalogue_refuses_entries_the_adapters_could_not_render(
    change: dict[str, object], complaint: str
) -> None:
    fields: dict[str, object] = {
        "name": "buttress.ratelimit.refusals",
        "kind": Kind.COUNTER,
        "unit": "{decision}",
        "description": "Refusals.",
        "labels": RATELIMIT_DECISION.labels,
        "feed": Event(RATELIMIT_DECISION),
        "buckets": None,
    }
    fields.update(change)
    with pytest.raises(ValueError, match=complaint):
        Metric(**fields)  # type: ignore[arg-type]  # the fields are right but for the change


def test_a_read_histogram_is_refused() -> None:
    with pytest.raises(ValueError, match="fed by events"):
        Metric(
            "buttress.health.duration",
            Kind.HISTOGRAM,
            "s",
            "Durations.",
            ("breaker",),
            Read(BREAKERS, lambda state: [((), 1.0)]),
            LATENCY,
        )


def test_prometheus_names_put_the_unit_last() -> None:
    names = {metric.name: metric.prometheus_name for metric in CATALOGUE}
    assert names["buttress.breaker.call.duration"] == "buttress_breaker_call_seconds"
    assert names["buttress.db.latency.p95"] == "buttress_db_latency_p95_seconds"
    assert names["buttress.db.slow_queries"] == "buttress_db_slow_queries"
    assert HEALTH_RESULT.labels == ("component",)
