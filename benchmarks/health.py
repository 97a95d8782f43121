"""Benchmark: HealthRegistry.run() against hand-written baselines.

50 async checks, 5 of which sleep 100 ms. Prints the median wall time of one
run for a sequential loop, a bare ``asyncio.gather``, ``gather`` with a
``wait_for`` per check (the least a runner with timeouts must do) and
``HealthRegistry.run()``; then the registry's own overhead per check, measured
with 50 instant checks, and the cost of a run served from the result cache.

    python benchmarks/health.py [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
from collections.abc import Awaitable, Callable

import structlog

from buttress.health import HealthRegistry

N_CHECKS = 50
N_SLOW = 5
SLOW_SECONDS = 0.1

Check = Callable[[], Awaitable[bool]]


async def instant() -> bool:
    return True


async def slow() -> bool:
    await asyncio.sleep(SLOW_SECONDS)
    return True


def make_checks(n_slow: int) -> list[Check]:
    return [slow if i < n_slow else instant for i in range(N_CHECKS)]


async def sequential(checks: list[Check]) -> None:
    for check in checks:
        await check()


async def bare_gather(checks: list[Check]) -> None:
    await asyncio.gather(*(c() for c in checks), return_exceptions=True)


async def gather_wait_for(checks: list[Check]) -> None:
    await asyncio.gather(*(asyncio.wait_for(c(), 5.0) for c in checks), return_exceptions=True)


def make_registry(checks: list[Check]) -> HealthRegistry:
    registry = HealthRegistry(version="bench", default_timeout=5.0)
    for i, check in enumerate(checks):
        registry.register(f"check-{i}", check)
    return registry


async def median_seconds(fn: Callable[[], Awaitable[object]], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


async def main(rounds: int) -> None:
    mixed = make_checks(N_SLOW)
    registry = make_registry(mixed)
    seq = await median_seconds(lambda: sequential(mixed), max(3, rounds // 10))
    gathered = await median_seconds(lambda: bare_gather(mixed), rounds)
    waited = await median_seconds(lambda: gather_wait_for(mixed), rounds)
    ours = await median_seconds(registry.run, rounds)
    print(f"{N_CHECKS} checks, {N_SLOW} sleeping {SLOW_SECONDS * 1000:.0f} ms; median wall time:")
    print(f"  sequential loop           {seq * 1000:8.1f} ms")
    print(f"  asyncio.gather            {gathered * 1000:8.1f} ms")
    print(f"  gather + wait_for         {waited * 1000:8.1f} ms")
    print(f"  HealthRegistry.run()      {ours * 1000:8.1f} ms   (aim <= 120 ms)")
    print(f"  registry / gather         {ours / gathered:8.3f}x")

    fast = make_checks(0)
    registry = make_registry(fast)
    inner = rounds * 20
    seq = await median_seconds(lambda: sequential(fast), inner)
    gathered = await median_seconds(lambda: bare_gather(fast), inner)
    waited = await median_seconds(lambda: gather_wait_for(fast), inner)
    ours = await median_seconds(registry.run, inner)
    cached = HealthRegistry(version="bench")
    for i, check in enumerate(fast):
        cached.register(f"check-{i}", check, success_ttl=3600)
    await cached.run()
    hit = await median_seconds(cached.run, inner)
    per = 1e6 / N_CHECKS
    print(f"{N_CHECKS} instant checks; median time per check:")
    print(f"  sequential loop           {seq * per:8.2f} us")
    print(f"  asyncio.gather            {gathered * per:8.2f} us")
    print(f"  gather + wait_for         {waited * per:8.2f} us")
    print(f"  HealthRegistry.run()      {ours * per:8.2f} us")
    print(f"  run() from cache          {hit * per:8.2f} us")
    print(
        f"  registry overhead         {(ours - seq) * per:8.2f} us over the loop, "
        f"{(ours - gathered) * per:.2f} us over gather   (aim <= 20 us)"
    )


if __name__ == "__main__":
    # Status-change events on the first runs are not what is being measured.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(main(args.rounds))
