"""PostgreSQL specifics of RateLimiter: one statement per decision (and per
hit_all), the UNLOGGED table from migration 0006, the single-key fast path of
migration 0010 (its exactness under concurrency, its sharing of state with the
batch function, its sweep) and a clear error when a table or function is
missing. Shared behaviour is in test_ratelimit_backends.py; agreement with the
pure algorithms in test_ratelimit_scripts.py."""

from __future__ import annotations

import asyncio
import importlib.resources
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from buttress import connect
from buttress.backends import MissingTableError, PostgresBackend
from buttress.errors import BackendError, UnsupportedBackendError
from buttress.migrations import Migrator, apply_builtin
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


# -- the single-key fast path (migration 0010) ------------------------------------------------


@pytest.fixture(params=["direct", "pgbouncer"])
def fast_dsn(request: pytest.FixtureRequest) -> str:
    """The test's fresh database, reached directly and through PgBouncer."""
    fixture = "postgres_dsn" if request.param == "direct" else "pgbouncer_dsn"
    dsn: str = request.getfixturevalue(fixture)
    return dsn


@pytest.mark.parametrize("algorithm", ["gcra", "fixed_window", "sliding_window"])
async def test_fast_path_and_hit_all_together_never_over_admit(
    fast_dsn: str, algorithm: str
) -> None:
    """48 concurrent callers on 16 connections race for one key, half through the
    fast path, half through hit_all (with a limiter that never refuses): the units
    admitted are exactly what the key's state says was consumed, never above the
    limit, and a cost-1 race admits exactly the limit."""
    async with connect(fast_dsn, max_size=16) as backend:
        # A period of ~11.6 days: no fixed-window boundary falls inside the race.
        limiter = RateLimiter(Rate(40, 10**6), algorithm=algorithm, backend=backend, prefix="x")
        roomy = RateLimiter(Rate(10**6, 1), backend=backend, prefix="roomy")
        admitted: list[int] = []

        async def caller(n: int) -> None:
            for i in range(6):
                cost = 1 if n % 3 else 1 + i % 2
                if (n + i) % 2:
                    decision = await limiter.ahit("hot", cost)
                else:
                    decision = await ahit_all([(limiter, "hot"), (roomy, f"c{n}")], cost=cost)
                if decision.allowed:
                    admitted.append(cost)

        await asyncio.gather(*(caller(n) for n in range(48)))
        left = await limiter.apeek("hot", 0)
        assert sum(admitted) <= 40
        assert left.remaining == 40 - sum(admitted)
        # Then a cost-1 race on a fresh key admits exactly the limit.
        ones: list[bool] = []

        async def one(n: int) -> None:
            for _ in range(3):
                ones.append((await limiter.ahit("fresh")).allowed)

        await asyncio.gather(*(one(n) for n in range(48)))
        assert sum(ones) == 40


@pytest.mark.parametrize("algorithm", ["gcra", "fixed_window", "sliding_window"])
async def test_fast_path_takes_the_empty_row_a_refused_hit_all_left(
    backend: PostgresBackend, algorithm: str
) -> None:
    spent = RateLimiter(Rate(1, 3600), backend=backend, prefix="spent")
    limiter = RateLimiter(Rate(3, 3600), algorithm=algorithm, backend=backend, prefix="fresh")
    assert (await spent.ahit("x")).allowed
    assert not (await ahit_all([(spent, "x"), (limiter, "k")])).allowed
    state = await backend.fetchval(
        "SELECT state::text FROM buttress_rate_limits WHERE key = $1", limiter._storage_key("k")
    )
    # 0006 made the row exist, then refused: nothing written. The row may also be
    # gone: about one call in a thousand sweeps expired rows, an empty one among them.
    assert state in ("{}", None)
    assert [(await limiter.ahit("k")).remaining for _ in range(4)] == [2, 1, 0, 0]


async def test_fast_path_sweeps_expired_rows_at_its_decision_time(
    backend: PostgresBackend,
) -> None:
    """About one call in a thousand deletes expired rows (random() < 0.001): with the
    session's random seed set to one whose first draw is below that, the next call
    sweeps, judging expiry at its own (here caller-given) time."""
    limiter = RateLimiter(Rate(2, 1), backend=backend, prefix="sweep")
    store: Any = limiter._store
    store.fixed_now_us = t0 = 1_700_000_000_000_000
    for key in ("old-1", "old-2", "current"):
        await limiter.ahit(key)
    store.fixed_now_us = t0 + 5_000_000
    await limiter.ahit("live")
    call = "SELECT * FROM buttress_rate_limit_one($1, 'g', 2, 1000000, 1, $2)"
    async with backend.pool.acquire() as conn:
        await conn.execute(
            "CREATE FUNCTION pg_temp.sweeping_seed() RETURNS float8 LANGUAGE plpgsql AS $$"
            " BEGIN FOR i IN 1 .. 100000 LOOP PERFORM setseed(i / 100000.0);"
            " IF random() < 0.001 THEN PERFORM setseed(i / 100000.0); RETURN i / 100000.0;"
            " END IF; END LOOP; END $$"
        )
        seed = await conn.fetchval("SELECT pg_temp.sweeping_seed()")
        assert seed is not None
        await conn.execute(f"SELECT setseed({seed})")
        await conn.fetchrow(call, limiter._storage_key("current"), t0 + 5_000_001)
    keys = await backend.fetch("SELECT key FROM buttress_rate_limits ORDER BY key")
    assert [row["key"].rsplit(":", 1)[1] for row in keys] == ["current", "live"]


async def test_migration_0010_rolls_back_to_0006_keeping_state(backend: PostgresBackend) -> None:
    builtin = Path(str(importlib.resources.files("buttress.migrations") / "builtin"))
    migrator = Migrator(backend, builtin / "postgresql", namespace="buttress")
    limiter = RateLimiter(Rate(3, 3600), backend=backend)
    assert (await limiter.ahit("k")).remaining == 2
    undone = await migrator.rollback(9)  # 0010 and any later one, dependants first
    assert undone[-1] == "0010_rate_limit_single_key"
    with pytest.raises(MissingTableError) as caught:
        await limiter.ahit("k")
    assert caught.value.migrations == ("0010_rate_limit_single_key",)
    columns = await backend.fetch(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'buttress_rate_limits'::regclass"
        " AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
    )
    assert [c["attname"] for c in columns] == ["key", "state", "expires_at"]
    assert (await limiter.apeek("k", 0)).remaining == 2  # peeks use 0006's function
    assert (await ahit_all([(limiter, "k"), (limiter, "j")])).remaining == 1  # so do batches
    assert (await migrator.migrate()).applied == tuple(reversed(undone))
    assert (await limiter.ahit("k")).remaining == 0
