"""The Redis rate limiter under an outage and a stall, through the ASGI middleware.

Four apps share one Redis (through the proxy), one per outage policy: the
limiter's own ``on_backend_error`` ("allow", "deny") and, for a limiter that
raises, the middleware's ("allow", "deny"). Each must answer as its policy
says, promptly, and never let an exception out of the middleware.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping

import buttress
from buttress.adapters.asgi_ratelimit import ASGIRateLimitMiddleware
from buttress.ratelimit import Rate, RateLimiter
from faults.driver import HANG, Load, ScenarioRow, asgi_request
from faults.proxy import FaultProxy

Message = MutableMapping[str, object]
SOCKET_TIMEOUT = 0.2
SLACK = 0.5

# app name -> (limiter policy, middleware policy, status while Redis is unreachable)
POLICIES: dict[str, tuple[str, str, int]] = {
    "limiter-allow": ("allow", "allow", 200),
    "limiter-deny": ("deny", "allow", 429),
    "middleware-allow": ("raise", "allow", 200),
    "middleware-deny": ("raise", "deny", 429),
}


async def endpoint(
    scope: MutableMapping[str, object],
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def test_rate_limiter_follows_its_outage_policy(
    proxied_redis_dsn: str, redis_proxy: FaultProxy, scenario: ScenarioRow
) -> None:
    backend = await buttress.connect(
        proxied_redis_dsn,
        socket_timeout=SOCKET_TIMEOUT,
        connect_timeout=SOCKET_TIMEOUT,
        connect_attempts=1,
    )
    apps = {}
    for name, (limiter_policy, middleware_policy, _) in POLICIES.items():
        limiter = RateLimiter(
            Rate(20, 1.0),
            backend=backend,
            prefix=name,
            on_backend_error=limiter_policy,  # type: ignore[arg-type]  # a Literal, from the table
        )
        apps[name] = ASGIRateLimitMiddleware(
            endpoint,
            limiter,
            on_backend_error=middleware_policy,  # type: ignore[arg-type]  # a Literal, from the table
        )
    names = list(apps)

    async def request(index: int) -> str:
        name = names[index % len(names)]
        status = await asgi_request(apps[name], "/orders", client=f"10.0.0.{index % 16}")
        return f"{name} {status}"

    load = Load(request, rate=240, hang_after=SOCKET_TIMEOUT + SLACK + 2.0)
    load.start()
    try:
        await asyncio.sleep(0.6)
        load.phase = "outage"
        redis_proxy.outage()
        await asyncio.sleep(1.0)
        load.phase = "recovered"
        await redis_proxy.heal()
        await asyncio.sleep(0.8)
        load.phase = "stall"
        redis_proxy.stall(after_bytes=2)
        await asyncio.sleep(1.0)
        load.phase = "recovered after stall"
        await redis_proxy.heal()
        await asyncio.sleep(0.8)
    finally:
        await load.stop()

    # Limiting works again after recovery: a burst from one client gets 20 through.
    began = time.perf_counter()
    burst = [await asgi_request(apps["limiter-deny"], "/", client="10.9.9.9") for _ in range(25)]
    # 20 a second: a slow machine refills a unit every 50 ms while the burst runs.
    refilled = int((time.perf_counter() - began) * 20) + 1
    await backend.close()

    labels = load.labels()
    scenario.requests = load.sent + len(burst)
    scenario.served = sum(n for label, n in labels.items() if label.endswith(" 200"))
    scenario.served += burst.count(200)
    scenario.errors.update({label: n for label, n in labels.items() if not label.endswith(" 200")})

    assert load.escaped == [], {type(e).__name__ for e in load.escaped}
    assert labels[HANG] == 0
    assert load.max_latency <= SOCKET_TIMEOUT + SLACK + load.max_lag, load.slowest
    assert burst[:20] == [200] * 20
    assert 20 <= burst.count(200) <= 20 + refilled
    assert 429 in burst
    # Requests racing a fault or the heal may meet the broken link; the rest pass.
    for phase in ("healthy", "recovered", "recovered after stall"):
        statuses = load.labels(phase)
        passed = sum(n for label, n in statuses.items() if label.endswith(" 200"))
        assert passed >= 0.8 * statuses.total(), (phase, statuses)
    for phase in ("outage", "stall"):
        got = load.labels(phase)
        for name, (_, _, status) in POLICIES.items():
            # Requests that started just before the fault may still have gone through.
            expected, other = got[f"{name} {status}"], got[f"{name} {469 - status}"]
            assert expected > 0, (phase, name, got)
            assert other <= 0.2 * (expected + other), (phase, name, got)


async def test_a_burst_on_a_healthy_redis_is_not_an_outage(
    proxied_redis_dsn: str, redis_proxy: FaultProxy, scenario: ScenarioRow
) -> None:
    # More concurrent calls than the pool has connections: they wait for a
    # connection instead of failing with MaxConnectionsError (the backend used
    # a non-blocking pool, so a healthy Redis looked unreachable under a burst).
    backend = await buttress.connect(
        proxied_redis_dsn, max_connections=8, socket_timeout=1.0, connect_attempts=1
    )
    limiter = RateLimiter(Rate(1000, 1.0), backend=backend, prefix="burst")
    decisions = await asyncio.gather(*(limiter.ahit(f"k{n % 10}") for n in range(120)))
    await backend.close()
    scenario.requests = scenario.served = len(decisions)
    assert all(decision.allowed for decision in decisions)
