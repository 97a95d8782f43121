"""``ConfigStore`` on the memory store: JSON rules, environments, typed reads, history."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from buttress.backends import MemoryBackend
from buttress.config import (
    ConfigChange,
    ConfigConflictError,
    ConfigEntry,
    ConfigMissingError,
    ConfigStore,
    ConfigTypeError,
    EnvSetting,
    MemoryConfigStore,
    Setting,
)
from buttress.config._store import EntryEdit, EntryValue
from buttress.config._values import JSONValue
from buttress.errors import UnsupportedBackendError, ValidationError
from buttress.testing import FakeClock

json_values: st.SearchStrategy[JSONValue] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"])),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(st.characters(exclude_categories=["Cs"]), max_size=8), children, max_size=4
        )
    ),
    max_leaves=12,
)


def same_json(a: object, b: object) -> bool:
    """Equal including types (1 vs 1.0 vs True) and -0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and isinstance(b, float):
        return math.copysign(1, a) == math.copysign(1, b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    return a == b


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
async def test_any_json_value_round_trips_exactly(value: JSONValue) -> None:
    config = ConfigStore()
    await config.set("k", value)
    assert same_json(await config.get("k"), value)


async def test_stored_values_are_copies() -> None:
    config = ConfigStore()
    value: list[JSONValue] = [1, {"a": 2}]
    await config.set("k", value)
    value.append(3)
    got = await config.get("k")
    assert got == [1, {"a": 2}]
    assert isinstance(got, list)
    got.append(4)
    assert await config.get("k") == [1, {"a": 2}]


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ({1, 2}, "set is not JSON"),
        ((1, 2), "tuple is not JSON"),
        (object(), "object is not JSON"),
        (math.nan, "finite"),
        (math.inf, "finite"),
        ([1, -math.inf], "finite"),
        ({"a": {1: "x"}}, "int key"),
        ("\ud800", "Unicode"),
        (b"bytes", "bytes is not JSON"),
    ],
)
async def test_non_json_is_refused_before_anything_is_written(value: object, rule: str) -> None:
    store = MemoryConfigStore()
    config = ConfigStore(store)
    with pytest.raises(ValidationError, match=rule) as info:
        await config.set("k", value)
    assert info.value.field.startswith("value")
    assert await store.fetch_all(None) == []
    assert await config.history("k") == []


async def test_a_store_records_each_edit_with_what_it_replaced() -> None:
    store = MemoryConfigStore()
    at = datetime(2024, 1, 1, tzinfo=UTC)
    secret = EntryValue('"s3cret"', sensitive=True)
    assert "s3cret" not in repr(secret)
    created = await store.write(EntryEdit("k", "all", "ann", "new", at, expected_version=0), secret)
    updated = await store.write(EntryEdit("k", "all", "bob", None, at), EntryValue("1"))
    assert (created.action, created.version, updated.action, updated.version) == (
        "create", 1, "update", 2,
    )  # fmt: skip
    assert updated.sensitive  # it replaced a secret, so the change stays one
    with pytest.raises(ConfigConflictError):
        await store.remove(EntryEdit("k", "all", None, None, at, expected_version=1))
    removed = await store.remove(EntryEdit("k", "all", "cy", "gone", at, expected_version=2))
    assert removed is not None
    assert (removed.action, removed.version, removed.old_json, removed.new_json) == (
        "delete", 3, "1", None,
    )  # fmt: skip
    assert await store.remove(EntryEdit("k", "all", None, None, at)) is None


async def test_bad_keys_and_environments_are_refused() -> None:
    config = ConfigStore()
    with pytest.raises(ValidationError, match="key: must not be empty"):
        await config.set("", 1)
    with pytest.raises(ValidationError, match="environment"):
        await config.set("k", 1, environment="Prod uction")
    with pytest.raises(ValidationError, match="environment"):
        ConfigStore(environment="")
    with pytest.raises(ValidationError, match="expected_version"):
        await config.set("k", 1, expected_version=-1)


async def test_environment_entry_wins_over_all() -> None:
    backend = MemoryBackend()
    writer = ConfigStore(backend)
    await writer.set("limit", 10)
    await writer.set("limit", 50, environment="production")
    await writer.set("only_staging", True, environment="staging")
    production = ConfigStore(backend, environment="production")
    staging = ConfigStore(backend, environment="staging")
    assert await writer.get("limit") == 10
    assert await production.get("limit") == 50
    assert await staging.get("limit") == 10
    assert await writer.get("only_staging") is None  # an "all" store reads "all" only
    assert await staging.get("only_staging") is True
    entry = await production.get_entry("limit")
    assert entry is not None
    assert entry.environment == "production"


environments = st.sampled_from(["all", "development", "staging", "production"])


@settings(max_examples=40)
@given(st.lists(st.tuples(st.sampled_from("abc"), environments, st.integers()), max_size=12))
async def test_environment_views_and_filters(writes: list[tuple[str, str, int]]) -> None:
    store = MemoryConfigStore()
    writer = ConfigStore(store)
    expected: dict[tuple[str, str], int] = {}
    for key, environment, value in writes:
        await writer.set(key, value, environment=environment)
        expected[key, environment] = value
    for view in ("all", "development", "staging", "production"):
        reader = ConfigStore(store, environment=view)
        for key in "abc":
            want = expected.get((key, view), expected.get((key, "all")))
            assert await reader.get(key) == want
        listed = await writer.list(view)
        allowed = {view, "all"}
        assert {(e.key, e.environment) for e in listed} == {k for k in expected if k[1] in allowed}
    assert len(await writer.list()) == len(expected)


async def test_typed_reads() -> None:
    config = ConfigStore()
    await config.set("n", 5)
    await config.set("flag", True)
    await config.set("ratio", 2)
    await config.set("names", ["a", "b"])
    assert await config.get("n", 0, type=int) == 5
    assert await config.get("missing", 7, type=int) == 7
    ratio = await config.get("ratio", 0.0, type=float)
    assert ratio == 2.0
    assert isinstance(ratio, float)
    assert await config.get("names", [], type=list[str]) == ["a", "b"]
    with pytest.raises(ConfigTypeError, match=r"config 'flag': expected int, found bool"):
        await config.get("flag", 0, type=int)
    with pytest.raises(ConfigTypeError, match=r"'names': expected int at \[0\], found str"):
        await config.get("names", [], type=list[int])
    with pytest.raises(ConfigTypeError, match="expected bool, found int"):
        await config.get("n", False, type=bool)


@attrs.frozen
class Limits:
    max_upload_mb: int
    mode: Literal["strict", "lenient"] = "strict"
    tags: list[str] = attrs.field(factory=list)


async def test_attrs_classes_are_stored_and_read_back() -> None:
    config = ConfigStore()
    await config.set("limits", Limits(10, tags=["x"]))
    assert await config.get("limits") == {"max_upload_mb": 10, "mode": "strict", "tags": ["x"]}
    assert await config.get("limits", None, type=Limits) == Limits(10, tags=["x"])
    await config.set("limits", {"max_upload_mb": 1, "mode": "loose"})
    with pytest.raises(ConfigTypeError, match=r"expected Literal\['strict', 'lenient'\] at mode"):
        await config.get("limits", None, type=Limits)
    await config.set("limits", {"mode": "strict"})
    with pytest.raises(ConfigTypeError, match="missing field 'max_upload_mb'"):
        await config.get("limits", None, type=Limits)
    await config.set("limits", {"max_upload_mb": 1, "colour": "red"})
    with pytest.raises(ConfigTypeError, match="unknown field 'colour'"):
        await config.get("limits", None, type=Limits)


MAX_UPLOAD_MB = Setting[int]("max_upload_mb", default=50)
API_KEY = Setting[str]("api_key", sensitive=True)
TAGS = Setting("tags", type=list[str], default=[])


async def test_settings_give_typed_access_and_report_missing_keys() -> None:
    config = ConfigStore()
    assert await config.read(MAX_UPLOAD_MB) == 50
    await config.set("max_upload_mb", 80)
    assert await config.read(MAX_UPLOAD_MB) == 80
    assert await config.read(TAGS) == []
    assert await config.missing(MAX_UPLOAD_MB, API_KEY, TAGS) == ["api_key"]
    with pytest.raises(ConfigMissingError, match="'api_key' is not set"):
        await config.read(API_KEY)
    await config.set("max_upload_mb", "eighty")
    with pytest.raises(ConfigTypeError, match="'max_upload_mb': expected int, found str"):
        await config.read(MAX_UPLOAD_MB)
    assert repr(MAX_UPLOAD_MB) == "Setting[int]('max_upload_mb', default=50)"


def test_setting_and_env_setting_declare_alike() -> None:
    # The type comes from the subscript, else type=, else the kind's own fallback.
    assert Setting[int]("n").type is int
    assert Setting("n", type=float).type is float
    assert Setting("n").type is Any
    assert EnvSetting("N").type is str
    assert EnvSetting("N", type=int).type is int
    # A sensitive default is masked in repr; MISSING says there is none.
    secret = Setting[str]("token", default="zqsecret", sensitive=True)
    assert repr(secret) == "Setting[str]('token', default='***')"
    assert repr(EnvSetting[str]("TOKEN", default="zqsecret", sensitive=True)) == (
        "EnvSetting[str]('TOKEN', default='***')"
    )
    assert repr(Setting[int]("n")) == "Setting[int]('n', default=MISSING)"
    declared = EnvSetting[int]("PORT", default=1, description="the port")
    assert (declared.default, declared.description, declared.sensitive) == (1, "the port", False)


async def test_a_bad_default_is_reported() -> None:
    bad = Setting[int]("n", default="x")  # type: ignore[arg-type]  # the mistake under test
    with pytest.raises(ConfigTypeError, match="expected int at default"):
        await ConfigStore().read(bad)


async def test_unparseable_stored_value_reads_as_default_and_is_logged_without_value() -> None:
    store = MemoryConfigStore()
    config = ConfigStore(store)
    await config.set("k", "fine")
    store.corrupt("k", "all", '{"half": "open SECRET-TEXT')
    with capture_logs() as logs:
        assert await config.get("k", "dflt") == "dflt"
    assert [e["event"] for e in logs] == ["config.invalid_value"]
    assert "SECRET-TEXT" not in repr(logs)
    store.corrupt("k", "all", "NaN")
    assert await config.get("k", 3) == 3


async def test_history_who_when_why_old_new_and_revert() -> None:
    clock = FakeClock()
    config = ConfigStore(clock=clock)
    await config.set("limit", 10, updated_by="ann", reason="initial")
    clock.advance(5)
    await config.set("limit", 20, updated_by="bob", reason="traffic")
    clock.advance(5)
    await config.delete("limit", updated_by="cy", reason="cleanup")
    history = await config.history("limit")
    assert [
        (c.version, c.action, c.changed_by, c.reason, c.old_value, c.new_value) for c in history
    ] == [
        (3, "delete", "cy", "cleanup", 20, None),
        (2, "update", "bob", "traffic", 10, 20),
        (1, "create", "ann", "initial", None, 10),
    ]
    assert history[0].changed_at - history[2].changed_at == timedelta(seconds=10)
    restored = await config.revert("limit", 1, updated_by="dee")
    assert restored is not None
    assert (restored.value, restored.version, restored.updated_by) == (10, 4, "dee")
    latest = (await config.history("limit", limit=1))[0]
    assert (latest.action, latest.reason, latest.old_value, latest.new_value) == (
        "revert",
        "revert to version 1",
        None,
        10,
    )
    assert await config.revert("limit", 3) is None  # version 3 was a deletion
    assert await config.get("limit") is None
    with pytest.raises(ValidationError, match="no version 99"):
        await config.revert("limit", 99)


async def test_expected_version_is_optimistic_concurrency() -> None:
    config = ConfigStore()
    first = await config.set("k", 1, expected_version=0)
    assert first.version == 1
    with pytest.raises(ConfigConflictError, match="expected version 0, found 1") as info:
        await config.set("k", 2, expected_version=0)
    assert (info.value.expected, info.value.actual) == (0, 1)
    await config.set("k", 2, expected_version=1)
    with pytest.raises(ConfigConflictError):
        await config.set("k", 3, expected_version=1)
    with pytest.raises(ConfigConflictError):
        await config.delete("k", expected_version=1)
    assert await config.get("k") == 2
    await config.set("k", 4)  # plain set: last writer wins
    assert await config.get("k") == 4


async def test_maintenance_mode_per_environment() -> None:
    backend = MemoryBackend()
    everywhere = ConfigStore(backend)
    production = ConfigStore(backend, environment="production")
    assert not await production.is_maintenance_mode()
    await everywhere.set_maintenance_mode(True, updated_by="ops")
    assert await production.is_maintenance_mode()
    await production.set_maintenance_mode(False)
    assert not await production.is_maintenance_mode()
    assert await everywhere.is_maintenance_mode()
    with pytest.raises(ValidationError, match="enabled"):
        await everywhere.set_maintenance_mode("yes")  # type: ignore[arg-type]  # bad input on purpose


async def test_entries_and_changes_have_audit_fields() -> None:
    clock = FakeClock()
    config = ConfigStore(clock=clock)
    entry = await config.set("k", 1, updated_by="ann", description="the k")
    assert entry == ConfigEntry("k", 1, "all", False, "the k", clock.now(), "ann", 1)
    assert await config.get_entry("k") == entry
    [change] = await config.history("k")
    assert isinstance(change, ConfigChange)
    assert change.changed_at == clock.now()


def test_redis_backend_is_refused() -> None:
    class RedisLike(MemoryBackend):
        kind = "redis"  # type: ignore[assignment]  # a RedisBackend stand-in, no server needed

    with pytest.raises(UnsupportedBackendError, match="not 'redis'"):
        ConfigStore(RedisLike())


async def test_started_memory_store_needs_no_cache_and_stays_consistent() -> None:
    store = MemoryConfigStore()
    async with ConfigStore(store) as one:
        other = ConfigStore(store)
        await other.set("k", 1)
        assert await one.get("k") == 1
        await other.set("k", 2)
        assert await one.get("k") == 2


@pytest.mark.parametrize("interval", [0, -1, True, "1"])
def test_refresh_interval_is_validated(interval: object) -> None:
    with pytest.raises(ValidationError, match="refresh_interval"):
        ConfigStore(refresh_interval=interval)  # type: ignore[arg-type]  # bad input on purpose
