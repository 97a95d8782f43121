"""Built-in checks: backend ping, pool saturation, disk space, breaker states."""

from __future__ import annotations

import enum
import shutil
from typing import NamedTuple

import pytest

from buttress.backends import open_backend, require_sql
from buttress.breaker import CircuitBreaker
from buttress.errors import ValidationError
from buttress.health import HealthRegistry, Status
from buttress.health.builtin import (
    _response_time_status,
    _usage_status,
    backend_ping,
    breaker_states,
    disk_free,
    pool_saturation,
    schema_valid,
)
from buttress.schema import Column, Schema, Table


class FakeBackend:
    kind = "memory"

    def __init__(self, latency: float = 0.001, error: Exception | None = None) -> None:
        self.latency = latency
        self.error = error

    async def ping(self) -> float:
        if self.error is not None:
            raise self.error
        return self.latency


async def test_backend_ping_healthy_slow_and_down() -> None:
    assert (await backend_ping(FakeBackend())()).status is Status.HEALTHY
    slow = await backend_ping(FakeBackend(latency=2.0), degraded_after=0.5)()
    assert slow.status is Status.DEGRADED
    assert slow.message == "memory answered in 2.000 s (slower than 0.5 s)"
    registry = HealthRegistry()
    registry.register("db", backend_ping(FakeBackend(error=ConnectionRefusedError("refused"))))
    report = await registry.run()
    assert report.components["db"].status is Status.UNHEALTHY
    assert report.components["db"].message == "raised ConnectionRefusedError"
    with pytest.raises(ValidationError):
        backend_ping(FakeBackend(), degraded_after=0)


async def test_backend_ping_on_a_real_memory_backend() -> None:
    backend = await open_backend("memory://")
    try:
        registry = HealthRegistry()
        registry.register("memory", backend_ping(backend))
        assert (await registry.run()).status is Status.HEALTHY
    finally:
        await backend.close()


class FakePool:
    def __init__(self, size: int, idle: int, maximum: int) -> None:
        self.size, self.idle, self.maximum = size, idle, maximum

    def get_size(self) -> int:
        return self.size

    def get_idle_size(self) -> int:
        return self.idle

    def get_max_size(self) -> int:
        return self.maximum


class PoolBackend:
    def __init__(self, pool: FakePool) -> None:
        self.pool = pool


@pytest.mark.parametrize(
    ("size", "idle", "status"),
    [(4, 4, Status.HEALTHY), (10, 2, Status.DEGRADED), (10, 0, Status.UNHEALTHY)],
)
def test_pool_saturation(size: int, idle: int, status: Status) -> None:
    result = pool_saturation(PoolBackend(FakePool(size, idle, 10)))()
    assert result.status is status
    assert result.measurement == "utilization"
    assert result.observed_value == pytest.approx((size - idle) * 10)


@pytest.mark.parametrize(
    ("used", "status", "message"),
    [
        (0.49, Status.HEALTHY, None),
        (0.5, Status.DEGRADED, "too much"),
        (0.9, Status.UNHEALTHY, "too much"),
    ],
)
def test_usage_status_thresholds_are_inclusive(
    used: float, status: Status, message: str | None
) -> None:
    result = _usage_status(
        used, 0.5, 0.9, "too much", component_type="system", measurement="someUsage"
    )
    assert (result.status, result.message) == (status, message)
    assert (result.component_type, result.measurement) == ("system", "someUsage")
    assert (result.observed_value, result.observed_unit) == (round(used * 100, 1), "percent")


def test_response_time_status_degrades_only_when_slower() -> None:
    fast = _response_time_status("connected", 0.25, 0.5, component_type="system")
    assert (fast.status, fast.message) == (Status.HEALTHY, None)
    assert (fast.measurement, fast.observed_value, fast.observed_unit) == (
        "responseTime",
        250.0,
        "ms",
    )
    assert _response_time_status("x", 9.0, None, component_type="c").status is Status.HEALTHY
    slow = _response_time_status("answered", 0.75, 0.5, component_type="cache")
    assert slow.status is Status.DEGRADED
    assert slow.message == "answered in 0.750 s (slower than 0.5 s)"
    assert slow.component_type == "cache"


def test_pool_saturation_refuses_things_without_a_pool() -> None:
    with pytest.raises(ValidationError, match="get_size"):
        pool_saturation(object())
    with pytest.raises(ValidationError, match="degraded_at"):
        pool_saturation(FakePool(1, 1, 1), degraded_at=0.9, unhealthy_at=0.5)


class Usage(NamedTuple):
    total: int
    used: int
    free: int


@pytest.mark.parametrize(
    ("free", "status"), [(500, Status.HEALTHY), (80, Status.DEGRADED), (30, Status.UNHEALTHY)]
)
def test_disk_free(monkeypatch: pytest.MonkeyPatch, free: int, status: Status) -> None:
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(1000, 1000 - free, free))
    result = disk_free("/data")()
    assert result.status is status
    assert result.observed_value == free
    assert result.measurement == "diskFree"
    if status is not Status.HEALTHY:
        assert result.message is not None
        assert "/data" in result.message


def test_disk_free_min_bytes_and_real_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    assert disk_free(".", min_free_ratio=0, degraded_ratio=0)().status is Status.HEALTHY
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10**12, 0, 10**9))
    assert disk_free(min_free_bytes=2 * 10**9)().status is Status.UNHEALTHY
    with pytest.raises(ValidationError, match="min_free_ratio"):
        disk_free(min_free_ratio=0.5, degraded_ratio=0.1)
    with pytest.raises(ValidationError, match="min_free_bytes"):
        disk_free(min_free_bytes=-1)


class State(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class FakeBreaker:
    def __init__(self, name: str, state: object) -> None:
        self.name = name
        self.state = state


class StatsOnly:
    class _Stats:
        state = "OPEN"

    name = "stats-only"

    def stats(self) -> object:
        return self._Stats()


def test_breaker_states() -> None:
    closed = [FakeBreaker("a", State.CLOSED), FakeBreaker("b", "closed")]
    assert breaker_states(closed)().status is Status.HEALTHY
    mixed = [*closed, FakeBreaker("pay", State.OPEN), FakeBreaker("mail", State.HALF_OPEN)]
    result = breaker_states(mixed)()
    assert result.status is Status.DEGRADED
    assert result.message == "breakers not closed: mail half_open, pay open"
    assert result.observed_value == 2
    assert breaker_states([StatsOnly()])().status is Status.DEGRADED
    assert breaker_states([])().status is Status.HEALTHY


def test_breaker_states_reads_a_callable_each_time() -> None:
    live: list[FakeBreaker] = []
    check = breaker_states(lambda: live)
    assert check().status is Status.HEALTHY
    live.append(FakeBreaker("late", State.OPEN))
    assert check().status is Status.DEGRADED


def test_breaker_states_with_real_breakers() -> None:
    breaker = CircuitBreaker("payments", failure_threshold=1)
    check = breaker_states([breaker])
    assert check().status is Status.HEALTHY
    breaker.force_open()
    result = check()
    assert result.status is Status.DEGRADED
    assert result.message == "breakers not closed: payments open"


async def test_schema_valid_on_sqlite(tmp_path: object) -> None:
    schema = Schema([Table("users", [Column("id", "integer", nullable=False)])])
    async with open_backend(f"sqlite:///{tmp_path}/h.db") as opened:
        backend = require_sql(opened, "test")
        check = schema_valid(backend, schema)
        missing = await check()
        assert missing.status is Status.UNHEALTHY
        assert missing.message is not None
        assert missing.message.startswith("users")
        await backend.execute("CREATE TABLE users (id INTEGER NOT NULL)")
        warned = await check()  # no primary key: a warning, so degraded at worst
        assert warned.status in (Status.HEALTHY, Status.DEGRADED)
        await backend.execute("DROP TABLE users")
        await backend.execute("CREATE TABLE users (id INTEGER NOT NULL PRIMARY KEY)")
        assert (await check()).status is Status.HEALTHY


class FakeMigrator:
    errors: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()

    def __init__(self, backend: object, directory: object) -> None:
        self.backend, self.directory = backend, directory

    async def validate(self) -> object:
        return type("Report", (), {"errors": FakeMigrator.errors})()

    async def status(self) -> object:
        return type("Status", (), {"pending": FakeMigrator.pending})()


async def test_migrations_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    import buttress.health.builtin as builtin

    monkeypatch.setattr(builtin, "find", lambda name, modules: FakeMigrator)
    check = builtin.migrations_applied(object(), "migrations")
    monkeypatch.setattr(FakeMigrator, "errors", ())
    monkeypatch.setattr(FakeMigrator, "pending", ())
    assert (await check()).status is Status.HEALTHY
    monkeypatch.setattr(FakeMigrator, "pending", ("0002_add_email",))
    pending = await check()
    assert pending.status is Status.DEGRADED
    assert pending.message == "1 pending: 0002_add_email"
    monkeypatch.setattr(FakeMigrator, "errors", ("0001_init: checksum changed",))
    assert (await check()).status is Status.UNHEALTHY
    monkeypatch.setattr(builtin, "find", lambda name, modules: None)
    assert (await check()).message == "buttress.migrations is not installed"


async def test_register_standard() -> None:
    from buttress.health.builtin import register_standard

    class PgLike(FakeBackend):
        def __init__(self) -> None:
            super().__init__()
            self.pool = FakePool(2, 1, 10)

    registry = HealthRegistry()
    names = register_standard(
        registry, PgLike(), disk_path=".", breakers=[FakeBreaker("pay", State.OPEN)]
    )
    assert names == ["backend", "backend_pool", "disk", "breakers"]
    report = await registry.run()
    assert report.components["backend"].status is Status.HEALTHY
    assert report.components["breakers"].status is Status.DEGRADED
    assert report.components["breakers"].critical is False
    assert register_standard(HealthRegistry(), disk_path=None) == []
    with pytest.raises(ValidationError, match="ping"):
        register_standard(HealthRegistry(), object())
