"""``ButtressProvider``: outcome mapping, strict types, context mapping, provider events."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

pytest.importorskip("openfeature")  # the openfeature extra

from of_conformance.world import SwitchableStore
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent, ProviderEventDetails
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails, Reason
from openfeature.provider import ProviderStatus

from buttress import connect
from buttress.adapters.openfeature import ButtressProvider, to_flag_context
from buttress.config import ConfigStore
from buttress.errors import BackendUnavailableError, ValidationError
from buttress.flags import Condition, FeatureFlags, Flag, FlagContext, Rule, bucket
from buttress.testing import FakeClock

DOMAIN = "buttress-provider-tests"


@pytest.fixture(autouse=True)
def _clean_api() -> Iterator[None]:
    yield
    api.clear_providers()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def flags(clock: FakeClock) -> FeatureFlags:
    flags = FeatureFlags(clock=clock, refresh_interval=None)
    await flags.start()
    return flags


@pytest.fixture
def config() -> ConfigStore:
    return ConfigStore()


@pytest.fixture
def provider(flags: FeatureFlags, config: ConfigStore, clock: FakeClock) -> ButtressProvider:
    return ButtressProvider(flags, config=config, clock=clock, config_interval=None)


def _client(provider: ButtressProvider) -> OpenFeatureClient:
    api.set_provider_and_wait(provider, domain=DOMAIN)
    return api.get_client(DOMAIN)


def _user(user_id: str, **attributes: str) -> EvaluationContext:
    return EvaluationContext(targeting_key=user_id, attributes=attributes)


class Recorder:
    """Collects events; the SDK runs handlers on its own thread pool, so readers wait."""

    def __init__(self) -> None:
        self.events: list[EventDetails] = []
        self._ready = threading.Condition()

    def __call__(self, details: EventDetails) -> None:
        with self._ready:
            self.events.append(details)
            self._ready.notify_all()

    def wait_for(self, count: int) -> list[EventDetails]:
        with self._ready:
            # A bound on a thread hand-off, not a timing window: normally instant.
            assert self._ready.wait_for(lambda: len(self.events) >= count, timeout=5)
            return list(self.events)


# -- boolean outcomes -------------------------------------------------------------------------


async def test_plain_flag_on_is_static(flags: FeatureFlags, provider: ButtressProvider) -> None:
    await flags.upsert(Flag("checkout", "Checkout", enabled=True))
    details = provider.resolve_boolean_details("checkout", False)
    assert (details.value, details.reason, details.variant) == (True, Reason.STATIC, "on")
    assert details.error_code is None


@pytest.mark.parametrize("default", [True, False])
async def test_disabled_flag_gives_callers_default(
    flags: FeatureFlags, provider: ButtressProvider, default: bool
) -> None:
    await flags.upsert(Flag("checkout", "Checkout", enabled=False, users=["u1"]))
    details = provider.resolve_boolean_details("checkout", default, _user("u1"))
    assert (details.value, details.reason, details.variant) == (default, Reason.DISABLED, None)


async def test_scheduled_off_reads_as_disabled(
    flags: FeatureFlags, provider: ButtressProvider, clock: FakeClock
) -> None:
    start = clock.now() + timedelta(hours=1)
    await flags.upsert(Flag("launch", "Launch", enabled=True, enable_at=start))
    before = provider.resolve_boolean_details("launch", True)
    assert (before.value, before.reason) == (True, Reason.DISABLED)
    clock.advance(3601)
    after = provider.resolve_boolean_details("launch", False)
    assert (after.value, after.reason) == (True, Reason.DEFAULT)


async def test_user_and_role_targets_are_targeting_match(
    flags: FeatureFlags, provider: ButtressProvider
) -> None:
    await flags.upsert(Flag("beta", "Beta", enabled=True, users=["u1"], roles=["admin"]))
    by_user = provider.resolve_boolean_details("beta", False, _user("u1"))
    by_role = provider.resolve_boolean_details("beta", False, _user("u2", role="admin"))
    nobody = provider.resolve_boolean_details("beta", False, _user("u2", role="viewer"))
    assert (by_user.value, by_user.reason, by_user.variant) == (True, Reason.TARGETING_MATCH, "on")
    assert (by_role.value, by_role.reason) == (True, Reason.TARGETING_MATCH)
    # Rules exist but none matched: the flag's own answer, which is DEFAULT, not STATIC.
    assert (nobody.value, nobody.reason) == (True, Reason.DEFAULT)


async def test_percentage_is_split_both_ways(
    flags: FeatureFlags, provider: ButtressProvider
) -> None:
    await flags.upsert(Flag("rollout", "Rollout", enabled=True, percentage=50))
    users = [f"user-{i}" for i in range(200)]
    for user in users:
        details = provider.resolve_boolean_details("rollout", True, _user(user))
        expected = bucket("rollout", user) < 5000
        assert details.reason == Reason.SPLIT
        assert details.value is expected
        assert details.variant == ("on" if expected else "off")


async def test_unknown_flag_is_flag_not_found(provider: ButtressProvider) -> None:
    details = provider.resolve_boolean_details("nope", True)
    assert details.value is True
    assert details.reason == Reason.ERROR
    assert details.error_code == ErrorCode.FLAG_NOT_FOUND


async def test_config_value_looked_up_as_boolean_is_type_mismatch(
    config: ConfigStore, provider: ButtressProvider
) -> None:
    await config.set("banner", "hello")
    await provider.load_config()
    details = provider.resolve_boolean_details("banner", False)
    assert (details.value, details.error_code) == (False, ErrorCode.TYPE_MISMATCH)
    async_details = await provider.resolve_boolean_details_async("banner", False)
    assert async_details.error_code == ErrorCode.TYPE_MISMATCH


# -- context mapping -----------------------------------------------------------------------------


def test_context_mapping() -> None:
    context = EvaluationContext("u1", {"role": "admin", "plan": "pro", "seats": 3})
    assert to_flag_context(context) == FlagContext("u1", "admin")
    mapped = to_flag_context(context)
    assert mapped is not None
    assert dict(mapped.attributes) == {"plan": "pro", "seats": 3}
    assert to_flag_context(None) is None
    assert to_flag_context(EvaluationContext()) is None
    # An empty targeting key would put every anonymous caller in one bucket.
    assert to_flag_context(EvaluationContext("")) is None


def test_non_string_role_is_refused() -> None:
    with pytest.raises(ValidationError, match="role"):
        to_flag_context(EvaluationContext("u1", {"role": ["admin"]}))


async def test_bad_role_is_invalid_context(flags: FeatureFlags, provider: ButtressProvider) -> None:
    await flags.upsert(Flag("beta", "Beta", enabled=True, roles=["admin"]))
    details = provider.resolve_boolean_details("beta", False, EvaluationContext("u", {"role": 1}))
    assert (details.value, details.error_code) == (False, ErrorCode.INVALID_CONTEXT)


async def test_context_is_left_unmodified(flags: FeatureFlags, provider: ButtressProvider) -> None:
    await flags.upsert(Flag("beta", "Beta", enabled=True, roles=["admin"]))
    attributes = {"role": "admin", "email": "a@example.com"}
    context = EvaluationContext("u1", attributes)
    provider.resolve_boolean_details("beta", False, context)
    assert context.targeting_key == "u1"
    assert context.attributes is attributes
    assert attributes == {"role": "admin", "email": "a@example.com"}


# -- typed values from ConfigStore -----------------------------------------------------------------


async def test_typed_values_resolve_static(config: ConfigStore, provider: ButtressProvider) -> None:
    await config.set("title", "Hi")
    await config.set("limit", 10)
    await config.set("ratio", 0.5)
    await config.set("layout", {"columns": 3})
    await provider.load_config()
    assert provider.resolve_string_details("title", "").value == "Hi"
    assert provider.resolve_integer_details("limit", 0).value == 10
    assert provider.resolve_float_details("ratio", 0.0).value == 0.5
    assert provider.resolve_object_details("layout", {}).value == {"columns": 3}
    assert provider.resolve_string_details("title", "").reason == Reason.STATIC


async def test_each_typed_lookup_serves_its_own_kind_sync_and_async(
    config: ConfigStore, provider: ButtressProvider
) -> None:
    await config.set("title", "Hi")
    await config.set("limit", 10)
    await config.set("ratio", 0.5)
    await config.set("layout", {"columns": 3})
    await provider.load_config()
    for kind, key, default, expected in [
        ("string", "title", "", "Hi"),
        ("integer", "limit", 0, 10),
        ("float", "ratio", 0.0, 0.5),
        ("object", "layout", {}, {"columns": 3}),
    ]:
        sync = getattr(provider, f"resolve_{kind}_details")
        asynchronous = getattr(provider, f"resolve_{kind}_details_async")
        assert sync.__name__ == f"resolve_{kind}_details"  # its repr names the SDK's method
        assert asynchronous.__name__ == f"resolve_{kind}_details_async"
        assert sync(key, default).value == expected
        assert (await asynchronous(key, default)).value == expected
        # Another kind's key is refused by every lookup but its own.
        wrong = "limit" if kind == "string" else "title"
        assert sync(wrong, default).error_code == ErrorCode.TYPE_MISMATCH
        assert (await asynchronous(wrong, default)).error_code == ErrorCode.TYPE_MISMATCH


@pytest.mark.parametrize(
    ("stored", "kind"),
    [
        (True, "integer"),  # a bool is never an int
        (True, "float"),
        (1.5, "integer"),
        ("10", "integer"),
        (10, "string"),
        (None, "string"),
        ([1, 2], "string"),
        ("x", "object"),
    ],
)
async def test_type_checks_are_strict(
    config: ConfigStore, provider: ButtressProvider, stored: object, kind: str
) -> None:
    await config.set("setting", stored)
    await provider.load_config()
    details: FlagResolutionDetails[object]
    if kind == "integer":
        details = provider.resolve_integer_details("setting", 7)
    elif kind == "float":
        details = provider.resolve_float_details("setting", 7.0)
    elif kind == "string":
        details = provider.resolve_string_details("setting", "seven")
    else:
        details = provider.resolve_object_details("setting", {"d": 1})
    assert details.error_code == ErrorCode.TYPE_MISMATCH
    assert details.reason == Reason.ERROR


async def test_an_int_is_a_float(config: ConfigStore, provider: ButtressProvider) -> None:
    await config.set("ratio", 2)
    await provider.load_config()
    details = provider.resolve_float_details("ratio", 0.0)
    assert details.value == 2.0
    assert isinstance(details.value, float)


async def test_boolean_flag_looked_up_as_string_is_type_mismatch(
    flags: FeatureFlags, provider: ButtressProvider
) -> None:
    await flags.upsert(Flag("beta", "Beta", enabled=True))
    await provider.load_config()
    details = provider.resolve_string_details("beta", "x")
    assert (details.value, details.error_code) == ("x", ErrorCode.TYPE_MISMATCH)


async def test_missing_typed_value_is_flag_not_found(provider: ButtressProvider) -> None:
    details = await provider.resolve_integer_details_async("nope", 3)
    assert (details.value, details.error_code) == (3, ErrorCode.FLAG_NOT_FOUND)


async def test_flag_gates_typed_value(
    flags: FeatureFlags, config: ConfigStore, provider: ButtressProvider
) -> None:
    await config.set("banner", "New!")
    await provider.load_config()
    await flags.upsert(Flag("banner", "Banner", enabled=True, users=["u1"], percentage=0.01))
    targeted = provider.resolve_string_details("banner", "Old", _user("u1"))
    assert (targeted.value, targeted.reason) == ("New!", Reason.TARGETING_MATCH)
    outside = next(u for u in (f"user-{i}" for i in range(100)) if bucket("banner", u) >= 1)
    split = provider.resolve_string_details("banner", "Old", _user(outside))
    assert (split.value, split.reason) == ("Old", Reason.SPLIT)
    await flags.update("banner", enabled=False)
    disabled = provider.resolve_string_details("banner", "Old", _user("u1"))
    assert (disabled.value, disabled.reason) == ("Old", Reason.DISABLED)


async def test_sensitive_config_is_never_served(
    config: ConfigStore, provider: ButtressProvider
) -> None:
    await config.set("api_token", "s3cr3t-value", sensitive=True)
    await provider.load_config()
    for details in (
        provider.resolve_string_details("api_token", "none"),
        await provider.resolve_string_details_async("api_token", "none"),
    ):
        assert details.value == "none"
        assert details.error_code == ErrorCode.GENERAL
        assert "s3cr3t-value" not in (details.error_message or "")
    assert "s3cr3t-value" not in repr(provider)


async def test_async_lookups_read_the_store_sync_lookups_the_loaded_copy(
    config: ConfigStore, provider: ButtressProvider
) -> None:
    await config.set("limit", 1)
    await provider.load_config()
    await config.set("limit", 2)
    assert provider.resolve_integer_details("limit", 0).value == 1
    assert (await provider.resolve_integer_details_async("limit", 0)).value == 2
    assert await provider.load_config() == ["limit"]
    assert provider.resolve_integer_details("limit", 0).value == 2


async def test_environment_value_wins_over_all(flags: FeatureFlags) -> None:
    writer = ConfigStore()
    await writer.set("limit", 1)
    await writer.set("limit", 5, environment="production")
    production = ConfigStore(environment="production")
    # Both stores use their own memory; share one backend through the writer's store.
    production._store = writer._store
    provider = ButtressProvider(flags, config=production)
    await provider.load_config()
    assert provider.resolve_integer_details("limit", 0).value == 5


# -- through the SDK client, and events ----------------------------------------------------------


async def test_sdk_client_end_to_end(flags: FeatureFlags, provider: ButtressProvider) -> None:
    await flags.upsert(Flag("beta", "Beta", enabled=True, users=["u1"]))
    client = _client(provider)
    assert client.get_provider_status() is ProviderStatus.READY
    assert client.get_boolean_value("beta", False, _user("u1")) is True
    details = await client.get_boolean_details_async("beta", False, _user("u1"))
    assert details.reason == Reason.TARGETING_MATCH
    assert api.get_provider_metadata(DOMAIN).name == "buttress"


async def test_each_change_emits_configuration_changed_at_once(
    flags: FeatureFlags, provider: ButtressProvider
) -> None:
    # No provider.start(), no poller (refresh_interval=None, FakeClock never advanced):
    # the event can only come from FeatureFlags.on_change.
    await flags.upsert(Flag("a", "A", enabled=True))
    client = _client(provider)
    recorder = Recorder()
    client.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, recorder)
    await flags.upsert(Flag("b", "B", enabled=True))
    assert [e.flags_changed for e in recorder.wait_for(1)] == [["b"]]
    await flags.update("a", enabled=False)
    await flags.delete("b")
    assert [e.flags_changed for e in recorder.wait_for(3)] == [["b"], ["a"], ["b"]]
    assert provider.check_for_changes() == []  # everything was announced already
    assert len(recorder.events) == 3


async def test_unchanged_upsert_emits_nothing(
    flags: FeatureFlags, provider: ButtressProvider
) -> None:
    await flags.upsert(Flag("a", "A", enabled=True))
    client = _client(provider)
    recorder = Recorder()
    client.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, recorder)
    await flags.upsert(Flag("a", "A", enabled=True))  # same flag: the snapshot is unchanged
    await flags.upsert(Flag("z", "Z"))
    assert [e.flags_changed for e in recorder.wait_for(1)] == [["z"]]


async def test_full_reload_of_another_instances_change_is_announced(sqlite_dsn: str) -> None:
    async with connect(sqlite_dsn) as reader_db, connect(sqlite_dsn) as writer_db:
        reader = FeatureFlags(reader_db, refresh_interval=None)
        writer = FeatureFlags(writer_db, refresh_interval=None)
        await reader.start()
        client = _client(ButtressProvider(reader))
        recorder = Recorder()
        client.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, recorder)
        await writer.upsert(Flag("beta", "Beta", enabled=True))
        await writer.upsert(Flag("gamma", "Gamma", enabled=True))
        await reader.refresh()  # what the reader's poller does every refresh_interval
        assert [e.flags_changed for e in recorder.wait_for(1)] == [["beta", "gamma"]]
        assert client.get_boolean_value("beta", False) is True
        await reader.stop()


async def test_shutdown_stops_following(flags: FeatureFlags, provider: ButtressProvider) -> None:
    _client(provider)
    provider.shutdown()
    await flags.upsert(Flag("late", "Late", enabled=True))
    # Not announced while shut down; a later reconcile still finds it.
    assert provider.check_for_changes() == ["late"]


async def test_config_change_emits_configuration_changed(
    config: ConfigStore, provider: ButtressProvider
) -> None:
    await config.set("limit", 1)
    await provider.load_config()
    client = _client(provider)
    recorder = Recorder()
    client.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, recorder)
    await config.set("limit", 2)
    await config.set("title", "x")
    assert await provider.load_config() == ["limit", "title"]
    assert [e.flags_changed for e in recorder.wait_for(1)] == [["limit", "title"]]


async def test_stale_snapshot_reports_stale_then_ready(clock: FakeClock) -> None:
    store = SwitchableStore()
    flags = FeatureFlags(store, clock=clock, refresh_interval=None)
    await flags.upsert(Flag("beta", "Beta", enabled=True))
    await flags.start()
    provider = ButtressProvider(flags)
    client = _client(provider)
    stale, ready = Recorder(), Recorder()
    client.add_handler(ProviderEvent.PROVIDER_STALE, stale)
    client.add_handler(ProviderEvent.PROVIDER_READY, ready)
    ready.wait_for(1)  # a READY handler added to a READY provider runs once at once

    store.down = True
    for _ in range(2):  # STALE once, when it turns on, not at every failed refresh
        with pytest.raises(BackendUnavailableError):
            await flags.refresh()
    assert client.get_provider_status() is ProviderStatus.STALE
    assert "unreachable" in (stale.wait_for(1)[0].message or "")
    details = client.get_boolean_details("beta", False)
    assert (details.value, details.reason) == (True, Reason.STALE)

    store.down = False
    await flags.refresh()
    assert len(ready.wait_for(2)) == 2
    assert len(stale.events) == 1
    assert client.get_provider_status() is ProviderStatus.READY
    assert client.get_boolean_details("beta", False).reason == Reason.STATIC


async def test_start_without_any_snapshot_is_error_then_recovers(clock: FakeClock) -> None:
    store = SwitchableStore(down=True)
    flags = FeatureFlags(store, clock=clock, refresh_interval=None)
    await flags.start()  # degrades: stale, nothing loaded
    provider = ButtressProvider(flags)
    with pytest.raises(Exception, match="unreachable"):
        api.set_provider_and_wait(provider, domain=DOMAIN)
    client = api.get_client(DOMAIN)
    assert client.get_provider_status() is ProviderStatus.ERROR
    store.down = False
    await store.inner.put(
        Flag("beta", "Beta", enabled=True), changed_by=None, reason=None, at=clock.now()
    )
    await flags.refresh()  # recovery alone announces READY, and the new flag
    assert client.get_provider_status() is ProviderStatus.READY
    assert client.get_boolean_value("beta", False) is True


async def test_registered_while_already_stale_reports_stale_at_first_lookup(
    clock: FakeClock,
) -> None:
    store = SwitchableStore()
    flags = FeatureFlags(store, clock=clock, refresh_interval=None)
    await flags.upsert(Flag("beta", "Beta", enabled=True))
    await flags.start()
    store.down = True
    with pytest.raises(BackendUnavailableError):
        await flags.refresh()
    client = _client(ButtressProvider(flags))
    stale = Recorder()
    client.add_handler(ProviderEvent.PROVIDER_STALE, stale)
    # The SDK says READY once initialize() returns; the first lookup corrects it.
    assert client.get_provider_status() is ProviderStatus.READY
    assert client.get_boolean_details("beta", False).reason == Reason.STALE
    assert len(stale.wait_for(1)) == 1
    assert client.get_provider_status() is ProviderStatus.STALE


def test_watch_interval_is_deprecated_and_ignored(flags: FeatureFlags) -> None:
    with pytest.warns(DeprecationWarning, match="watch_interval"):
        ButtressProvider(flags, watch_interval=0.25)


def test_bad_arguments_are_refused(flags: FeatureFlags) -> None:
    with pytest.raises(ValidationError, match="flags"):
        ButtressProvider("not flags")  # type: ignore[arg-type]  # the check under test
    with pytest.raises(ValidationError, match="watch_interval"):
        ButtressProvider(flags, watch_interval=0)
    with pytest.raises(ValidationError, match="name"):
        ButtressProvider(flags, name="")


async def test_sync_typed_lookup_before_loading_says_so(
    config: ConfigStore, provider: ButtressProvider
) -> None:
    await config.set("limit", 1)
    details = provider.resolve_integer_details("limit", 0)
    assert (details.value, details.error_code) == (0, ErrorCode.PROVIDER_NOT_READY)
    assert "load_config" in (details.error_message or "")
    assert (await provider.resolve_integer_details_async("limit", 0)).value == 1


async def test_a_change_between_equal_looking_values_is_a_change(
    config: ConfigStore, provider: ButtressProvider
) -> None:
    await config.set("limit", 1)
    await provider.load_config()
    await config.set("limit", True)  # 1 == True in Python, not in JSON
    assert await provider.load_config() == ["limit"]
    await config.set("limit", None)
    assert await provider.load_config() == ["limit"]
    await config.delete("limit")
    assert await provider.load_config() == ["limit"]


async def test_config_store_down_serves_loaded_values_as_stale(
    config: ConfigStore, provider: ButtressProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    await config.set("limit", 3)
    await provider.load_config()

    async def unreachable(*args: object, **kwargs: object) -> None:
        raise BackendUnavailableError("config store is down (test)")

    monkeypatch.setattr(config, "list", unreachable)
    monkeypatch.setattr(config, "get_entry", unreachable)
    assert await provider.load_config() == []
    sync = provider.resolve_integer_details("limit", 0)
    via_async = await provider.resolve_integer_details_async("limit", 0)
    assert (sync.value, sync.reason) == (3, Reason.STALE)
    assert (via_async.value, via_async.reason) == (3, Reason.STALE)
    monkeypatch.undo()
    await provider.load_config()
    assert provider.resolve_integer_details("limit", 0).reason == Reason.STATIC


# -- config values follow the store --------------------------------------------------------------


async def _settle() -> None:
    """Let the reload task run: FakeClock.sleep advances and yields without waiting."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_config_reloads_every_interval_and_announces_changes(
    flags: FeatureFlags, config: ConfigStore, clock: FakeClock
) -> None:
    await config.set("limit", 1)
    provider = ButtressProvider(flags, config=config, clock=clock, config_interval=5)
    async with provider:
        client = _client(provider)
        recorder = Recorder()
        client.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, recorder)
        assert client.get_integer_value("limit", 0) == 1
        await config.set("limit", 2)
        await _settle()
        assert [e.flags_changed for e in recorder.wait_for(1)] == [["limit"]]
        assert client.get_integer_value("limit", 0) == 2
    await config.set("limit", 3)
    await _settle()
    assert client.get_integer_value("limit", 0) == 2, "stop() ends the reloads"


async def test_a_failing_config_store_turns_the_provider_stale_then_ready(
    config: ConfigStore, provider: ButtressProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    await config.set("limit", 3)
    await provider.load_config()
    client = _client(provider)
    stale, ready = Recorder(), Recorder()
    client.add_handler(ProviderEvent.PROVIDER_STALE, stale)
    client.add_handler(ProviderEvent.PROVIDER_READY, ready)
    ready.wait_for(1)  # a READY handler added to a READY provider runs once at once

    async def unreachable(*args: object, **kwargs: object) -> None:
        raise BackendUnavailableError("config store is down (test)")

    monkeypatch.setattr(config, "list", unreachable)
    for _ in range(2):  # STALE once, when it turns on, not at every failed reload
        assert await provider.load_config() == []
    assert len(stale.wait_for(1)) == 1
    assert client.get_provider_status() is ProviderStatus.STALE
    monkeypatch.undo()
    assert await provider.load_config() == []
    assert len(ready.wait_for(2)) == 2
    assert client.get_provider_status() is ProviderStatus.READY


async def test_shutdown_stops_announcing_config_changes(
    config: ConfigStore, provider: ButtressProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    await config.set("limit", 1)
    await provider.load_config()
    _client(provider)
    provider.shutdown()
    emitted: list[ProviderEventDetails] = []
    monkeypatch.setattr(provider, "emit_provider_configuration_changed", emitted.append)
    await config.set("limit", 2)
    assert await provider.load_config() == ["limit"]  # reloaded, but no longer announced
    assert emitted == []


# -- flags with variants: every lookup type -------------------------------------------------


def _banner() -> Flag:
    return Flag(
        "banner",
        "Banner",
        enabled=True,
        variants={"plain": "Hello", "fr": "Bonjour", "n": 3, "half": 0.5, "obj": {"k": [1]},
                  "yes": True},
        default_variant="plain",
        rules=[
            Rule([Condition("country", "equals", "FR")], variant="fr"),
            Rule([Condition("plan", "in", ["team"])], variant="n"),
            Rule([Condition("plan", "equals", "pro")], variant="obj"),
            Rule([Condition("age", "gte", 65)], variant="half"),
            Rule([Condition("app", "semver_lt", "2.0.0")], variant="yes"),
            Rule([Condition("beta", "equals", True)], split={"plain": 50, "fr": 50}),
        ],
        metadata={"owner": "growth", "ticket": 42},
    )  # fmt: skip


async def test_a_flag_with_variants_serves_every_type_with_variant_reason_and_metadata(
    flags: FeatureFlags, provider: ButtressProvider
) -> None:
    await flags.upsert(_banner())
    fr = provider.resolve_string_details(
        "banner", "?", EvaluationContext(attributes={"country": "FR"})
    )
    assert (fr.value, fr.variant, fr.reason) == ("Bonjour", "fr", Reason.TARGETING_MATCH)
    assert fr.flag_metadata == {"owner": "growth", "ticket": 42}
    plain = provider.resolve_string_details("banner", "?")
    assert (plain.value, plain.variant, plain.reason) == ("Hello", "plain", Reason.DEFAULT)
    team = EvaluationContext(attributes={"plan": "team"})
    assert provider.resolve_integer_details("banner", 0, team).value == 3
    assert provider.resolve_float_details("banner", 0.0, team).value == 3.0  # an int is a number
    old = EvaluationContext(attributes={"age": 70})
    assert provider.resolve_float_details("banner", 0.0, old).value == 0.5
    pro = EvaluationContext(attributes={"plan": "pro"})
    assert provider.resolve_object_details("banner", {}, pro).value == {"k": [1]}
    legacy = EvaluationContext(attributes={"app": "1.9.9"})
    assert provider.resolve_boolean_details("banner", False, legacy).value is True
    mismatch = provider.resolve_integer_details("banner", 7, old)
    assert (mismatch.value, mismatch.reason, mismatch.error_code) == (
        7, Reason.ERROR, ErrorCode.TYPE_MISMATCH,
    )  # fmt: skip
    split = provider.resolve_string_details("banner", "?", _user("u1", beta=True))  # type: ignore[arg-type]  # a bool attribute
    assert split.reason == Reason.TARGETING_MATCH  # a rule's split: the rule matched
    assert split.variant == ("plain" if bucket("banner", "u1") < 5000 else "fr")
    await flags.update("banner", enabled=False)
    off = provider.resolve_string_details(
        "banner", "d", EvaluationContext(attributes={"country": "FR"})
    )
    assert (off.value, off.reason, off.variant) == ("d", Reason.DISABLED, None)


async def test_variant_reasons_static_split_and_no_default(
    flags: FeatureFlags, provider: ButtressProvider
) -> None:
    await flags.upsert(Flag("s", "S", enabled=True, variants={"a": "A", "b": "B"},
                            default_variant="a"))  # fmt: skip
    await flags.upsert(Flag("split", "Split", enabled=True, variants={"a": "A", "b": "B"},
                            split={"a": 30, "b": 70}, default_variant="a"))  # fmt: skip
    await flags.upsert(Flag("none", "None", enabled=True, variants={"a": "A"}))
    assert provider.resolve_string_details("s", "?").reason == Reason.STATIC
    split = provider.resolve_string_details("split", "?", _user("u7"))
    assert (split.reason, split.variant) == (
        Reason.SPLIT, "a" if bucket("split", "u7") < 3000 else "b",
    )  # fmt: skip
    anonymous = provider.resolve_string_details("split", "?")
    assert (anonymous.reason, anonymous.value) == (Reason.DEFAULT, "A")
    none = provider.resolve_string_details("none", "mine")
    assert (none.value, none.reason, none.variant, none.error_code) == (
        "mine", Reason.DEFAULT, None, None,
    )  # fmt: skip


async def test_flag_metadata_is_read_only(flags: FeatureFlags, provider: ButtressProvider) -> None:
    await flags.upsert(_banner())
    details = provider.resolve_string_details("banner", "?")
    with pytest.raises(TypeError):
        details.flag_metadata["owner"] = "me"  # type: ignore[index]  # read-only on purpose
    assert provider.resolve_string_details("banner", "?").flag_metadata["owner"] == "growth"


# -- readiness: NOT_READY, FATAL -----------------------------------------------------------


async def test_not_ready_until_the_flags_load_their_first_snapshot(clock: FakeClock) -> None:
    store = SwitchableStore()
    flags = FeatureFlags(store, clock=clock, refresh_interval=None)
    await flags.upsert(Flag("beta", "Beta", enabled=True))  # written, not loaded: not started
    provider = ButtressProvider(flags)
    direct = provider.resolve_boolean_details("beta", False)
    assert (direct.value, direct.error_code) == (False, ErrorCode.PROVIDER_NOT_READY)
    ready = Recorder()
    api.set_provider(provider, domain=DOMAIN)  # initialize() waits on the SDK's thread
    client = api.get_client(DOMAIN)
    client.add_handler(ProviderEvent.PROVIDER_READY, ready)
    assert client.get_provider_status() is ProviderStatus.NOT_READY
    details = client.get_boolean_details("beta", False)
    assert (details.value, details.error_code) == (False, ErrorCode.PROVIDER_NOT_READY)
    await flags.start()
    ready.wait_for(1)
    assert client.get_provider_status() is ProviderStatus.READY
    assert client.get_boolean_details("beta", False).reason == Reason.STATIC


async def test_no_snapshot_within_ready_timeout_is_an_error(clock: FakeClock) -> None:
    flags = FeatureFlags(SwitchableStore(), clock=clock, refresh_interval=None)
    provider = ButtressProvider(flags, ready_timeout=0.05)
    with pytest.raises(Exception, match=r"no flag snapshot within 0.05 s: start the FeatureFlags"):
        api.set_provider_and_wait(provider, domain=DOMAIN)
    client = api.get_client(DOMAIN)
    assert client.get_provider_status() is ProviderStatus.ERROR
    ready = Recorder()
    client.add_handler(ProviderEvent.PROVIDER_READY, ready)
    await flags.start()  # the snapshot arrives later: the next lookup announces READY
    assert provider.resolve_boolean_details("x", False).error_code == ErrorCode.FLAG_NOT_FOUND
    ready.wait_for(1)
    assert client.get_provider_status() is ProviderStatus.READY


async def test_a_database_never_migrated_is_fatal(tmp_path: Path) -> None:
    async with connect(f"sqlite:///{tmp_path}/fresh.db", migrate=False) as backend:
        flags = FeatureFlags(backend, refresh_interval=None)
        await flags.start()  # degrades: the tables do not exist
        provider = ButtressProvider(flags)
        with pytest.raises(Exception, match="buttress migrate"):
            api.set_provider_and_wait(provider, domain=DOMAIN)
        client = api.get_client(DOMAIN)
        assert client.get_provider_status() is ProviderStatus.FATAL
        for details in (
            client.get_boolean_details("any", True),
            client.get_string_details("any", "d"),
        ):
            assert (details.reason, details.error_code) == (Reason.ERROR, ErrorCode.PROVIDER_FATAL)
        direct = provider.resolve_string_details("any", "d")
        assert (direct.value, direct.error_code) == ("d", ErrorCode.PROVIDER_FATAL)
        await flags.stop()


# -- CACHED ------------------------------------------------------------------------------------


async def test_cache_reports_a_repeated_static_resolution_as_cached(
    flags: FeatureFlags, config: ConfigStore
) -> None:
    provider = ButtressProvider(flags, config=config, config_interval=None, cache=True)
    client = _client(provider)
    await flags.upsert(Flag("plain", "Plain", enabled=True))
    await flags.upsert(Flag("obj", "Obj", enabled=True, variants={"v": {"a": [1]}},
                            default_variant="v"))  # fmt: skip
    await flags.upsert(_banner())
    first = client.get_boolean_details("plain", False)
    again = client.get_boolean_details("plain", False)
    assert (first.reason, again.reason, again.value, again.variant) == (
        Reason.STATIC, Reason.CACHED, True, "on",
    )  # fmt: skip
    objects = [client.get_object_details("obj", {}) for _ in range(3)]
    assert [d.reason for d in objects] == [Reason.STATIC, Reason.CACHED, Reason.CACHED]
    mine = objects[1].value
    assert isinstance(mine, dict)
    mine["a"].append(2)  # a caller's own copy, changed
    assert client.get_object_value("obj", {}) == {"a": [1]}
    # Targeted flags depend on the context: never cached.
    fr = EvaluationContext(attributes={"country": "FR"})
    assert {client.get_string_details("banner", "?", fr).reason for _ in range(3)} == {
        Reason.TARGETING_MATCH
    }
    # A change forgets the flag's answer.
    await flags.update("obj", variants={"v": {"b": 2}})
    changed = client.get_object_details("obj", {})
    assert (changed.reason, changed.value) == (Reason.STATIC, {"b": 2})
    assert client.get_object_details("obj", {}).reason == Reason.CACHED
    # The default provider does not cache.
    plain = ButtressProvider(flags)
    assert {plain.resolve_boolean_details("plain", False).reason for _ in range(2)} == {
        Reason.STATIC
    }
