"""Breaker, retry budget and timeouts around PostgreSQL while it is cut off, then stalls.

The decorated call is the application's: ``timeout >> retry(budget) >> breaker >>
timeout`` around one query, driven at a few hundred requests a second.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

import buttress
from buttress.backends import SqlBackend
from buttress.breaker import BreakerState, CallEvent, CallFailed, CircuitBreaker, StateChange
from buttress.policies import PolicyTimeoutError, RetryBudget, retry, timeout
from faults.driver import HANG, Load, ScenarioRow
from faults.proxy import FaultProxy

REQUEST_TIMEOUT = 0.6
ATTEMPT_TIMEOUT = 0.25
# Slack for a loaded 2-core machine: a request may finish this late and still not "hang".
SCHEDULING_SLACK = 0.5


async def test_breaker_retry_timeout_under_outage_and_stall(
    proxied_postgres_dsn: str, pg_proxy: FaultProxy, scenario: ScenarioRow
) -> None:
    backend = await buttress.connect(
        proxied_postgres_dsn,
        migrate=False,
        max_size=8,
        connect_timeout=0.3,
        connect_attempts=1,
    )
    assert isinstance(backend, SqlBackend)
    breaker = CircuitBreaker("orders-db", failure_threshold=5, recovery_timeout=0.4, registry=None)
    changes: list[StateChange] = []
    breaker.on_state_change(changes.append)
    failures: Counter[str] = Counter()

    def count_failure(event: CallEvent) -> None:
        if isinstance(event, CallFailed):
            failures[type(event.error).__name__] += 1

    breaker.on_call(count_failure)
    budget = RetryBudget(0.1, min_retries_per_second=1.0, window=60.0)
    policy = retry(attempts=3, base_delay=0.01, max_delay=0.05, budget=budget)
    counts = {"requests": 0, "attempts": 0}

    @breaker
    @timeout(ATTEMPT_TIMEOUT)
    async def query(order_id: int) -> int:
        value: int = await backend.fetchval("SELECT $1::int", order_id)
        return value

    @timeout(REQUEST_TIMEOUT)
    @policy
    async def lookup(order_id: int) -> int:
        counts["attempts"] += 1
        return await query(order_id)

    async def request(index: int) -> str:
        counts["requests"] += 1
        assert await lookup(index) == index
        return "ok"

    load = Load(request, rate=200, hang_after=REQUEST_TIMEOUT + SCHEDULING_SLACK + 2.0)
    load.start()
    try:
        await asyncio.sleep(0.8)
        load.phase = "outage"
        pg_proxy.outage()
        await asyncio.sleep(1.2)
        outage_opened = any(c.new is BreakerState.OPEN for c in changes)
        load.phase = "recovery"
        await pg_proxy.heal()
        await asyncio.sleep(1.2)
        closed_after_outage = breaker.state is BreakerState.CLOSED
        load.phase = "stall"
        opens_before_stall = sum(c.new is BreakerState.OPEN for c in changes)
        pg_proxy.stall(after_bytes=3)
        await asyncio.sleep(1.2)
        stall_timeouts = failures["PolicyTimeoutError"]
        stall_opened = sum(c.new is BreakerState.OPEN for c in changes) > opens_before_stall
        load.phase = "recovered"
        await pg_proxy.heal()
        await asyncio.sleep(1.2)
    finally:
        await load.stop()

    # After recovery the dependency is used normally again.
    for index in range(10):
        assert await request(index) == "ok"
    await backend.close()

    labels = load.labels()
    scenario.requests = load.sent
    scenario.served = labels["ok"]
    scenario.errors.update({k: n for k, n in labels.items() if k != "ok"})

    # Healthy traffic is served. Requests started just before the cut may fail, and on a
    # loaded machine the load catches up in bursts, so more of them start late in the
    # phase: the same 80 % bar as the rate-limit scenario.
    healthy = load.labels("healthy")
    assert healthy["ok"] >= 0.8 * healthy.total(), healthy
    # The breaker opened during the outage and during the stall, and closed after each.
    assert outage_opened, changes
    assert closed_after_outage, changes
    assert stall_opened, changes
    assert breaker.state is BreakerState.CLOSED
    assert load.labels("outage")["CircuitOpenError"] > 0
    assert load.labels("stall")["CircuitOpenError"] > 0
    # What the breaker counted: connection errors in the outage, timeouts in the stall.
    assert stall_timeouts > 0, failures
    # No request outlived its timeout by more than scheduling slack; none hung.
    assert labels[HANG] == 0, load.outcomes
    # (max_lag: time the whole process was not scheduled, which no timeout can bound.)
    assert load.max_latency < REQUEST_TIMEOUT + SCHEDULING_SLACK + load.max_lag, load.slowest
    # Retries stayed within the budget (one window spans the whole run).
    retries = counts["attempts"] - counts["requests"]
    allowance = budget.ratio * counts["requests"] + budget.min_retries_per_second * budget.window
    assert 0 < retries <= allowance, (retries, allowance)
    # Nearly everything was served once the proxy healed.
    recovered = load.labels("recovered")
    assert recovered["ok"] >= 0.5 * sum(recovered.values()), recovered


async def test_timeout_holds_when_the_call_defers_its_cancellation() -> None:
    # What asyncpg does when its server goes silent: the cancelled query waits
    # (shielded) for the connection to be released. timeout() used to wait with
    # it, so a stalled PostgreSQL made requests hang past their timeout.
    release = asyncio.Event()

    async def stuck_release() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.shield(release.wait())
            raise
        return "never"

    # The "server" never answers until the test is over: timeout() must raise without it.
    try:
        async with asyncio.timeout(10):  # a hang guard, no performance bound
            with pytest.raises(PolicyTimeoutError):
                await timeout(0.05).acall(stuck_release)
    except TimeoutError:
        pytest.fail("timeout() waited for the call's deferred cancellation")
    finally:
        release.set()
    await asyncio.sleep(0)  # let the abandoned call finish its cancellation
