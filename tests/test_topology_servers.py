"""The production topologies of ``tests/topology`` work, shown with the raw drivers
(redis-py, asyncpg) only: Redis Cluster across masters and through a reshard,
Sentinel across a failover, TLS Redis as an ACL user, TLS PostgreSQL with
verify-full, PgBouncer in transaction mode. buttress itself is not involved."""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
import pytest
import redis
import redis.asyncio
import redis.cluster
from redis.asyncio.cluster import ClusterNode as DriverClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.crc import key_slot

from servers import PostgresServer
from topology import PgBouncer, PostgresTLS, RedisCluster, RedisSentinel, RedisTLS


def _hosts(dsn: str) -> tuple[str, list[tuple[str, int]], str]:
    """(password, [(host, port)...], path) of a multi-host ``scheme://:pw@h:p,h:p/path``."""
    userinfo, _, rest = dsn.split("://", 1)[1].rpartition("@")
    hosts, _, path = rest.partition("/")
    pairs = [(h, int(p)) for h, _, p in (host.rpartition(":") for host in hosts.split(","))]
    return userinfo.partition(":")[2], pairs, path


# Redis Cluster


@pytest.fixture
async def cluster_client(redis_cluster_dsn: str) -> AsyncIterator[AsyncRedisCluster]:
    """redis-py's asyncio cluster client given one seed from the DSN: it finds the rest."""
    password, seeds, _ = _hosts(redis_cluster_dsn)
    client = AsyncRedisCluster(
        startup_nodes=[DriverClusterNode(*seeds[0])], password=password, decode_responses=True
    )
    try:
        yield client
    finally:
        await client.aclose()


def test_cluster_dsn_names_every_master(
    redis_cluster_dsn: str, redis_cluster: RedisCluster
) -> None:
    assert re.fullmatch(
        r"redis\+cluster://:[\w-]+@127\.0\.0\.1:\d+(,127\.0\.0\.1:\d+){2}", redis_cluster_dsn
    )
    password, seeds, _ = _hosts(redis_cluster_dsn)
    assert password == redis_cluster.password
    assert seeds == redis_cluster.seeds
    assert all(port <= 55535 for _, port in seeds)
    for process in redis_cluster.processes:
        assert "cluster_state:ok" in process.command("CLUSTER", "INFO")


async def test_cluster_keys_spread_over_every_master(
    cluster_client: AsyncRedisCluster, redis_cluster: RedisCluster
) -> None:
    keys = {node: redis_cluster.key_on(node) for node in redis_cluster.nodes}
    assert len({redis_cluster.key_slot(key) for key in keys.values()}) == 3
    for node, key in keys.items():
        assert await cluster_client.set(key, node.address)
    for node, key in keys.items():
        assert await cluster_client.get(key) == node.address
        # Each key lives on its own master, and only there.
        assert redis_cluster.process(node).command("GET", key) == node.address
        others = (n for n in redis_cluster.nodes if n != node)
        assert all(redis_cluster.process(n).command("DBSIZE") == 1 for n in others)


def test_cluster_sync_client(redis_cluster_dsn: str, redis_cluster: RedisCluster) -> None:
    password, seeds, _ = _hosts(redis_cluster_dsn)
    client = redis.cluster.RedisCluster(
        host=seeds[-1][0], port=seeds[-1][1], password=password, decode_responses=True
    )
    try:
        for node in redis_cluster.nodes:
            key = redis_cluster.key_on(node, "sync")
            assert client.set(key, node.address)
            assert client.get(key) == node.address
            assert redis_cluster.process(node).command("GET", key) == node.address
    finally:
        client.close()


async def test_reshard_moves_slots_and_their_keys(
    cluster_client: AsyncRedisCluster, redis_cluster: RedisCluster
) -> None:
    source, target = redis_cluster.nodes[0], redis_cluster.nodes[1]
    first = redis_cluster.slots_of(source)[0].start
    slots = range(first, first + 3)
    keys: dict[str, int] = {}
    candidate = 0
    while len(set(keys.values())) < len(slots) or len(keys) < 9:
        candidate += 1
        name = f"moving-{candidate}"
        if key_slot(name.encode()) in slots:
            keys[name] = key_slot(name.encode())
    for key in keys:
        await cluster_client.set(key, f"value of {key}")  # the client learns the old layout

    assert redis_cluster.reshard(slots, source, target) == len(keys)

    assert all(redis_cluster.slot_owner(slot) == target for slot in slots)
    assert [range(first, first + 3)] == [r for r in redis_cluster.slots_of(target) if first in r]
    for key in keys:
        assert redis_cluster.process(target).command("GET", key) == f"value of {key}"
        with pytest.raises(redis.exceptions.MovedError):
            redis_cluster.process(source).command("GET", key)
        assert await cluster_client.get(key) == f"value of {key}"  # followed MOVED


def _keys_in(slots: range, count: int, prefix: str) -> list[str]:
    """``count`` key names whose slots fall in ``slots`` (CRC16 computed locally)."""
    found: list[str] = []
    candidate = 0
    while len(found) < count:
        candidate += 1
        if key_slot(f"{prefix}-{candidate}".encode()) in slots:
            found.append(f"{prefix}-{candidate}")
    return found


async def test_reshard_under_traffic_loses_no_write(
    cluster_client: AsyncRedisCluster, redis_cluster: RedisCluster
) -> None:
    source, target = redis_cluster.nodes[1], redis_cluster.nodes[2]
    first = redis_cluster.slots_of(source)[0].start
    slots = range(first, first + 100)
    keys = _keys_in(slots, 20, "busy")
    written = dict.fromkeys(keys, 0)
    resharding = True

    async def traffic() -> None:
        while resharding:
            for key in keys:
                await cluster_client.incr(key)  # follows MOVED and ASK as slots move
                written[key] += 1

    task = asyncio.create_task(traffic())
    await asyncio.sleep(0.05)
    try:
        moved = await asyncio.to_thread(redis_cluster.reshard, slots, source, target)
    finally:
        resharding = False
        await task
    assert moved >= len(keys)
    assert redis_cluster.slots_of(target)[0] == slots
    assert {key: int(str(await cluster_client.get(key))) for key in keys} == written
    assert all(redis_cluster.process(target).command("EXISTS", key) == 1 for key in keys)


async def test_migration_in_steps_answers_ask(
    cluster_client: AsyncRedisCluster, redis_cluster: RedisCluster
) -> None:
    source, target = redis_cluster.nodes[2], redis_cluster.nodes[0]
    tag = redis_cluster.key_on(source, "ask")
    moved_key, staying_key = f"{{{tag}}}:moved", f"{{{tag}}}:staying"
    slot = redis_cluster.key_slot(moved_key)
    await cluster_client.set(moved_key, "m")
    await cluster_client.set(staying_key, "s")

    assert redis_cluster.begin_migration(slot, target) == source
    assert redis_cluster.migrate_keys(slot, source, target, keys=[moved_key]) == 1
    with pytest.raises(redis.exceptions.AskError):
        redis_cluster.process(source).command("GET", moved_key)
    assert await cluster_client.get(moved_key) == "m"  # followed ASK
    assert await cluster_client.get(staying_key) == "s"  # still on the source

    assert redis_cluster.migrate_keys(slot, source, target) == 1
    redis_cluster.finish_migration(slot, target)
    assert redis_cluster.slot_owner(slot) == target
    assert await cluster_client.mget([moved_key, staying_key]) == ["m", "s"]


def test_cluster_reset_restores_the_first_layout(redis_cluster: RedisCluster) -> None:
    node = redis_cluster.nodes[1]
    slot = redis_cluster.slots_of(node)[0].start
    redis_cluster.process(node).command("SET", redis_cluster.key_on(node, "gone"), "x")
    redis_cluster.reshard([slot], node, redis_cluster.nodes[2])
    redis_cluster.begin_migration(slot + 1, redis_cluster.nodes[0])  # left half-done

    redis_cluster.reset()

    assert redis_cluster.slot_owner(slot) == node
    assert redis_cluster.slot_owner(slot + 1) == node
    assert all(p.command("DBSIZE") == 0 for p in redis_cluster.processes)
    nodes_line = redis_cluster.process(node).command("CLUSTER", "NODES")
    assert "->-" not in nodes_line
    assert "-<-" not in nodes_line


# Redis Sentinel


async def test_sentinel_follows_a_failover(
    redis_sentinel_dsn: str, redis_sentinel: RedisSentinel
) -> None:
    assert re.fullmatch(
        r"redis\+sentinel://:[\w-]+@127\.0\.0\.1:\d+(,127\.0\.0\.1:\d+){2}/mymaster/0",
        redis_sentinel_dsn,
    )
    password, sentinels, path = _hosts(redis_sentinel_dsn)
    service, _, db = path.partition("/")
    sentinel = Sentinel(
        sentinels, sentinel_kwargs={"password": password}, password=password, socket_timeout=2
    )
    master = sentinel.master_for(service, db=int(db), decode_responses=True)
    try:
        before = await sentinel.discover_master(service)
        assert before == redis_sentinel.master_address()
        await master.set("written-before", "1")
        assert await master.execute_command("WAIT", 1, 2000) == 1  # the replica has it

        assert await asyncio.to_thread(redis_sentinel.kill_master) == before
        started = time.monotonic()
        after = await asyncio.to_thread(redis_sentinel.wait_for_failover, 30)
        failover_seconds = time.monotonic() - started
        assert after != before
        assert failover_seconds < 20
        assert await sentinel.discover_master(service) == after

        # The same client reconnects to the master Sentinel names now.
        assert await master.get("written-before") == "1"
        await master.set("written-after", "2")

        assert await asyncio.to_thread(redis_sentinel.restart_old_master_as_replica) == before
        assert before in await sentinel.discover_slaves(service)
        old = next(n for n in redis_sentinel.data_nodes if n.port == before[1])
        assert old.client().info("replication")["role"] == "slave"
        await master.execute_command("WAIT", 1, 2000)
        assert old.command("GET", "written-after") == "2"
    finally:
        await master.aclose()
        for client in sentinel.sentinels:
            await client.aclose()


def test_sentinel_dsn_with_one_sentinel(redis_sentinel: RedisSentinel) -> None:
    dsn = redis_sentinel.dsn(3, sentinels=1)
    assert re.fullmatch(r"redis\+sentinel://:[\w-]+@127\.0\.0\.1:\d+/mymaster/3", dsn)
    assert _hosts(dsn)[1] == redis_sentinel.sentinel_addresses[:1]


# TLS Redis with an ACL user


async def test_tls_redis_as_the_acl_user(redis_tls_dsn: str, redis_tls: RedisTLS) -> None:
    assert re.fullmatch(
        r"rediss://app:[\w-]+@127\.0\.0\.1:\d+/0\?ssl_ca_certs=/\S+/ca\.crt", redis_tls_dsn
    )
    client = redis.asyncio.from_url(redis_tls_dsn, decode_responses=True)
    try:
        assert await client.acl_whoami() == "app"
        assert await client.set("k", "v")
        assert await client.get("k") == "v"
        assert (await client.config_get("port"))["port"] == "0"  # TLS only
    finally:
        await client.aclose()


async def test_tls_redis_refuses_an_unknown_ca_quickly(
    redis_tls_dsn: str, redis_tls: RedisTLS
) -> None:
    client = redis.asyncio.from_url(redis_tls.dsn(ca=redis_tls.wrong_ca))
    started = time.monotonic()
    try:
        with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
            await client.ping()
    finally:
        await client.aclose()
    assert time.monotonic() - started < 5


async def test_tls_redis_default_user_is_off(redis_tls_dsn: str, redis_tls: RedisTLS) -> None:
    for password in (None, redis_tls.password):
        client = redis.asyncio.Redis(
            port=redis_tls.port,
            password=password,
            ssl=True,
            ssl_ca_certs=str(redis_tls.ca_cert),
            retry=Retry(NoBackoff(), 0),  # a refusal is final: do not back off and retry
        )
        try:
            with pytest.raises(redis.AuthenticationError):
                await client.ping()
        finally:
            await client.aclose()


async def test_tls_redis_client_certificates_when_required(
    redis_tls_dsn: str, redis_tls: RedisTLS
) -> None:
    redis_tls.require_client_certs()
    try:
        without = redis.asyncio.from_url(redis_tls_dsn)
        with pytest.raises(redis.ConnectionError):
            await without.ping()
        await without.aclose()
        with_cert = redis.asyncio.from_url(redis_tls.dsn(client_cert=True))
        assert await with_cert.ping()
        await with_cert.aclose()
    finally:
        redis_tls.require_client_certs(False)


# TLS PostgreSQL with SCRAM


async def test_postgres_tls_verify_full_as_app(postgres_tls_dsn: str) -> None:
    assert re.fullmatch(
        r"postgresql://app:[\w-]+@127\.0\.0\.1:\d+/test_\w+"
        r"\?sslmode=verify-full&sslrootcert=/\S+/ca\.crt",
        postgres_tls_dsn,
    )
    conn = await asyncpg.connect(postgres_tls_dsn)
    try:
        row = await conn.fetchrow(
            "SELECT current_user AS who, ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        )
        assert row is not None
        assert (row["who"], row["ssl"]) == ("app", True)
        assert row["version"].startswith("TLSv1.")
        assert await conn.fetchval("SHOW password_encryption") == "scram-sha-256"
        await conn.execute("CREATE TABLE owned_by_app (x int)")  # app owns the database
    finally:
        await conn.close()


async def test_postgres_tls_rejects_plaintext_and_unknown_ca(
    postgres_tls_dsn: str, postgres_tls: PostgresTLS
) -> None:
    database = urlsplit(postgres_tls_dsn).path.lstrip("/")
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError, match="no encryption"):
        await asyncpg.connect(postgres_tls.app_dsn(database, sslmode="disable"))
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncpg.connect(postgres_tls.app_dsn(database, ca=postgres_tls.wrong_ca))


async def test_postgres_tls_restart_and_multi_host(
    postgres_tls_dsn: str, postgres_tls: PostgresTLS
) -> None:
    database = urlsplit(postgres_tls_dsn).path.lstrip("/")
    conn = await asyncpg.connect(postgres_tls_dsn)
    await asyncio.to_thread(postgres_tls.restart)
    with pytest.raises((asyncpg.PostgresConnectionError, ConnectionError, asyncpg.InterfaceError)):
        await conn.fetchval("SELECT 1")
    await conn.close()
    # The first host refuses; the driver moves on to the second.
    again = await asyncpg.connect(postgres_tls.multi_host_dsn(database))
    try:
        assert await again.fetchval("SELECT current_user") == "app"
    finally:
        await again.close()


# PgBouncer in transaction mode


async def test_pgbouncer_dsn_carries_the_flag_drivers_must_not_see(pgbouncer_dsn: str) -> None:
    assert re.fullmatch(
        r"postgresql://postgres:[\w-]+@127\.0\.0\.1:\d+/test_\w+\?pgbouncer=true", pgbouncer_dsn
    )
    with pytest.raises(asyncpg.ProtocolViolationError, match="unsupported startup parameter"):
        await asyncpg.connect(pgbouncer_dsn)


async def test_pgbouncer_pools_transactions(
    pgbouncer_dsn: str, pgbouncer: PgBouncer, postgres_server: PostgresServer
) -> None:
    raw = pgbouncer_dsn.removesuffix("?pgbouncer=true")
    database = urlsplit(raw).path.lstrip("/")
    conn = await asyncpg.connect(raw, statement_cache_size=0)
    try:
        async with conn.transaction():
            await conn.execute("CREATE TABLE hits (n int)")
            await conn.execute("INSERT INTO hits VALUES ($1), ($2)", 1, 2)
        async with conn.transaction():
            assert await conn.fetchval("SELECT sum(n) FROM hits WHERE n > $1", 0) == 3
    finally:
        await conn.close()

    clients = [
        await asyncpg.connect(raw, statement_cache_size=0) for _ in range(3 * pgbouncer.pool_size)
    ]
    try:

        async def one_transaction(client: asyncpg.Connection) -> int:
            async with client.transaction():
                await client.execute("SELECT pg_sleep(0.05)")
                value: int = await client.fetchval("INSERT INTO hits VALUES (1) RETURNING n")
                return value

        assert sum(await asyncio.gather(*map(one_transaction, clients))) == len(clients)
    finally:
        for client in clients:
            await client.close()
    direct = await asyncpg.connect(postgres_server.dsn(database))
    try:
        server_sessions = await direct.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
        assert 1 <= server_sessions <= pgbouncer.pool_size  # 30 clients, at most 10 sessions
        assert await direct.fetchval("SELECT count(*) FROM hits") == 2 + len(clients)
    finally:
        await direct.close()
