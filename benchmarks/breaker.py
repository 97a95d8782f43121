"""Per-call cost of buttress's CircuitBreaker and retry next to their peers.

Run: ``python benchmarks/breaker.py [--quick]``. One process, every case measured
in interleaved rounds (so machine noise hits all alike); prints the median cost
per call, the overhead over the bare call, and each peer's cost as a multiple of
buttress's. Peers that are not installed are skipped (``pip install
'buttress[bench]'``). A Redis row runs when ``BUTTRESS_BENCH_REDIS`` holds a DSN.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import statistics
import sys
import time
import timeit
from collections.abc import Awaitable, Callable
from typing import Any

from buttress.breaker import CircuitBreaker, CircuitOpenError
from buttress.policies import retry

QUICK = "--quick" in sys.argv
ROUNDS = 5 if QUICK else 15
TARGET_SECONDS = 0.01 if QUICK else 0.04  # per case per round


def noop() -> None:
    return None


async def anoop() -> None:
    return None


class Boom(Exception):
    pass


def boom() -> None:
    raise Boom


async def aboom() -> None:
    raise Boom


Case = tuple[str, Callable[[int], float]]


def sync_case(label: str, stmt: str, env: dict[str, Any]) -> Case:
    timer = timeit.Timer(stmt, globals=env)
    return label, timer.timeit


def async_case(
    label: str, op: Callable[[], Awaitable[object]], catch: type[BaseException] | None
) -> Case:
    loop = asyncio.new_event_loop()

    async def many(n: int) -> float:
        start = time.perf_counter()
        if catch is None:
            for _ in range(n):
                await op()
        else:
            for _ in range(n):
                try:  # noqa: SIM105  (suppress() would add its own cost to every iteration)
                    await op()
                except catch:
                    pass
        return time.perf_counter() - start

    return label, lambda n: loop.run_until_complete(many(n))


def measure(cases: list[Case]) -> dict[str, float]:
    """Median seconds per call for every case, rounds interleaved across cases."""
    sizes = {}
    for label, run in cases:
        n = 100
        while (spent := run(n)) < TARGET_SECONDS / 4:
            n *= 4
        sizes[label] = max(100, int(n * TARGET_SECONDS / max(spent, 1e-9)))
    samples: dict[str, list[float]] = {label: [] for label, _ in cases}
    for _ in range(ROUNDS):
        for label, run in cases:
            samples[label].append(run(sizes[label]) / sizes[label])
    return {label: statistics.median(values) for label, values in samples.items()}


def report(title: str, results: dict[str, float], bare: str, ours: str) -> None:
    print(f"\n{title}")
    print(f"  {'case':<42} {'median':>10} {'overhead':>10} {'x buttress':>11}")
    base = results.get(bare, 0.0)
    mine = results[ours] - base
    for label, seconds in results.items():
        overhead = seconds - base
        ratio = "" if label == bare else f"{overhead / mine:>10.1f}x" if mine > 0 else "n/a"
        print(f"  {label:<42} {seconds * 1e9:>8.0f}ns {overhead * 1e9:>8.0f}ns {ratio:>11}")


AIM = 0.25  # issue #17: open-rejection overhead at most this share of circuitbreaker's


def aim(results: dict[str, float], bare: str, peer: str, ours: list[str]) -> None:
    """Print each of ``ours`` as a share of ``peer``'s overhead above ``bare``."""
    if peer not in results:
        return
    base = results[bare]
    theirs = results[peer] - base
    for label in ours:
        share = (results[label] - base) / theirs if theirs > 0 else float("nan")
        verdict = "meets" if share <= AIM else "misses"
        print(f"  {label}: overhead {share:.2f}x {peer}'s ({verdict} the {AIM:.2f}x aim)")


def tripped(breaker_call: Callable[[Callable[[], None]], object], times: int = 10) -> None:
    for _ in range(times):
        with contextlib.suppress(Exception):
            breaker_call(boom)


def closed_and_open_sync() -> None:
    env: dict[str, Any] = {"noop": noop, "CircuitOpenError": CircuitOpenError}
    ours = CircuitBreaker("bench", registry=None)
    env["b"] = ours
    env["bd"] = ours(noop)
    closed = [
        sync_case("bare call", "noop()", env),
        sync_case("buttress breaker.call(fn)", "b.call(noop)", env),
        sync_case("buttress @breaker", "bd()", env),
    ]
    opened = CircuitBreaker("bench-open", registry=None, recovery_timeout=1e6)
    opened.force_open()
    env["bo"] = opened
    env["bod"] = opened(noop)
    # Tripped by a failure (open_until is finite, unlike force_open's +inf).
    trippedb = CircuitBreaker(
        "bench-tripped", registry=None, failure_threshold=1, recovery_timeout=1e6
    )
    tripped(trippedb.call, times=1)
    env["bt"] = trippedb
    env["btd"] = trippedb(noop)
    rejecting = [
        sync_case("bare raise+except", "try:\n raise E()\nexcept E:\n pass", {"E": Boom}),
        sync_case(
            "buttress open",
            "try:\n bo.call(noop)\nexcept CircuitOpenError:\n pass",
            env,
        ),
        # The peers below are measured through their decorators: this is the like-for-like row.
        sync_case("buttress @breaker open", "try:\n bod()\nexcept CircuitOpenError:\n pass", env),
        sync_case(
            "buttress open, tripped",
            "try:\n bt.call(noop)\nexcept CircuitOpenError:\n pass",
            env,
        ),
        sync_case(
            "buttress @breaker open, tripped", "try:\n btd()\nexcept CircuitOpenError:\n pass", env
        ),
    ]
    try:
        import pybreaker

        pb = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=1e6)
        pbo = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=1e6)
        tripped(pbo.call)
        env.update(pb=pb, pbo=pbo, PBE=pybreaker.CircuitBreakerError)
        closed.append(sync_case("pybreaker breaker.call(fn)", "pb.call(noop)", env))
        rejecting.append(
            sync_case("pybreaker open", "try:\n pbo.call(noop)\nexcept PBE:\n pass", env)
        )
    except ImportError:
        print("(pybreaker not installed: skipped)")
    try:
        import circuitbreaker  # type: ignore[import-untyped]  # ships no type information

        cb = circuitbreaker.CircuitBreaker(failure_threshold=5, recovery_timeout=10**6)
        cbo = circuitbreaker.CircuitBreaker(failure_threshold=1, recovery_timeout=10**6)
        cbo_fn = cbo(noop)
        tripped(lambda fn: cbo.call(fn))
        env.update(cbd=cb(noop), cbo_fn=cbo_fn, CBE=circuitbreaker.CircuitBreakerError)
        closed.append(sync_case("circuitbreaker @breaker", "cbd()", env))
        rejecting.append(
            sync_case("circuitbreaker open", "try:\n cbo_fn()\nexcept CBE:\n pass", env)
        )
    except ImportError:
        print("(circuitbreaker not installed: skipped)")
    try:
        from datetime import timedelta

        import aiobreaker  # type: ignore[import-untyped]  # ships no type information

        ab = aiobreaker.CircuitBreaker(fail_max=5, timeout_duration=timedelta(days=30))
        abo = aiobreaker.CircuitBreaker(fail_max=1, timeout_duration=timedelta(days=30))
        abo.open()
        env.update(ab=ab, abo=abo, ABE=aiobreaker.CircuitBreakerError)
        closed.append(sync_case("aiobreaker breaker.call(fn)", "ab.call(noop)", env))
        rejecting.append(
            sync_case("aiobreaker open", "try:\n abo.call(noop)\nexcept ABE:\n pass", env)
        )
    except ImportError:
        print("(aiobreaker not installed: skipped)")
    try:
        import purgatory
        from purgatory.domain.model import OpenedState

        factory = purgatory.SyncCircuitBreakerFactory(default_threshold=5, default_ttl=10**6)
        pgo_fn = factory("bench-open", threshold=1)(noop)
        tripped(lambda fn: factory("bench-open", threshold=1)(fn)())
        env.update(
            pgd=factory("bench")(noop),
            pgo_fn=pgo_fn,
            PGE=OpenedState,
        )
        closed.append(sync_case("purgatory @breaker", "pgd()", env))
        rejecting.append(sync_case("purgatory open", "try:\n pgo_fn()\nexcept PGE:\n pass", env))
    except (ImportError, AttributeError) as exc:
        print(f"(purgatory sync skipped: {exc!r})")
    report("closed breaker around a no-op, sync", measure(closed), "bare call", "buttress @breaker")
    results = measure(rejecting)
    report(
        "open breaker rejecting, sync (includes raise + except)",
        results,
        "bare raise+except",
        "buttress open",
    )
    aim(
        results,
        "bare raise+except",
        "circuitbreaker open",
        [
            "buttress open",
            "buttress @breaker open",
            "buttress open, tripped",
            "buttress @breaker open, tripped",
        ],
    )


def closed_and_open_async() -> None:
    ours = CircuitBreaker("bench-async", registry=None)
    decorated = ours(anoop)
    opened = CircuitBreaker("bench-async-open", registry=None, recovery_timeout=1e6)
    opened.force_open()
    trippedb = CircuitBreaker(
        "bench-async-tripped", registry=None, failure_threshold=1, recovery_timeout=1e6
    )
    asyncio.run(_trip_async(functools.partial(trippedb.acall, aboom)))
    closed = [
        async_case("bare await", anoop, None),
        async_case("buttress await breaker.acall(fn)", lambda: ours.acall(anoop), None),
        async_case("buttress @breaker (async)", decorated, None),
    ]
    rejecting = [
        async_case("bare await raising", aboom, Boom),
        # partial, not a lambda: the peers' rows have no extra Python call either.
        async_case(
            "buttress open (async)", functools.partial(opened.acall, anoop), CircuitOpenError
        ),
        async_case("buttress @breaker open (async)", opened(anoop), CircuitOpenError),
        async_case(
            "buttress open, tripped (async)",
            functools.partial(trippedb.acall, anoop),
            CircuitOpenError,
        ),
        async_case("buttress @breaker open, tripped (async)", trippedb(anoop), CircuitOpenError),
    ]
    try:
        import circuitbreaker

        cb = circuitbreaker.CircuitBreaker(failure_threshold=5, recovery_timeout=10**6)
        cbo = circuitbreaker.CircuitBreaker(failure_threshold=1, recovery_timeout=10**6)
        cbo_fn = cbo(anoop)
        asyncio.run(_trip_async(cbo(aboom)))
        closed.append(async_case("circuitbreaker @breaker (async)", cb(anoop), None))
        rejecting.append(
            async_case("circuitbreaker open (async)", cbo_fn, circuitbreaker.CircuitBreakerError)
        )
    except ImportError:
        print("(circuitbreaker not installed: skipped)")
    try:
        from datetime import timedelta

        import aiobreaker

        ab = aiobreaker.CircuitBreaker(fail_max=5, timeout_duration=timedelta(days=30))
        abo = aiobreaker.CircuitBreaker(fail_max=1, timeout_duration=timedelta(days=30))
        abo.open()
        closed.append(async_case("aiobreaker call_async(fn)", lambda: ab.call_async(anoop), None))
        rejecting.append(
            async_case(
                "aiobreaker open (async)",
                lambda: abo.call_async(anoop),
                aiobreaker.CircuitBreakerError,
            )
        )
    except ImportError:
        print("(aiobreaker not installed: skipped)")
    try:
        import purgatory
        from purgatory.domain.model import OpenedState

        factory = purgatory.AsyncCircuitBreakerFactory(default_threshold=5, default_ttl=10**6)
        pg_fn = factory("bench")(anoop)
        pgo_fn = factory("bench-open", threshold=1)(anoop)
        asyncio.run(_trip_async(factory("bench-open", threshold=1)(aboom)))
        closed.append(async_case("purgatory @breaker (async)", pg_fn, None))
        rejecting.append(async_case("purgatory open (async)", pgo_fn, OpenedState))
    except (ImportError, AttributeError) as exc:
        print(f"(purgatory async skipped: {exc!r})")
    print("(pybreaker: async needs tornado, not measured)")
    report(
        "closed breaker around a no-op, async",
        measure(closed),
        "bare await",
        "buttress @breaker (async)",
    )
    results = measure(rejecting)
    report("open breaker rejecting, async", results, "bare await raising", "buttress open (async)")
    aim(
        results,
        "bare await raising",
        "circuitbreaker open (async)",
        [
            "buttress open (async)",
            "buttress @breaker open (async)",
            "buttress open, tripped (async)",
            "buttress @breaker open, tripped (async)",
        ],
    )


async def _trip_async(fn: Callable[[], Awaitable[None]]) -> None:
    for _ in range(10):
        with contextlib.suppress(Exception):
            await fn()


def retry_first_attempt() -> None:
    env: dict[str, Any] = {"noop": noop}
    policy = retry(attempts=3)
    env["rd"] = policy(noop)
    env["rp"] = policy
    cases = [
        sync_case("bare call", "noop()", env),
        sync_case("buttress retry.call(fn)", "rp.call(noop)", env),
        sync_case("buttress @retry", "rd()", env),
    ]
    acases = [
        async_case("bare await", anoop, None),
        async_case("buttress @retry (async)", policy(anoop), None),
    ]
    try:
        import tenacity

        env["td"] = tenacity.retry(stop=tenacity.stop_after_attempt(3))(noop)
        cases.append(sync_case("tenacity @retry", "td()", env))
        acases.append(
            async_case(
                "tenacity @retry (async)",
                tenacity.retry(stop=tenacity.stop_after_attempt(3))(anoop),
                None,
            )
        )
    except ImportError:
        print("(tenacity not installed: skipped)")
    try:
        import stamina

        env["sd"] = stamina.retry(on=Exception, attempts=3)(noop)
        cases.append(sync_case("stamina @retry", "sd()", env))
        acases.append(
            async_case(
                "stamina @retry (async)", stamina.retry(on=Exception, attempts=3)(anoop), None
            )
        )
    except ImportError:
        print("(stamina not installed: skipped)")
    report("retry, first attempt succeeds, sync", measure(cases), "bare call", "buttress @retry")
    report(
        "retry, first attempt succeeds, async",
        measure(acases),
        "bare await",
        "buttress @retry (async)",
    )


class CountingStore:
    """Wraps a store to count round trips."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.trips = 0

    async def step(self, *args: Any) -> Any:
        self.trips += 1
        return await self.inner.step(*args)


def shared_redis(dsn: str) -> None:
    from buttress import connect
    from buttress.breaker import RedisBreakerStore

    async def scenario() -> list[tuple[str, float, float]]:
        rows = []
        async with connect(dsn) as backend:
            client = backend.client  # type: ignore[attr-defined]
            await client.flushdb()
            store = CountingStore(RedisBreakerStore(client))
            breaker = CircuitBreaker(
                "bench-shared", backend=store, registry=None, failure_threshold=10**9
            )
            n = 200 if QUICK else 1000

            async def timed(label: str, op: Callable[[], Awaitable[object]]) -> None:
                samples = []
                trips_before = store.trips
                for _ in range(ROUNDS):
                    start = time.perf_counter()
                    for _ in range(n):
                        try:  # noqa: SIM105  (as above: keep the loop lean)
                            await op()
                        except (Boom, CircuitOpenError):
                            pass
                    samples.append((time.perf_counter() - start) / n)
                trips = (store.trips - trips_before) / (n * ROUNDS)
                rows.append((label, statistics.median(samples), trips))

            await timed("redis PING (one round trip)", client.ping)
            rows[-1] = (rows[-1][0], rows[-1][1], 1.0)
            await timed("shared closed, success", lambda: breaker.acall(anoop))
            await timed("shared closed, failure (record+decide)", lambda: breaker.acall(aboom))
            await breaker.aforce_open()
            await asyncio.sleep(0)
            await timed("shared open, rejection (cached)", lambda: breaker.acall(anoop))
        return rows

    rows = asyncio.run(scenario())
    print(f"\nshared breaker on Redis ({dsn}), sync_interval=1s")
    print(f"  {'case':<42} {'median':>10} {'round trips/call':>17}")
    for label, seconds, trips in rows:
        print(f"  {label:<42} {seconds * 1e6:>8.1f}us {trips:>17.3f}")


def main() -> None:
    print(f"python {sys.version.split()[0]}, {ROUNDS} rounds, medians per call")
    closed_and_open_sync()
    closed_and_open_async()
    retry_first_attempt()
    dsn = os.environ.get("BUTTRESS_BENCH_REDIS")
    if dsn:
        shared_redis(dsn)
    else:
        print("\n(shared Redis breaker: set BUTTRESS_BENCH_REDIS=redis://... to measure)")


if __name__ == "__main__":
    main()
