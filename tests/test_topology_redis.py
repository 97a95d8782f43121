"""RateLimiter and shared CircuitBreaker on production Redis topologies, real servers:
a Redis Cluster of three masters (spread, reshards, ASK), Sentinel with one replica
(a killed master), and TLS Redis as an ACL user (sync and async paths, bad CAs)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.crc import key_slot
from structlog.testing import capture_logs

from buttress import CircuitBreaker, Rate, RateLimiter, ahit_all, connect, hit_all
from buttress.backends import Backend, RedisBackend
from buttress.breaker import BreakerState, CircuitOpenError, RedisBreakerStore, StepParams
from buttress.errors import BackendUnavailableError, UnsupportedBackendError
from buttress.ratelimit._redis import CrossSlotHitAllError
from topology import RedisCluster, RedisSentinel, RedisTLS

ALGORITHMS = ("gcra", "fixed_window", "sliding_window")
HOUR = 3600.0
LONG = 10**6  # a fixed window this long will not roll over during a test
_PARAMS = StepParams(
    failure_threshold=5, recovery_timeout=30.0, half_open_max_calls=1, probe_timeout=60.0
)


@pytest.fixture(params=["cluster", "sentinel", "tls"])
def topology_dsn(request: pytest.FixtureRequest) -> str:
    """Each Redis topology in turn (the DSN fixture empties it first)."""
    fixture = {
        "cluster": "redis_cluster_dsn",
        "sentinel": "redis_sentinel_dsn",
        "tls": "redis_tls_dsn",
    }[request.param]
    request.applymarker(getattr(pytest.mark, f"redis_{request.param}"))
    dsn: str = request.getfixturevalue(fixture)
    return dsn


@pytest.fixture
async def backend(topology_dsn: str) -> AsyncIterator[Backend]:
    async with connect(topology_dsn) as opened:
        yield opened


def _tagged(slots: range, count: int, prefix: str) -> list[str]:
    """``count`` limiter keys ``{prefix-N}`` whose hash tag falls in ``slots``."""
    found: list[str] = []
    candidate = 0
    while len(found) < count:
        candidate += 1
        tag = f"{prefix}-{candidate}"
        if key_slot(tag.encode()) in slots:
            found.append("{" + tag + "}")
    return found


# Every topology: every algorithm, sync and async, hit_all, shared breakers


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_every_algorithm_sync_and_async(backend: Backend, algorithm: str) -> None:
    limiter = RateLimiter(Rate(3, HOUR), algorithm=algorithm, backend=backend)
    assert [(await limiter.ahit("async")).allowed for _ in range(4)] == [True] * 3 + [False]
    assert (await limiter.apeek("async", 0)).remaining == 0
    await limiter.areset("async")
    assert (await limiter.apeek("async")).allowed
    assert (await limiter.ahit("async", 3)).allowed

    # The sync path (WSGI, threads) on the same backend: TLS, cluster and sentinel too.
    assert [limiter.hit("sync").allowed for _ in range(4)] == [True] * 3 + [False]
    assert limiter.peek("sync", 0).remaining == 0
    limiter.reset("sync")
    assert limiter.peek("sync").allowed
    assert limiter.hit("sync", 2).remaining == 1


async def test_hit_all_is_all_or_nothing_within_one_slot(backend: Backend) -> None:
    per_second = RateLimiter(Rate(2, HOUR), backend=backend, prefix="short")
    per_day = RateLimiter(Rate(3, HOUR), backend=backend, prefix="long")
    pairs = [(per_second, "{user:42}"), (per_day, "{user:42}")]
    assert (await ahit_all(pairs)).allowed
    assert hit_all(pairs).allowed
    refused = await ahit_all(pairs)
    assert not refused.allowed
    assert (await per_day.apeek("{user:42}", 0)).remaining == 1  # the refusal took nothing


async def test_shared_breaker_state(topology_dsn: str) -> None:
    async with connect(topology_dsn) as one, connect(topology_dsn) as two:
        a, b = (
            CircuitBreaker(
                "payments", backend=side, failure_threshold=2, sync_interval=0.01, registry=None
            )
            for side in (one, two)
        )

        async def boom() -> None:
            raise RuntimeError("down")

        for breaker in (a, b):  # failures from both instances add up
            with pytest.raises(RuntimeError):
                await breaker.acall(boom)
        assert b.state is BreakerState.OPEN
        await asyncio.sleep(0.02)
        with pytest.raises(CircuitOpenError):
            await a.acall(boom)
        await a.areset()
        await asyncio.sleep(0.02)
        assert await _ok(b) == "ok"
        assert b.stats().state is BreakerState.CLOSED


async def _ok(breaker: CircuitBreaker) -> str:
    async def ok() -> str:
        return "ok"

    return await breaker.acall(ok)


def test_repr_and_errors_never_show_the_password(topology_dsn: str) -> None:
    password = topology_dsn.split("://", 1)[1].rpartition("@")[0].partition(":")[2]

    async def main() -> list[str]:
        async with connect(topology_dsn) as opened:
            limiter = RateLimiter(Rate(1, HOUR), backend=opened)
            await limiter.ahit("k")
            assert isinstance(opened, RedisBackend)
            return [repr(opened), str(opened), repr(limiter), repr(opened.pipelined())]

    for text in asyncio.run(main()):
        assert password not in text


# Redis Cluster


async def test_cluster_keys_spread_over_every_master(
    redis_cluster_dsn: str, redis_cluster: RedisCluster
) -> None:
    async with connect(redis_cluster_dsn) as backend:
        assert isinstance(backend, RedisBackend)
        assert backend.topology == "cluster"
        limiter = RateLimiter(Rate(5, HOUR), backend=backend)
        for n in range(60):
            assert (await limiter.ahit(f"client-{n}")).allowed
        for n in range(60):
            assert limiter.hit(f"client-{n}").remaining == 3
    sizes = [redis_cluster.process(node).command("DBSIZE") for node in redis_cluster.nodes]
    assert sum(sizes) == 60
    assert all(size > 0 for size in sizes)  # no single hash tag for everything


async def test_cluster_one_seed_finds_the_rest(redis_cluster: RedisCluster) -> None:
    redis_cluster.reset()
    async with connect(redis_cluster.dsn(seeds=1)) as backend:
        limiter = RateLimiter(Rate(1, HOUR), backend=backend)
        for node in redis_cluster.nodes:
            tag = redis_cluster.key_on(node, "seed")
            assert (await limiter.ahit("{" + tag + "}")).allowed
            assert not limiter.hit("{" + tag + "}").allowed
            assert redis_cluster.process(node).command("DBSIZE") == 1


async def test_cluster_hit_all_across_slots_is_refused_before_anything_is_consumed(
    redis_cluster_dsn: str, redis_cluster: RedisCluster
) -> None:
    async with connect(redis_cluster_dsn) as backend:
        per_minute = RateLimiter(Rate(5, HOUR), backend=backend, prefix="m")
        per_day = RateLimiter(Rate(5, HOUR), backend=backend, prefix="d", on_backend_error="allow")
        pairs = [(per_minute, "alice"), (per_day, "alice")]
        with pytest.raises(CrossSlotHitAllError, match="one hash slot") as info:
            await ahit_all(pairs)
        assert isinstance(info.value, UnsupportedBackendError)  # no outage policy hides it
        with pytest.raises(CrossSlotHitAllError, match=r"\{user:42\}"):
            hit_all(pairs)
        assert all(p.command("DBSIZE") == 0 for p in redis_cluster.processes)
        assert (await per_minute.apeek("alice", 0)).remaining == 5


async def test_cluster_reshard_under_traffic_loses_and_over_admits_nothing(
    redis_cluster_dsn: str, redis_cluster: RedisCluster
) -> None:
    source, target = redis_cluster.nodes[0], redis_cluster.nodes[1]
    first = redis_cluster.slots_of(source)[0].start
    slots = range(first, first + 60)
    async with connect(redis_cluster_dsn) as backend:
        roomy = RateLimiter(Rate(LONG, LONG), algorithm="fixed_window", backend=backend)
        tight = RateLimiter(Rate(40, HOUR), backend=backend, prefix="tight")
        roomy_keys = _tagged(slots, 6, "roomy")
        tight_keys = _tagged(slots, 6, "tight")
        sync_keys = _tagged(slots, 4, "sync")
        allowed = dict.fromkeys([*roomy_keys, *tight_keys, *sync_keys], 0)
        attempts = dict.fromkeys(tight_keys, 0)
        for key in allowed:  # every key exists on the source before the move
            allowed[key] += (await (tight if key in tight_keys else roomy).ahit(key)).allowed
        for key in tight_keys:
            attempts[key] += 1
        resharding = True

        async def traffic() -> None:
            while resharding:
                for key in roomy_keys:
                    allowed[key] += (await roomy.ahit(key)).allowed
                for key in tight_keys:
                    attempts[key] += 1
                    allowed[key] += (await tight.ahit(key)).allowed

        def sync_traffic() -> None:
            while resharding:
                for key in sync_keys:
                    allowed[key] += roomy.hit(key).allowed

        task = asyncio.create_task(traffic())
        thread = threading.Thread(target=sync_traffic)
        thread.start()
        await asyncio.sleep(0.05)
        try:
            moved = await asyncio.to_thread(redis_cluster.reshard, slots, source, target)
        finally:
            resharding = False
            await task
            await asyncio.to_thread(thread.join)
        assert moved >= len(allowed)
        assert redis_cluster.slots_of(target)[0] == slots
        for key in [*roomy_keys, *sync_keys]:  # every decision counted exactly once
            assert (await roomy.apeek(key, 0)).remaining == LONG - allowed[key]
        for key in tight_keys:  # never more than the limit, however the keys moved
            assert allowed[key] == min(40, attempts[key])
            assert (await tight.apeek(key, 0)).remaining == 40 - allowed[key]
        for key in allowed:
            storage = roomy._storage_key(key) if key not in tight_keys else tight._storage_key(key)
            assert redis_cluster.process(target).command("EXISTS", storage) == 1


async def test_cluster_follows_ask_and_tryagain_during_a_migration_in_steps(
    redis_cluster_dsn: str, redis_cluster: RedisCluster
) -> None:
    source, target = redis_cluster.nodes[2], redis_cluster.nodes[0]
    tag = redis_cluster.key_on(source, "ask")
    async with connect(redis_cluster_dsn) as backend:
        limiter = RateLimiter(Rate(10, HOUR), backend=backend)
        moving, staying, fresh = f"{{{tag}}}:moving", f"{{{tag}}}:staying", f"{{{tag}}}:fresh"
        await limiter.ahit(moving)
        await limiter.ahit(staying)
        slot = redis_cluster.key_slot(limiter._storage_key(moving))
        assert redis_cluster.begin_migration(slot, target) == source
        assert redis_cluster.migrate_keys(slot, source, target, keys=[limiter._storage_key(moving)])
        # The moved key answers from the target (ASK), the other from the source,
        # and a new key is created on the target; sync and async alike.
        assert (await limiter.ahit(moving)).remaining == 8
        assert limiter.hit(moving).remaining == 7
        assert (await limiter.ahit(staying)).remaining == 8
        assert limiter.hit(staying).remaining == 7
        assert (await limiter.ahit(fresh)).remaining == 9
        # One script over keys split between the two nodes gets TRYAGAIN until the
        # slot has settled: it is resent, and runs once.
        split = asyncio.create_task(ahit_all([(limiter, moving), (limiter, staying)], cost=2))
        await asyncio.sleep(0.05)
        assert not split.done()
        await asyncio.to_thread(redis_cluster.migrate_keys, slot, source, target)
        await asyncio.to_thread(redis_cluster.finish_migration, slot, target)
        assert (await split).remaining == 5
        assert (await limiter.apeek(moving, 0)).remaining == 5
        assert limiter.peek(staying, 0).remaining == 5
        assert (await limiter.apeek(fresh, 0)).remaining == 9
        for key in (moving, staying, fresh):
            storage = limiter._storage_key(key)
            assert redis_cluster.process(target).command("EXISTS", storage) == 1


# Names that spoil a hash tag ("}pay" gives the empty tag "{}"), unicode, very long.
SPOILING_NAMES = ["}pay", "{}pay", "}{", "{}", "}", "{{}}", "}支付", "p" * 3000, "bad\udc80name"]


class _Spy:
    """redis-py's cluster client, recording the keys of each script call."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.keys: list[tuple[str, ...]] = []

    async def evalsha(self, sha: str, numkeys: int, *rest: Any) -> Any:
        self.keys.append(tuple(rest[:numkeys]))
        return await self.client.evalsha(sha, numkeys, *rest)

    async def eval(self, script: str, numkeys: int, *rest: Any) -> Any:
        self.keys.append(tuple(rest[:numkeys]))
        return await self.client.eval(script, numkeys, *rest)


@pytest.mark.parametrize("name", SPOILING_NAMES)
async def test_cluster_breaker_keys_share_a_slot_whatever_the_name(
    redis_cluster_dsn: str, redis_cluster: RedisCluster, name: str
) -> None:
    async with connect(redis_cluster_dsn) as backend:
        assert isinstance(backend, RedisBackend)
        spy = _Spy(backend.client)
        store = RedisBreakerStore(spy)  # type: ignore[arg-type]
        snapshot = await store.step(name, "failure", 0, "", _PARAMS)
        assert snapshot.failures == 1  # the script ran: no cross-slot refusal
        assert (await store.step(name, "read", 0, "", _PARAMS)).failures == 1
    (keys, *_) = spy.keys
    assert len({redis_cluster.key_slot(key.encode()) for key in keys}) == 1


async def test_cluster_breaker_named_after_a_closing_brace_is_shared(
    redis_cluster_dsn: str, redis_cluster: RedisCluster
) -> None:
    """Two instances, each seeded with a different master, share one OPEN "}pay"."""
    seeded = [
        f"redis+cluster://:{redis_cluster.password}@{node.address}"
        for node in redis_cluster.nodes[:2]
    ]
    async with connect(seeded[0]) as one, connect(seeded[1]) as two:
        with capture_logs() as logs:
            a, b = (
                CircuitBreaker(
                    "}pay", backend=side, failure_threshold=2, sync_interval=0.01, registry=None
                )
                for side in (one, two)
            )
            for breaker in (a, b):  # one failure each: together they reach the threshold
                with pytest.raises(RuntimeError):
                    await breaker.acall(_boom)
            assert b.state is BreakerState.OPEN
            await asyncio.sleep(0.02)
            with pytest.raises(CircuitOpenError):
                await a.acall(_boom)
            assert a.stats().store_available
            assert b.stats().store_available
        assert "breaker.store_unreachable" not in [entry["event"] for entry in logs]
    stored = [
        key
        for process in redis_cluster.processes
        for key in process.command("KEYS", "buttress:breaker:*")
    ]
    assert len(stored) == 1
    assert stored[0].startswith("buttress:breaker:{~h:")


# Redis Sentinel


async def test_sentinel_failover_follows_the_policies_then_recovers(
    redis_sentinel_dsn: str, redis_sentinel: RedisSentinel
) -> None:
    async with connect(redis_sentinel_dsn, socket_timeout=1.0, connect_timeout=1.0) as backend:
        assert isinstance(backend, RedisBackend)
        assert backend.topology == "sentinel"
        denying = RateLimiter(Rate(100, HOUR), backend=backend, on_backend_error="deny")
        allowing = RateLimiter(Rate(100, HOUR), backend=backend, on_backend_error="allow")
        raising = RateLimiter(Rate(100, HOUR), backend=backend)
        breaker = CircuitBreaker(
            "payments", backend=backend, failure_threshold=3, sync_interval=0.05, registry=None
        )
        assert (await denying.ahit("k")).remaining == 99
        assert denying.hit("k").remaining == 98
        assert await _ok(breaker) == "ok"
        before = redis_sentinel.master_address()

        await asyncio.to_thread(redis_sentinel.kill_master)
        # While the master is gone each decision follows its limiter's policy.
        refused = await denying.ahit("k")
        assert not refused.allowed
        assert refused.retry_after == 1.0
        assert (await allowing.ahit("k")).allowed
        assert not denying.hit("k").allowed
        with pytest.raises(BackendUnavailableError):
            await raising.ahit("k")
        with pytest.raises(RuntimeError):  # reported to the store, which is unreachable:
            await breaker.acall(_boom)  # the store-outage policy ("local") decides
        assert breaker.stats().store_available is False

        started = time.monotonic()
        after = await asyncio.to_thread(redis_sentinel.wait_for_failover, 30)
        assert after != before
        # The same objects work again, within the failover time.
        decision = await _until(lambda: denying.ahit("k"), lambda d: d.allowed)
        assert decision.remaining <= 97  # the replica had the state written before
        assert (await _until(lambda: asyncio.to_thread(denying.hit, "k"), _allowed)).allowed
        assert (await raising.ahit("other")).allowed
        with pytest.raises(RuntimeError):
            await breaker.acall(_boom)
        assert (
            await _until(lambda: _ok(breaker), lambda _: bool(breaker.stats().store_available))
            == "ok"
        )
        assert time.monotonic() - started < 20


async def _boom() -> None:
    raise RuntimeError("dependency down")


def _allowed(decision: Any) -> bool:
    return bool(decision.allowed)


async def _until(make: Callable[[], Any], good: Callable[[Any], bool]) -> Any:
    """Call ``make()`` until ``good(result)``, at most 100 times 0.1 s apart."""
    result = None
    for _ in range(100):
        try:
            result = await make()
        except (BackendUnavailableError, CircuitOpenError):
            result = None
        if result is not None and good(result):
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"no good result in 100 tries (last: {result!r})")


# TLS Redis with an ACL user


async def test_tls_backend_is_the_acl_user_on_both_paths(redis_tls_dsn: str) -> None:
    async with connect(redis_tls_dsn) as backend:
        assert isinstance(backend, RedisBackend)
        assert await backend.client.acl_whoami() == "app"
        fast, blocking = backend.pipelined(), backend.blocking()
        assert fast is not None
        assert blocking is not None
        assert await fast.call("ACL", "WHOAMI") == b"app"
        assert blocking.call("ACL", "WHOAMI") == b"app"


async def test_tls_with_a_client_certificate(redis_tls: RedisTLS, redis_tls_dsn: str) -> None:
    redis_tls.require_client_certs()
    try:
        async with connect(redis_tls.dsn(client_cert=True)) as backend:
            limiter = RateLimiter(Rate(2, HOUR), backend=backend)
            assert (await limiter.ahit("k")).allowed
            assert limiter.hit("k").allowed
            assert not limiter.hit("k").allowed
        with pytest.raises(BackendUnavailableError):
            await connect(redis_tls_dsn, connect_attempts=1)
    finally:
        redis_tls.require_client_certs(False)


async def test_tls_wrong_ca_fails_fast_with_one_clear_error(
    redis_tls: RedisTLS, redis_tls_dsn: str
) -> None:
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError) as info:
        await connect(redis_tls.dsn(ca=redis_tls.wrong_ca))
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert "certificate verify failed" in message
    assert "after" not in message  # one attempt: a bad certificate is not retried
    assert redis_tls.password not in message
    assert info.value.__cause__ is None
    assert info.value.__context__ is None
