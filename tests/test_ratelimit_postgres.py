"""PostgreSQL specifics of RateLimiter: one statement per decision (and per
hit_all), the UNLOGGED table from migration 0006 and a clear error when it or
the function is missing. Shared behaviour is in test_ratelimit_backends.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from buttress import connect
from buttress.backends import MissingTableError, PostgresBackend
from buttress.errors import BackendError, UnsupportedBackendError
from buttress.migrations import apply_builtin
from buttress.ratelimit import Rate, RateLimiter, ahit_all

pytestmark = pytest.mark.postgres


@pytest.fixture
async def backend(postgres_dsn: str) -> AsyncIterator[PostgresBackend]:
    async with connect(postgres_dsn) as b:
        assert isinstance(b, PostgresBackend)
        yield b


class _CountingPool:
    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.calls = 0

    async def fetch(self, *args: Any) -> Any:
        self.calls += 1
        return await self.pool.fetch(*args)

    def acquire(self) -> Any:
        return self.pool.acquire()


async def test_one_statement_per_decision_and_per_hit_all(backend: PostgresBackend) -> None:
    user = RateLimiter(Rate(5, 60), backend=backend, prefix="u")
    tenant = RateLimiter(Rate(10, 60), algorithm="sliding_window", backend=backend, prefix="t")
    global_ = RateLimiter(Rate(2, 60), algorithm="fixed_window", backend=backend, prefix="g")
    await user.ahit("warm-up")
    counters = []
    for limiter in (user, tenant, global_):
        store: Any = limiter._store
        store._pool = _CountingPool(store._pool)
        counters.append(store._pool)
    await user.ahit("ann")
    assert counters[0].calls == 1
    triple = [(user, "ann"), (tenant, "acme"), (global_, "all")]
    assert (await ahit_all(triple)).allowed
    assert (await ahit_all(triple)).allowed
    refused = await ahit_all(triple)
    assert not refused.allowed
    assert refused.limit == 2
    assert counters[0].calls == 4  # each hit_all went through the first limiter's store once
    assert (await user.apeek("ann", 0)).remaining == 2
    assert (await tenant.apeek("acme", 0)).remaining == 8


async def test_table_is_unlogged(backend: PostgresBackend) -> None:
    limiter = RateLimiter(Rate(3, 60), backend=backend)
    await limiter.ahit("k")
    persistence = await backend.fetchval(
        "SELECT relpersistence::text FROM pg_class WHERE relname = 'buttress_rate_limits'"
    )
    assert persistence == "u"


async def test_sync_calls_name_the_async_twin(backend: PostgresBackend) -> None:
    limiter = RateLimiter(Rate(1, 1), backend=backend, on_backend_error="allow")
    with pytest.raises(UnsupportedBackendError, match="ahit"):
        limiter.hit("k")


async def test_a_dropped_function_is_named_not_recreated(backend: PostgresBackend) -> None:
    limiter = RateLimiter(Rate(3, 60), backend=backend)
    await limiter.ahit("k")
    await backend.execute("DROP FUNCTION buttress_rate_limit")
    with pytest.raises(MissingTableError) as caught:
        await limiter.ahit("k")
    assert caught.value.component == "RateLimiter"
    assert caught.value.tables == ("buttress_rate_limit()",)
    assert caught.value.migrations == ("0006_rate_limits",)
    assert await backend.fetchval("SELECT to_regproc('buttress_rate_limit')::text") is None


async def test_without_migrations_the_error_names_table_function_and_fix(
    postgres_dsn: str,
) -> None:
    async with connect(postgres_dsn, migrate=False) as raw:
        limiter = RateLimiter(Rate(3, 60), backend=raw)
        with pytest.raises(MissingTableError) as caught:
            await limiter.ahit("k")
        error = caught.value
        assert isinstance(error, BackendError)
        assert error.tables == ("buttress_rate_limits", "buttress_rate_limit()")
        message = str(error)
        assert message.startswith("RateLimiter: tables buttress_rate_limits, buttress_rate_limit()")
        assert "0006_rate_limits" in message
        assert "buttress migrate" in message
        assert "migrate=True" in message
        with pytest.raises(MissingTableError, match="buttress_rate_limits"):
            await limiter.areset("k")
        # The same limiter works once the migrations have run.
        await apply_builtin(raw)
        assert (await limiter.ahit("k")).remaining == 2
