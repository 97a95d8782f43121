"""RateLimiter conformance: the same behaviour on every backend (memory, SQLite,
PostgreSQL, Redis), including exactness across four processes, and the SQL
stores' table from buttress's migration 0006."""

from __future__ import annotations

import asyncio
import importlib.resources
import multiprocessing
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from buttress import connect
from buttress.backends import Backend, MissingTableError, require_sql
from buttress.migrations import Migrator
from buttress.migrations.files import load_directory
from buttress.migrations.sqltext import split_statements
from buttress.ratelimit import Rate, RateLimiter, ahit_all

ALGORITHMS = ["gcra", "sliding_window", "fixed_window"]


@pytest.fixture
async def backend(any_dsn: str) -> AsyncIterator[Backend]:
    async with connect(any_dsn) as b:
        yield b


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_burst_then_refusal(backend: Backend, algorithm: str) -> None:
    limiter = RateLimiter(Rate(3, 3600), algorithm=algorithm, backend=backend)
    decisions = [await limiter.ahit("k") for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert all(d.limit == 3 for d in decisions)
    assert decisions[0].retry_after == 0
    assert decisions[3].retry_after > 0
    assert decisions[3].reset_after > 0
    assert (await limiter.ahit("other")).allowed


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_cost_peek_and_reset(backend: Backend, algorithm: str) -> None:
    limiter = RateLimiter(Rate(5, 3600), algorithm=algorithm, backend=backend)
    assert (await limiter.ahit("k", 3)).remaining == 2
    assert (await limiter.apeek("k", 0)).remaining == 2
    assert not (await limiter.apeek("k", 3)).allowed
    assert (await limiter.apeek("k", 0)).remaining == 2
    assert not (await limiter.ahit("k", 3)).allowed
    await limiter.areset("k")
    assert (await limiter.ahit("k", 5)).allowed


async def test_gcra_retry_after_matches_the_interval(backend: Backend) -> None:
    limiter = RateLimiter(Rate(2, 100), backend=backend)
    await limiter.ahit("k")
    await limiter.ahit("k")
    refused = await limiter.ahit("k")
    assert 49.0 < refused.retry_after <= 50.0
    assert 99.0 < refused.reset_after <= 100.0


async def test_limiters_of_one_shape_share_state(backend: Backend) -> None:
    a = RateLimiter(Rate(2, 3600), backend=backend)
    b = RateLimiter(Rate(2, 3600), backend=backend)
    other_prefix = RateLimiter(Rate(2, 3600), backend=backend, prefix="other")
    await a.ahit("k", 2)
    assert not (await b.ahit("k")).allowed
    assert (await other_prefix.ahit("k")).allowed


async def test_hit_all_is_all_or_nothing(backend: Backend) -> None:
    user = RateLimiter(Rate(5, 60), backend=backend, prefix="user")
    tenant = RateLimiter(Rate(10, 60), algorithm="sliding_window", backend=backend, prefix="t")
    global_ = RateLimiter(Rate(2, 60), algorithm="fixed_window", backend=backend, prefix="g")
    triple = [(user, "ann"), (tenant, "acme"), (global_, "all")]
    first = await ahit_all(triple)
    assert first.allowed
    assert (first.limit, first.remaining) == (2, 1)  # the tightest admission binds
    assert (await ahit_all(triple)).allowed
    refused = await ahit_all(triple)
    assert not refused.allowed
    assert refused.limit == 2
    assert (await user.apeek("ann", 0)).remaining == 3
    assert (await tenant.apeek("acme", 0)).remaining == 8


async def test_repeated_key_in_one_batch(backend: Backend) -> None:
    limiter = RateLimiter(Rate(3, 60), backend=backend)
    assert (await ahit_all([(limiter, "k"), (limiter, "k")])).allowed
    assert not (await ahit_all([(limiter, "k"), (limiter, "k")])).allowed
    assert (await limiter.apeek("k", 0)).remaining == 1


async def test_token_bucket_burst(backend: Backend) -> None:
    limiter = RateLimiter(Rate(2, 3600), burst=4, backend=backend)
    decisions = [await limiter.ahit("k") for _ in range(5)]
    assert [d.allowed for d in decisions] == [True] * 4 + [False]
    assert decisions[0].limit == 4
    assert 1799.0 < decisions[4].retry_after <= 1800.0


def _worker(dsn: str, hits: int, queue: multiprocessing.Queue[dict[str, int]]) -> None:
    async def main() -> dict[str, int]:
        async with connect(dsn) as backend:
            limiters = {
                a: RateLimiter(Rate(100, 3600), algorithm=a, backend=backend) for a in ALGORITHMS
            }
            admitted = dict.fromkeys(ALGORITHMS, 0)

            async def hammer(algorithm: str) -> None:
                for _ in range(hits):
                    admitted[algorithm] += (await limiters[algorithm].ahit("shared")).allowed

            await asyncio.gather(*(hammer(a) for a in ALGORITHMS))
            return admitted

    queue.put(asyncio.run(main()))


# Not memory: its state is private to one process.
@pytest.mark.parametrize("any_dsn", ["sqlite", "postgresql", "redis"], indirect=True)
async def test_four_processes_admit_exactly_the_limit(backend: Backend, any_dsn: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[dict[str, int]] = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(any_dsn, 200, queue)) for _ in range(4)]
    for p in procs:
        p.start()
    results = [await asyncio.to_thread(queue.get, True, 180) for _ in procs]
    for p in procs:
        p.join(30)
    for algorithm in ALGORITHMS:
        assert sum(r[algorithm] for r in results) == 100, algorithm


async def test_migration_0006_adopts_first_use_state_and_rolls_back(
    sql_dsn: str, tmp_path: Path
) -> None:
    builtin = Path(str(importlib.resources.files("buttress.migrations") / "builtin"))
    async with connect(sql_dsn, migrate=False) as backend:
        db = require_sql(backend, "tests")
        directory = tmp_path / "own"
        directory.mkdir()
        ours = ("0001_init", "0006_rate_limits", "0010_rate_limit_single_key")
        for name in ours:
            shutil.copy(builtin / db.dialect / f"{name}.sql", directory)
        # What buttress created on first use before the migrations existed, with
        # state in it (0010's up part is idempotent too: it adopts the same way).
        migrations, _ = load_directory(directory)
        by_id = {m.id: m for m in migrations}
        for name in ours[1:]:
            for statement in split_statements(by_id[name].up):
                await db.execute(statement)
        limiter = RateLimiter(Rate(2, 3600), backend=backend)
        assert (await limiter.ahit("k")).remaining == 1
        migrator = Migrator(db, directory, namespace="buttress")
        assert (await migrator.migrate()).applied == ours
        assert (await limiter.ahit("k")).remaining == 0  # adopted, state kept
        assert await migrator.rollback(1) == (ours[2], ours[1])
        with pytest.raises(MissingTableError, match="0006_rate_limits"):
            await limiter.ahit("k")
        assert (await migrator.migrate()).applied == ours[1:]
        assert (await limiter.ahit("k")).remaining == 1
