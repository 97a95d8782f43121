"""PostgreSQL specifics of RateLimiter: one statement per decision (and per
hit_all), the UNLOGGED table from migration 0006, the single-key fast path of
migration 0010 (its exactness under concurrency, its sharing of state with the
batch function, its sweep) and a clear error when a table or function is
missing. Shared behaviour is in test_ratelimit_backends.py; agreement with the
pure algorithms in test_ratelimit_scripts.py."""

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
        self.functions: list[str] = []

    def _count(self, sql: str) -> None:
        self.calls += 1
        self.functions.append(sql.split(" FROM ")[1].split("(")[0])

    async def fetch(self, sql: str, *args: Any) -> Any:
        self._count(sql)
        return await self.pool.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        self._count(sql)
        return await self.pool.fetchrow(sql, *args)

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
    assert counters[0].functions == ["buttress_rate_limit_one"]  # the single-key fast path
    triple = [(user, "ann"), (tenant, "acme"), (global_, "all")]
    assert (await ahit_all(triple)).allowed
    assert (await ahit_all(triple)).allowed
    refused = await ahit_all(triple)
    assert not refused.allowed
    assert refused.limit == 2
    assert counters[0].calls == 4  # each hit_all went through the first limiter's store once
    assert counters[0].functions[1:] == ["buttress_rate_limit"] * 3
    assert (await user.apeek("ann", 0)).remaining == 2
    assert (await tenant.apeek("acme", 0)).remaining == 8
    for limiter, key in triple:  # a single hit of each algorithm: one fast-path statement
        await limiter.ahit(key)
    assert [c.functions[-1] for c in counters] == ["buttress_rate_limit_one"] * 3


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
        await limiter.apeek("k")
    assert caught.value.component == "RateLimiter"
    assert caught.value.tables == ("buttress_rate_limit()",)
    assert caught.value.migrations == ("0006_rate_limits",)
    assert await backend.fetchval("SELECT to_regproc('buttress_rate_limit')::text") is None
    assert (await limiter.ahit("k")).remaining == 1  # the fast path does not need it
    await backend.execute("DROP FUNCTION buttress_rate_limit_one")
    with pytest.raises(MissingTableError) as caught:
        await limiter.ahit("k")
    assert caught.value.tables == ("buttress_rate_limit()", "buttress_rate_limit_one()")
    assert caught.value.migrations == ("0006_rate_limits", "0010_rate_limit_single_key")


async def test_without_migrations_the_error_names_table_function_and_fix(
    postgres_dsn: str,
) -> None:
    async with connect(postgres_dsn, migrate=False) as raw:
        limiter = RateLimiter(Rate(3, 60), backend=raw)
        with pytest.raises(MissingTableError) as caught:
            await limiter.ahit("k")
        error = caught.value
        assert isinstance(error, BackendError)
        assert error.tables == (
            "buttress_rate_limits",
            "buttress_rate_limit()",
            "buttress_rate_limit_one()",
        )
        assert error.migrations == ("0006_rate_limits", "0010_rate_limit_single_key")
        message = str(error)
        assert message.startswith(
            "RateLimiter: tables buttress_rate_limits, buttress_rate_limit(), "
            "buttress_rate_limit_one() are missing"
        )
        assert "0006_rate_limits, 0010_rate_limit_single_key" in message
        assert "buttress migrate" in message
        assert "migrate=True" in message
        with pytest.raises(MissingTableError, match="buttress_rate_limits"):
            await limiter.areset("k")
        # The same limiter works once the migrations have run.
        await apply_builtin(raw)
        assert (await limiter.ahit("k")).remaining == 2
