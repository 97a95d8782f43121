"""Database client statistics through both metrics adapters, on a real PostgreSQL."""

from __future__ import annotations

import gc
import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

pytest.importorskip("prometheus_client")  # the prometheus extra
pytest.importorskip("opentelemetry.sdk.metrics")  # opentelemetry-sdk (dev)

import asyncpg
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint
from prometheus_client import CollectorRegistry, generate_latest

from buttress.adapters.opentelemetry import OpenTelemetryMetrics
from buttress.adapters.prometheus import PrometheusMetrics
from buttress.breaker import CircuitBreaker
from buttress.db import ConnectionLostError, Database, is_transient
from buttress.errors import ErrorCategory, ValidationError
from buttress.policies import retry

DB_NAMES = (
    "buttress_db_queries",
    "buttress_db_errors",
    "buttress_db_slow_queries",
    "buttress_db_retries",
    "buttress_db_latency_average_seconds",
    "buttress_db_latency_p95_seconds",
    "buttress_db_breaker_state",
)


@pytest.fixture
async def pool(postgres_dsn: str) -> AsyncIterator[asyncpg.Pool[Any]]:
    created = await asyncpg.create_pool(postgres_dsn, min_size=1, max_size=2)
    try:
        yield created
    finally:
        created.terminate()


def make_db(pool: asyncpg.Pool[Any], **options: Any) -> Database:
    read = CircuitBreaker("metrics-db-read", failure_threshold=50, registry=None)
    write = CircuitBreaker("metrics-db-write", failure_threshold=50, registry=None)
    bulk = CircuitBreaker("metrics-db-bulk", failure_threshold=50, registry=None)
    bulk.force_open()
    fast = retry(
        attempts=3, base_delay=0.001, max_delay=0.002, retry_on=is_transient, rng=random.Random(3)
    )
    return Database(
        pool, retry=fast, breakers={"read": read, "write": write, "bulk": bulk}, **options
    )


async def workload(db: Database) -> None:
    """Three good queries (all slow at a 1 µs threshold), then one that fails."""
    for n in range(3):
        assert await db.fetchval("SELECT $1::int", n) == n
    with pytest.raises(asyncpg.exceptions.UndefinedTableError):
        await db.fetch("SELECT * FROM no_such_table")


async def retried(db: Database) -> None:
    """A call that kills its own connection: transient each time, retried until attempts end."""
    # How the driver reports the dead connection depends on timing.
    lost = (
        asyncpg.exceptions.ConnectionDoesNotExistError,
        asyncpg.exceptions.AdminShutdownError,
        ConnectionLostError,
    )
    with pytest.raises(lost) as info:
        await db.fetchval("SELECT pg_terminate_backend(pg_backend_pid())", idempotent=True)
    assert is_transient(info.value)


# -- Prometheus ------------------------------------------------------------------


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def prom(registry: CollectorRegistry) -> Iterator[PrometheusMetrics]:
    with PrometheusMetrics(registry) as installed:
        yield installed


async def test_prometheus_exports_a_real_clients_statistics(
    pool: asyncpg.Pool[Any], registry: CollectorRegistry, prom: PrometheusMetrics
) -> None:
    db = make_db(pool, slow_query_threshold=1e-6)
    prom.observe_database(db, name="main")
    await workload(db)
    await retried(db)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"database": "main", **labels})

    stats = db.stats()
    assert value("buttress_db_queries_total") == 5
    # The missing table is the caller's database error; the killed connection a network one.
    assert dict(stats.errors) == {ErrorCategory.DATABASE: 1, ErrorCategory.NETWORK: 1}
    assert value("buttress_db_errors_total", category="database") == 1
    assert value("buttress_db_errors_total", category="network") == 1
    assert value("buttress_db_slow_queries_total") == stats.slow_queries >= 3
    assert value("buttress_db_retries_total") == 2
    average = value("buttress_db_latency_average_seconds")
    p95 = value("buttress_db_latency_p95_seconds")
    assert average is not None
    assert 0 < average < 5
    assert p95 is not None
    assert 0 < p95 < 5
    assert p95 == pytest.approx(db.stats().p95_latency_ms / 1000.0)
    assert value("buttress_db_breaker_state", kind="read") == 0
    assert value("buttress_db_breaker_state", kind="write") == 0
    assert value("buttress_db_breaker_state", kind="bulk") == 2

    # Bounded labels: the statement's text never becomes a label value.
    text = generate_latest(registry).decode()
    assert "no_such_table" not in text
    assert "pg_terminate_backend" not in text


async def test_prometheus_reads_at_scrape_time_and_uses_db_name_by_default(
    pool: asyncpg.Pool[Any], registry: CollectorRegistry, prom: PrometheusMetrics
) -> None:
    db = Database(pool, name="orders", retry=None)
    # Nothing observed: no empty buttress_db_* families either.
    assert "buttress_db_" not in generate_latest(registry).decode()
    prom.observe_database(db)
    assert registry.get_sample_value("buttress_db_queries_total", {"database": "orders"}) == 0
    assert await db.fetchval("SELECT 1") == 1
    assert registry.get_sample_value("buttress_db_queries_total", {"database": "orders"}) == 1
    # No breakers configured: no breaker series.
    assert "buttress_db_breaker_state{" not in generate_latest(registry).decode()


async def test_uninstall_removes_the_database_metrics(
    pool: asyncpg.Pool[Any], registry: CollectorRegistry
) -> None:
    metrics = PrometheusMetrics(registry).install()
    db = Database(pool, retry=None)
    metrics.observe_database(db, name="main")
    await db.fetchval("SELECT 1")
    assert registry.get_sample_value("buttress_db_queries_total", {"database": "main"}) == 1
    metrics.uninstall()
    text = generate_latest(registry).decode()
    for name in DB_NAMES:
        assert name not in text
    # The observation outlives uninstall(): installing again exports it again.
    metrics.install()
    assert registry.get_sample_value("buttress_db_queries_total", {"database": "main"}) == 1
    metrics.uninstall()


def test_a_dropped_or_forgotten_database_disappears(registry: CollectorRegistry) -> None:
    # Statistics need no connection: a pool-shaped stand-in is enough here.
    metrics = PrometheusMetrics(registry).install()
    try:
        kept = Database(_Pool(), name="kept")  # type: ignore[arg-type]  # no queries are run
        dropped = Database(_Pool(), name="dropped")  # type: ignore[arg-type]  # as above
        metrics.observe_database(kept)
        metrics.observe_database(dropped)

        def names() -> set[str]:
            return {
                s.labels["database"]
                for m in registry.collect()
                if m.name == "buttress_db_queries"
                for s in m.samples
            }

        assert names() == {"dropped", "kept"}
        del dropped
        gc.collect()
        assert names() == {"kept"}
        # Observed again under another name, a client moves there.
        metrics.observe_database(kept, name="renamed")
        assert names() == {"renamed"}
        metrics.forget_database(kept)
        assert names() == set()
        metrics.forget_database(kept)  # idempotent
    finally:
        metrics.uninstall()


def test_observe_database_rejects_bad_input(registry: CollectorRegistry) -> None:
    metrics = PrometheusMetrics(registry)
    with pytest.raises(ValidationError) as info:
        metrics.observe_database(object())  # type: ignore[arg-type]  # the point of the test
    assert info.value.field == "db"
    db = Database(_Pool())  # type: ignore[arg-type]  # no queries are run
    for bad in ("", 3):
        with pytest.raises(ValidationError) as info:
            metrics.observe_database(db, name=bad)  # type: ignore[arg-type]  # as above
        assert info.value.field == "name"


class _Pool:
    def acquire(self) -> None:  # pragma: no cover - never called
        raise AssertionError("no query should run")


# -- OpenTelemetry ---------------------------------------------------------------


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


def attrs(**values: str) -> frozenset[Any]:
    return frozenset(values.items())


async def test_opentelemetry_exports_a_real_clients_statistics(
    pool: asyncpg.Pool[Any], reader: InMemoryMetricReader, otel: OpenTelemetryMetrics
) -> None:
    db = make_db(pool, slow_query_threshold=1e-6)
    otel.observe_database(db, name="main")
    await workload(db)
    await retried(db)
    found = otel_points(reader)
    stats = db.stats()
    main = attrs(database="main")
    assert found["buttress.db.queries"][main] == 5
    assert found["buttress.db.retries"][main] == 2
    assert found["buttress.db.slow_queries"][main] == stats.slow_queries >= 3
    assert found["buttress.db.errors"] == {
        attrs(database="main", category="database"): 1,
        attrs(database="main", category="network"): 1,
    }
    assert 0 < found["buttress.db.latency.average"][main] < 5
    assert found["buttress.db.latency.p95"][main] == pytest.approx(stats.p95_latency_ms / 1000.0)
    assert found["buttress.db.breaker.state"] == {
        attrs(database="main", kind="bulk"): 2,
        attrs(database="main", kind="read"): 0,
        attrs(database="main", kind="write"): 0,
    }


async def test_opentelemetry_uninstall_stops_reporting_databases(
    pool: asyncpg.Pool[Any], reader: InMemoryMetricReader
) -> None:
    provider = MeterProvider(metric_readers=[reader])
    metrics = OpenTelemetryMetrics(provider).install()
    db = Database(pool, name="main", retry=None)
    metrics.observe_database(db)
    await db.fetchval("SELECT 1")
    assert otel_points(reader)["buttress.db.queries"][attrs(database="main")] == 1
    metrics.uninstall()
    after = otel_points(reader)
    # Uninstalled, the database instruments report no points at all.
    assert not any(name.startswith("buttress.db.") and points for name, points in after.items())
    metrics.install()
    await db.fetchval("SELECT 2")
    assert otel_points(reader)["buttress.db.queries"][attrs(database="main")] == 2
    metrics.uninstall()
    provider.shutdown()
