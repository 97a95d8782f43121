"""Cost of ``buttress.db.Database`` over the bare asyncpg pool on a real PostgreSQL.

Run: ``python benchmarks/db_client.py [--quick]``. Starts a throwaway PostgreSQL
(``tests/servers.py``), then times ``pool.fetchval("SELECT 1")`` next to the same
call through ``Database`` (plain, and with a read breaker), in interleaved
rounds so machine noise hits every case alike; prints the median per call and
the ratio to the bare call. The aim is a ratio of at most 1.1.

A second table runs the same cases on an in-process pool that answers at
once (shaped like asyncpg's: ``fetchval`` acquires, then asks the connection),
so the wrapper's own cost shows in microseconds without network noise.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from buttress.breaker import CircuitBreaker
from buttress.db import Database, counts_as_failure

# tests/servers.py starts the throwaway server; imported by name, not statically,
# because tests/ is only importable once the line above the imports has run.
PostgresServer: Any = importlib.import_module("servers").PostgresServer

QUICK = "--quick" in sys.argv
ROUNDS = 5 if QUICK else 15
CALLS = 200 if QUICK else 1000  # per case per round

Case = tuple[str, Callable[[], Awaitable[object]]]


async def per_call(op: Callable[[], Awaitable[object]], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        await op()
    return (time.perf_counter() - start) / calls


async def measure(cases: list[Case]) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {label: [] for label, _ in cases}
    for _, op in cases:  # warm up: prepared statements, connections, caches
        await per_call(op, 50)
    for round_ in range(ROUNDS):
        # Rotate the order each round so no case always runs first or last.
        shift = round_ % len(cases)
        for label, op in cases[shift:] + cases[:shift]:
            timings[label].append(await per_call(op, CALLS))
    return timings


class InstantPool:
    """A pool and connection in one that answers at once, shaped like asyncpg's."""

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[InstantPool]:
        yield self

    def is_closed(self) -> bool:
        return False

    async def fetchval(self, sql: str, *args: object, timeout: float | None = None) -> object:  # noqa: ASYNC109  (asyncpg's signature)
        return 1

    async def pool_fetchval(self, sql: str, *args: object, timeout: float | None = None) -> object:  # noqa: ASYNC109  (asyncpg's signature)
        async with self.acquire() as conn:
            return await conn.fetchval(sql, *args, timeout=timeout)


def report(title: str, cases: list[Case], timings: dict[str, list[float]]) -> None:
    bare = statistics.median(timings[cases[0][0]])
    print(title)
    print(f"{'case':42} {'median µs/call':>15} {'ratio':>8} {'added µs':>9}")
    for label, _ in cases:
        median = statistics.median(timings[label])
        print(f"{label:40} {median * 1e6:15.2f} {median / bare:8.3f}x {(median - bare) * 1e6:9.2f}")


def wrapped_cases(
    pool: Any,
    bare: Callable[[], Awaitable[object]],
    bare_with_timeout: Callable[[], Awaitable[object]],
    prefix: str,
) -> list[Case]:
    plain = Database(pool, name="bench")
    guarded = Database(
        pool,
        name="bench-breaker",
        breakers={
            "read": CircuitBreaker(
                f"bench-read-{prefix}", failure_on_exception=counts_as_failure, registry=None
            )
        },
    )
    return [
        (f"{prefix} pool.fetchval", bare),
        (f"{prefix} pool.fetchval(timeout=30)", bare_with_timeout),
        ("Database.fetchval", lambda: plain.fetchval("SELECT 1")),
        ("Database.fetchval + read breaker", lambda: guarded.fetchval("SELECT 1")),
    ]


async def main(dsn: str) -> None:
    import asyncpg

    # One connection, so every case runs on the same backend process.
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        cases = wrapped_cases(
            pool,
            lambda: pool.fetchval("SELECT 1"),
            lambda: pool.fetchval("SELECT 1", timeout=30.0),
            "asyncpg",
        )
        timings = await measure(cases)
    finally:
        await pool.close()
    report(
        f"PostgreSQL SELECT 1 round trip, median of {ROUNDS} rounds x {CALLS} calls",
        cases,
        timings,
    )

    instant = InstantPool()
    cases = wrapped_cases(
        cast(Any, instant),
        lambda: instant.pool_fetchval("SELECT 1"),
        lambda: instant.pool_fetchval("SELECT 1", timeout=30.0),
        "in-process",
    )
    timings = await measure(cases)
    print()
    report("In-process pool (no I/O): the wrapper's own cost", cases, timings)


if __name__ == "__main__":
    server = PostgresServer()
    try:
        server.start()
        asyncio.run(main(server.dsn()))
    finally:
        server.stop()
