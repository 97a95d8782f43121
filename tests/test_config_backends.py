"""``ConfigStore`` conformance on every backend it supports: memory, SQLite, PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buttress import connect
from buttress.backends import Backend
from buttress.config import ConfigConflictError, ConfigStore
from buttress.config._values import JSONValue
from buttress.testing import FakeClock

text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
json_values: st.SearchStrategy[JSONValue] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=10,
)


def same_json(a: object, b: object) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    return a == b


_keys = itertools.count()


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(value=json_values)
async def test_any_json_round_trips_exactly(backend: Backend, value: JSONValue) -> None:
    config = ConfigStore(backend)
    key = f"k{next(_keys)}"
    await config.set(key, value)
    assert same_json(await config.get(key), value)


async def test_environments_history_revert_and_versions(backend: Backend) -> None:
    clock = FakeClock()
    writer = ConfigStore(backend, clock=clock)
    production = ConfigStore(backend, environment="production", clock=clock)
    await writer.set("limit", 10, updated_by="ann", description="requests per second")
    await writer.set("limit", 50, environment="production", reason="big customers")
    assert await writer.get("limit") == 10
    assert await production.get("limit") == 50
    assert [(e.key, e.environment) for e in await writer.list("production")] == [
        ("limit", "all"),
        ("limit", "production"),
    ]
    assert [(e.key, e.environment) for e in await writer.list("staging")] == [("limit", "all")]
    clock.advance(1)
    await writer.set("limit", 20, expected_version=1, updated_by="bob")
    with pytest.raises(ConfigConflictError):
        await writer.set("limit", 30, expected_version=1)
    entry = await writer.get_entry("limit")
    assert entry is not None
    assert (entry.value, entry.version, entry.updated_by, entry.description) == (20, 2, "bob", None)
    assert entry.updated_at == clock.now()
    reverted = await writer.revert("limit", 1, updated_by="cy")
    assert reverted is not None
    assert (reverted.value, reverted.version) == (10, 3)
    history = await writer.history("limit")
    assert [(c.version, c.action, c.old_value, c.new_value) for c in history] == [
        (3, "revert", 20, 10),
        (2, "update", 10, 20),
        (1, "create", None, 10),
    ]
    assert await production.delete("limit", environment="production")
    assert await production.get("limit") == 10
    assert not await production.delete("limit", environment="production")


async def test_maintenance_mode(backend: Backend) -> None:
    config = ConfigStore(backend, environment="staging")
    assert not await config.is_maintenance_mode()
    await config.set_maintenance_mode(True, updated_by="ops")
    assert await config.is_maintenance_mode()
    assert not await ConfigStore(backend, environment="production").is_maintenance_mode()


async def test_sensitive_entries_are_masked_on_every_backend(backend: Backend) -> None:
    config = ConfigStore(backend)
    await config.set("db_password", "s3cr3t-value-xyz", sensitive=True)
    assert await config.get("db_password") == "s3cr3t-value-xyz"
    [listed] = await config.list()
    assert listed.value == "***"
    [change] = await config.history("db_password")
    assert change.new_value == "***"
    assert "s3cr3t-value-xyz" not in repr([listed, change, await config.get_entry("db_password")])


async def test_started_sqlite_store_caches_and_polls_the_change_counter(sqlite_dsn: str) -> None:
    clock = FakeClock()
    async with (
        connect(sqlite_dsn) as writer_backend,
        connect(sqlite_dsn) as reader_backend,
    ):
        writer = ConfigStore(writer_backend)
        await writer.set("limit", 1)
        async with ConfigStore(reader_backend, clock=clock, refresh_interval=5) as reader:
            assert await reader.get("limit") == 1
            await writer.set("limit", 2)
            assert await reader.get("limit") == 1  # served from the cache
            clock.advance(5)
            assert await reader.get("limit") == 2  # the counter moved: cache dropped
            await reader.set("limit", 3)
            assert await reader.get("limit") == 3  # own writes invalidate at once
        assert await ConfigStore(reader_backend).get("limit") == 3


@pytest.mark.postgres
async def test_postgres_notify_invalidates_other_instances_caches(postgres_dsn: str) -> None:
    frozen = FakeClock()  # never advances: only a notification can refresh the cache
    async with (
        connect(postgres_dsn) as writer_backend,
        connect(postgres_dsn) as reader_backend,
        ConfigStore(writer_backend) as writer,
        ConfigStore(reader_backend, clock=frozen, environment="production") as reader,
    ):
        await writer.set("limit", 1)
        for value in (2, 3, 4):
            await writer.set("limit", value, environment="production")
            # The clock never moves, so only the notification can bring the value;
            # 10 s only guards against a hang (benchmarks/concurrency.py times it).
            try:
                async with asyncio.timeout(10):
                    while await reader.get("limit") != value:  # noqa: ASYNC110 - reads are under test
                        await asyncio.sleep(0.005)
            except TimeoutError:
                pytest.fail(f"the change to {value} never reached the other instance")
