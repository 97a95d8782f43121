"""Shared-store decisions against the bare round trip of the same driver, on each
topology, in one process run; prints throughputs and ratios (item 6 of "Scale out").

    python benchmarks/topology.py [--quick] [--clients 32] [--rounds 3] [--only postgresql]

For each topology: 32 concurrent clients (asyncio tasks) on one buttress
backend. PostgreSQL (direct, and through PgBouncer in transaction mode): GCRA
decisions over 10,000 keys and on one hot key, against ``SELECT 1`` through the
same asyncpg pool; a hit is one call of the single-key function
``buttress_rate_limit_one`` (migration 0010), and the rows "batch function"
decide the same hits through ``buttress_rate_limit`` (0006, what ``hit_all``
and every hit before 0010 used). Redis (one server, and a Cluster of three masters): GCRA
decisions against redis-py's own round trip (``PING`` on one server, ``GET``
of keys spread over the masters on the cluster). Cases alternate within every
round; the ratio printed is the median of the per-round ratios. Servers are the
test suite's throwaway ones (tests/servers.py, tests/topology/).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

KEYS = [f"client-{i}" for i in range(10_000)]
Op = Callable[[int], Awaitable[object]]


async def rate(op: Op, clients: int, n: int) -> float:
    """Operations per second of ``op(i)`` run ``n`` times by ``clients`` tasks."""
    per = n // clients

    async def worker(offset: int) -> None:
        for i in range(per):
            await op(offset * per + i)

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(clients)))
    return per * clients / (time.perf_counter() - started)


async def compare(
    title: str, cases: dict[str, Op], baseline: str, clients: int, n: int, rounds: int
) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for op in cases.values():  # warm every path (scripts, statements, connections)
        await rate(op, clients, clients * 4)
    for _ in range(rounds):
        for name, op in cases.items():
            samples[name].append(await rate(op, clients, n))
    print(f"\n{title}, {clients} concurrent clients")
    ratios: dict[str, float] = {}
    for name in cases:
        per_round = [s / b for s, b in zip(samples[name], samples[baseline], strict=True)]
        ratios[name] = statistics.median(per_round)
        print(
            f"  {name:<34} {statistics.median(samples[name]):9.0f}/s"
            f"  x{ratios[name]:.2f} of {baseline}"
        )
    return ratios


async def postgres(title: str, dsn: str, clients: int, n: int, rounds: int) -> dict[str, float]:
    from buttress import Rate, RateLimiter, connect
    from buttress.backends import PostgresBackend

    backend = await connect(dsn, max_size=clients)
    assert isinstance(backend, PostgresBackend)
    limiter = RateLimiter(Rate(10**9, 60), backend=backend)
    pool = backend.pool
    store: Any = limiter._store

    def batch(key: str) -> Awaitable[object]:
        return store.adecide_batch([limiter._check(key, 1)], True)

    cases: dict[str, Op] = {
        "bare SELECT 1 (same pool)": lambda i: pool.fetchval("SELECT 1"),
        "decisions, 10,000 keys": lambda i: limiter.ahit(KEYS[i % len(KEYS)]),
        "decisions, one hot key": lambda i: limiter.ahit("hot"),
        "batch function, 10,000 keys": lambda i: batch(KEYS[i % len(KEYS)]),
        "batch function, one hot key": lambda i: batch("batch-hot"),
    }
    try:
        return await compare(title, cases, "bare SELECT 1 (same pool)", clients, n, rounds)
    finally:
        await backend.close()


async def redis_case(
    title: str, dsn: str, bare: Op, clients: int, n: int, rounds: int
) -> dict[str, float]:
    from buttress import Rate, RateLimiter, connect

    backend = await connect(dsn)
    limiter = RateLimiter(Rate(10**9, 60), backend=backend)
    cases: dict[str, Op] = {
        "bare redis-py round trip": bare,
        "decisions, 10,000 keys": lambda i: limiter.ahit(KEYS[i % len(KEYS)]),
        "decisions, one hot key": lambda i: limiter.ahit("hot"),
    }
    try:
        return await compare(title, cases, "bare redis-py round trip", clients, n, rounds)
    finally:
        await backend.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=["postgresql", "redis"], default=None)
    args = parser.parse_args()
    n = 3_200 if args.quick else 16_000
    clients, rounds = args.clients, args.rounds
    if args.only != "redis":
        await postgres_topologies(clients, n, rounds)
    if args.only != "postgresql":
        await redis_topologies(clients, n, rounds)


async def postgres_topologies(clients: int, n: int, rounds: int) -> None:
    from servers import PostgresServer
    from topology import PgBouncer

    postgres_server = PostgresServer()
    postgres_server.start()
    bouncer = PgBouncer(postgres_server)
    try:
        bouncer.start()
        database = postgres_server.create_database()
        await postgres("PostgreSQL", postgres_server.dsn(database), clients, n, rounds)
        await postgres("PgBouncer (transaction mode)", bouncer.dsn(database), clients, n, rounds)
    finally:
        bouncer.stop()
        postgres_server.stop()


async def redis_topologies(clients: int, n: int, rounds: int) -> None:
    import redis.asyncio
    from redis.asyncio.cluster import ClusterNode, RedisCluster

    from servers import RedisServer
    from topology import RedisCluster as ClusterTopology

    redis_server = RedisServer()
    redis_server.start()
    try:
        url = redis_server.dsn(0)
        client = redis.asyncio.from_url(url, max_connections=clients)
        try:
            await redis_case("Redis", url, lambda i: client.ping(), clients, n, rounds)
        finally:
            await client.aclose()
    finally:
        redis_server.stop()

    cluster = ClusterTopology()
    cluster.start()
    try:
        host, port = cluster.seeds[0]
        driver = RedisCluster(startup_nodes=[ClusterNode(host, port)], password=cluster.password)
        try:
            await redis_case(
                "Redis Cluster (3 masters)",
                cluster.dsn(),
                lambda i: driver.get(KEYS[i % len(KEYS)]),
                clients,
                n,
                rounds,
            )
        finally:
            await driver.aclose()
    finally:
        cluster.stop()


def _run() -> Any:
    return asyncio.run(main())


if __name__ == "__main__":
    _run()
