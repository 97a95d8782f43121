"""The PostgreSQL metrics collector and ``check_system_health()`` on a real server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from structlog.testing import capture_logs

from buttress import connect
from buttress.backends import PostgresBackend
from buttress.db import Database
from buttress.deploy import DeploymentLog
from buttress.errors import ErrorCategory, Severity, UnsupportedBackendError, ValidationError
from buttress.health import Status
from buttress.migrations.builtin import apply_builtin, builtin_migrator
from buttress.monitoring import HealthHistory
from buttress.monitoring.errors import ErrorStats
from buttress.monitoring.postgres import TABLE_SIZE_PREFIX, collect_postgres_metrics
from servers import PostgresServer

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pg(postgres_dsn: str) -> AsyncIterator[PostgresBackend]:
    async with connect(postgres_dsn) as backend:
        assert isinstance(backend, PostgresBackend)
        yield backend


async def add_errors(pg: PostgresBackend, count: int, at: datetime | None = None) -> None:
    """``count`` persisted errors in the minute bucket of ``at`` (default now)."""
    bucket = (at or datetime.now(UTC)).replace(second=0, microsecond=0)
    await pg.execute(
        "INSERT INTO buttress_error_events (bucket, category, severity, component, count) "
        "VALUES ($1, 'database', 'high', 'billing', $2) "
        "ON CONFLICT (bucket, category, severity, component) "
        "DO UPDATE SET count = buttress_error_events.count + excluded.count",
        bucket,
        count,
    )


async def system_health(pg: PostgresBackend, sql: str = "SELECT check_system_health()") -> Any:
    raw = await pg.fetchval(sql)
    assert isinstance(raw, str)  # jsonb arrives as text, as psql would print it
    return json.loads(raw)


# -- collect_postgres_metrics -------------------------------------------------------------------


async def test_collected_numbers_are_plausible(pg: PostgresBackend) -> None:
    await pg.execute("CREATE TABLE orders (id int PRIMARY KEY, note text)")
    await pg.execute(
        "INSERT INTO orders SELECT g, repeat('x', 200) FROM generate_series(1, 5000) AS g"
    )
    metrics = await collect_postgres_metrics(pg)

    assert metrics["db_connections_total"] >= 1
    assert metrics["db_connections_active"] >= 1  # the collecting query itself
    assert metrics["db_connections_total"] >= (
        metrics["db_connections_active"]
        + metrics["db_connections_idle"]
        + metrics["db_connections_idle_in_transaction"]
    )
    assert metrics["db_connections_max"] >= metrics["db_connections_total"]
    assert metrics["db_size_mb"] > 1
    assert 0 <= metrics["db_cache_hit_ratio"] <= 1
    tables = {k: v for k, v in metrics.items() if k.startswith(TABLE_SIZE_PREFIX)}
    assert len(tables) == 5
    assert max(tables, key=lambda k: tables[k]) == f"{TABLE_SIZE_PREFIX}public.orders"
    assert tables[f"{TABLE_SIZE_PREFIX}public.orders"] > 0.5
    assert metrics["errors_last_hour"] == 0  # the table exists, nothing recorded
    assert "db_queries_total" not in metrics  # no pg_stat_statements, no client
    assert all(isinstance(v, float) for v in metrics.values())


async def test_the_numbers_record_into_health_history(pg: PostgresBackend) -> None:
    from buttress.health import HealthRegistry

    registry = HealthRegistry(version="2.0")
    history = HealthHistory(pg)
    await history.record(await registry.run(), metrics=await collect_postgres_metrics(pg))
    series = await history.series("db_connections_total")
    assert len(series) == 1
    assert series[0].value >= 1


async def test_errors_last_hour_comes_from_the_persisted_counts(pg: PostgresBackend) -> None:
    await add_errors(pg, 7)
    await add_errors(pg, 100, datetime.now(UTC) - timedelta(hours=2))  # too old
    assert (await collect_postgres_metrics(pg))["errors_last_hour"] == 7


async def test_errors_last_hour_from_in_memory_statistics(pg: PostgresBackend) -> None:
    await add_errors(pg, 7)
    stats = ErrorStats()
    stats.record(ErrorCategory.NETWORK, Severity.HIGH, "payments", count=3)
    assert (await collect_postgres_metrics(pg, errors=stats))["errors_last_hour"] == 3


async def test_at_most_two_round_trips(
    pg: PostgresBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    trips: list[str] = []
    for name in ("fetch", "fetchrow", "fetchval", "execute"):
        original = getattr(pg, name)

        async def counted(sql: str, *args: object, _original: Any = original) -> Any:
            trips.append(sql)
            return await _original(sql, *args)

        monkeypatch.setattr(pg, name, counted)
    await collect_postgres_metrics(pg)
    assert len(trips) == 2  # the overview, then the error counts
    trips.clear()
    await collect_postgres_metrics(pg, errors=ErrorStats())
    assert len(trips) == 1


async def test_a_client_fills_in_query_times_when_pg_stat_statements_is_absent(
    pg: PostgresBackend,
) -> None:
    class Client:
        def stats(self) -> object:
            return SimpleNamespace(total_queries=40, average_ms=2.5, p95_ms=9.0, slow_queries=1)

    metrics = await collect_postgres_metrics(pg, client=Client())
    assert metrics["db_queries_total"] == 40
    assert metrics["db_query_avg_ms"] == 2.5
    assert metrics["db_query_p95_ms"] == 9.0
    assert metrics["db_slow_queries"] == 1


async def test_an_async_stats_method_and_missing_attributes_are_fine(pg: PostgresBackend) -> None:
    class Client:
        async def stats(self) -> object:
            return SimpleNamespace(total_queries=3, p95_ms=None)

    metrics = await collect_postgres_metrics(pg, client=Client())
    assert metrics["db_queries_total"] == 3
    assert "db_query_p95_ms" not in metrics
    assert "db_query_avg_ms" not in metrics


async def test_the_instrumented_client_of_buttress_db_fits(pg: PostgresBackend) -> None:
    database = Database(pg)
    for _ in range(3):
        assert await database.fetchval("SELECT 1") == 1
    metrics = await collect_postgres_metrics(pg, client=database)
    assert metrics["db_queries_total"] == 3
    assert metrics["db_query_avg_ms"] > 0
    assert metrics["db_query_p95_ms"] >= 0
    assert metrics["db_slow_queries"] == 0
    assert metrics["db_query_error_rate"] == 0


async def _statement_calls(pg: PostgresBackend) -> int:
    calls = await pg.fetchval(
        "SELECT sum(calls) FROM pg_stat_statements "
        "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    return int(calls)


async def test_the_real_pg_stat_statements_wins_over_the_client(pg: PostgresBackend) -> None:
    # The session's server preloads the extension; this database installs it.
    await pg.execute("CREATE EXTENSION pg_stat_statements")
    await pg.fetchval("SELECT pg_stat_statements_reset()")
    for _ in range(20):
        assert await pg.fetchval("SELECT 1") == 1
    await pg.fetchval("SELECT pg_sleep(0.25)")  # one statement whose mean is >= 250 ms

    class Client:
        def stats(self) -> object:
            return SimpleNamespace(total_queries=1, average_ms=99_999.0, slow_queries=9, p95_ms=4.0)

    before = await _statement_calls(pg)
    metrics = await collect_postgres_metrics(pg, client=Client(), slow_query_ms=200)
    after = await _statement_calls(pg)
    assert metrics["db_query_p95_ms"] == 4.0  # only the client knows it
    # The view's numbers, not the client's: every statement of this database counts.
    assert 21 <= before <= metrics["db_queries_total"] <= after
    assert 0 < metrics["db_query_avg_ms"] < 99_999.0
    assert 1 <= metrics["db_slow_queries"] < 9  # pg_sleep(0.25) at least
    assert metrics["errors_last_hour"] == 0  # read in the same second trip
    never_slow = await collect_postgres_metrics(pg, slow_query_ms=3_600_000)
    assert never_slow["db_slow_queries"] == 0


async def test_query_times_are_computed_from_the_views_columns(pg: PostgresBackend) -> None:
    # A stand-in view with fixed numbers, to check the arithmetic exactly (the real
    # extension's numbers move with every statement): the collector finds it through
    # search_path as it finds the extension's view, in a database without the extension.
    await pg.execute(
        "CREATE VIEW pg_stat_statements AS SELECT d.oid AS dbid, v.calls::bigint AS calls, "
        "v.total::float8 AS total_exec_time, v.mean::float8 AS mean_exec_time "
        "FROM pg_database AS d, "
        "(VALUES (10, 50.0, 5.0), (2, 3000.0, 1500.0)) AS v(calls, total, mean) "
        "WHERE d.datname = current_database()"
    )

    class Client:
        def stats(self) -> object:
            return SimpleNamespace(total_queries=1, average_ms=99.0, slow_queries=9, p95_ms=4.0)

    metrics = await collect_postgres_metrics(pg, client=Client(), slow_query_ms=1000)
    assert metrics["db_query_p95_ms"] == 4.0  # only the client knows it
    assert metrics["db_queries_total"] == 12
    assert metrics["db_query_avg_ms"] == pytest.approx(3050 / 12, abs=1e-3)
    assert metrics["db_slow_queries"] == 1
    assert metrics["errors_last_hour"] == 0  # read in the same second trip
    assert (await collect_postgres_metrics(pg, slow_query_ms=1))["db_slow_queries"] == 2


@pytest.fixture(scope="module")
def server_without_preload(postgres_server: PostgresServer) -> Iterator[PostgresServer]:
    """A second cluster without pg_stat_statements in shared_preload_libraries
    (requested after the session's server, so a missing binary skips or fails as there)."""
    server = PostgresServer(settings={"shared_preload_libraries": "''"})
    try:
        server.start()
        yield server
    finally:
        server.stop()


async def test_an_installed_but_not_preloaded_extension_falls_back(
    server_without_preload: PostgresServer,
) -> None:
    name = server_without_preload.create_database()
    try:
        async with connect(server_without_preload.dsn(name)) as backend:
            assert isinstance(backend, PostgresBackend)
            # Creating it works without the preload; reading its view does not.
            await backend.execute("CREATE EXTENSION pg_stat_statements")
            await add_errors(backend, 2)

            class Client:
                def stats(self) -> object:
                    return SimpleNamespace(total_queries=5, average_ms=1.0)

            with capture_logs() as logs:
                metrics = await collect_postgres_metrics(backend, client=Client())
    finally:
        server_without_preload.drop_database(name)
    # Reading the view fails without shared_preload_libraries: the client's numbers.
    assert metrics["db_queries_total"] == 5
    assert metrics["db_query_avg_ms"] == 1.0
    assert metrics["errors_last_hour"] == 2
    assert [e["event"] for e in logs] == ["pg_stat_statements_unreadable"]


async def test_application_counters_are_merged(pg: PostgresBackend) -> None:
    metrics = await collect_postgres_metrics(pg, extra={"pending_jobs": 4, "failed_jobs": 0.0})
    assert metrics["pending_jobs"] == 4.0
    assert metrics["failed_jobs"] == 0.0


BAD_INPUT: list[tuple[dict[str, Any], str]] = [
    ({"extra": {"db_size_mb": 1}}, "extra['db_size_mb']"),
    ({"extra": {"jobs": float("nan")}}, "extra['jobs']"),
    ({"extra": {"jobs": True}}, "extra['jobs']"),
    ({"extra": {"latency:db": 1}}, "extra"),
    ({"extra": [("jobs", 1)]}, "extra"),
    ({"largest_tables": -1}, "largest_tables"),
    ({"largest_tables": 1.5}, "largest_tables"),
    ({"slow_query_ms": 0}, "slow_query_ms"),
    ({"client": object()}, "client"),
    ({"errors": object()}, "errors"),
]


async def test_bad_input_names_the_field(pg: PostgresBackend) -> None:
    for kwargs, field in BAD_INPUT:  # one database for all: each is refused the same way
        with pytest.raises(ValidationError) as caught:
            await collect_postgres_metrics(pg, **kwargs)
        assert caught.value.field == field, kwargs


async def test_other_backends_are_refused(sqlite_dsn: str) -> None:
    async with connect(sqlite_dsn) as backend:
        with pytest.raises(UnsupportedBackendError, match="postgresql"):
            await collect_postgres_metrics(backend)


# -- check_system_health() -----------------------------------------------------------------------


async def test_check_system_health_returns_json_and_records_a_run(pg: PostgresBackend) -> None:
    result = await system_health(pg)
    assert result["status"] == "healthy"
    assert result["database"]["size_mb"] > 0
    assert result["database"]["connections"] >= 1
    assert result["errors_last_hour"] == 0
    assert result["version"] is None  # nothing deployed yet
    assert result["version_note"] == "no app_version recorded (DeploymentLog.record sets it)"
    assert result["recorded"] is True
    assert result["reasons"] == []
    assert result["postgres_version"].startswith("15")

    [run] = await HealthHistory(pg).recent(1)
    assert run.status is Status.HEALTHY
    assert run.version is None
    assert run.components["database"].status is Status.HEALTHY
    assert run.components["database"].latency_ms >= 0
    assert run.metrics["errors_last_hour"] == 0
    assert run.metrics["db_size_mb"] == result["database"]["size_mb"]
    assert run.metrics["db_connections_total"] == result["database"]["connections"]


async def test_a_read_only_transaction_gets_the_verdict_without_a_record(
    pg: PostgresBackend,
) -> None:
    async with pg.connection() as conn:
        await conn.execute("BEGIN READ ONLY")
        raw = await conn.fetchval("SELECT check_system_health()")
        await conn.execute("COMMIT")
    result = json.loads(raw)
    assert (result["status"], result["recorded"]) == ("healthy", False)
    assert await HealthHistory(pg).count() == 0


async def test_a_monitoring_role_with_the_documented_grants_gets_a_verdict(
    pg: PostgresBackend, postgres_dsn: str
) -> None:
    await DeploymentLog(pg).record("2.0.0", "production")
    role = f"monitor_{abs(hash(postgres_dsn)) % 10**8}"
    await pg.execute(f"DROP ROLE IF EXISTS {role}")
    await pg.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'monitor-pw'")
    try:
        # The documented grants: SELECT on the error counts, nothing on the history.
        await pg.execute(f"GRANT SELECT ON buttress_error_events TO {role}")
        async with pg.connection() as conn:
            await conn.execute(f"SET ROLE {role}")
            try:
                raw = await conn.fetchval("SELECT check_system_health()")
            finally:
                await conn.execute("RESET ROLE")
        result = json.loads(raw)
        assert result["status"] == "healthy"
        assert result["recorded"] is False  # no INSERT on the history: not recorded, no error
        assert result["version"] is None
        assert result["version_note"] == (
            "cannot read buttress_config: grant SELECT on it to this role"
        )
        assert await HealthHistory(pg).count() == 0
    finally:
        await pg.execute(f"DROP OWNED BY {role}")
        await pg.execute(f"DROP ROLE {role}")


async def test_the_version_is_the_deployed_application_version(pg: PostgresBackend) -> None:
    await DeploymentLog(pg).record("1.4.2", "production")
    result = await system_health(pg)
    assert result["version"] == "1.4.2"
    [run] = await HealthHistory(pg).recent(1)
    assert run.version == "1.4.2"


@pytest.mark.parametrize(
    ("errors", "status"),
    [(10, "healthy"), (11, "warning"), (100, "warning"), (101, "degraded")],
)
async def test_error_thresholds(pg: PostgresBackend, errors: int, status: str) -> None:
    await add_errors(pg, errors)
    await add_errors(pg, 1000, datetime.now(UTC) - timedelta(minutes=61))  # outside the hour
    result = await system_health(pg)
    assert (result["status"], result["errors_last_hour"]) == (status, errors)
    assert bool(result["reasons"]) is (status != "healthy")
    [run] = await HealthHistory(pg).recent(1)
    assert run.status is (Status.HEALTHY if status == "healthy" else Status.DEGRADED)
    assert run.metrics["errors_last_hour"] == errors


async def test_thresholds_can_be_passed_by_name(pg: PostgresBackend) -> None:
    await add_errors(pg, 3)
    assert (await system_health(pg, "SELECT check_system_health(errors_warning => 2)"))[
        "status"
    ] == "warning"
    result = await system_health(pg, "SELECT check_system_health(connections_degraded => 0)")
    assert result["status"] == "degraded"
    assert "connections in use" in result["reasons"][0]
    assert await HealthHistory(pg).count() == 2


async def test_the_migration_rolls_back_and_reapplies(pg: PostgresBackend) -> None:
    undone = await builtin_migrator(pg).rollback(7)
    assert "0008_system_health" in undone  # and whatever later migrations depend on it
    assert "0011_system_health_roles" in undone
    assert await pg.fetchval("SELECT to_regprocedure('check_system_health()')") is None
    assert await pg.fetchval("SELECT to_regclass('buttress_error_events')") is None
    # Without the table the collector simply leaves the error count out.
    assert "errors_last_hour" not in await collect_postgres_metrics(pg)
    assert "0008_system_health" in (await apply_builtin(pg)).applied
    assert (await system_health(pg))["status"] == "healthy"
