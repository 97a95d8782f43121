"""The Prometheus adapter: names, labels and values of buttress's metrics."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("prometheus_client")  # the prometheus extra

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from buttress import connect
from buttress.adapters.prometheus import PrometheusMetrics
from buttress.breaker import BreakerRegistry, CircuitBreaker, CircuitOpenError
from buttress.errors import ValidationError
from buttress.events import RATELIMIT_DECIDED, RateLimitDecided
from buttress.flags import FeatureFlags, Flag, FlagContext
from buttress.health import ComponentStatus, HealthRegistry, Status
from buttress.migrations import Migrator
from buttress.migrations.errors import MigrationFailedError
from buttress.testing import FakeClock

NAMES = (
    "buttress_breaker_state",
    "buttress_breaker_transitions",
    "buttress_breaker_calls",
    "buttress_breaker_call_seconds",
    "buttress_switch_enabled",
    "buttress_switch_bypassed",
    "buttress_ratelimit_decisions",
    "buttress_flag_evaluations",
    "buttress_health_status",
    "buttress_health_check_seconds",
    "buttress_migrations",
    "buttress_migration_seconds",
    "buttress_errors",
)


class Boom(Exception):
    pass


def boom() -> None:
    raise Boom


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> Iterator[PrometheusMetrics]:
    with PrometheusMetrics(registry) as installed:
        yield installed


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def families(registry: CollectorRegistry) -> set[str]:
    return {metric.name for metric in registry.collect()}


def test_install_registers_every_metric_and_uninstall_removes_them(
    registry: CollectorRegistry,
) -> None:
    metrics = PrometheusMetrics(registry)
    assert families(registry) == set()
    assert metrics.install() is metrics
    assert "installed=True" in repr(metrics)
    assert families(registry) == set(NAMES)
    metrics.install()  # idempotent
    metrics.uninstall()
    metrics.uninstall()
    assert not metrics.installed
    assert families(registry) == set()
    assert "installed=False" in repr(metrics)


def test_the_default_registry_is_used_when_none_is_given() -> None:
    metrics = PrometheusMetrics().install()
    try:
        assert metrics.registry is REGISTRY
        assert "buttress_breaker_calls" in {m.name for m in REGISTRY.collect()}
    finally:
        metrics.uninstall()
    assert "buttress_breaker_calls" not in {m.name for m in REGISTRY.collect()}


def test_a_second_adapter_on_the_same_registry_is_refused_cleanly(
    registry: CollectorRegistry, metrics: PrometheusMetrics
) -> None:
    other = PrometheusMetrics(registry)
    with pytest.raises(ValidationError, match="registry"):
        other.install()
    assert not other.installed
    assert families(registry) == set(NAMES), "the first adapter's metrics are untouched"


def test_bad_options_are_refused_with_the_field_named() -> None:
    with pytest.raises(ValidationError, match="registry"):
        PrometheusMetrics(registry="default")  # type: ignore[arg-type]  # the point of the test
    with pytest.raises(ValidationError, match="buckets"):
        PrometheusMetrics(CollectorRegistry(), buckets=[1.0, 0.5])
    with pytest.raises(ValidationError, match="migration_buckets"):
        PrometheusMetrics(CollectorRegistry(), migration_buckets=[])


def test_breaker_calls_are_counted_by_outcome_with_latencies(
    registry: CollectorRegistry, metrics: PrometheusMetrics
) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        "payments", failure_threshold=2, exclude=KeyError, clock=clock, registry=None
    )
    breaker.call(lambda: clock.advance(0.2))
    with pytest.raises(KeyError):
        breaker.call(lambda: dict[str, int]()["missing"])  # excluded: counts as a success
    for _ in range(2):
        with pytest.raises(Boom):
            breaker.call(boom)
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: None)
    labels = {"breaker": "payments"}
    assert value(registry, "buttress_breaker_calls_total", **labels, outcome="success") == 2
    assert value(registry, "buttress_breaker_calls_total", **labels, outcome="failure") == 2
    assert value(registry, "buttress_breaker_calls_total", **labels, outcome="rejected") == 1
    assert value(registry, "buttress_breaker_call_seconds_count", **labels, outcome="success") == 2
    assert value(
        registry, "buttress_breaker_call_seconds_sum", **labels, outcome="success"
    ) == pytest.approx(0.2)
    # A rejected call never ran: no latency is recorded for it.
    assert (
        value(registry, "buttress_breaker_call_seconds_count", **labels, outcome="rejected") is None
    )
    assert (
        value(
            registry,
            "buttress_breaker_transitions_total",
            **labels,
            from_state="closed",
            to_state="open",
        )
        == 1
    )


async def test_cancelled_calls_are_counted_as_ignored(
    registry: CollectorRegistry, metrics: PrometheusMetrics
) -> None:
    breaker = CircuitBreaker("slow-dep", registry=None)

    async def cancelled() -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await breaker.acall(cancelled)
    assert (
        value(registry, "buttress_breaker_calls_total", breaker="slow-dep", outcome="ignored") == 1
    )


def test_breaker_state_is_read_at_scrape_time(
    registry: CollectorRegistry, metrics: PrometheusMetrics
) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("inventory", failure_threshold=1, recovery_timeout=10, clock=clock)
    state = {"breaker": "inventory"}
    assert value(registry, "buttress_breaker_state", **state) == 0
    with pytest.raises(Boom):
        breaker.call(boom)
    assert value(registry, "buttress_breaker_state", **state) == 2
    clock.advance(10)
    # No call has moved it yet, but it reads half-open, and so does the gauge.
    assert value(registry, "buttress_breaker_state", **state) == 1
    breaker.call(lambda: None)
    assert value(registry, "buttress_breaker_state", **state) == 0
    text = generate_latest(registry).decode()
    assert 'buttress_breaker_state{breaker="inventory"} 0.0' in text


def test_breakers_made_before_install_are_observed_and_dead_ones_disappear(
    registry: CollectorRegistry,
) -> None:
    early = CircuitBreaker("made-early")
    with PrometheusMetrics(registry):
        early.call(lambda: None)
        assert (
            value(registry, "buttress_breaker_calls_total", breaker="made-early", outcome="success")
            == 1
        )
        del early
        gc.collect()
        assert value(registry, "buttress_breaker_state", breaker="made-early") is None


def test_uninstall_detaches_from_breakers_and_install_reattaches(
    registry: CollectorRegistry,
) -> None:
    metrics = PrometheusMetrics(registry)
    breaker = CircuitBreaker("detach")
    try:
        metrics.install()
        metrics.install()
        breaker.call(lambda: None)
        metrics.uninstall()
        # Listeners gone: the breaker is back on its untimed fast path.
        assert breaker._simple
        breaker.call(lambda: None)
        metrics.install()
        breaker.call(lambda: None)
        calls = value(registry, "buttress_breaker_calls_total", breaker="detach", outcome="success")
        assert calls == 2
    finally:
        metrics.uninstall()


def test_breakers_in_other_registries_are_observed_from_creation_on(
    registry: CollectorRegistry, metrics: PrometheusMetrics
) -> None:
    own = CircuitBreaker("own-registry", registry=BreakerRegistry())
    own.call(lambda: None)
    calls = value(
        registry, "buttress_breaker_calls_total", breaker="own-registry", outcome="success"
    )
    assert calls == 1


async def test_flag_evaluations_are_counted_by_flag_and_reason_never_by_user(
    registry: CollectorRegistry, metrics: PrometheusMetrics
) -> None:
    flags = FeatureFlags(refresh_interval=None)
    await flags.upsert(Flag("beta", "Beta", enabled=True, users={"user-123"}))
    await flags.upsert(Flag("dark", "Dark"))
    flags.is_enabled("beta", FlagContext("user-123"))
    flags.is_enabled("beta", FlagContext("user-456"))
    flags.is_enabled("dark")
    flags.evaluate("dark")
    for key in ("typo-1", "typo-2", "typo-3"):
        flags.is_enabled(key)
    assert (
        value(registry, "buttress_flag_evaluations_total", flag="beta", reason="USER_TARGET") == 1
    )
    assert value(registry, "buttress_flag_evaluations_total", flag="beta", reason="DEFAULT") == 1
    assert value(registry, "buttress_flag_evaluations_total", flag="dark", reason="DISABLED") == 2
    # Unknown keys share one series: callers can ask for anything.
    unknown = {"flag": "(unknown)", "reason": "UNKNOWN_FLAG"}
    assert value(registry, "buttress_flag_evaluations_total", **unknown) == 3
    text = generate_latest(registry).decode()
    assert "user-123" not in text
    assert "typo-1" not in text


async def test_health_status_per_component(
    registry: CollectorRegistry, metrics: PrometheusMetrics
) -> None:
    health = HealthRegistry()
    health.register("db", lambda: True, run_in_thread=False)
    health.register("cache", lambda: ComponentStatus(Status.DEGRADED), run_in_thread=False)
    health.register("queue", lambda: False, run_in_thread=False)
    await health.run()
    assert value(registry, "buttress_health_status", component="db") == 0
    assert value(registry, "buttress_health_status", component="cache") == 1
    assert value(registry, "buttress_health_status", component="queue") == 2
    assert value(registry, "buttress_health_check_seconds_count", component="db") == 1
    health.set_ready(False)
    assert value(registry, "buttress_health_status", component="readiness") == 2
    assert value(registry, "buttress_health_check_seconds_count", component="readiness") is None


async def test_migration_runs_are_counted_by_namespace_and_outcome(
    registry: CollectorRegistry, metrics: PrometheusMetrics, tmp_path: Path
) -> None:
    directory = tmp_path / "m"
    directory.mkdir()
    (directory / "0001_users.sql").write_text("CREATE TABLE users (id integer);\n")
    async with await connect(f"sqlite:///{tmp_path / 'app.db'}", migrate=False) as db:
        migrator = Migrator(db, directory, namespace="shop")
        await migrator.migrate()
        (directory / "0002_bad.sql").write_text("CREATE TABLE ((;\n")
        with pytest.raises(MigrationFailedError):
            await migrator.migrate()
    assert value(registry, "buttress_migrations_total", namespace="shop", outcome="applied") == 1
    assert value(registry, "buttress_migrations_total", namespace="shop", outcome="failed") == 1
    assert (
        value(registry, "buttress_migration_seconds_count", namespace="shop", outcome="applied")
        == 1
    )


def test_rate_limit_decisions_are_counted_by_limiter_and_allowed(
    registry: CollectorRegistry, metrics: PrometheusMetrics
) -> None:
    # What RateLimiter publishes: a synthetic event stands in for it here.
    for allowed in (True, True, False):
        RATELIMIT_DECIDED.publish(RateLimitDecided("login", allowed))
    assert (
        value(registry, "buttress_ratelimit_decisions_total", limiter="login", allowed="true") == 2
    )
    assert (
        value(registry, "buttress_ratelimit_decisions_total", limiter="login", allowed="false") == 1
    )


async def test_a_real_limiter_publishes_its_decisions_never_its_keys(
    registry: CollectorRegistry, metrics: PrometheusMetrics
) -> None:
    from buttress.ratelimit import Rate, RateLimiter

    limiter = RateLimiter(Rate(2, 60.0), name="login", clock=FakeClock())
    for _ in range(3):
        limiter.hit("user-secret-key")
    await limiter.ahit("user-secret-key")
    assert (
        value(registry, "buttress_ratelimit_decisions_total", limiter="login", allowed="true") == 2
    )
    assert (
        value(registry, "buttress_ratelimit_decisions_total", limiter="login", allowed="false") == 2
    )
    assert b"user-secret-key" not in generate_latest(registry)


def test_nothing_is_recorded_after_uninstall(registry: CollectorRegistry) -> None:
    metrics = PrometheusMetrics(registry).install()
    metrics.uninstall()
    RATELIMIT_DECIDED.publish(RateLimitDecided("login", True))
    assert RATELIMIT_DECIDED.listeners == ()
    metrics.install()
    try:
        assert (
            value(registry, "buttress_ratelimit_decisions_total", limiter="login", allowed="true")
            is None
        )
    finally:
        metrics.uninstall()


def test_without_prometheus_client_the_error_names_the_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['prometheus_client'] = None  # as if it were not installed\n"
        "from buttress.errors import MissingDependencyError\n"
        "try:\n"
        "    import buttress.adapters.prometheus\n"
        "except MissingDependencyError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "buttress[prometheus]" in out.stdout
