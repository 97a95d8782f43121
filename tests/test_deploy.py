"""``DeploymentLog`` on every backend it supports: memory, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from buttress import connect
from buttress.backends import Backend
from buttress.config import ConfigStore
from buttress.deploy import (
    APP_VERSION_KEY,
    Deployment,
    DeploymentLog,
    DeploymentNotFoundError,
    DeploymentStateError,
)
from buttress.errors import UnsupportedBackendError, ValidationError
from buttress.testing import FakeClock

START = datetime(2023, 12, 31, 23, tzinfo=UTC)


POSTGRES = pytest.param("postgresql", marks=pytest.mark.postgres)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=START)


@pytest.fixture
def log(backend: Backend, clock: FakeClock) -> DeploymentLog:
    return DeploymentLog(backend, clock=clock)


def move_to(clock: FakeClock, when: datetime) -> datetime:
    clock.advance((when - clock.now()).total_seconds())
    return when


def at(day: int, hour: float = 0.0) -> datetime:
    return datetime(2024, 1, day, tzinfo=UTC) + timedelta(hours=hour)


async def app_version(backend: Backend, environment: str) -> object:
    return await ConfigStore(backend, environment=environment).get(APP_VERSION_KEY)


async def test_record_returns_the_stored_deployment(log: DeploymentLog, clock: FakeClock) -> None:
    committed = clock.now() - timedelta(hours=2)
    started = clock.now() - timedelta(minutes=5)
    recorded = await log.record(
        "1.4.0",
        "production",
        deployed_by="ann",
        changelog="faster search",
        migration_notes="adds index",
        commit_sha="ABCDEF1",
        committed_at=committed,
        started_at=started,
    )
    assert recorded.id >= 1
    assert (recorded.version, recorded.environment, recorded.status) == (
        "1.4.0", "production", "success",
    )  # fmt: skip
    assert recorded.deployed_at == recorded.finished_at == clock.now()
    assert (recorded.committed_at, recorded.started_at) == (committed, started)
    assert recorded.commit_sha == "abcdef1"
    assert not recorded.is_rollback
    assert await log.get(recorded.id) == recorded
    assert await log.latest("production") == recorded


async def test_record_sets_app_version_for_the_environment_only(
    log: DeploymentLog, backend: Backend, clock: FakeClock
) -> None:
    await log.record("1.0", "staging")
    clock.advance(60)
    await log.record("2.0", "production", deployed_by="ci")
    assert await app_version(backend, "staging") == "1.0"
    assert await app_version(backend, "production") == "2.0"
    assert await app_version(backend, "all") is None
    entry = await ConfigStore(backend, environment="production").get_entry(APP_VERSION_KEY)
    assert entry is not None
    assert (entry.environment, entry.updated_by, entry.updated_at) == (
        "production", "ci", clock.now(),
    )  # fmt: skip
    clock.advance(60)
    await log.record("2.1", "production")
    changes = await ConfigStore(backend).history(APP_VERSION_KEY, environment="production")
    assert [(c.action, c.old_value, c.new_value) for c in changes] == [
        ("update", "2.0", "2.1"),
        ("create", None, "2.0"),
    ]
    assert changes[0].reason is not None
    assert changes[0].reason.startswith("deployment ")


async def test_record_keeps_an_existing_description_and_sensitivity(
    log: DeploymentLog, backend: Backend
) -> None:
    config = ConfigStore(backend)
    await config.set(APP_VERSION_KEY, "0.9", environment="production", description="set by hand")
    await log.record("1.0", "production")
    entry = await ConfigStore(backend, environment="production").get_entry(APP_VERSION_KEY)
    assert entry is not None
    assert (entry.value, entry.description, entry.version) == ("1.0", "set by hand", 2)


async def test_history_is_newest_first_and_filters(log: DeploymentLog, clock: FakeClock) -> None:
    recorded = []
    for version, environment in [("1", "staging"), ("2", "production"), ("3", "staging")]:
        recorded.append(await log.record(version, environment))
        clock.advance(10)
    assert [d.version for d in await log.history()] == ["3", "2", "1"]
    assert [d.version for d in await log.history("staging")] == ["3", "1"]
    assert [d.version for d in await log.history(limit=2)] == ["3", "2"]
    assert await log.history("development") == []
    assert await log.latest("development") is None
    latest = await log.latest("staging")
    assert latest is not None
    assert latest.version == "3"
    assert await log.current_version("production") == "2"
    assert await log.current_version("development") is None


async def test_rollback_marks_it_and_records_the_rollback(
    log: DeploymentLog, backend: Backend, clock: FakeClock
) -> None:
    good = await log.record("1.0", "production")
    clock.advance(3600)
    bad = await log.record("1.1", "production")
    clock.advance(300)
    rolled = await log.rollback(bad.id, to_version="1.0", reason="error rate 12%",
                                deployed_by="oncall")  # fmt: skip
    assert rolled.id == bad.id
    assert rolled.status == "rolled_back"
    assert (rolled.rollback_to, rolled.rollback_at, rolled.rollback_reason) == (
        "1.0", clock.now(), "error rate 12%",
    )  # fmt: skip
    assert (rolled.failed_at, rolled.restored_at) == (clock.now(), clock.now())
    assert rolled.restored_by is not None
    rollback = await log.get(rolled.restored_by)
    assert (rollback.version, rollback.environment, rollback.status) == (
        "1.0", "production", "success",
    )  # fmt: skip
    assert (rollback.is_rollback, rollback.rollback_of, rollback.deployed_by) == (
        True, bad.id, "oncall",
    )  # fmt: skip
    assert await log.latest("production") == rollback
    assert [d.id for d in await log.history("production")] == [rollback.id, bad.id, good.id]
    assert await app_version(backend, "production") == "1.0"


async def test_rollback_of_a_failed_deployment_keeps_its_detection_time(
    log: DeploymentLog, clock: FakeClock
) -> None:
    bad = await log.record("1.1", "production")
    clock.advance(60)
    detected = clock.now()
    await log.mark_failed(bad.id)
    clock.advance(60)
    rolled = await log.rollback(bad.id, to_version="1.0", reason="broken")
    assert (rolled.status, rolled.failed_at, rolled.restored_at) == (
        "rolled_back", detected, clock.now(),
    )  # fmt: skip


async def test_mark_failed_then_the_next_deployment_restores(
    log: DeploymentLog, clock: FakeClock
) -> None:
    bad = await log.record("1.1", "production")
    other = await log.record("7.0", "staging")
    clock.advance(120)
    failed = await log.mark_failed(bad.id)
    assert (failed.status, failed.failed_at, failed.restored_at) == ("failed", clock.now(), None)
    with pytest.raises(DeploymentStateError, match="only a successful deployment"):
        await log.mark_failed(bad.id)
    clock.advance(600)
    await log.record("7.1", "staging")
    assert (await log.get(bad.id)).restored_at is None  # another environment restores nothing
    fix = await log.record("1.2", "production")
    restored = await log.get(bad.id)
    assert (restored.status, restored.restored_at, restored.restored_by) == (
        "failed", clock.now(), fix.id,
    )  # fmt: skip
    assert (await log.get(other.id)).status == "success"


async def test_mark_failed_after_the_environment_moved_on(
    log: DeploymentLog, clock: FakeClock
) -> None:
    bad = await log.record("1.1", "production")
    clock.advance(60)
    nxt = await log.record("1.2", "production")
    clock.advance(60)
    failed = await log.mark_failed(bad.id, detected_at=clock.now() - timedelta(seconds=10))
    assert (failed.restored_by, failed.restored_at) == (nxt.id, nxt.finished_at)
    assert failed.failed_at == clock.now() - timedelta(seconds=10)


async def test_metrics_on_a_hand_computed_history(log: DeploymentLog, clock: FakeClock) -> None:
    # The history of docs/deploy.md, recorded through the log in time order.
    move_to(clock, at(1) - timedelta(hours=1))
    await log.record("0.9", "production", committed_at=at(1) - timedelta(hours=3))
    move_to(clock, at(1, 10))
    await log.record("1.0", "production", committed_at=at(1, 8), commit_sha="a1b2c3d")
    move_to(clock, at(2, 13))
    second = await log.record("1.1", "production", committed_at=at(2, 9))
    move_to(clock, at(2, 13.25))
    await log.mark_failed(second.id)
    move_to(clock, at(2, 14.5))
    await log.record("1.2", "production", committed_at=at(2, 14))
    move_to(clock, at(3))
    await log.record("5.0", "staging", committed_at=at(1))
    move_to(clock, at(5))
    fourth = await log.record("1.3", "production", committed_at=at(4))
    move_to(clock, at(5, 0.75))
    await log.rollback(fourth.id, to_version="1.2", reason="latency")
    move_to(clock, at(6, 6))
    await log.record("1.4", "production", committed_at=at(6))
    move_to(clock, at(8))
    await log.record("1.5", "production", committed_at=at(7))

    metrics = await log.metrics("production", at(1), at(8))
    assert (metrics.environment, metrics.since, metrics.until) == ("production", at(1), at(8))
    assert metrics.deployments == 6
    assert metrics.deployment_frequency == pytest.approx(6 / 7)
    assert metrics.failures == 2
    assert metrics.change_failure_rate == pytest.approx(1 / 3)
    assert metrics.lead_time == timedelta(hours=4)
    assert metrics.time_to_restore == timedelta(hours=1, minutes=7, seconds=30)

    default_period = await log.metrics("production")
    assert (default_period.since, default_period.until) == (at(8) - timedelta(days=30), at(8))
    assert default_period.deployments == 7  # [since, until): the one at `until` is out
    staging = await log.metrics("staging", at(1), at(8))
    assert (staging.deployments, staging.lead_time) == (1, timedelta(days=2))


async def test_backfilled_deployments_count_when_they_went_live(
    log: DeploymentLog, clock: FakeClock
) -> None:
    live = clock.now() - timedelta(days=3)
    recorded = await log.record("0.1", "production", finished_at=live, committed_at=live)
    assert recorded.finished_at == live
    assert recorded.deployed_at == clock.now()
    assert (await log.metrics("production", live, live + timedelta(days=1))).deployments == 1
    assert (await log.metrics("production", clock.now() - timedelta(days=1))).deployments == 0


# -- bad input: clear errors, nothing written -----------------------------------------------


async def assert_nothing_written(log: DeploymentLog, backend: Backend, count: int) -> None:
    assert len(await log.history()) == count
    for environment in ("production", "staging"):
        versions = [d.version for d in await log.history(environment)]
        expected = versions[0] if versions else None
        assert await app_version(backend, environment) == expected


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        (("", "production"), {}, "version"),
        (("   ", "production"), {}, "version"),
        ((" 1.0", "production"), {}, "version"),
        (("1.0\n", "production"), {}, "version"),
        ((None, "production"), {}, "version"),
        (("1.0", ""), {}, "environment"),
        (("1.0", "Prod uction"), {}, "environment"),
        (("1.0", None), {}, "environment"),
        (("1.0", "production"), {"deployed_by": 7}, "deployed_by"),
        (("1.0", "production"), {"changelog": b"x"}, "changelog"),
        (("1.0", "production"), {"commit_sha": "not-a-sha"}, "commit_sha"),
        (("1.0", "production"), {"committed_at": datetime(2024, 1, 1)}, "committed_at"),
        (("1.0", "production"), {"committed_at": "2024-01-01"}, "committed_at"),
        (("1.0", "production"), {"finished_at": START + timedelta(days=1)}, "finished_at"),
        (("1.0", "production"), {"committed_at": START + timedelta(seconds=1)}, "committed_at"),
        (("1.0", "production"), {"started_at": START + timedelta(seconds=1)}, "started_at"),
    ],
)
async def test_record_refuses_bad_input(
    log: DeploymentLog,
    backend: Backend,
    args: tuple[object, object],
    kwargs: dict[str, object],
    field: str,
) -> None:
    await log.record("0.1", "production")
    with pytest.raises(ValidationError) as caught:
        await log.record(*args, **kwargs)  # type: ignore[arg-type]  # bad on purpose
    assert caught.value.field == field
    assert field in str(caught.value)
    await assert_nothing_written(log, backend, 1)


async def test_unknown_ids_are_refused(log: DeploymentLog, backend: Backend) -> None:
    await log.record("1.0", "production")
    with pytest.raises(DeploymentNotFoundError, match="no deployment with id 99") as caught:
        await log.rollback(99, to_version="0.9", reason="x")
    assert isinstance(caught.value, ValidationError)
    assert isinstance(caught.value, LookupError)
    with pytest.raises(DeploymentNotFoundError):
        await log.mark_failed(99)
    with pytest.raises(DeploymentNotFoundError):
        await log.get(99)
    await assert_nothing_written(log, backend, 1)


async def test_rollback_of_a_rolled_back_deployment_is_refused(
    log: DeploymentLog, backend: Backend, clock: FakeClock
) -> None:
    bad = await log.record("1.1", "production")
    clock.advance(60)
    await log.rollback(bad.id, to_version="1.0", reason="broken")
    clock.advance(60)
    with pytest.raises(DeploymentStateError, match="already rolled back") as caught:
        await log.rollback(bad.id, to_version="0.9", reason="again")
    assert caught.value.field == "deployment_id"
    await assert_nothing_written(log, backend, 2)
    with pytest.raises(DeploymentStateError):
        await log.mark_failed(bad.id)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"to_version": "", "reason": "x"}, "to_version"),
        ({"to_version": "1.0", "reason": ""}, "reason"),
        ({"to_version": "1.0", "reason": None}, "reason"),
        ({"to_version": "1.0", "reason": "x", "deployed_by": 1}, "deployed_by"),
    ],
)
async def test_rollback_refuses_bad_input(
    log: DeploymentLog, backend: Backend, kwargs: dict[str, object], field: str
) -> None:
    bad = await log.record("1.1", "production")
    with pytest.raises(ValidationError) as caught:
        await log.rollback(bad.id, **kwargs)  # type: ignore[arg-type]  # bad on purpose
    assert caught.value.field == field
    await assert_nothing_written(log, backend, 1)
    assert (await log.get(bad.id)).status == "success"


@pytest.mark.parametrize("bad_id", [0, -1, True, "1", 1.0])
async def test_ids_must_be_positive_ints(log: DeploymentLog, bad_id: object) -> None:
    with pytest.raises(ValidationError) as caught:
        await log.get(bad_id)  # type: ignore[arg-type]  # bad on purpose
    assert caught.value.field == "deployment_id"


async def test_mark_failed_refuses_impossible_detection_times(
    log: DeploymentLog, clock: FakeClock
) -> None:
    deployed = await log.record("1.0", "production")
    clock.advance(60)
    with pytest.raises(ValidationError, match="detected_at"):
        await log.mark_failed(deployed.id, detected_at=clock.now() + timedelta(seconds=1))
    with pytest.raises(ValidationError, match="finished_at"):
        await log.mark_failed(deployed.id, detected_at=deployed.finished_at - timedelta(seconds=1))
    assert (await log.get(deployed.id)).status == "success"


async def test_query_arguments_are_checked(log: DeploymentLog) -> None:
    for call in (
        log.history(limit=0),
        log.history(limit=True),
        log.history(""),
        log.latest(""),
        log.metrics("production", at(2), at(1)),
        log.metrics("", at(1), at(2)),
    ):
        with pytest.raises(ValidationError):
            await call


# -- atomicity: the deployment and app_version are written together or not at all ----------


class Injected(Exception):
    pass


async def test_failure_between_the_two_writes_leaves_neither(
    log: DeploymentLog, backend: Backend, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await log.record("1.0", "production")
    clock.advance(60)
    await log.record("1.1", "staging")
    clock.advance(60)
    failed = await log.mark_failed(first.id)
    clock.advance(60)
    before = await log.history()

    async def broken(*args: object, **kwargs: object) -> None:
        raise Injected

    # Whichever the backend, the config write is the second write: break it.
    if backend.kind == "memory":
        monkeypatch.setattr(ConfigStore, "set", broken)
    else:
        monkeypatch.setattr("buttress.deploy._sql._write_app_version", broken)
    with pytest.raises(Injected):
        await log.record("1.2", "production")
    with pytest.raises(Injected):
        await log.rollback(first.id, to_version="0.9", reason="x")
    monkeypatch.undo()

    assert await log.history() == before
    assert await log.get(first.id) == failed  # not restored, not rolled back
    assert await app_version(backend, "production") == "1.0"
    # The log still works, and ids were not burnt in memory.
    again = await log.record("1.2", "production")
    assert await app_version(backend, "production") == "1.2"
    assert (await log.get(first.id)).restored_by == again.id


@pytest.mark.parametrize("sql", ["sqlite", POSTGRES])
async def test_failure_after_the_config_write_rolls_back_both(
    request: pytest.FixtureRequest, sql: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import buttress.deploy._sql as deploy_sql

    dsn = request.getfixturevalue("sqlite_dsn" if sql == "sqlite" else "postgres_dsn")
    async with connect(dsn) as backend:
        log = DeploymentLog(backend, clock=FakeClock(start=START))
        await log.record("1.0", "production")
        original = deploy_sql._write_app_version

        async def then_fail(*args: object, **kwargs: object) -> None:
            await original(*args, **kwargs)  # type: ignore[arg-type]  # forwarded as received
            raise Injected

        monkeypatch.setattr(deploy_sql, "_write_app_version", then_fail)
        with pytest.raises(Injected):
            await log.record("2.0", "production")
        monkeypatch.undo()
        assert [d.version for d in await log.history()] == ["1.0"]
        assert await app_version(backend, "production") == "1.0"
        config = ConfigStore(backend)
        assert len(await config.history(APP_VERSION_KEY, environment="production")) == 1


async def test_memory_failure_in_the_deployment_write_leaves_config_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import buttress.deploy._store as deploy_store

    config = ConfigStore()
    log = DeploymentLog(config=config)

    def broken(*args: object, **kwargs: object) -> list[Deployment]:
        raise Injected

    monkeypatch.setattr(deploy_store, "replaced_by", broken)
    with pytest.raises(Injected):
        await log.record("1.0", "production")
    monkeypatch.undo()
    assert await log.history() == []
    assert await config.get_entry_in(APP_VERSION_KEY, "production") is None


# -- construction ------------------------------------------------------------------------------


async def test_memory_logs_on_one_backend_share_history_and_config() -> None:
    async with connect("memory://") as backend:
        await DeploymentLog(backend).record("3.0", "production")
        assert [d.version for d in await DeploymentLog(backend).history()] == ["3.0"]
        assert await app_version(backend, "production") == "3.0"
    assert await DeploymentLog().history() == []


async def test_the_given_config_store_is_used() -> None:
    config = ConfigStore()
    await DeploymentLog(config=config).record("4.2", "staging")
    assert await config.get_entry_in(APP_VERSION_KEY, "staging") is not None
    assert (await ConfigStore(environment="staging").get(APP_VERSION_KEY)) is None


def test_bad_backends_and_configs_are_refused() -> None:
    with pytest.raises(UnsupportedBackendError, match="DeploymentLog"):
        DeploymentLog(object())  # type: ignore[arg-type]  # bad on purpose
    with pytest.raises(ValidationError, match="config"):
        DeploymentLog(config="production")  # type: ignore[arg-type]  # bad on purpose


async def test_redis_is_refused(redis_dsn: str) -> None:
    async with connect(redis_dsn) as backend:
        with pytest.raises(UnsupportedBackendError, match="not 'redis'"):
            DeploymentLog(backend)


async def test_sql_tables_survive_reopening(sqlite_dsn: str) -> None:
    async with connect(sqlite_dsn) as backend:
        first = await DeploymentLog(backend).record("1.0", "production")
    async with connect(sqlite_dsn) as backend:
        log = DeploymentLog(backend)
        assert await log.get(first.id) == first
        assert await app_version(backend, "production") == "1.0"


def test_repr_names_the_store() -> None:
    assert "MemoryDeploymentStore" in repr(DeploymentLog())


# -- concurrency -----------------------------------------------------------------------------


async def test_concurrent_rollbacks_of_one_deployment_admit_one(
    backend: Backend, clock: FakeClock
) -> None:
    import asyncio

    bad = await DeploymentLog(backend, clock=clock).record("1.1", "production")
    logs = [DeploymentLog(backend, clock=clock) for _ in range(4)]
    results = await asyncio.gather(
        *(log.rollback(bad.id, to_version=f"1.0.{n}", reason="race") for n, log in enumerate(logs)),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, Deployment)]
    assert len(winners) == 1
    assert all(isinstance(r, DeploymentStateError) for r in results if r not in winners)
    history = await logs[0].history("production")
    assert len(history) == 2
    assert history[0].version == winners[0].rollback_to
    assert await app_version(backend, "production") == winners[0].rollback_to


async def test_concurrent_records_keep_log_and_config_in_step(
    backend: Backend, clock: FakeClock
) -> None:
    import asyncio

    logs = [DeploymentLog(backend, clock=clock) for _ in range(3)]
    recorded = await asyncio.gather(
        *(log.record(f"2.{n}", "production") for n, log in enumerate(logs * 2))
    )
    assert len({d.id for d in recorded}) == 6
    newest = max(recorded, key=lambda d: d.id)
    assert await app_version(backend, "production") == newest.version
    changes = await ConfigStore(backend).history(APP_VERSION_KEY, environment="production")
    assert [c.version for c in changes] == [6, 5, 4, 3, 2, 1]
    assert [c.new_value for c in changes] == [
        d.version for d in sorted(recorded, key=lambda d: d.id, reverse=True)
    ]


@pytest.mark.postgres
async def test_record_notifies_config_listeners_on_postgresql(postgres_dsn: str) -> None:
    import asyncio

    from buttress.backends import PostgresBackend

    async with connect(postgres_dsn) as backend:
        assert isinstance(backend, PostgresBackend)
        log = DeploymentLog(backend)
        await log.record("1.0", "production")  # creates the tables
        received: asyncio.Queue[str] = asyncio.Queue()
        async with backend.pool.acquire() as conn:

            def on_notify(*args: object) -> None:
                received.put_nowait(str(args[-1]))

            await conn.add_listener("buttress_config", on_notify)
            try:
                await log.record("1.1", "production")
                assert await asyncio.wait_for(received.get(), timeout=5) == APP_VERSION_KEY
            finally:
                await conn.remove_listener("buttress_config", on_notify)


@pytest.mark.parametrize("sql", ["sqlite", POSTGRES])
async def test_a_caching_config_store_sees_the_new_version(
    request: pytest.FixtureRequest, sql: str
) -> None:
    import asyncio

    dsn = request.getfixturevalue("sqlite_dsn" if sql == "sqlite" else "postgres_dsn")
    clock = FakeClock(start=START)
    async with connect(dsn) as backend:
        log = DeploymentLog(backend, clock=clock)
        await log.record("1.0", "production")
        async with ConfigStore(backend, environment="production", clock=clock) as cached:
            assert await cached.get(APP_VERSION_KEY) == "1.0"
            await log.record("1.1", "production")
            if sql == "sqlite":
                clock.advance(2)  # past refresh_interval: the moved change counter is seen
                assert await cached.get(APP_VERSION_KEY) == "1.1"
            else:  # NOTIFY drops the cached row without the clock moving
                for _ in range(100):
                    if await cached.get(APP_VERSION_KEY) == "1.1":
                        break
                    await asyncio.sleep(0.05)
                assert await cached.get(APP_VERSION_KEY) == "1.1"


async def test_a_failure_marked_while_the_next_deployment_lands_is_restored(
    backend: Backend, clock: FakeClock
) -> None:
    import asyncio

    first, second = DeploymentLog(backend, clock=clock), DeploymentLog(backend, clock=clock)
    bad = await first.record("1.1", "production")
    clock.advance(60)
    failed, nxt = await asyncio.gather(
        first.mark_failed(bad.id), second.record("1.2", "production")
    )
    # Whichever committed first, the failure ends up restored by the next deployment.
    final = await first.get(bad.id)
    assert (final.status, final.restored_by, final.restored_at) == (
        "failed",
        nxt.id,
        nxt.finished_at,
    )
    assert failed.status == "failed"


async def test_commit_lineage_previous_sha_and_rollbacks(
    log: DeploymentLog, clock: FakeClock
) -> None:
    first = await log.record("1.0", "production", commit_sha="aaa1111")
    await log.record("9.0", "staging", commit_sha="fff9999")
    clock.advance(60)
    second = await log.record("1.1", "production", commit_sha="bbb2222")
    assert (first.previous_sha, second.previous_sha) == (None, "aaa1111")
    clock.advance(60)
    rolled = await log.rollback(second.id, to_version="1.0", reason="x")
    assert rolled.restored_by is not None
    rollback = await log.get(rolled.restored_by)
    # The rollback redeploys 1.0's build: it carries 1.0's commit, and what ran before.
    assert (rollback.commit_sha, rollback.previous_sha) == ("aaa1111", "bbb2222")
    clock.advance(60)
    third = await log.record("1.2", "production")
    assert (third.commit_sha, third.previous_sha) == (None, "aaa1111")
    unknown = await log.rollback(third.id, to_version="0.1", reason="y")
    assert unknown.restored_by is not None
    assert (await log.get(unknown.restored_by)).commit_sha is None


async def test_times_come_back_in_utc(log: DeploymentLog, clock: FakeClock) -> None:
    from datetime import timezone

    plus_two = timezone(timedelta(hours=2))
    committed = (clock.now() - timedelta(hours=1)).astimezone(plus_two)
    recorded = await log.record("1.0", "production", committed_at=committed)
    stored = await log.get(recorded.id)
    assert stored.committed_at == committed
    assert stored.committed_at is not None
    assert stored.committed_at.utcoffset() == timedelta(0)
    assert stored == recorded
