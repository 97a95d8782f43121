"""Captured error statistics in both metrics adapters: the error counter by category
and severity, and the error-rate alert gauge of the ErrorStats an adapter observes."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint
from prometheus_client import CollectorRegistry

from buttress.adapters.opentelemetry import OpenTelemetryMetrics
from buttress.adapters.prometheus import PrometheusMetrics
from buttress.errors import ErrorCategory, Severity, ValidationError, capture
from buttress.events import ERROR_COUNTED, ErrorCounted
from buttress.monitoring import AlertLevel
from buttress.monitoring.errors import ErrorRateRule, ErrorStats
from buttress.testing import FakeClock

START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
RULES = (ErrorRateRule(5, critical=50),)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=START)


@pytest.fixture
def stats(clock: FakeClock) -> ErrorStats:
    return ErrorStats(clock=clock)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def prom(registry: CollectorRegistry) -> Iterator[PrometheusMetrics]:
    with PrometheusMetrics(registry) as installed:
        yield installed


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def otel(reader: InMemoryMetricReader) -> Iterator[OpenTelemetryMetrics]:
    provider = MeterProvider(metric_readers=[reader])
    with OpenTelemetryMetrics(provider) as installed:
        yield installed
    provider.shutdown()


def otel_points(reader: InMemoryMetricReader) -> dict[str, dict[frozenset[Any], float]]:
    found: dict[str, dict[frozenset[Any], float]] = {}
    data = reader.get_metrics_data()
    if data is None:
        return found
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    if isinstance(point, NumberDataPoint):
                        key = frozenset((point.attributes or {}).items())
                        found.setdefault(metric.name, {})[key] = point.value
    return found


def labels(**values: str) -> frozenset[Any]:
    return frozenset(values.items())


def errors(registry: CollectorRegistry, category: str, severity: str) -> float | None:
    return registry.get_sample_value(
        "buttress_errors_total", {"category": category, "severity": severity}
    )


def alert(registry: CollectorRegistry, collector: str = "default") -> float | None:
    return registry.get_sample_value("buttress_error_rate_alert", {"collector": collector})


def test_prometheus_counts_errors_by_category_and_severity_never_by_component(
    registry: CollectorRegistry, prom: PrometheusMetrics, stats: ErrorStats
) -> None:
    stats.record(ErrorCategory.DATABASE, Severity.HIGH, "billing", count=12)
    stats.record("database", "high", "search")
    stats.record(ErrorCategory.NETWORK, Severity.LOW, "search")
    stats.install()
    try:
        capture(TimeoutError(), component="payments")
    finally:
        stats.uninstall()
    assert errors(registry, "database", "high") == 13
    assert errors(registry, "network", "low") == 1
    assert errors(registry, "timeout", "medium") == 1
    exposed = {
        sample.labels.get("component")
        for family in registry.collect()
        for sample in family.samples
        if sample.name.startswith("buttress_errors")
    }
    assert exposed == {None}  # components are free-form: never a label


def test_the_alert_gauge_follows_the_rules_at_scrape_time(
    registry: CollectorRegistry, prom: PrometheusMetrics, stats: ErrorStats, clock: FakeClock
) -> None:
    assert alert(registry) is None  # nothing observed: no series
    prom.observe_errors(stats, rules=RULES)
    assert alert(registry) == AlertLevel.HEALTHY
    stats.record("database", "high", "billing", count=6)
    assert alert(registry) == AlertLevel.WARNING
    stats.record("database", "high", "billing", count=60)
    assert alert(registry) == AlertLevel.CRITICAL
    clock.advance(120)  # out of the rule's one-minute window
    assert alert(registry) == AlertLevel.HEALTHY
    assert errors(registry, "database", "high") == 66  # the counter keeps its total


def test_default_rules_warn_above_ten_a_minute(
    registry: CollectorRegistry, prom: PrometheusMetrics, stats: ErrorStats
) -> None:
    prom.observe_errors(stats, name="api")
    stats.record("network", "low", "search", count=10)
    assert alert(registry, "api") == AlertLevel.HEALTHY
    stats.record("network", "low", "search")
    assert alert(registry, "api") == AlertLevel.WARNING


def test_forgotten_dropped_and_renamed_statistics(
    registry: CollectorRegistry, prom: PrometheusMetrics, clock: FakeClock
) -> None:
    kept, dropped = ErrorStats(clock=clock), ErrorStats(clock=clock)
    prom.observe_errors(kept, rules=RULES, name="kept")
    prom.observe_errors(dropped, rules=RULES, name="dropped")
    assert alert(registry, "dropped") == 0
    del dropped
    gc.collect()
    assert alert(registry, "dropped") is None
    prom.observe_errors(kept, rules=RULES, name="renamed")
    assert alert(registry, "kept") is None
    assert alert(registry, "renamed") == 0
    prom.forget_errors(kept)
    prom.forget_errors(kept)  # twice is fine
    assert alert(registry, "renamed") is None


def test_observations_survive_uninstall_and_nothing_is_counted_meanwhile(
    registry: CollectorRegistry, stats: ErrorStats
) -> None:
    metrics = PrometheusMetrics(registry).install()
    metrics.observe_errors(stats, rules=RULES)
    stats.record("database", "high", "billing")
    metrics.uninstall()
    assert ERROR_COUNTED.listeners == ()
    stats.record("database", "high", "billing", count=6)  # not counted: nobody listens
    metrics.install()
    try:
        assert errors(registry, "database", "high") == 1
        assert alert(registry) == AlertLevel.WARNING  # still observed, judged on all 7
    finally:
        metrics.uninstall()


def test_observe_errors_refuses_bad_input_naming_the_field(
    prom: PrometheusMetrics, stats: ErrorStats
) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"stats": object()}, "stats"),
        ({"stats": stats, "name": ""}, "name"),
        ({"stats": stats, "name": 3}, "name"),
        ({"stats": stats, "rules": []}, "rules"),
        ({"stats": stats, "rules": [ErrorRateRule(), "10/min"]}, "rules[1]"),
    ]
    for options, field in cases:
        with pytest.raises(ValidationError) as caught:
            prom.observe_errors(**options)
        assert caught.value.field == field


def test_a_scrape_logs_nothing(
    registry: CollectorRegistry,
    prom: PrometheusMetrics,
    stats: ErrorStats,
    caplog: pytest.LogCaptureFixture,
) -> None:
    prom.observe_errors(stats, rules=RULES)
    stats.record("database", "high", "billing", count=60)
    assert stats.alert_level(RULES) is AlertLevel.CRITICAL
    with pytest.MonkeyPatch.context() as patch:
        logged: list[str] = []
        patch.setattr(stats._log, "info", lambda event, **_: logged.append(event))
        for _ in range(3):
            assert alert(registry) == AlertLevel.CRITICAL
        assert logged == []
        stats.check(RULES)  # what an operator asks for explicitly is still logged
        assert logged == ["error_rate_anomalies"]


def test_opentelemetry_exports_the_same_counter_and_gauge(
    reader: InMemoryMetricReader, otel: OpenTelemetryMetrics, stats: ErrorStats
) -> None:
    otel.observe_errors(stats, rules=RULES, name="api")
    stats.record("database", "high", "billing", count=12)
    stats.record("network", "low", "search")
    found = otel_points(reader)
    assert found["buttress.errors"] == {
        labels(category="database", severity="high"): 12,
        labels(category="network", severity="low"): 1,
    }
    assert found["buttress.error_rate.alert"] == {labels(collector="api"): AlertLevel.WARNING}
    otel.forget_errors(stats)
    assert "buttress.error_rate.alert" not in otel_points(reader)


def test_statistics_publish_nothing_when_nobody_listens(stats: ErrorStats) -> None:
    assert ERROR_COUNTED.listeners == ()
    seen: list[ErrorCounted] = []
    stats.record("database", "high", "billing")
    with ERROR_COUNTED.subscribed(seen.append):
        stats.record("database", "high", "billing", count=3)
    assert seen == [ErrorCounted("database", "high", "billing", 3)]


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([c.value for c in ErrorCategory]),
            st.sampled_from([s.value for s in Severity]),
            st.integers(min_value=1, max_value=1000),
        ),
        max_size=20,
    )
)
def test_the_counter_is_the_sum_of_what_was_counted(
    counted: list[tuple[str, str, int]],
) -> None:
    registry = CollectorRegistry()
    stats = ErrorStats(clock=FakeClock(start=START))
    with PrometheusMetrics(registry):
        for category, severity, count in counted:
            stats.record(category, severity, "c", count=count)
        expected: dict[tuple[str, str], int] = {}
        for category, severity, count in counted:
            expected[category, severity] = expected.get((category, severity), 0) + count
        for (category, severity), total in expected.items():
            assert errors(registry, category, severity) == total
