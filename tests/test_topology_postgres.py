"""Every shared-state capability through PgBouncer in transaction pooling mode and on
TLS PostgreSQL with SCRAM (verify-full, multi-host, a restart), on real servers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest

from buttress import (
    CircuitBreaker,
    ConfigStore,
    DeploymentLog,
    FeatureFlags,
    Rate,
    RateLimiter,
    ahit_all,
    connect,
)
from buttress.backends import Backend, PostgresBackend
from buttress.breaker import BreakerState, CircuitOpenError
from buttress.doctor import DoctorContext, check_backend
from buttress.errors import BackendUnavailableError, InvalidDSNError, ValidationError
from buttress.flags import Flag
from buttress.migrations import Migrator, apply_builtin
from cli_support import buttress
from topology import PostgresTLS

T = TypeVar("T")
HOUR = 3600.0


async def _within(seconds: float, read: Callable[[], Awaitable[object]], want: object) -> float:
    """Seconds until ``read()`` returns ``want`` (fails after ``seconds``)."""
    started = time.monotonic()
    while (got := await read()) != want:
        assert time.monotonic() - started < seconds, f"still {got!r} after {seconds}s"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def _every_capability(one: Backend, two: Backend) -> None:
    """Config, flags, deployments, rate limits and shared breakers, seen from two
    instances (two pools), changes crossing from one to the other within 2 s."""
    config_a, config_b = ConfigStore(one), ConfigStore(two)
    await config_a.set("feature.limit", 10, updated_by="test")
    assert await config_b.get("feature.limit") == 10
    await config_a.set("feature.limit", 11, updated_by="test")
    assert await _within(2.0, lambda: config_b.get("feature.limit"), 11) < 2.0

    async with FeatureFlags(one) as flags_a, FeatureFlags(two, refresh_interval=0.5) as flags_b:
        await flags_a.upsert(Flag("checkout", "Checkout", enabled=True), updated_by="test")

        async def enabled() -> bool:
            return flags_b.is_enabled("checkout")

        assert await _within(2.0, enabled, True) < 2.0

    deployments = DeploymentLog(one)
    await deployments.record("1.2.3", "production", deployed_by="ci")
    assert await DeploymentLog(two).current_version("production") == "1.2.3"
    assert await ConfigStore(two, environment="production").get("app_version") == "1.2.3"

    limiters = [RateLimiter(Rate(25, HOUR), backend=b) for b in (one, two)]
    decisions = await asyncio.gather(*(lim.ahit("shared") for lim in limiters for _ in range(30)))
    assert sum(d.allowed for d in decisions) == 25  # exact across both pools
    daily = RateLimiter(Rate(5, HOUR), backend=one, prefix="daily")
    assert (await ahit_all([(limiters[0], "a"), (daily, "a")], cost=5)).allowed
    assert not (await ahit_all([(limiters[0], "a"), (daily, "a")])).allowed
    assert (await limiters[1].apeek("a", 0)).remaining == 20  # the refusal took nothing

    a, b = (
        CircuitBreaker("db", backend=x, failure_threshold=2, sync_interval=0.01, registry=None)
        for x in (one, two)
    )

    async def boom() -> None:
        raise RuntimeError("down")

    for breaker in (a, b):
        with pytest.raises(RuntimeError):
            await breaker.acall(boom)
    assert b.stats().state is BreakerState.OPEN
    await asyncio.sleep(0.02)
    with pytest.raises(CircuitOpenError):  # a's refreshed snapshot has b's opening
        await a.acall(boom)


# PgBouncer in transaction pooling mode


async def test_pgbouncer_every_capability(pgbouncer_dsn: str) -> None:
    async with connect(pgbouncer_dsn) as one, connect(pgbouncer_dsn, migrate=False) as two:
        assert isinstance(one, PostgresBackend)
        assert one.pooler
        assert not one.pushes  # LISTEN cannot work through the pooler: callers poll
        await _every_capability(one, two)


async def test_pgbouncer_listen_dsn_pushes_changes(
    pgbouncer_dsn: str, postgres_server: Any
) -> None:
    database = urlsplit(pgbouncer_dsn).path.lstrip("/")
    direct = postgres_server.dsn(database)
    async with (
        connect(pgbouncer_dsn) as one,
        connect(pgbouncer_dsn, listen_dsn=direct, migrate=False) as two,
    ):
        assert isinstance(two, PostgresBackend)
        assert two.pooler
        assert two.pushes
        async with ConfigStore(two, refresh_interval=3600) as config_b:
            await ConfigStore(one).set("k", 1)
            assert await config_b.get("k") == 1
            await ConfigStore(one).set("k", 2)
            assert await _within(2.0, lambda: config_b.get("k"), 2) < 2.0


async def test_pgbouncer_many_concurrent_statements_use_no_named_prepared_statements(
    pgbouncer_dsn: str,
) -> None:
    async with connect(pgbouncer_dsn, max_size=20) as backend:
        assert isinstance(backend, PostgresBackend)
        limiter = RateLimiter(Rate(10_000, HOUR), backend=backend)
        decisions = await asyncio.gather(*(limiter.ahit(f"k{n % 7}") for n in range(400)))
        assert all(d.allowed for d in decisions)
        counts = await asyncio.gather(*(backend.fetchval("SELECT $1::int", n) for n in range(200)))
        assert counts == list(range(200))


async def test_pgbouncer_parameter_is_checked_and_never_sent(pgbouncer_dsn: str) -> None:
    with pytest.raises(ValidationError, match=r"statement_timeout.*transaction pooler"):
        await connect(pgbouncer_dsn, statement_timeout=5)
    with pytest.raises(InvalidDSNError, match="pgbouncer query parameter must be true or false"):
        await connect(pgbouncer_dsn.replace("pgbouncer=true", "pgbouncer=maybe"))
    with pytest.raises(ValidationError, match=r"listen_dsn.*directly"):
        await connect(pgbouncer_dsn, listen_dsn=pgbouncer_dsn)
    async with connect(pgbouncer_dsn, application_name="svc") as backend:
        # A raw driver forwarding pgbouncer=true is refused at startup: it was not sent.
        assert isinstance(backend, PostgresBackend)
        assert await backend.fetchval("SELECT 1") == 1
        assert "pgbouncer=true" in backend.dsn  # shown (redacted), consumed


async def test_pgbouncer_migrations_apply_once_however_many_start_together(
    pgbouncer_dsn: str, tmp_path: Path
) -> None:
    directory = tmp_path / "migrations"
    directory.mkdir()
    (directory / "0001_orders.sql").write_text(
        "CREATE TABLE orders (id bigint PRIMARY KEY);\nINSERT INTO orders VALUES (1);\n"
    )
    backends = await asyncio.gather(*(connect(pgbouncer_dsn, migrate=False) for _ in range(6)))
    try:
        builtin = await asyncio.gather(*(apply_builtin(b) for b in backends))
        # Each migration is applied by exactly one instance (not always the same one).
        applied = [m for r in builtin for m in r.applied]
        assert len(applied) == len(set(applied))
        assert {m.split("_")[0] for m in applied} >= {"0001", "0002", "0009"}
        results = await asyncio.gather(*(Migrator(b, directory).migrate() for b in backends))
        assert sum(len(r.applied) for r in results) == 1
        assert isinstance(backends[0], PostgresBackend)
        assert await backends[0].fetchval("SELECT count(*) FROM orders") == 1
    finally:
        for backend in backends:
            await backend.close()


# TLS PostgreSQL with SCRAM


async def test_tls_postgres_every_capability(postgres_tls_dsn: str) -> None:
    async with connect(postgres_tls_dsn) as one, connect(postgres_tls_dsn) as two:
        assert isinstance(one, PostgresBackend)
        assert not one.pooler
        assert one.pushes
        assert await one.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        await _every_capability(one, two)


async def test_tls_postgres_wrong_ca_fails_fast_with_one_clear_error(
    postgres_tls_dsn: str, postgres_tls: PostgresTLS
) -> None:
    database = urlsplit(postgres_tls_dsn).path.lstrip("/")
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError) as info:
        await connect(postgres_tls.app_dsn(database, ca=postgres_tls.wrong_ca))
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert "certificate verify failed" in message
    assert "after" not in message  # not retried
    assert postgres_tls.app_password not in message
    assert info.value.__context__ is None


async def test_multi_host_reconnects_after_a_restart_and_never_loses_a_write(
    postgres_tls_dsn: str, postgres_tls: PostgresTLS
) -> None:
    database = urlsplit(postgres_tls_dsn).path.lstrip("/")
    dsn = postgres_tls.multi_host_dsn(database) + "&target_session_attrs=read-write"
    async with connect(dsn, max_size=2) as backend:
        assert isinstance(backend, PostgresBackend)
        config = ConfigStore(backend)
        await config.set("n", 0)
        await asyncio.to_thread(postgres_tls.restart)
        committed = 0
        for n in range(1, 6):
            try:
                await config.set("n", n)
            except Exception:  # noqa: BLE001 - a write may fail while the pool reconnects,
                continue  # but must then not have happened
            committed = n
        assert committed == 5  # reconnected
        assert await ConfigStore(backend, refresh_interval=0.001).get("n") == 5
        history = await config.history("n")
        assert [entry.new_value for entry in history][:1] == [5]


async def test_pgbouncer_doctor_says_it_talks_to_a_pooler(
    pgbouncer_dsn: str, postgres_server: Any, tmp_path: Path
) -> None:
    async with connect(pgbouncer_dsn) as through:
        found = {
            f.name: f for f in await check_backend(DoctorContext(pgbouncer_dsn, backend=through))
        }
    assert found["pooler"].detail.startswith("through a transaction pooler (pgbouncer=true)")
    assert "polled" in found["pooler"].detail
    database = urlsplit(pgbouncer_dsn).path.lstrip("/")
    async with connect(pgbouncer_dsn, listen_dsn=postgres_server.dsn(database)) as pushing:
        found = {
            f.name: f for f in await check_backend(DoctorContext(pgbouncer_dsn, backend=pushing))
        }
    assert "pushed through listen_dsn" in found["pooler"].detail
    async with connect(postgres_server.dsn(database)) as direct:
        found = {f.name: f for f in await check_backend(DoctorContext("x", backend=direct))}
    assert "pooler" not in found

    done = buttress("doctor", "--dsn", pgbouncer_dsn, cwd=tmp_path)
    assert "through a transaction pooler" in done.stdout, done.stdout + done.stderr
