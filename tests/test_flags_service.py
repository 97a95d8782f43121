"""``FeatureFlags`` on the memory store: lifecycle, snapshot, history, failure modes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from buttress.backends import MemoryBackend
from buttress.errors import BackendUnavailableError, UnsupportedBackendError, ValidationError
from buttress.flags import (
    Condition,
    FeatureFlags,
    Flag,
    FlagChange,
    FlagContext,
    FlagEvaluation,
    FlagNotFoundError,
    MemoryFlagStore,
    Reason,
    Rule,
)
from buttress.flags._store import ChangeCallback
from buttress.testing import FakeClock


async def test_unknown_flag_is_off_and_reported_unknown() -> None:
    async with FeatureFlags() as flags:
        assert flags.is_enabled("nope") is False
        assert flags.evaluate("nope") == FlagEvaluation("nope", False, Reason.UNKNOWN_FLAG)


async def test_upsert_get_list_update_delete() -> None:
    async with FeatureFlags() as flags:
        await flags.upsert(Flag("b", "B", enabled=True))
        await flags.upsert(Flag("a", "A"))
        assert [f.key for f in await flags.list()] == ["a", "b"]
        assert flags.is_enabled("b")
        assert not flags.is_enabled("a")
        updated = await flags.update("a", enabled=True, roles={"beta"}, percentage=1)
        assert updated == Flag("a", "A", enabled=True, roles={"beta"}, percentage=1)
        assert await flags.get("a") == updated
        assert flags.is_enabled("a", FlagContext("x", role="beta"))
        assert flags.evaluate("a", FlagContext("x", role="beta")).reason is Reason.ROLE_TARGET
        assert await flags.delete("a") is True
        assert await flags.delete("a") is False
        assert await flags.get("a") is None
        assert not flags.is_enabled("a", FlagContext("x", role="beta"))


async def test_update_refuses_unknown_flags_and_fields() -> None:
    async with FeatureFlags() as flags:
        with pytest.raises(FlagNotFoundError, match="'ghost' does not exist"):
            await flags.update("ghost", enabled=True)
        await flags.upsert(Flag("a", "A"))
        with pytest.raises(ValidationError, match="colour: is not a Flag field"):
            await flags.update("a", colour="red")
        with pytest.raises(ValidationError, match="percentage"):
            await flags.update("a", percentage=120)
        with pytest.raises(ValidationError, match="key"):
            await flags.update("a", key="b")
        assert await flags.get("a") == Flag("a", "A")


async def test_history_records_who_when_why_old_and_new() -> None:
    clock = FakeClock()
    async with FeatureFlags(clock=clock) as flags:
        await flags.upsert(Flag("a", "A"), updated_by="ann", reason="launch prep")
        clock.advance(60)
        await flags.update("a", enabled=True, percentage=10, updated_by="bob", reason="5% go")
        clock.advance(60)
        await flags.delete("a", updated_by="cy", reason="done")
        history = await flags.history("a")
    assert [(c.version, c.action, c.changed_by, c.reason) for c in history] == [
        (3, "delete", "cy", "done"),
        (2, "update", "bob", "5% go"),
        (1, "create", "ann", "launch prep"),
    ]
    delete, update, create = history
    assert create.old is None
    assert create.new == Flag("a", "A")
    assert update.old == Flag("a", "A")
    assert update.new == Flag("a", "A", enabled=True, percentage=10)
    assert delete.new is None
    assert update.changed_at - create.changed_at == timedelta(seconds=60)
    assert isinstance(delete, FlagChange)


async def test_history_limit_is_validated_and_applied() -> None:
    async with FeatureFlags() as flags:
        for percentage in range(1, 6):
            await flags.upsert(Flag("a", "A", percentage=percentage))
        assert [c.version for c in await flags.history("a", limit=2)] == [5, 4]
        with pytest.raises(ValidationError, match="limit"):
            await flags.history("a", limit=0)


async def test_instances_sharing_a_store_see_changes_at_once() -> None:
    store = MemoryFlagStore()
    async with FeatureFlags(store) as one, FeatureFlags(store) as two:
        await one.upsert(Flag("a", "A", enabled=True))
        assert two.is_enabled("a")
        await two.update("a", enabled=False)
        assert not one.is_enabled("a")


async def test_memory_backend_object_shares_one_store() -> None:
    backend = MemoryBackend()
    async with FeatureFlags(backend) as one, FeatureFlags(backend) as two:
        await one.upsert(Flag("a", "A", enabled=True))
        assert two.is_enabled("a")


def test_redis_backend_is_refused_clearly() -> None:
    class RedisLike(MemoryBackend):
        kind = "redis"  # type: ignore[assignment]  # a RedisBackend stand-in, no server needed

    with pytest.raises(UnsupportedBackendError, match="not 'redis'"):
        FeatureFlags(RedisLike())


def test_refresh_interval_is_validated() -> None:
    with pytest.raises(ValidationError, match="refresh_interval"):
        FeatureFlags(refresh_interval=0)


async def test_schedule_uses_the_injected_clock() -> None:
    clock = FakeClock()
    start = clock.now() + timedelta(hours=1)
    async with FeatureFlags(clock=clock) as flags:
        await flags.upsert(Flag("a", "A", enabled=True, enable_at=start))
        assert flags.evaluate("a").reason is Reason.SCHEDULED_OFF
        clock.advance(3600)
        assert flags.is_enabled("a")
        assert flags.evaluate("a").reason is Reason.DEFAULT


class FlakyStore(MemoryFlagStore):
    """A memory store that can be switched off, and does not push (so it is polled)."""

    __slots__ = ("down",)

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    @property
    def pushes(self) -> bool:
        return False

    @property
    def listens(self) -> bool:
        return False

    async def subscribe(self, callback: ChangeCallback) -> Callable[[], None]:
        return lambda: None

    async def load(self) -> tuple[dict[str, Flag], int]:
        if self.down:
            raise BackendUnavailableError("store down")
        return await super().load()

    async def change_token(self) -> int:
        if self.down:
            raise BackendUnavailableError("store down")
        return await super().change_token()


async def test_polling_picks_up_changes_made_elsewhere() -> None:
    store = FlakyStore()
    clock = FakeClock()
    async with FeatureFlags(store, clock=clock, refresh_interval=5) as flags:
        await store.put(Flag("a", "A", enabled=True), changed_by=None, reason=None, at=clock.now())
        assert not flags.is_enabled("a")  # no push: not seen until the next poll
        for _ in range(5):
            await asyncio.sleep(0)
        assert flags.is_enabled("a")


async def test_unreachable_store_keeps_the_last_snapshot() -> None:
    store = FlakyStore()
    await store.put(Flag("a", "A", enabled=True), changed_by=None, reason=None, at=datetime.now())
    async with FeatureFlags(store, refresh_interval=None) as flags:
        assert flags.is_enabled("a")
        store.down = True
        with pytest.raises(BackendUnavailableError):
            await flags.refresh()
        assert flags.stale
        assert flags.is_enabled("a")
        store.down = False
        await flags.refresh()
        assert not flags.stale


async def test_persisted_snapshot_survives_a_restart_while_the_store_is_down(
    tmp_path: Path,
) -> None:
    path = tmp_path / "flags.json"
    store = FlakyStore()
    async with FeatureFlags(store, refresh_interval=None, snapshot_path=path) as flags:
        await flags.upsert(Flag("a", "A", enabled=True, percentage=50))
        await flags.refresh()
    assert json.loads(path.read_text())["a"]["percentage"] == 50
    store.down = True
    with capture_logs() as logs:
        async with FeatureFlags(store, refresh_interval=None, snapshot_path=path) as restarted:
            assert restarted.stale
            assert restarted.snapshot == {"a": Flag("a", "A", enabled=True, percentage=50)}
    assert any(e["event"] == "flags.start_degraded" for e in logs)


class Weird:
    """An object whose attribute access explodes."""

    def __getattr__(self, name: str) -> object:
        raise RuntimeError("boom")


@given(
    st.one_of(st.text(), st.none(), st.integers(), st.just(Weird())),
    st.one_of(st.none(), st.builds(FlagContext, st.text()), st.just(Weird()), st.integers()),
)
def test_is_enabled_never_raises(key: object, context: object) -> None:
    flags = FeatureFlags()
    flags._apply("a", Flag("a", "A", enabled=True, percentage=50, users={"u"}))
    flags._apply("b", Flag("b", "B", enabled=True))
    for probe in (key, "a", "b"):
        assert isinstance(flags.is_enabled(probe, context), bool)  # type: ignore[arg-type]  # garbage on purpose
        result = flags.evaluate(probe, context)  # type: ignore[arg-type]  # garbage on purpose
        assert isinstance(result.enabled, bool)
    assert flags.is_enabled("a", Weird()) is False  # type: ignore[arg-type]  # garbage on purpose
    assert flags.evaluate("a", Weird()).reason is Reason.ERROR  # type: ignore[arg-type]  # on purpose
    assert flags.is_enabled("b", Weird()) is True  # type: ignore[arg-type]  # a plain flag ignores context


async def test_changes_are_logged_with_who_and_why() -> None:
    with capture_logs() as logs:
        async with FeatureFlags() as flags:
            await flags.upsert(Flag("a", "A"), updated_by="ann", reason="why not")
    [changed] = [e for e in logs if e["event"] == "flags.changed"]
    expected = {"key": "a", "version": 1, "action": "create", "changed_by": "ann"}
    assert changed.items() >= {**expected, "reason": "why not", "log_level": "info"}.items()


async def test_on_change_reports_changed_keys_once_in_force() -> None:
    store = MemoryFlagStore()
    seen: list[tuple[frozenset[str], bool]] = []
    async with FeatureFlags(store) as writer, FeatureFlags(store) as reader:
        unsubscribe = reader.on_change(lambda keys: seen.append((keys, reader.is_enabled("a"))))
        await writer.upsert(Flag("a", "A", enabled=True))
        await writer.upsert(Flag("a", "A", enabled=True))  # no change: no call
        await writer.delete("a")
        unsubscribe()
        await writer.upsert(Flag("b", "B"))
    assert seen == [(frozenset({"a"}), True), (frozenset({"a"}), False)]


async def test_a_failing_listener_is_logged_and_ignored() -> None:
    def explode(_keys: frozenset[str]) -> None:
        raise RuntimeError("listener bug")

    with capture_logs() as logs:
        async with FeatureFlags() as flags:
            flags.on_change(explode)
            await flags.upsert(Flag("a", "A", enabled=True))
            assert flags.is_enabled("a")
    assert any(e["event"] == "flags.listener_failed" for e in logs)


async def test_narrowing_a_live_flag_is_logged_as_a_warning() -> None:
    with capture_logs() as logs:
        async with FeatureFlags() as flags:
            await flags.upsert(Flag("a", "A", enabled=True))
            await flags.update("a", percentage=10)
    [warning] = [e for e in logs if e["event"] == "flags.rollout_warning"]
    assert warning["log_level"] == "warning"
    assert "narrows this flag from everyone to 10%" in warning["warning"]


def test_auto_refresh_polls_often_only_where_changes_cannot_be_pushed() -> None:
    from buttress.flags._service import POLLED_REFRESH, PUSHED_REFRESH

    class PollOnly(MemoryFlagStore):
        @property
        def pushes(self) -> bool:
            return False

        @property
        def listens(self) -> bool:
            return False

    assert FeatureFlags(PollOnly())._refresh_interval == POLLED_REFRESH
    assert FeatureFlags(MemoryFlagStore())._refresh_interval == PUSHED_REFRESH
    assert FeatureFlags(PollOnly(), refresh_interval=5)._refresh_interval == 5
    with pytest.raises(ValidationError, match="refresh_interval"):
        FeatureFlags(refresh_interval="often")  # type: ignore[arg-type]  # bad on purpose


async def test_revert_restores_a_version_as_a_new_change() -> None:
    flags = FeatureFlags(refresh_interval=None)
    await flags.upsert(Flag("beta", "Beta", enabled=False), updated_by="ann")
    await flags.update("beta", enabled=True, percentage=30, updated_by="bob")
    await flags.delete("beta", updated_by="cy")
    restored = await flags.revert("beta", 2, updated_by="dee", reason="bring it back")
    assert restored is not None
    assert (restored.enabled, restored.percentage) == (True, 30)
    history = await flags.history("beta")
    assert [(c.version, c.changed_by, c.reason) for c in history[:1]] == [
        (4, "dee", "bring it back")
    ]
    assert await flags.revert("beta", 3) is None  # version 3 was the deletion
    assert await flags.get("beta") is None
    with pytest.raises(ValidationError, match="to_version"):
        await flags.revert("beta", 99)
    with pytest.raises(ValidationError, match="to_version"):
        await flags.revert("beta", 0)


# -- variants: typed reads, loaded, failure ---------------------------------------------------


async def _banner_flags() -> FeatureFlags:
    flags = FeatureFlags()
    await flags.start()
    await flags.upsert(
        Flag(
            "banner",
            "Banner",
            enabled=True,
            variants={"plain": "Hello", "fr": "Bonjour", "limits": {"per_page": 20}, "n": 3},
            default_variant="plain",
            rules=[
                Rule([Condition("country", "equals", "FR")], variant="fr"),
                Rule([Condition("plan", "equals", "pro")], variant="limits"),
                Rule([Condition("plan", "equals", "team")], variant="n"),
            ],
        )
    )
    return flags


async def test_typed_reads_serve_the_variant_value_or_the_default() -> None:
    flags = await _banner_flags()
    fr = FlagContext("u1", attributes={"country": "FR"})
    assert flags.get_string("banner", "?", fr) == "Bonjour"
    assert flags.get_string("banner", "?") == "Hello"
    details = flags.resolve("banner", "?", fr)
    assert (details.value, details.variant, details.reason, details.error) == (
        "Bonjour",
        "fr",
        Reason.RULE_MATCH,
        None,
    )
    assert not details.defaulted
    pro = FlagContext(attributes={"plan": "pro"})
    assert flags.get_object("banner", {}, pro) == {"per_page": 20}
    assert flags.get_int("banner", 0, FlagContext(attributes={"plan": "team"})) == 3
    assert flags.get_float("banner", 0.0, FlagContext(attributes={"plan": "team"})) == 3.0
    mismatch = flags.resolve("banner", 0, fr)
    assert (mismatch.value, mismatch.reason, mismatch.variant) == (0, Reason.TYPE_MISMATCH, None)
    assert mismatch.error is not None
    assert "'fr'" in mismatch.error
    assert mismatch.defaulted
    assert flags.get_bool("banner", True) is True  # a str is not a bool: the default
    unknown = flags.resolve("nope", "d")
    assert (unknown.value, unknown.reason) == ("d", Reason.UNKNOWN_FLAG)
    await flags.update("banner", enabled=False)
    assert flags.resolve("banner", "d", fr).reason is Reason.DISABLED
    assert flags.get_string("banner", "d", fr) == "d"


async def test_objects_are_handed_out_as_copies() -> None:
    flags = await _banner_flags()
    pro = FlagContext(attributes={"plan": "pro"})
    first = flags.get_object("banner", {}, pro)
    assert isinstance(first, dict)
    first["per_page"] = 1_000
    assert flags.get_object("banner", {}, pro) == {"per_page": 20}


async def test_a_default_that_names_no_type_is_an_error_not_an_exception() -> None:
    flags = await _banner_flags()
    result = flags.resolve("banner", None)
    assert (result.value, result.reason) == (None, Reason.ERROR)
    assert result.error is not None
    assert "NoneType" in result.error


async def test_a_flag_without_a_default_variant_gives_the_callers_default() -> None:
    async with FeatureFlags() as flags:
        await flags.upsert(
            Flag("f", "F", enabled=True, variants={"x": "X"},
                 rules=[Rule([Condition("plan", "equals", "pro")], variant="x")])
        )  # fmt: skip
        assert flags.get_string("f", "mine") == "mine"
        assert flags.resolve("f", "mine").reason is Reason.DEFAULT
        assert flags.get_string("f", "mine", FlagContext(attributes={"plan": "pro"})) == "X"
        assert not flags.is_enabled("f")


async def test_is_enabled_reads_rules_over_attributes() -> None:
    async with FeatureFlags() as flags:
        await flags.upsert(
            Flag("beta", "Beta", enabled=True, default_variant="off",
                 rules=[Rule([Condition("email", "ends_with", "@acme.com")])])
        )  # fmt: skip
        assert flags.is_enabled("beta", FlagContext(attributes={"email": "ann@acme.com"}))
        assert not flags.is_enabled("beta", FlagContext(attributes={"email": "x@y.org"}))
        assert not flags.is_enabled("beta")


async def test_loaded_and_failure_follow_the_store() -> None:
    store = FlakyStore()
    flags = FeatureFlags(store, refresh_interval=None)

    def state() -> tuple[bool, bool, type[Exception] | None]:
        failure = flags.failure
        return flags.loaded, flags.stale, None if failure is None else type(failure)

    assert state() == (False, False, None)
    store.down = True
    await flags.start()
    assert state() == (False, True, BackendUnavailableError)
    store.down = False
    await flags.refresh()
    assert state() == (True, False, None)
    store.down = True
    with pytest.raises(BackendUnavailableError):
        await flags.refresh()
    assert state() == (True, True, BackendUnavailableError)
    await flags.stop()


async def test_a_start_on_a_store_that_was_down_subscribes_once_it_answers() -> None:
    class CountingStore(FlakyStore):
        subscriptions = 0

        async def subscribe(self, callback: ChangeCallback) -> Callable[[], None]:
            self.subscriptions += 1
            return lambda: None

        async def open(self) -> None:
            if self.down:
                raise BackendUnavailableError("store down")

    store = CountingStore()
    store.down = True
    async with FeatureFlags(store, refresh_interval=None) as flags:
        assert store.subscriptions == 0
        store.down = False
        await flags.refresh()
        await flags.refresh()
        assert store.subscriptions == 1


@pytest.mark.parametrize("change", ["upsert", "delete"])
async def test_a_write_during_a_full_reload_is_not_undone_by_it(change: str) -> None:
    """A reload that read the store before a local write must not put the old
    snapshot back over it (seen on PostgreSQL: LISTEN's first connect reloads
    while the application writes, and the flag vanished until the next change)."""
    flags = FeatureFlags(MemoryBackend(), refresh_interval=None)
    await flags.start()
    await flags.upsert(Flag("old", "Old", enabled=True))
    real = flags._store
    read = asyncio.Event()
    release = asyncio.Event()

    class SlowLoad:
        """The real store, but load() waits after reading: a reload in flight."""

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        async def load(self) -> Any:
            result = await real.load()  # what the store held before the write
            read.set()
            await release.wait()
            return result

    flags._store = SlowLoad()  # a wrapper of the real store
    reload = asyncio.create_task(flags.refresh())
    await read.wait()
    if change == "upsert":
        await flags.upsert(Flag("new", "New", enabled=True))
    else:
        await flags.delete("old")
    release.set()
    await reload
    flags._store = real
    ctx = FlagContext("anyone")
    if change == "upsert":
        assert flags.is_enabled("new", ctx)
        assert flags.is_enabled("old", ctx)
    else:
        assert "old" not in flags.snapshot
    await flags.refresh()  # the next plain reload agrees with the store
    assert ("new" in flags.snapshot) is (change == "upsert")
    assert ("old" in flags.snapshot) is (change == "upsert")
    await flags.stop()
