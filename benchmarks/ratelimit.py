"""Rate-limit decisions per second: buttress against limits, pyrate-limiter and
aiolimiter, in one process run; prints medians and ratios.

    python benchmarks/ratelimit.py [--quick] [--only memory|redis|postgresql]

In memory: 10,000 keys in rotation, 1,000 units per minute each, so every
decision is an admission (the common path). Redis and PostgreSQL use the test
suite's throwaway servers (tests/servers.py) when the binaries are installed:
Redis async (sequential and with 32 concurrent clients) and sync, each case run
in turn within every round and quoted as the median of per-round ratios, with
script calls and server commands per decision from INFO commandstats;
PostgreSQL decisions per second with 32 concurrent clients. Peers that are
missing or fail are skipped with a note.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

KEYS = [f"client-{i}" for i in range(10_000)]
LIMIT = 1_000
PERIOD = 60


def medians_ns(
    cases: list[tuple[str, Callable[[int], None]]], n: int, repeats: int
) -> list[tuple[str, float]]:
    """Median ns per decision of each case over ``repeats`` runs of ``n``.

    Rounds go through every case in turn, so a machine whose load changes during
    the run slows all cases alike and the ratios stay meaningful.
    """
    samples: dict[str, list[float]] = {name: [] for name, _ in cases}
    for _ in range(repeats):
        for name, run in cases:
            start = time.perf_counter_ns()
            run(n)
            samples[name].append((time.perf_counter_ns() - start) / n)
    return [(name, statistics.median(samples[name])) for name, _ in cases]


def amedian_ns(run: Callable[[int], Awaitable[None]], n: int, repeats: int) -> float:
    async def main() -> float:
        samples = []
        for _ in range(repeats):
            start = time.perf_counter_ns()
            await run(n)
            samples.append((time.perf_counter_ns() - start) / n)
        return statistics.median(samples)

    return asyncio.run(main())


def keyed(hit: Callable[[str], object]) -> Callable[[int], None]:
    def run(n: int) -> None:
        keys = KEYS
        size = len(keys)
        for i in range(n):
            hit(keys[i % size])

    return run


def limits_peers(strategies: Any, storage: Callable[[], Any]) -> Iterator[tuple[str, Any]]:
    """limits' three strategies (sync or ``limits.aio``), each over ``storage()``."""
    from limits import RateLimitItemPerMinute

    item = RateLimitItemPerMinute(LIMIT)
    for name, strategy in (
        ("fixed", "FixedWindowRateLimiter"),
        ("moving", "MovingWindowRateLimiter"),
        ("sliding counter", "SlidingWindowCounterRateLimiter"),
    ):
        peer = getattr(strategies, strategy)(storage())
        yield f"limits {name}", functools.partial(peer.hit, item)


def memory_cases() -> Iterator[tuple[str, Callable[[int], None]]]:
    from buttress.ratelimit import Rate, RateLimiter

    for algorithm in ("gcra", "fixed_window", "sliding_window"):
        limiter = RateLimiter(Rate(LIMIT, PERIOD), algorithm=algorithm)
        yield f"buttress {algorithm}", keyed(limiter.hit)

    try:
        from limits import storage, strategies

        for name, hit in limits_peers(strategies, storage.MemoryStorage):
            yield name, keyed(hit)
    except Exception as exc:
        print(f"  (limits skipped: {type(exc).__name__}: {exc})")

    try:
        from pyrate_limiter import Duration, InMemoryBucket, Limiter
        from pyrate_limiter import Rate as PyrateRate

        rates = [PyrateRate(LIMIT * len(KEYS), Duration.MINUTE)]
        log = Limiter(InMemoryBucket(rates))
        yield "pyrate-limiter log", keyed(lambda key: log.try_acquire(key, blocking=False))
        try:
            from pyrate_limiter import StateBucket

            gcra = Limiter(StateBucket(rates))
            yield "pyrate-limiter GCRA", keyed(lambda key: gcra.try_acquire(key, blocking=False))
        except ImportError as exc:
            print(f"  (pyrate-limiter GCRA skipped: {exc})")
    except Exception as exc:
        print(f"  (pyrate-limiter skipped: {type(exc).__name__}: {exc})")


def aiolimiter_case(n: int, repeats: int) -> float | None:
    try:
        from aiolimiter import AsyncLimiter
    except ImportError as exc:
        print(f"  (aiolimiter skipped: {exc})")
        return None

    async def run(count: int) -> None:
        limiter = AsyncLimiter(10**12, 1)
        for _ in range(count):
            await limiter.acquire()

    return amedian_ns(run, n, repeats)


def report(title: str, rows: list[tuple[str, float]], notes: dict[str, str] | None = None) -> None:
    """One line per case: median time, ratio to the first (buttress) row, notes."""
    print(f"\n{title} (ratio: time / {rows[0][0] if rows else '-'})")
    for name, ns in rows:
        note = (notes or {}).get(name, "")
        print(f"  {name:<26} {ns / 1000:9.2f} us/decision  x{ns / rows[0][1]:6.2f}  {note}")


@contextlib.contextmanager
def server(kind: str) -> Iterator[object | None]:
    """The test suite's throwaway server (tests/servers.py), or None with a note."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    try:
        servers: Any = importlib.import_module("servers")
        srv = servers.RedisServer() if kind == "redis" else servers.PostgresServer()
        srv.start()
    except Exception as exc:
        print(f"\n{kind}: no server ({type(exc).__name__}: {exc}); skipped")
        yield None
        return
    try:
        yield srv
    finally:
        srv.stop()


async def commandstats(client: Any) -> dict[str, int]:
    info = await client.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in info.items()}


def redis_peers(url: str) -> Iterator[tuple[str, Callable[[str], Awaitable[object]]]]:
    """Async peers over Redis."""
    try:
        from limits.aio import strategies
        from limits.storage import storage_from_string

        shared = storage_from_string(f"async+{url}", implementation="redispy")
        yield from limits_peers(strategies, lambda: shared)
    except Exception as exc:
        print(f"  (limits redis skipped: {type(exc).__name__}: {exc})")
    try:
        import redis.asyncio as aredis
        from pyrate_limiter import Duration, Limiter, RedisBucket
        from pyrate_limiter import Rate as PyrateRate

        async def make() -> Any:
            client = aredis.Redis.from_url(url)
            bucket = RedisBucket.init(
                [PyrateRate(LIMIT * len(KEYS), Duration.MINUTE)], client, "pyrate"
            )
            return await bucket if asyncio.iscoroutine(bucket) else bucket

        holder: dict[str, Any] = {}

        async def hit(key: str) -> object:
            if "limiter" not in holder:
                holder["limiter"] = Limiter(await make())
            return await holder["limiter"].try_acquire_async(key, blocking=False)

        yield "pyrate-limiter log", hit
    except Exception as exc:
        print(f"  (pyrate-limiter redis skipped: {type(exc).__name__}: {exc})")


def redis_sync_peers(url: str) -> Iterator[tuple[str, Callable[[str], object]]]:
    """Sync peers over Redis (what a Flask or Django app would use)."""
    try:
        from limits import strategies
        from limits.storage import storage_from_string

        shared = storage_from_string(url)
        yield from limits_peers(strategies, lambda: shared)
    except Exception as exc:
        print(f"  (limits sync redis skipped: {type(exc).__name__}: {exc})")
    try:
        import redis
        from pyrate_limiter import Duration, Limiter, RedisBucket
        from pyrate_limiter import Rate as PyrateRate

        bucket = RedisBucket.init(
            [PyrateRate(LIMIT * len(KEYS), Duration.MINUTE)], redis.Redis.from_url(url), "pyrs"
        )
        limiter = Limiter(bucket)
        yield "pyrate-limiter log", lambda key: limiter.try_acquire(key, blocking=False)
    except Exception as exc:
        print(f"  (pyrate-limiter sync redis skipped: {type(exc).__name__}: {exc})")


def ratio_rows(samples: dict[str, list[float]]) -> list[tuple[str, float, float]]:
    """(name, median time, median per-round ratio to the first case): a ratio taken
    within each round cancels the machine's load changes between rounds."""
    names = list(samples)
    base = samples[names[0]]
    return [
        (
            name,
            statistics.median(samples[name]),
            statistics.median(t / b for t, b in zip(samples[name], base, strict=True)),
        )
        for name in names
    ]


def report_rounds(title: str, samples: dict[str, list[float]], notes: dict[str, str]) -> None:
    first = next(iter(samples), "-")
    print(f"\n{title} (median of per-round ratios: time / {first})")
    for name, ns, ratio in ratio_rows(samples):
        print(f"  {name:<26} {ns / 1000:9.2f} us/decision  x{ratio:6.2f}  {notes.get(name, '')}")


def command_notes(stats: dict[str, int], decisions: int) -> str:
    scripts = sum(stats.get(c, 0) for c in ("evalsha", "eval", "evalsha_ro"))
    total = sum(v for c, v in stats.items() if c not in ("info", "config|resetstat"))
    return (
        f"{scripts / decisions:.1f} script calls, "
        f"{total / decisions:.1f} server commands per decision"
    )


async def redis_section(url: str, n: int, rounds: int) -> None:
    import redis.asyncio as aredis

    from buttress import connect
    from buttress.ratelimit import Rate, RateLimiter

    backend = await connect(url)
    client = aredis.Redis.from_url(url)
    limiters = {
        algorithm: RateLimiter(Rate(LIMIT, PERIOD), algorithm=algorithm, backend=backend)
        for algorithm in ("gcra", "fixed_window", "sliding_window")
    }
    cases: list[tuple[str, Callable[[str], Awaitable[object]]]] = [
        (f"buttress {algorithm}", limiter.ahit) for algorithm, limiter in limiters.items()
    ]
    cases += list(redis_peers(url))
    for concurrency in (1, 32):

        async def run(
            count: int,
            hit: Callable[[str], Awaitable[object]],
            keys: list[str],
            concurrency: int = concurrency,
        ) -> None:
            per = count // concurrency

            async def worker(offset: int) -> None:
                for i in range(per):
                    await hit(keys[(offset * per + i) % len(keys)])

            await asyncio.gather(*(worker(w) for w in range(concurrency)))

        live = []
        for index, (name, hit) in enumerate(cases):
            # Each case gets its own keys: peers store different types under a key.
            keys = [f"case{index}:{key}" for key in KEYS]
            try:
                await run(200, hit, keys)
                live.append((name, hit, keys))
            except Exception as exc:
                print(f"  ({name} skipped: {type(exc).__name__}: {exc})")
        notes = {}
        for name, hit, keys in live:
            await client.config_resetstat()
            await run(n, hit, keys)
            notes[name] = command_notes(await commandstats(client), n)
        samples: dict[str, list[float]] = {name: [] for name, _, _ in live}
        for _ in range(rounds):
            for name, hit, keys in live:
                t0 = time.perf_counter_ns()
                await run(n, hit, keys)
                samples[name].append((time.perf_counter_ns() - t0) / n)
        report_rounds(
            f"Redis, async, {concurrency} concurrent client(s): wall time per decision",
            samples,
            notes,
        )

    redis_sync_section(url, limiters, n, rounds)
    await client.aclose()
    await backend.close()


def redis_sync_section(url: str, limiters: dict[str, Any], n: int, rounds: int) -> None:
    sync_cases: list[tuple[str, Callable[[str], object]]] = []
    sync_cases += [(f"buttress {name}", limiter.hit) for name, limiter in limiters.items()]
    sync_cases += list(redis_sync_peers(url))
    live_sync = []
    for index, (name, hit) in enumerate(sync_cases):
        keys = [f"sync{index}:{key}" for key in KEYS]
        try:
            for key in keys[:200]:
                hit(key)
            live_sync.append((name, hit, keys))
        except Exception as exc:
            print(f"  ({name} skipped: {type(exc).__name__}: {exc})")
    sync_samples: dict[str, list[float]] = {name: [] for name, _, _ in live_sync}
    for _ in range(rounds):
        for name, hit, keys in live_sync:
            t0 = time.perf_counter_ns()
            for i in range(n):
                hit(keys[i % len(keys)])
            sync_samples[name].append((time.perf_counter_ns() - t0) / n)
    report_rounds("Redis, sync, one thread: wall time per decision", sync_samples, {})


async def postgres_section(dsn: str, n: int) -> None:
    from buttress import connect
    from buttress.ratelimit import Rate, RateLimiter

    backend = await connect(dsn, max_size=32)
    print("\nPostgreSQL, 32 concurrent clients: decisions per second")
    for algorithm in ("gcra", "fixed_window", "sliding_window"):
        limiter = RateLimiter(Rate(LIMIT, PERIOD), algorithm=algorithm, backend=backend)
        await limiter.apeek("warm-up")

        async def worker(offset: int, limiter: RateLimiter = limiter) -> None:
            for i in range(n // 32):
                await limiter.ahit(KEYS[(offset * 997 + i) % len(KEYS)])

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(32)))
        elapsed = time.perf_counter() - t0
        print(f"  buttress {algorithm:<25} {n // 32 * 32 / elapsed:9.0f} decisions/s")
    await backend.close()


def memory_section(n: int, repeats: int) -> None:
    rows = medians_ns(list(memory_cases()), n, repeats)
    aio = aiolimiter_case(n, repeats)
    report("In memory, keyed (10,000 keys): time per decision", rows)
    if aio is not None:
        fastest_peer = min((ns for name, ns in rows if not name.startswith("buttress")), default=0)
        print(f"  {'aiolimiter (one un-keyed bucket)':<34} {aio / 1000:9.2f} us/decision")
        if fastest_peer:
            best = min(ns for name, ns in rows if name.startswith("buttress"))
            print(f"  buttress best / fastest keyed peer: x{best / fastest_peer:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer decisions (smoke run)")
    parser.add_argument(
        "--only", choices=("memory", "redis", "postgresql"), help="run one section only"
    )
    args = parser.parse_args()
    n, repeats = (20_000, 3) if args.quick else (100_000, 7)
    print(f"python {sys.version.split()[0]}; {n} decisions x {repeats} runs, medians")

    if args.only in (None, "memory"):
        memory_section(n, repeats)
    if args.only in (None, "redis"):
        with server("redis") as redis_srv:
            if redis_srv is not None:
                dsn = redis_srv.dsn()  # type: ignore[attr-defined]
                per_round, rounds = (640, 5) if args.quick else (1280, 15)
                asyncio.run(redis_section(dsn, per_round, rounds))
    if args.only not in (None, "postgresql"):
        return
    with server("postgresql") as pg_srv:
        if pg_srv is not None:
            dsn = pg_srv.dsn(pg_srv.create_database())  # type: ignore[attr-defined]
            asyncio.run(postgres_section(dsn, max(n // 10, 3200)))


if __name__ == "__main__":
    main()
