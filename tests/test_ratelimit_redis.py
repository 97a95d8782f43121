"""Redis specifics of RateLimiter: one EVALSHA per decision (and per hit_all),
the EVAL fallback, key expiry and the outage policy. Shared behaviour is in
test_ratelimit_backends.py."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import cast

import pytest

from buttress.backends import Backend, RedisBackend, connect
from buttress.errors import BackendUnavailableError, UnsupportedBackendError
from buttress.ratelimit import Rate, RateLimiter, ahit_all

pytestmark = pytest.mark.redis


@pytest.fixture
async def backend(redis_dsn: str) -> AsyncIterator[RedisBackend]:
    async with connect(redis_dsn) as b:
        assert isinstance(b, RedisBackend)
        yield b


async def script_calls(backend: RedisBackend) -> tuple[int, int]:
    stats = await backend.client.info("commandstats")
    calls = {name: int(v["calls"]) for name, v in stats.items()}
    return calls.get("cmdstat_evalsha", 0), calls.get("cmdstat_eval", 0)


async def test_state_expires_with_its_window(backend: RedisBackend) -> None:
    limiter = RateLimiter(Rate(2, 60), backend=backend, prefix="ttl")
    await limiter.ahit("k")
    keys = [k async for k in backend.client.scan_iter("ttl:*")]
    assert len(keys) == 1
    ttl_ms = await backend.client.pttl(keys[0])
    assert 0 < ttl_ms <= 30_000


async def test_one_script_call_per_decision(backend: RedisBackend) -> None:
    limiter = RateLimiter(Rate(1000, 60), backend=backend)
    await limiter.ahit("warm-up")  # may EVAL once to load the script
    await backend.client.config_resetstat()
    for i in range(50):
        await limiter.ahit(f"k{i % 7}")
    await limiter.apeek("k0")
    evalsha, eval_ = await script_calls(backend)
    assert (evalsha, eval_) == (51, 0)


async def test_script_is_reloaded_once_after_a_flush(backend: RedisBackend) -> None:
    limiter = RateLimiter(Rate(10, 60), backend=backend)
    await backend.client.script_flush()
    await backend.client.config_resetstat()
    assert (await limiter.ahit("k")).allowed
    assert (await limiter.ahit("k")).allowed
    evalsha, eval_ = await script_calls(backend)
    assert (evalsha, eval_) == (2, 1)


async def test_hit_all_is_atomic_and_one_round_trip(backend: RedisBackend) -> None:
    per_user = RateLimiter(Rate(5, 60), backend=backend, prefix="user")
    tenant = RateLimiter(Rate(10, 60), algorithm="sliding_window", backend=backend, prefix="t")
    global_ = RateLimiter(Rate(2, 60), algorithm="fixed_window", backend=backend, prefix="g")
    await per_user.ahit("warm-up")
    await backend.client.config_resetstat()
    triple = [(per_user, "ann"), (tenant, "acme"), (global_, "all")]
    assert (await ahit_all(triple)).allowed
    assert (await ahit_all(triple)).allowed
    refused = await ahit_all(triple)
    assert not refused.allowed
    assert refused.limit == 2
    evalsha, _ = await script_calls(backend)
    assert evalsha == 3
    assert (await per_user.apeek("ann", 0)).remaining == 3
    assert (await tenant.apeek("acme", 0)).remaining == 8


async def test_sync_calls_name_the_async_twin(backend: RedisBackend) -> None:
    limiter = RateLimiter(Rate(1, 1), backend=backend, on_backend_error="allow")
    with pytest.raises(UnsupportedBackendError, match="ahit"):
        limiter.hit("k")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class _DeadRedis:
    kind = "redis"

    def __init__(self) -> None:
        import redis.asyncio
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.client = redis.asyncio.Redis(
            port=_closed_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
        )


async def test_unreachable_redis_follows_the_policy() -> None:
    dead_redis = _DeadRedis()
    dead = cast(Backend, dead_redis)
    strict = RateLimiter(Rate(5, 60), backend=dead)
    with pytest.raises(BackendUnavailableError):
        await strict.ahit("k")
    lenient = RateLimiter(Rate(5, 60), backend=dead, on_backend_error="allow")
    assert (await lenient.ahit("k")).allowed
    fallback = RateLimiter(Rate(1, 60))
    guarded = RateLimiter(Rate(5, 60), backend=dead, fallback=fallback)
    assert (await guarded.ahit("k")).allowed
    assert not (await guarded.ahit("k")).allowed
    await dead_redis.client.aclose()
