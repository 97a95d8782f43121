"""The OpenTelemetry adapter, read back through the SDK's in-memory reader."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.metrics")  # the otel extra
pytest.importorskip("opentelemetry.sdk.metrics")  # opentelemetry-sdk (dev)

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
)

from buttress import connect
from buttress.adapters.opentelemetry import DEFAULT_LATENCY_BUCKETS, OpenTelemetryMetrics
from buttress.breaker import CircuitBreaker, CircuitOpenError
from buttress.errors import ValidationError
from buttress.events import RATELIMIT_DECIDED, RateLimitDecided
from buttress.flags import FeatureFlags, Flag, FlagContext
from buttress.health import ComponentStatus, HealthRegistry, Status
from buttress.migrations import Migrator
from buttress.testing import FakeClock

Point = NumberDataPoint | HistogramDataPoint


class Boom(Exception):
    pass


def boom() -> None:
    raise Boom


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def metrics(reader: InMemoryMetricReader) -> Iterator[OpenTelemetryMetrics]:
    provider = MeterProvider(metric_readers=[reader])
    with OpenTelemetryMetrics(provider) as installed:
        yield installed
    provider.shutdown()


def points(reader: InMemoryMetricReader) -> dict[str, list[Point]]:
    found: dict[str, list[Point]] = {}
    data = reader.get_metrics_data()
    if data is None:
        return found
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            assert scope.scope.name == "buttress"
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(
                    p
                    for p in metric.data.data_points
                    if isinstance(p, NumberDataPoint | HistogramDataPoint)
                )
    return found


def number(found: dict[str, list[Point]], name: str, **attributes: str) -> float | None:
    for point in found.get(name, []):
        if dict(point.attributes or {}) == attributes and isinstance(point, NumberDataPoint):
            return point.value
    return None


def histogram(found: dict[str, list[Point]], name: str, **attributes: str) -> HistogramDataPoint:
    for point in found.get(name, []):
        if dict(point.attributes or {}) == attributes and isinstance(point, HistogramDataPoint):
            return point
    raise AssertionError(f"no {name} point with {attributes}")


def test_breaker_calls_transitions_and_state(
    reader: InMemoryMetricReader, metrics: OpenTelemetryMetrics
) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        "payments", failure_threshold=1, recovery_timeout=5, clock=clock, registry=None
    )
    breaker.call(lambda: clock.advance(0.25))
    with pytest.raises(Boom):
        breaker.call(boom)
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: None)
    found = points(reader)
    tag = {"breaker": "payments"}
    assert number(found, "buttress.breaker.calls", **tag, outcome="success") == 1
    assert number(found, "buttress.breaker.calls", **tag, outcome="failure") == 1
    assert number(found, "buttress.breaker.calls", **tag, outcome="rejected") == 1
    assert (
        number(found, "buttress.breaker.transitions", **tag, from_state="closed", to_state="open")
        == 1
    )
    duration = histogram(found, "buttress.breaker.call.duration", **tag, outcome="success")
    assert duration.count == 1
    assert duration.sum == pytest.approx(0.25)
    assert tuple(duration.explicit_bounds) == DEFAULT_LATENCY_BUCKETS
    assert number(found, "buttress.breaker.state", **tag) == 2
    clock.advance(5)
    assert number(points(reader), "buttress.breaker.state", **tag) == 1


async def test_flags_health_and_migrations(
    reader: InMemoryMetricReader, metrics: OpenTelemetryMetrics, tmp_path: Path
) -> None:
    flags = FeatureFlags(refresh_interval=None)
    await flags.upsert(Flag("beta", "Beta", enabled=True, users={"user-1"}))
    flags.is_enabled("beta", FlagContext("user-1"))
    flags.is_enabled("who-knows")

    health = HealthRegistry()
    health.register("db", lambda: True, run_in_thread=False)
    health.register("cache", lambda: ComponentStatus(Status.DEGRADED), run_in_thread=False)
    await health.run()

    directory = tmp_path / "m"
    directory.mkdir()
    (directory / "0001_users.sql").write_text("CREATE TABLE users (id integer);\n")
    async with await connect(f"sqlite:///{tmp_path / 'app.db'}", migrate=False) as db:
        await Migrator(db, directory, namespace="shop").migrate()

    found = points(reader)
    assert number(found, "buttress.flag.evaluations", flag="beta", reason="USER_TARGET") == 1
    assert number(found, "buttress.flag.evaluations", flag="(unknown)", reason="UNKNOWN_FLAG") == 1
    assert number(found, "buttress.health.status", component="db") == 0
    assert number(found, "buttress.health.status", component="cache") == 1
    assert histogram(found, "buttress.health.check.duration", component="db").count == 1
    assert number(found, "buttress.migrations", namespace="shop", outcome="applied") == 1
    migration = histogram(found, "buttress.migration.duration", namespace="shop", outcome="applied")
    assert migration.count == 1


def test_rate_limit_decisions(reader: InMemoryMetricReader, metrics: OpenTelemetryMetrics) -> None:
    for allowed in (True, False, False):
        RATELIMIT_DECIDED.publish(RateLimitDecided("api", allowed))
    found = points(reader)
    assert number(found, "buttress.ratelimit.decisions", limiter="api", allowed="true") == 1
    assert number(found, "buttress.ratelimit.decisions", limiter="api", allowed="false") == 2


def test_uninstall_stops_recording_and_empties_the_gauges(reader: InMemoryMetricReader) -> None:
    provider = MeterProvider(metric_readers=[reader])
    metrics = OpenTelemetryMetrics(provider).install()
    breaker = CircuitBreaker("gauge-gone", registry=None)
    breaker.call(lambda: None)
    assert number(points(reader), "buttress.breaker.state", breaker="gauge-gone") == 0
    metrics.uninstall()
    metrics.uninstall()
    breaker.call(lambda: None)
    RATELIMIT_DECIDED.publish(RateLimitDecided("api", True))
    found = points(reader)
    assert number(found, "buttress.breaker.calls", breaker="gauge-gone", outcome="success") == 1
    assert number(found, "buttress.breaker.state", breaker="gauge-gone") is None
    assert number(found, "buttress.ratelimit.decisions", limiter="api", allowed="true") is None
    assert metrics.install() is metrics
    assert "installed=True" in repr(metrics)
    metrics.uninstall()
    provider.shutdown()


def test_call_durations_can_be_left_out(reader: InMemoryMetricReader) -> None:
    provider = MeterProvider(metric_readers=[reader])
    with OpenTelemetryMetrics(provider, call_durations=False):
        CircuitBreaker("untimed", registry=None).call(lambda: None)
    found = points(reader)
    assert number(found, "buttress.breaker.calls", breaker="untimed", outcome="success") == 1
    assert "buttress.breaker.call.duration" not in found
    provider.shutdown()


def test_the_global_provider_is_used_when_none_is_given() -> None:
    # Without an SDK configured the global provider is a no-op: recording must still work.
    with OpenTelemetryMetrics() as metrics:
        RATELIMIT_DECIDED.publish(RateLimitDecided("api", True))
        CircuitBreaker("no-sdk", registry=None).call(lambda: None)
    assert not metrics.installed


def test_bad_options_are_refused_with_the_field_named() -> None:
    with pytest.raises(ValidationError, match="meter_provider"):
        OpenTelemetryMetrics(meter_provider="global")  # type: ignore[arg-type]  # the point
    with pytest.raises(ValidationError, match="buckets"):
        OpenTelemetryMetrics(buckets=[0.0, 1.0])
    with pytest.raises(ValidationError, match="migration_buckets"):
        OpenTelemetryMetrics(migration_buckets=[2.0, 2.0])


def test_without_opentelemetry_the_error_names_the_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['opentelemetry'] = None  # as if it were not installed\n"
        "from buttress.errors import MissingDependencyError\n"
        "try:\n"
        "    import buttress.adapters.opentelemetry\n"
        "except MissingDependencyError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "buttress[otel]" in out.stdout
