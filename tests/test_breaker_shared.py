"""Shared circuits: two instances agree within the sync interval; the store's outage policy.

The same scenarios run on an in-process ``MemoryBreakerStore``, on real Redis
and on real PostgreSQL, each instance on its own connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from structlog.testing import capture_logs

from buttress import connect
from buttress.backends import MissingTableError, PostgresBackend, open_backend, require_sql
from buttress.breaker import (
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
    MemoryBreakerStore,
    PostgresBreakerStore,
    SharedStore,
    Snapshot,
    StateChange,
    StepParams,
)
from buttress.breaker._store import Op
from buttress.errors import UnsupportedBackendError, ValidationError
from buttress.migrations import apply_builtin
from buttress.migrations.builtin import builtin_migrator
from buttress.policies import SyncCallNotSupportedError
from buttress.testing import FakeClock


class Boom(Exception):
    pass


async def ok() -> str:
    return "ok"


async def boom() -> str:
    raise Boom


Factory = Callable[..., CircuitBreaker]


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
async def fleet(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Factory, Factory]]:
    """Two factories building breakers that share state through separate connections."""
    if request.param == "memory":
        store = MemoryBreakerStore()
        targets: list[object] = [store, store]
        closers: list[Any] = []
    else:
        dsn = request.getfixturevalue("redis_dsn" if request.param == "redis" else "postgres_dsn")
        closers = [await connect(dsn), await connect(dsn)]
        targets = list(closers)

    def factory(target: object) -> Factory:
        def build(**options: Any) -> CircuitBreaker:
            options.setdefault("registry", None)
            return CircuitBreaker("payments", backend=target, **options)

        return build

    try:
        yield factory(targets[0]), factory(targets[1])
    finally:
        for backend in closers:
            await backend.close()


async def trip(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        with pytest.raises(Boom):
            await breaker.acall(boom)


async def test_one_instance_opening_reaches_the_other_within_sync_interval(
    fleet: tuple[Factory, Factory],
) -> None:
    build_a, build_b = fleet
    clock_b = FakeClock()
    a = build_a(failure_threshold=2, recovery_timeout=30)
    b = build_b(failure_threshold=2, recovery_timeout=30, sync_interval=1.0, clock=clock_b)
    assert await b.acall(ok) == "ok"  # b has now seen the shared state
    await trip(a, 2)
    assert a.state is BreakerState.OPEN
    assert await b.acall(ok) == "ok"  # b's snapshot is still fresh: it may lag one interval
    clock_b.advance(1.0)
    with pytest.raises(CircuitOpenError) as info:
        await b.acall(ok)
    assert 25 < info.value.retry_after <= 30
    assert info.value.breaker_name == "payments"
    assert b.state is BreakerState.OPEN
    stats = b.stats()
    assert stats.shared
    assert stats.store_available is True
    assert stats.state is BreakerState.OPEN
    assert stats.rejected_count == 1
    assert stats.opened_at is not None


async def test_failures_from_both_instances_add_up(fleet: tuple[Factory, Factory]) -> None:
    build_a, build_b = fleet
    a = build_a(failure_threshold=2)
    b = build_b(failure_threshold=2)
    await trip(a, 1)
    await trip(b, 1)
    assert b.state is BreakerState.OPEN
    assert b.stats().consecutive_failures == 2


async def test_a_success_resets_the_shared_streak(fleet: tuple[Factory, Factory]) -> None:
    build_a, build_b = fleet
    a = build_a(failure_threshold=2, sync_interval=0.001)
    b = build_b(failure_threshold=2, sync_interval=0.001)
    await trip(a, 1)
    await asyncio.sleep(0.002)
    assert await b.acall(ok) == "ok"  # b saw a streak of 1, so it reports the success
    await trip(a, 1)
    assert a.state is BreakerState.CLOSED


async def test_half_open_probes_are_limited_fleet_wide(fleet: tuple[Factory, Factory]) -> None:
    build_a, build_b = fleet
    options = {"failure_threshold": 1, "recovery_timeout": 0.2, "half_open_max_calls": 2}
    breakers = [build_a(**options), build_a(**options), build_b(**options), build_b(**options)]
    await trip(breakers[0], 1)
    await asyncio.sleep(0.25)  # the store's own clock decides when recovery is due
    gate = asyncio.Event()
    reached = 0

    async def dependency() -> str:
        nonlocal reached
        reached += 1
        await gate.wait()
        return "ok"

    tasks = [asyncio.create_task(b.acall(dependency)) for b in breakers for _ in range(10)]
    # Wait until every caller was refused or is inside the dependency.
    for _ in range(500):
        await asyncio.sleep(0.01)
        if sum(task.done() for task in tasks) + reached == len(tasks):
            break
    assert reached == 2
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results.count("ok") == 2
    assert sum(isinstance(r, CircuitOpenError) for r in results) == 38
    probe_users = [b for b in breakers if b.stats().success_count]
    assert probe_users
    assert probe_users[0].state is BreakerState.CLOSED


async def test_failed_probe_reopens_everywhere(fleet: tuple[Factory, Factory]) -> None:
    build_a, build_b = fleet
    changes: list[StateChange] = []
    a = build_a(failure_threshold=1, recovery_timeout=0.2)
    b = build_b(failure_threshold=1, recovery_timeout=0.2, sync_interval=0.01)
    b.on_state_change(changes.append)
    await trip(a, 1)
    await asyncio.sleep(0.25)
    await trip(a, 1)  # the probe fails
    await asyncio.sleep(0.02)
    with pytest.raises(CircuitOpenError) as info:
        await b.acall(ok)
    assert info.value.retry_after > 0.1
    assert changes[-1].new is BreakerState.OPEN


async def test_areset_and_aforce_open_act_fleet_wide(fleet: tuple[Factory, Factory]) -> None:
    build_a, build_b = fleet
    a = build_a(failure_threshold=1, recovery_timeout=0.05, sync_interval=0.01)
    b = build_b(failure_threshold=1, recovery_timeout=0.05, sync_interval=0.01)
    await a.aforce_open()
    await asyncio.sleep(0.1)
    with pytest.raises(CircuitOpenError):  # forced: recovery_timeout does not end it
        await b.acall(ok)
    await b.areset()
    await asyncio.sleep(0.02)
    assert await a.acall(ok) == "ok"
    assert a.state is BreakerState.CLOSED


async def test_async_with_on_a_shared_breaker(fleet: tuple[Factory, Factory]) -> None:
    build_a, _ = fleet
    a = build_a(failure_threshold=1)
    async with a:
        pass
    with pytest.raises(Boom):
        async with a:
            raise Boom
    with pytest.raises(CircuitOpenError):
        async with a:
            pytest.fail("must not run")


async def test_sync_forms_name_the_async_method() -> None:
    breaker = CircuitBreaker("sync", backend=MemoryBreakerStore(), registry=None)
    with pytest.raises(SyncCallNotSupportedError, match="acall"):
        breaker.call(int)
    with pytest.raises(SyncCallNotSupportedError, match="areset"):
        breaker.reset()
    with pytest.raises(SyncCallNotSupportedError, match="aforce_open"):
        breaker.force_open()
    with pytest.raises(SyncCallNotSupportedError, match="async with"), breaker:
        pass


class Switchable:
    """A store that can be taken down and brought back."""

    def __init__(self) -> None:
        self.inner = MemoryBreakerStore()
        self.down = False
        self.calls = 0

    async def step(self, name: str, op: Op, epoch: int, probe: str, params: StepParams) -> Snapshot:
        self.calls += 1
        if self.down:
            raise ConnectionError("store unreachable")
        return await self.inner.step(name, op, epoch, probe, params)


def test_switchable_is_a_store() -> None:
    assert isinstance(Switchable(), SharedStore)


async def test_store_outage_falls_back_to_local_state() -> None:
    store = Switchable()
    clock = FakeClock()
    breaker = CircuitBreaker(
        "local", backend=store, registry=None, clock=clock, failure_threshold=2, sync_interval=5
    )
    store.down = True
    with capture_logs() as logs:
        assert await breaker.acall(ok) == "ok"
        await trip(breaker, 2)
        with pytest.raises(CircuitOpenError):
            await breaker.acall(ok)
    assert [e["event"] for e in logs].count("breaker.store_unreachable") == 1
    assert store.calls == 1  # no retries against the store before sync_interval
    stats = breaker.stats()
    assert stats.store_available is False
    assert stats.state is BreakerState.OPEN
    store.down = False
    clock.advance(30)
    with capture_logs() as logs:
        assert await breaker.acall(ok) == "ok"
    assert "breaker.store_recovered" in [e["event"] for e in logs]
    assert breaker.stats().store_available is True


class Failing:
    """A store that always raises ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def step(self, name: str, op: Op, epoch: int, probe: str, params: StepParams) -> Snapshot:
        raise self.error


async def test_store_unreachable_logs_the_errors_message_redacted() -> None:
    error = ConnectionError(
        "Error 111 connecting to 10.0.0.7:6379, password=s3cret-Pw token=abc123 "
        "via <redis.asyncio.connection.Connection(host=10.0.0.7,port=6379)>"
    )
    breaker = CircuitBreaker("msg", backend=Failing(error), registry=None)
    with capture_logs() as logs:
        assert await breaker.acall(ok) == "ok"
    (entry,) = [e for e in logs if e["event"] == "breaker.store_unreachable"]
    assert entry["error"] == "ConnectionError"
    message = entry["message"]
    assert "Error 111 connecting to 10.0.0.7:6379" in message
    assert "s3cret-Pw" not in message
    assert "abc123" not in message
    assert "<redis." not in message  # a driver object's repr is summarised


async def test_store_unreachable_without_a_message_logs_only_the_type() -> None:
    breaker = CircuitBreaker("bare", backend=Failing(TimeoutError()), registry=None)
    with capture_logs() as logs:
        assert await breaker.acall(ok) == "ok"
    (entry,) = [e for e in logs if e["event"] == "breaker.store_unreachable"]
    assert entry["error"] == "TimeoutError"
    assert "message" not in entry


async def test_store_outage_fail_open_and_fail_closed() -> None:
    store = Switchable()
    store.down = True
    permissive = CircuitBreaker(
        "open-policy", backend=store, registry=None, failure_threshold=1, on_store_error="open"
    )
    await trip(permissive, 3)
    assert await permissive.acall(ok) == "ok"
    assert permissive.state is BreakerState.CLOSED
    strict = CircuitBreaker(
        "closed-policy", backend=store, registry=None, on_store_error="closed", sync_interval=2
    )
    with pytest.raises(CircuitOpenError) as info:
        await strict.acall(ok)
    assert 0 < info.value.retry_after <= 2
    assert strict.state is BreakerState.OPEN


async def test_store_failure_while_reporting_feeds_local_state() -> None:
    store = Switchable()
    clock = FakeClock()
    breaker = CircuitBreaker(
        "midway", backend=store, registry=None, clock=clock, failure_threshold=1
    )
    assert await breaker.acall(ok) == "ok"
    store.down = True
    await trip(breaker, 1)
    assert breaker.stats().store_available is False
    with pytest.raises(CircuitOpenError):
        await breaker.acall(ok)


async def test_cancelled_probe_is_released_in_the_background() -> None:
    clock = FakeClock()
    store = MemoryBreakerStore(clock=clock)
    breaker = CircuitBreaker(
        "cancel", backend=store, registry=None, clock=clock, failure_threshold=1, recovery_timeout=1
    )
    await trip(breaker, 1)
    clock.advance(1)
    task = asyncio.create_task(breaker.acall(asyncio.sleep, 10))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert await breaker.acall(ok) == "ok"  # the permit was released, a new probe got in
    assert breaker.state is BreakerState.CLOSED


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"sync_interval": 0}, "sync_interval"),
        ({"store_timeout": -1}, "store_timeout"),
        ({"on_store_error": "maybe"}, "on_store_error"),
        ({"failure_rate_threshold": 0.5}, "failure_rate_threshold"),
    ],
)
def test_shared_options_are_validated(options: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        CircuitBreaker("v", backend=MemoryBreakerStore(), registry=None, **options)  # type: ignore[arg-type]  # bad on purpose
    assert info.value.field == field


async def test_unsupported_backend_kind_is_refused() -> None:
    async with open_backend("sqlite://") as sqlite:
        with pytest.raises(UnsupportedBackendError, match="redis"):
            CircuitBreaker("v", backend=sqlite, registry=None)


_PARAMS = StepParams(
    failure_threshold=2, recovery_timeout=30.0, half_open_max_calls=1, probe_timeout=5.0
)


@pytest.mark.postgres
async def test_postgres_store_needs_the_packaged_migration(postgres_dsn: str) -> None:
    async with connect(postgres_dsn, migrate=False) as raw:
        backend = require_sql(raw, "tests")
        assert isinstance(backend, PostgresBackend)
        store = PostgresBreakerStore(backend)
        with pytest.raises(MissingTableError) as info:
            await store.step("payments", "failure", 0, "", _PARAMS)
        assert info.value.migrations == ("0007_breaker_state",)
        assert info.value.tables == ("buttress_breaker_state", "buttress_breaker_step()")
        message = str(info.value)
        assert "buttress migrate" in message
        assert "migrate=True" in message
        # Nothing was created behind the operator's back.
        assert await backend.fetchval("SELECT to_regclass('buttress_breaker_state')") is None

        await apply_builtin(raw)
        snapshot = await store.step("payments", "failure", 0, "", _PARAMS)
        assert (snapshot.state, snapshot.failures) == (BreakerState.CLOSED, 1)
        recorded = await backend.fetchval(
            "SELECT name FROM schema_migrations WHERE namespace = 'buttress' AND version = 7"
        )
        assert recorded == "breaker_state"

        # A table dropped under an existing function is named on its own.
        await backend.execute("DROP TABLE buttress_breaker_state")
        with pytest.raises(MissingTableError) as info:
            await store.step("payments", "read", 0, "", _PARAMS)
        assert info.value.tables == ("buttress_breaker_state",)


@pytest.mark.postgres
async def test_breaker_migration_down_drops_table_and_function(postgres_dsn: str) -> None:
    async with connect(postgres_dsn) as raw:
        backend = require_sql(raw, "tests")
        assert isinstance(backend, PostgresBackend)
        store = PostgresBreakerStore(backend)
        assert (await store.step("p", "force_open", 0, "", _PARAMS)).state is BreakerState.OPEN
        # Later built-in migrations are undone too; only 0007 matters here.
        undone = await builtin_migrator(backend).rollback(6)
        assert "0007_breaker_state" in undone
        assert not any(u.startswith(("0001", "0006")) for u in undone)
        with pytest.raises(MissingTableError) as info:
            await store.step("p", "read", 0, "", _PARAMS)
        assert len(info.value.tables) == 2
        assert (await apply_builtin(backend)).applied == undone[::-1]
        assert (await store.step("p", "read", 0, "", _PARAMS)).state is BreakerState.CLOSED


@pytest.mark.postgres
async def test_shared_breaker_on_an_unmigrated_database_raises(postgres_dsn: str) -> None:
    async with connect(postgres_dsn, migrate=False) as raw:
        breaker = CircuitBreaker("payments", backend=raw, registry=None)
        with pytest.raises(MissingTableError, match="buttress migrate"):
            await breaker.acall(ok)
        assert breaker.stats().store_available is True
