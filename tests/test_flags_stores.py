"""``FeatureFlags`` on every store: conformance, durability, history, polling, push."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from buttress import connect
from buttress.backends import Backend, require_sql
from buttress.errors import ValidationError
from buttress.flags import Condition, FeatureFlags, Flag, FlagContext, Reason, Rule
from buttress.testing import FakeClock


async def test_flags_and_history_persist(sql_dsn: str) -> None:
    clock = FakeClock()
    async with (
        connect(sql_dsn) as backend,
        FeatureFlags(backend, clock=clock, refresh_interval=None) as flags,
    ):
        await flags.upsert(
            Flag("a", "A", enabled=True, users={"u1"}, enable_at=clock.now()),
            updated_by="ann",
            reason="first",
        )
        clock.advance(10)
        await flags.update("a", percentage=25.5, updated_by="bob")
        await flags.upsert(Flag("b", "B"))
        assert await flags.delete("b", reason="unused")
        assert not await flags.delete("b")
    async with (
        connect(sql_dsn) as backend,
        FeatureFlags(backend, clock=clock, refresh_interval=None) as flags,
    ):
        stored = await flags.get("a")
        start = clock.now() - timedelta(seconds=10)
        assert stored == Flag(
            "a", "A", enabled=True, users={"u1"}, percentage=25.5, enable_at=start
        )
        assert flags.is_enabled("a", FlagContext("u1"))
        assert [f.key for f in await flags.list()] == ["a"]
        history = await flags.history("a")
        assert [(c.version, c.action, c.changed_by, c.reason) for c in history] == [
            (2, "update", "bob", None),
            (1, "create", "ann", "first"),
        ]
        assert history[0].changed_at - history[1].changed_at == timedelta(seconds=10)
        assert history[0].old is not None
        assert history[0].old.percentage == 0
        deleted, created = await flags.history("b")
        assert (deleted.version, deleted.action, deleted.new) == (2, "delete", None)
        assert (created.version, created.action, created.old) == (1, "create", None)


async def test_sqlite_instances_see_changes_by_polling(sqlite_dsn: str) -> None:
    async with (
        connect(sqlite_dsn) as one_backend,
        connect(sqlite_dsn) as two_backend,
        FeatureFlags(one_backend, refresh_interval=None) as one,
        FeatureFlags(two_backend, refresh_interval=0.05) as two,
    ):
        await one.upsert(Flag("a", "A", enabled=True))
        await _wait_for(two, lambda: two.is_enabled("a"), within=5)


@pytest.mark.postgres
async def test_postgres_changes_reach_another_instance_by_push(postgres_dsn: str) -> None:
    # Neither instance polls, so only the LISTEN/NOTIFY push can bring each change;
    # benchmarks/flags.py prints how fast (median and p99).
    async with (
        connect(postgres_dsn) as one_backend,
        connect(postgres_dsn) as two_backend,
        FeatureFlags(one_backend, refresh_interval=None) as one,
        FeatureFlags(two_backend, refresh_interval=None) as two,  # push only, no polling
    ):
        await one.upsert(Flag("a", "A", enabled=False))
        await _wait_for(two, lambda: "a" in two.snapshot)
        for round_ in range(10):
            want = round_ % 2 == 0
            await one.update("a", enabled=want)

            def seen(want: bool = want) -> bool:
                return two.is_enabled("a") is want

            await _wait_for(two, seen)


@pytest.mark.postgres
async def test_postgres_listener_reconnects_and_reloads(postgres_dsn: str) -> None:
    async with (
        connect(postgres_dsn) as one_backend,
        connect(postgres_dsn) as two_backend,
        FeatureFlags(one_backend, refresh_interval=None) as one,
        FeatureFlags(two_backend, refresh_interval=None) as two,
    ):
        await one.upsert(Flag("a", "A", enabled=True))
        await _wait_for(two, lambda: two.is_enabled("a"))
        # Cut every other connection (the listener's included), then change a flag.
        await require_sql(one_backend, "test").execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        await one.upsert(Flag("b", "B", enabled=True))
        await _wait_for(two, lambda: two.is_enabled("b"), within=5)
        assert two.is_enabled("a")


async def test_closed_database_keeps_the_last_snapshot(sql_dsn: str) -> None:
    backend = await connect(sql_dsn)
    flags = FeatureFlags(backend, refresh_interval=None)
    await flags.start()
    await flags.upsert(Flag("a", "A", enabled=True, percentage=100))
    await backend.close()
    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever the driver raises
        await flags.refresh()
    assert flags.stale
    assert flags.is_enabled("a", FlagContext("anyone"))
    await flags.stop()


async def _wait_for(
    flags: FeatureFlags, predicate: Callable[[], bool], within: float = 10.0
) -> None:
    """Wait until ``predicate()`` holds, woken by ``flags``' snapshot changes
    (``within`` guards against a hang; it is no performance bound)."""
    changed = asyncio.Event()
    unsubscribe = flags.on_change(lambda _keys: changed.set())
    try:
        async with asyncio.timeout(within):
            while not predicate():
                await changed.wait()
                changed.clear()
    except TimeoutError:
        pytest.fail(f"no snapshot change made the condition true within {within} s")
    finally:
        unsubscribe()


async def test_store_conformance(backend: Backend) -> None:
    """The same behaviour from every store: CRUD, history order, change tokens, loading."""
    clock = FakeClock()
    async with FeatureFlags(backend, clock=clock, refresh_interval=None) as writer:
        assert await writer.list() == []
        assert await writer.get("a") is None
        assert await writer.history("a") == []
        assert not await writer.delete("a")
        first = Flag("a", "A", description="d", enabled=True, roles={"r1", "r2"}, percentage=0.01)
        await writer.upsert(first, updated_by="ann")
        clock.advance(1)
        second = await writer.update("a", disable_at=clock.now() + timedelta(days=1))
        await writer.upsert(Flag("b", "B"))
        assert await writer.get("a") == second
        assert [f.key for f in await writer.list()] == ["a", "b"]
        assert [(c.version, c.action) for c in await writer.history("a")] == [
            (2, "update"),
            (1, "create"),
        ]
        [latest] = await writer.history("a", limit=1)
        assert (latest.old, latest.new) == (first, second)
        assert latest.changed_at == clock.now()
    async with FeatureFlags(backend, clock=clock, refresh_interval=None) as reader:
        assert reader.snapshot == {"a": second, "b": Flag("b", "B")}
        assert reader.is_enabled("a", FlagContext(role="r2"))
        assert await reader.delete("b")
        assert await reader.get("b") is None


async def test_revert_on_every_store(backend: Backend) -> None:
    flags = FeatureFlags(backend, refresh_interval=None)
    await flags.upsert(Flag("rev", "Rev", enabled=False, roles=("staff",)), updated_by="ann")
    await flags.update("rev", enabled=True, roles=(), updated_by="bob")
    restored = await flags.revert("rev", 1, updated_by="cy")
    assert restored is not None
    assert (restored.enabled, restored.roles) == (False, frozenset({"staff"}))
    assert await flags.get("rev") == restored
    latest = (await flags.history("rev", limit=1))[0]
    assert (latest.version, latest.changed_by, latest.reason) == (3, "cy", "revert to version 1")


def _targeted_flag() -> Flag:
    return Flag(
        "checkout",
        "Checkout",
        enabled=True,
        enable_at=datetime(2024, 1, 1, tzinfo=UTC),
        variants={"control": {"layout": "old", "steps": [1, 2]}, "bold": "BOLD", "n": 0.5},
        default_variant="control",
        rules=[
            Rule(
                [
                    Condition("app_version", "semver_gte", "2.1.0-rc.1"),
                    Condition("email", "matches", r"@acme\.com$", negate=True),
                    Condition("country", "in", ["FR", "DE", 1, True]),
                ],
                variant="bold",
            ),
            Rule([Condition("age", "gt", 17.5)], split={"bold": 25, "n": 25, "control": 50}),
        ],
        split={"n": 10, "control": 90},
        metadata={"owner": "growth", "ticket": 42, "ratio": 0.1, "beta": True},
    )


async def test_targeting_round_trips_on_every_store(backend: Backend) -> None:
    """Every new field survives the store exactly: get, list, history, a fresh snapshot."""
    flag = _targeted_flag()
    async with FeatureFlags(backend, refresh_interval=None) as writer:
        await writer.upsert(flag, updated_by="ann")
        changed = await writer.update("checkout", split=(("control", 90), ("n", 10)))
        assert await writer.get("checkout") == changed
        assert await writer.list() == [changed]
        [latest, first] = await writer.history("checkout")
        assert (latest.old, latest.new, first.new) == (flag, changed, flag)
    async with FeatureFlags(backend, refresh_interval=None) as reader:
        stored = reader.snapshot["checkout"]
        assert stored == changed
        assert stored.split == (("control", 90.0), ("n", 10.0))  # order kept, not sorted
        attributes = {"app_version": "2.1.0", "country": "FR", "email": "bo@example.org"}
        context = FlagContext("u1", attributes=attributes)
        assert reader.get_string("checkout", "?", context) == "BOLD"
        assert reader.evaluate("checkout", context).reason is Reason.RULE_MATCH


async def _store_row(backend: Backend, key: str, data: Mapping[str, object]) -> None:
    """Write a flag's row as an earlier release did, past FeatureFlags' checks."""
    sql = require_sql(backend, "test")
    await sql.execute(
        sql.dialect.placeholders(
            "INSERT INTO buttress_flags (key, data, version, updated_at, updated_by) "
            "VALUES (?, ?, 1, ?, NULL)"
        ),
        key,
        json.dumps(data, sort_keys=True),
        sql.dialect.to_db_time(datetime(2024, 1, 1, tzinfo=UTC)),
    )


async def test_a_row_written_before_targeting_existed_loads_unchanged(sql_dsn: str) -> None:
    old = {
        "key": "legacy", "name": "Legacy", "description": None, "enabled": True,
        "users": ["u1"], "roles": ["staff"], "percentage": 12.5,
        "enable_at": None, "disable_at": None,
    }  # fmt: skip
    async with connect(sql_dsn) as backend:
        await _store_row(backend, "legacy", old)
        async with FeatureFlags(backend, refresh_interval=None) as flags:
            assert flags.snapshot["legacy"] == Flag(
                "legacy", "Legacy", enabled=True, users={"u1"}, roles={"staff"}, percentage=12.5
            )
            assert flags.snapshot["legacy"].to_dict() == old


@pytest.mark.postgres
async def test_postgres_pushes_a_variant_change_to_another_instance(postgres_dsn: str) -> None:
    async with (
        connect(postgres_dsn) as one_backend,
        connect(postgres_dsn) as two_backend,
        FeatureFlags(one_backend, refresh_interval=None) as one,
        FeatureFlags(two_backend, refresh_interval=None) as two,  # push only
    ):
        await one.upsert(_targeted_flag())
        await _wait_for(two, lambda: "checkout" in two.snapshot)
        await one.update("checkout", default_variant="bold")
        await _wait_for(two, lambda: two.get_string("checkout", "?") == "BOLD")


async def test_a_row_with_a_pattern_refused_today_loads_and_is_served(sql_dsn: str) -> None:
    """A ``matches`` pattern an earlier release stored, now refused as catastrophic:
    the flag loads (its condition never matches, a warning is logged), reads back
    whole, and cannot be written again until the rule is fixed."""
    rule = {"attribute": "v", "operator": "matches", "value": "(a+)+$"}
    old = {"key": "redos", "name": "ReDoS", "description": None, "enabled": True,
           "users": [], "roles": [], "percentage": 0.0, "enable_at": None,
           "disable_at": None, "rules": [{"when": [rule]}], "default_variant": "off"}  # fmt: skip
    async with connect(sql_dsn) as backend:
        await _store_row(backend, "redos", old)
        with capture_logs() as logs:
            async with FeatureFlags(backend, refresh_interval=None) as flags:
                context = FlagContext(attributes={"v": "a" * 27 + "!"})
                assert flags.evaluate("redos", context).reason is Reason.DEFAULT
                stored = await flags.get("redos")
                assert stored is not None
                assert stored.to_dict() == old
                assert [field for field, _rule in stored.problems] == ["rules[0].when[0].value"]
                with pytest.raises(ValidationError, match=r"rules\[0\]\.when\[0\]\.value"):
                    await flags.update("redos", enabled=False)
        assert [(e["event"], e["key"]) for e in logs if e["log_level"] == "warning"] == [
            ("flags.stored_flag_refused", "redos")
        ]
