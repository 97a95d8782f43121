"""Wall-clock numbers the unit tests prove by ordering instead of by timing.

The unit tests show with barriers, events and ``FakeClock`` that calls overlap,
that a run returns without waiting for an abandoned check or hook, and that a
change arrives by push; they assert no durations. This script prints how long
those things take on this machine, each beside the bound the tests used to
assert (an aim, not a test), the median of ``--rounds`` runs:

- four threads each sleeping 50 ms through one ``CircuitBreaker``;
- ``HealthRegistry.run()`` with four checks sleeping 100 ms each; with a check
  that hangs (timeout 50 ms); with a blocking sync check (200 ms, timeout 50 ms);
  ``probe()`` while the refresher's run is stuck;
- ``GracefulShutdown.run()`` with a hook that swallows its cancellation
  (deadline 150 ms) and with one that overruns its 50 ms timeout;
- ``timeout(0.05)`` around a call that defers its cancellation;
- with PostgreSQL binaries present (``tests/servers.py``), how long a
  ``ConfigStore`` change takes to reach another instance by NOTIFY (flags:
  ``benchmarks/flags.py``).

    python benchmarks/concurrency.py [--rounds N] [--no-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog

from buttress.breaker import CircuitBreaker
from buttress.health import HealthRegistry
from buttress.lifecycle import GracefulShutdown
from buttress.policies import PolicyTimeoutError, timeout
from buttress.testing import FakeClock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

Probe = Callable[[], Awaitable[None]]


def row(what: str, seconds: list[float], aim: float) -> None:
    median = statistics.median(seconds)
    verdict = "ok" if median < aim else "OVER"
    print(f"  {what:<62} {median * 1000:8.2f} ms  (aim < {aim * 1000:.0f} ms: {verdict})")


async def timed(probe: Probe) -> float:
    started = time.perf_counter()
    await probe()
    return time.perf_counter() - started


async def breaker_threads() -> None:
    breaker = CircuitBreaker("bench-parallel", registry=None)
    threads = [
        threading.Thread(target=breaker.call, args=(time.sleep, 0.05)) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        await asyncio.to_thread(thread.join)


async def health_concurrent() -> None:
    registry = HealthRegistry()
    for i in range(4):
        registry.register(f"s{i}", lambda: asyncio.sleep(0.1))
    await registry.run()


async def health_hanging() -> None:
    registry = HealthRegistry()
    registry.register("slow", lambda: asyncio.sleep(10), timeout=0.05)
    await registry.run()


async def health_blocking() -> None:
    registry = HealthRegistry()
    registry.register("blocking", lambda: time.sleep(0.2), timeout=0.05)
    await registry.run()


class Stuck:
    """Answers the first call, then blocks until released."""

    def __init__(self) -> None:
        self.calls = 0
        self.gate = threading.Event()
        self.blocked = threading.Event()

    async def __call__(self) -> None:
        self.calls += 1
        if self.calls > 1:
            self.blocked.set()
            await asyncio.to_thread(self.gate.wait, 10)


async def health_probe_with_stuck_refresh() -> float:
    registry = HealthRegistry()
    check = Stuck()
    registry.register("c", check, timeout=30)
    registry.start_refresher(interval=0.01)
    try:
        await asyncio.to_thread(check.blocked.wait, 10)
        async def probe() -> None:
            await registry.probe()

        return await timed(probe)
    finally:
        check.gate.set()
        await registry.stop_refresher()


async def shutdown_stubborn() -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await release.wait()

    shutdown = GracefulShutdown(0.15, deregistration_delay=0, clock=FakeClock())
    shutdown.add_hook(stubborn, name="stubborn")
    try:
        await shutdown.run()
    finally:
        release.set()


async def shutdown_overrunning() -> None:
    shutdown = GracefulShutdown(5, deregistration_delay=0, clock=FakeClock())
    shutdown.add_hook(lambda: asyncio.sleep(10), name="hangs", timeout=0.05)
    await shutdown.run()


async def timeout_deferred_cancellation() -> None:
    release = asyncio.Event()

    async def stuck_release() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.shield(release.wait())
            raise

    try:
        await timeout(0.05).acall(stuck_release)
    except PolicyTimeoutError:
        pass
    finally:
        release.set()


async def config_propagation(rounds: int) -> list[float] | None:
    from buttress import connect
    from buttress.config import ConfigStore
    from servers import (  # type: ignore[import-not-found, unused-ignore]  # tests/ joins sys.path
        PostgresServer,
        ServerUnavailable,
    )

    server = PostgresServer()
    try:
        try:
            server.start()
        except (ServerUnavailable, OSError) as exc:
            print(f"  config propagation: skipped, no PostgreSQL ({exc})")
            return None
        frozen = FakeClock()  # never advances: only NOTIFY refreshes the reader
        async with (
            connect(server.dsn()) as writer_backend,
            connect(server.dsn()) as reader_backend,
            ConfigStore(writer_backend) as writer,
            ConfigStore(reader_backend, clock=frozen) as reader,
        ):
            await writer.set("limit", -1)
            while await reader.get("limit") != -1:  # noqa: ASYNC110 - reads are measured
                await asyncio.sleep(0.001)
            seconds = []
            for value in range(rounds):
                started = time.perf_counter()
                await writer.set("limit", value)
                while await reader.get("limit") != value:  # noqa: ASYNC110 - reads are measured
                    await asyncio.sleep(0.001)
                seconds.append(time.perf_counter() - started)
            return seconds
    finally:
        server.stop()


async def main(rounds: int, postgres: bool) -> None:
    async def measure(probe: Probe) -> list[float]:
        return [await timed(probe) for _ in range(rounds)]

    print(f"median of {rounds} rounds")
    print("circuit breaker")
    row("4 threads x 50 ms sleep through one breaker", await measure(breaker_threads), 0.2)
    print("health")
    row("run(): 4 checks x 100 ms", await measure(health_concurrent), 0.3)
    row("run(): a check that hangs, timeout 50 ms", await measure(health_hanging), 1.0)
    blocking = await measure(health_blocking)
    row("run(): a blocking sync check of 200 ms, timeout 50 ms", blocking, 0.19)
    probes = [await health_probe_with_stuck_refresh() for _ in range(rounds)]
    row("probe() while the refresher's run is stuck", probes, 1.0)
    print("shutdown")
    stubborn = await measure(shutdown_stubborn)
    row("run(): a hook swallowing its cancellation, deadline 150 ms", stubborn, 0.25)
    row("run(): a hook overrunning its 50 ms timeout", await measure(shutdown_overrunning), 1.0)
    print("policies")
    deferred = await measure(timeout_deferred_cancellation)
    row("timeout(0.05) around a call deferring its cancellation", deferred, 1.0)
    if postgres:
        print("PostgreSQL")
        seconds = await config_propagation(max(rounds, 20))
        if seconds is not None:
            row("ConfigStore change reaching another instance (NOTIFY)", seconds, 1.0)
            print(f"  {'  max':<62} {max(seconds) * 1000:8.2f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--no-postgres", action="store_true", help="skip the NOTIFY timing")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # timeouts log warnings; not part of the numbers
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL)
    )
    asyncio.run(main(args.rounds, postgres=not args.no_postgres))
