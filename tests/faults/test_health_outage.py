"""Health reports a failing dependency within one check timeout, and its recovery.

A probe runs the registry (the builtin backend ping check, through the proxy)
about twenty times a second, as a load balancer's health checker would, while
PostgreSQL is cut off and later stalls.
"""

from __future__ import annotations

import asyncio
import time

import buttress
from buttress.health import HealthRegistry, Status
from buttress.health.builtin import backend_ping
from faults.driver import HANG, Load, ScenarioRow
from faults.proxy import FaultProxy

CHECK_TIMEOUT = 0.5
SLACK = 0.5  # scheduling on a loaded machine; not part of what is promised


async def test_health_follows_the_dependency(
    proxied_postgres_dsn: str, pg_proxy: FaultProxy, scenario: ScenarioRow
) -> None:
    backend = await buttress.connect(
        proxied_postgres_dsn, migrate=False, max_size=4, connect_timeout=0.3, connect_attempts=1
    )
    registry = HealthRegistry(version="1.0.0")
    registry.register("database", backend_ping(backend), timeout=CHECK_TIMEOUT)
    reports: list[tuple[float, float, Status]] = []  # (started, finished, status)

    async def probe(_index: int) -> str:
        started = time.perf_counter()
        report = await registry.run(fresh=True)
        reports.append((started, time.perf_counter(), report.components["database"].status))
        return report.status.value

    def first(status: Status, since: float) -> float | None:
        done = [end for start, end, s in reports if start >= since and s is status]
        return min(done) - since if done else None

    load = Load(probe, rate=20, hang_after=CHECK_TIMEOUT + SLACK + 2.0)
    load.start()
    try:
        await asyncio.sleep(0.5)
        load.phase = "outage"
        cut_at = time.perf_counter()
        pg_proxy.outage()
        await asyncio.sleep(1.0)
        load.phase = "recovered"
        healed_at = time.perf_counter()
        await pg_proxy.heal()
        await asyncio.sleep(1.0)
        load.phase = "stall"
        stalled_at = time.perf_counter()
        pg_proxy.stall()
        await asyncio.sleep(1.0)
        load.phase = "recovered after stall"
        unstalled_at = time.perf_counter()
        await pg_proxy.heal()
        await asyncio.sleep(1.0)
    finally:
        await load.stop()
    await backend.close()

    labels = load.labels()
    scenario.requests = load.sent
    scenario.served = load.sent - labels[HANG]
    scenario.errors.update({f"reported {k}": n for k, n in labels.items() if k != "healthy"})

    assert load.labels("healthy") == {"healthy": load.count(phase="healthy")}
    # Outage: unhealthy (the ping fails) within one check timeout.
    unhealthy_after = first(Status.UNHEALTHY, cut_at)
    assert unhealthy_after is not None
    assert unhealthy_after <= CHECK_TIMEOUT + SLACK, unhealthy_after
    # Stall: the ping overruns, reported as degraded (the registry's timeout rule).
    degraded_after = first(Status.DEGRADED, stalled_at)
    assert degraded_after is not None
    assert degraded_after <= CHECK_TIMEOUT + SLACK, degraded_after
    # Healthy again after each recovery, and stays so.
    for since in (healed_at, unstalled_at):
        healthy_after = first(Status.HEALTHY, since)
        assert healthy_after is not None
        assert healthy_after <= 1.0, healthy_after
    tail = [s for start, _end, s in reports if start >= unstalled_at + 0.5]
    assert tail
    assert set(tail) == {Status.HEALTHY}, tail
    # Every probe answered within the check timeout: the registry never hangs.
    assert labels[HANG] == 0
    assert load.max_latency <= CHECK_TIMEOUT + SLACK + load.max_lag, load.slowest
    assert load.escaped == []
