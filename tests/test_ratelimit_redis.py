"""Redis specifics of RateLimiter: one EVALSHA per decision (and per hit_all),
the EVAL fallback, key expiry and the outage policy. Shared behaviour is in
test_ratelimit_backends.py."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from buttress import connect
from buttress.backends import Backend, RedisBackend
from buttress.backends._resp import BlockingClient, Endpoint, PipelinedClient
from buttress.errors import BackendUnavailableError, UnsupportedBackendError
from buttress.ratelimit import Rate, RateLimiter, ahit_all, hit_all
from buttress.ratelimit._redis import RedisStore

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


async def test_sync_and_async_calls_share_one_budget(backend: RedisBackend) -> None:
    limiter = RateLimiter(Rate(3, 60), backend=backend)
    assert limiter.hit("k").remaining == 2
    assert (await limiter.ahit("k")).remaining == 1
    assert limiter.peek("k", 0).remaining == 1
    assert limiter.hit("k").allowed
    refused = limiter.hit("k")
    assert not refused.allowed
    assert refused.retry_after > 0
    limiter.reset("k")
    assert (await limiter.apeek("k", 0)).remaining == 3


async def test_sync_hits_from_many_threads_admit_exactly_the_limit(
    backend: RedisBackend,
) -> None:
    limiter = RateLimiter(Rate(100, 60), backend=backend)
    await backend.client.script_flush()  # every thread races for the first EVAL

    def worker() -> int:
        return sum(limiter.hit("shared").allowed for _ in range(50))

    with ThreadPoolExecutor(8) as pool:
        admitted = sum(pool.map(lambda _: worker(), range(8)))
    assert admitted == 100


async def test_without_buttress_connections_it_uses_redis_py(
    backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A TLS or credential-provider connection has no buttress fast path: async calls
    # go through redis-py's client, sync calls name the async twin.
    monkeypatch.setattr(backend, "pipelined", lambda: None)
    monkeypatch.setattr(backend, "blocking", lambda: None)
    limiter = RateLimiter(Rate(2, 60), backend=backend, on_backend_error="allow")
    await backend.client.script_flush()
    assert (await limiter.ahit("k")).remaining == 1
    assert (await limiter.ahit("k")).remaining == 0
    assert not (await limiter.ahit("k")).allowed
    await limiter.areset("k")
    assert (await limiter.apeek("k", 0)).remaining == 2
    with pytest.raises(UnsupportedBackendError, match="ahit"):
        limiter.hit("k")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class _DeadRedis:
    kind = "redis"

    def __init__(self, *, fast: bool) -> None:
        import redis.asyncio
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        port = _closed_port()
        self.client = redis.asyncio.Redis(
            port=port, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
        )
        endpoint = Endpoint(port=port, connect_timeout=0.5)
        self._fast = PipelinedClient(endpoint) if fast else None
        self._blocking = BlockingClient(endpoint) if fast else None

    def pipelined(self) -> PipelinedClient | None:
        return self._fast

    def blocking(self) -> BlockingClient | None:
        return self._blocking


@pytest.mark.parametrize("fast", [True, False], ids=["buttress-connection", "redis-py"])
async def test_unreachable_redis_follows_the_policy(fast: bool) -> None:
    dead_redis = _DeadRedis(fast=fast)
    dead = RedisStore(dead_redis)
    strict = RateLimiter(Rate(5, 60), backend=dead)
    with pytest.raises(BackendUnavailableError):
        await strict.ahit("k")
    lenient = RateLimiter(Rate(5, 60), backend=dead, on_backend_error="allow")
    assert (await lenient.ahit("k")).allowed
    fallback = RateLimiter(Rate(1, 60))
    guarded = RateLimiter(Rate(5, 60), backend=dead, fallback=fallback)
    assert (await guarded.ahit("k")).allowed
    assert not (await guarded.ahit("k")).allowed
    if fast:
        with pytest.raises(BackendUnavailableError):
            strict.hit("k")
        assert lenient.hit("k").allowed
    await dead_redis.client.aclose()


async def test_wsgi_apps_share_a_redis_budget(backend: RedisBackend) -> None:
    # Flask is sync: the WSGI middleware decides with limiter.hit, which on Redis
    # runs the same script over buttress's blocking connection.
    from flask import Flask

    from buttress.adapters.wsgi_ratelimit import WSGIRateLimitMiddleware

    def app_instance() -> Flask:
        app = Flask("redis-wsgi")
        app.add_url_rule("/", "index", lambda: "hello")
        limiter = RateLimiter(Rate(3, 60), backend=backend, prefix="wsgi")
        app.wsgi_app = WSGIRateLimitMiddleware(  # type: ignore[method-assign]  # Flask's hook
            app.wsgi_app, limiter, key=lambda environ: "one-client"
        )
        return app

    first, second = app_instance().test_client(), app_instance().test_client()
    statuses = [client.get("/").status_code for client in (first, second, first, second)]
    assert statuses == [200, 200, 200, 429]
    refused = second.get("/")
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert int(refused.headers["Retry-After"]) > 0
    assert refused.json is not None
    assert refused.json["error"]["code"] == "RATE_LIMITED"


async def test_sync_hit_all_is_one_script_call(backend: RedisBackend) -> None:
    per_user = RateLimiter(Rate(5, 60), backend=backend, prefix="user")
    global_ = RateLimiter(Rate(1, 60), algorithm="fixed_window", backend=backend, prefix="g")
    per_user.hit("warm-up")
    await backend.client.config_resetstat()
    assert hit_all([(per_user, "ann"), (global_, "all")]).allowed
    refused = hit_all([(per_user, "ann"), (global_, "all")])
    assert not refused.allowed
    assert refused.limit == 1
    assert await script_calls(backend) == (2, 0)
    assert per_user.peek("ann", 0).remaining == 4  # the refused pair took nothing


def test_a_sync_app_opens_and_closes_with_asyncio_run(redis_dsn: str) -> None:
    # The pattern docs/ratelimit.md shows for WSGI apps: no loop between the calls.
    async def open_redis() -> Backend:
        return await connect(redis_dsn)

    backend = asyncio.run(open_redis())
    limiter = RateLimiter(Rate(2, 60), backend=backend)
    assert limiter.hit("k").remaining == 1
    assert limiter.hit("k").remaining == 0
    assert not limiter.hit("k").allowed
    asyncio.run(backend.close())


def test_decisions_run_on_uvloop(redis_dsn: str) -> None:
    # uvicorn's default loop when installed; its transports are not subclasses of
    # asyncio.Transport, and the pipelined client must work on them all the same.
    import uvloop  # in the dev extra: never skipped

    async def decide() -> list[int]:
        async with connect(redis_dsn) as backend:
            limiter = RateLimiter(Rate(3, 60), backend=backend)
            hits = [limiter.ahit("k") for _ in range(4)]  # concurrent: one pipeline
            return [d.remaining for d in await asyncio.gather(*hits) if d.allowed]

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert sorted(runner.run(decide())) == [0, 1, 2]
