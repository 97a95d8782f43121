"""The event bus, and what buttress's components publish on it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from buttress import connect
from buttress.breaker import CircuitBreaker
from buttress.errors import ValidationError
from buttress.events import (
    BREAKER_CREATED,
    FLAG_EVALUATED,
    HEALTH_CHECKED,
    MIGRATION_RAN,
    RATELIMIT_DECIDED,
    HealthChecked,
    MigrationRan,
    RateLimitDecided,
    Topic,
)
from buttress.flags import FeatureFlags, Flag, FlagContext, FlagEvaluation, Reason
from buttress.health import HealthRegistry, Status
from buttress.migrations import Migrator
from buttress.migrations.errors import MigrationFailedError

ALL_TOPICS = (BREAKER_CREATED, FLAG_EVALUATED, HEALTH_CHECKED, MIGRATION_RAN, RATELIMIT_DECIDED)


@pytest.fixture(autouse=True)
def _no_leftover_listeners() -> Iterator[None]:
    before = [topic.listeners for topic in ALL_TOPICS]
    yield
    assert [topic.listeners for topic in ALL_TOPICS] == before, "a test left a listener behind"


# -- Topic ---------------------------------------------------------------------


def test_publish_reaches_listeners_in_subscription_order() -> None:
    topic: Topic[int] = Topic("numbers")
    seen: list[tuple[str, int]] = []
    topic.subscribe(lambda n: seen.append(("a", n)))
    topic.subscribe(lambda n: seen.append(("b", n)))
    topic.publish(1)
    topic.publish(2)
    assert seen == [("a", 1), ("b", 1), ("a", 2), ("b", 2)]


def test_an_unheard_topic_has_no_listeners_and_publishing_is_a_no_op() -> None:
    topic: Topic[int] = Topic("quiet")
    assert topic.listeners == ()
    assert not topic.listeners  # the test every publish site makes first
    topic.publish(1)


def test_unsubscribe_stops_delivery_and_unknown_listeners_are_ignored() -> None:
    topic: Topic[int] = Topic("numbers")
    seen: list[int] = []
    topic.subscribe(seen.append)
    topic.publish(1)
    # A bound method is a new object at each access: unsubscribing by equality works.
    topic.unsubscribe(seen.append)
    topic.unsubscribe(seen.append)
    topic.unsubscribe(print)
    topic.publish(2)
    assert seen == [1]
    assert topic.listeners == ()


def test_subscribe_works_as_a_decorator_and_subscribed_as_a_context_manager() -> None:
    topic: Topic[str] = Topic("words")
    seen: list[str] = []

    @topic.subscribe
    def listener(word: str) -> None:
        seen.append(word)

    with topic.subscribed(seen.append):
        topic.publish("both")
    topic.publish("one")
    topic.unsubscribe(listener)
    assert seen == ["both", "both", "one"]
    assert topic.listeners == ()


def test_a_listener_subscribed_twice_hears_twice_until_unsubscribed_twice() -> None:
    topic: Topic[int] = Topic("numbers")
    seen: list[int] = []
    topic.subscribe(seen.append)
    topic.subscribe(seen.append)
    topic.publish(1)
    topic.unsubscribe(seen.append)
    topic.publish(2)
    topic.unsubscribe(seen.append)
    topic.publish(3)
    assert seen == [1, 1, 2]


def test_a_raising_listener_never_reaches_the_publisher_and_is_logged_once() -> None:
    topic: Topic[int] = Topic("numbers")
    seen: list[int] = []

    def broken(n: int) -> None:
        raise RuntimeError("sink down")

    topic.subscribe(broken)
    topic.subscribe(seen.append)
    with capture_logs() as logs:
        for n in range(5):
            topic.publish(n)
    assert seen == [0, 1, 2, 3, 4], "later listeners still hear every event"
    failures = [log for log in logs if log["event"] == "events.listener_failed"]
    assert len(failures) == 1
    assert failures[0]["topic"] == "numbers"
    assert "broken" in failures[0]["listener"]
    topic.unsubscribe(broken)
    topic.unsubscribe(seen.append)


def test_a_resubscribed_listener_is_logged_again_after_unsubscribing() -> None:
    topic: Topic[int] = Topic("numbers")

    def broken(n: int) -> None:
        raise RuntimeError("sink down")

    with capture_logs() as logs:
        with topic.subscribed(broken):
            topic.publish(1)
            topic.publish(2)
        with topic.subscribed(broken):
            topic.publish(3)
    assert [log["event"] for log in logs].count("events.listener_failed") == 2


def test_watchers_hear_the_first_subscription_and_the_last_unsubscription() -> None:
    topic: Topic[int] = Topic("numbers")
    states: list[bool] = []
    topic.watch(states.append)
    assert states == [False], "a watcher learns the current state at once"
    first, second = (lambda n: None), (lambda n: None)
    topic.subscribe(first)
    topic.subscribe(second)
    topic.unsubscribe(first)
    topic.unsubscribe(second)
    assert states == [False, True, False]


def test_a_raising_watcher_does_not_stop_a_subscription() -> None:
    topic: Topic[int] = Topic("numbers")
    calls: list[bool] = []

    def broken(active: bool) -> None:
        calls.append(active)
        if active:
            raise RuntimeError("boom")

    topic.watch(broken)
    seen: list[int] = []
    with capture_logs() as logs, topic.subscribed(seen.append):
        topic.publish(7)
    assert seen == [7]
    assert calls == [False, True, False]
    assert any(log["event"] == "events.watcher_failed" for log in logs)


def test_bad_arguments_are_refused_with_the_field_named() -> None:
    with pytest.raises(ValidationError, match="name"):
        Topic("")
    topic: Topic[int] = Topic("numbers")
    with pytest.raises(ValidationError, match="listener"):
        topic.subscribe(42)  # type: ignore[arg-type]  # the point of the test
    with pytest.raises(ValidationError, match="callback"):
        topic.watch("nope")  # type: ignore[arg-type]  # the point of the test
    assert "numbers" in repr(topic)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 3)), max_size=30))
def test_listeners_always_match_a_model_of_subscriptions(ops: list[tuple[bool, int]]) -> None:
    topic: Topic[int] = Topic("model")
    pool = [(lambda n, i=i: i) for i in range(4)]
    model: list[int] = []
    active: list[bool] = []
    topic.watch(active.append)
    for subscribe, index in ops:
        if subscribe:
            topic.subscribe(pool[index])
            model.append(index)
        else:
            topic.unsubscribe(pool[index])
            if index in model:
                del model[len(model) - 1 - model[::-1].index(index)]
        assert topic.listeners == tuple(pool[i] for i in model)
        assert active[-1] is bool(model)


def test_concurrent_subscribers_are_all_kept() -> None:
    topic: Topic[int] = Topic("threads")
    listeners = [(lambda n, i=i: i) for i in range(200)]
    threads = [
        threading.Thread(target=lambda chunk=chunk: [topic.subscribe(fn) for fn in chunk])
        for chunk in (listeners[i::4] for i in range(4))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(map(id, topic.listeners)) == sorted(map(id, listeners))


# -- what the components publish ---------------------------------------------------


def test_every_new_breaker_is_announced_even_without_a_registry() -> None:
    created: list[CircuitBreaker] = []
    with BREAKER_CREATED.subscribed(created.append):
        registered = CircuitBreaker("events-a")
        unregistered = CircuitBreaker("events-b", registry=None)
    CircuitBreaker("events-c")
    assert created == [registered, unregistered]


async def test_flag_evaluations_are_published_with_their_reason() -> None:
    flags = FeatureFlags(refresh_interval=None)
    await flags.upsert(Flag("plain", "Plain", enabled=True))
    await flags.upsert(Flag("off", "Off"))
    await flags.upsert(Flag("vip", "VIP", enabled=True, users={"alice"}))
    seen: list[FlagEvaluation] = []
    with FLAG_EVALUATED.subscribed(seen.append):
        assert flags.is_enabled("plain") is True
        assert flags.is_enabled("off") is False
        assert flags.is_enabled("vip", FlagContext("alice")) is True
        assert flags.is_enabled("missing") is False
        assert flags.evaluate("off", FlagContext("bob")).enabled is False
        assert flags.is_enabled(["not", "hashable"]) is False  # type: ignore[arg-type]  # a caller bug
    assert [(e.key, e.enabled, e.reason) for e in seen] == [
        ("plain", True, Reason.DEFAULT),
        ("off", False, Reason.DISABLED),
        ("vip", True, Reason.USER_TARGET),
        ("missing", False, Reason.UNKNOWN_FLAG),
        ("off", False, Reason.DISABLED),
        ("['not', 'hashable']", False, Reason.ERROR),
    ]
    # Unobserved again: the fast path answers exactly as before, publishing nothing.
    assert flags.is_enabled("plain") is True
    assert len(seen) == 6


async def test_is_enabled_answers_the_same_observed_or_not() -> None:
    flags = FeatureFlags(refresh_interval=None)
    await flags.upsert(Flag("half", "Half", enabled=True, percentage=50, roles={"staff"}))
    contexts = [None, FlagContext(role="staff")] + [FlagContext(f"user-{i}") for i in range(50)]
    quiet = [flags.is_enabled("half", c) for c in contexts]
    with FLAG_EVALUATED.subscribed(lambda e: None):
        heard = [flags.is_enabled("half", c) for c in contexts]
    assert heard == quiet
    assert any(quiet)
    assert not all(quiet)


async def test_health_results_are_published_per_component_with_the_previous_status() -> None:
    registry = HealthRegistry()
    state = {"db": True}
    registry.register("db", lambda: state["db"], run_in_thread=False)
    registry.register("cache", lambda: True, run_in_thread=False)
    seen: list[HealthChecked] = []
    with HEALTH_CHECKED.subscribed(seen.append):
        await registry.run()
        state["db"] = False
        await registry.run()
    by_component = {
        name: [(e.result.status, e.previous) for e in seen if e.component == name]
        for name in ("db", "cache")
    }
    assert by_component == {
        "db": [(Status.HEALTHY, None), (Status.UNHEALTHY, Status.HEALTHY)],
        "cache": [(Status.HEALTHY, None), (Status.HEALTHY, Status.HEALTHY)],
    }
    assert all(e.result.latency_ms >= 0 for e in seen)


async def test_readiness_changes_are_published_as_the_readiness_component() -> None:
    registry = HealthRegistry()
    seen: list[HealthChecked] = []
    with HEALTH_CHECKED.subscribed(seen.append):
        registry.set_ready(False, reason="draining")
        registry.set_ready(True)
    assert [(e.component, e.result.status, e.previous) for e in seen] == [
        ("readiness", Status.UNHEALTHY, Status.HEALTHY),
        ("readiness", Status.HEALTHY, Status.UNHEALTHY),
    ]
    assert seen[0].result.message == "draining"


def _write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir()
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


async def test_migrations_publish_applied_failed_and_rolled_back(tmp_path: Path) -> None:
    directory = _write(
        tmp_path / "m",
        {
            "0001_users.sql": "CREATE TABLE users (id integer);\n-- down\nDROP TABLE users;\n",
            "0002_posts.sql": "CREATE TABLE posts (id integer);\n-- down\nDROP TABLE posts;\n",
        },
    )
    seen: list[MigrationRan] = []
    async with await connect(f"sqlite:///{tmp_path / 'app.db'}", migrate=False) as db:
        migrator = Migrator(db, directory, namespace="shop")
        with MIGRATION_RAN.subscribed(seen.append):
            await migrator.migrate()
            await migrator.rollback(1)
            (directory / "0003_bad.sql").write_text("CREATE TABLE ((;\n")
            with pytest.raises(MigrationFailedError):
                await migrator.migrate()
    assert [(e.namespace, e.migration, e.outcome) for e in seen] == [
        ("shop", "0001_users", "applied"),
        ("shop", "0002_posts", "applied"),
        ("shop", "0002_posts", "rolled_back"),
        ("shop", "0002_posts", "applied"),
        ("shop", "0003_bad", "failed"),
    ]
    assert all(e.duration >= 0 for e in seen)


def test_event_values_are_frozen() -> None:
    event = RateLimitDecided("api", allowed=False)
    assert event.cost == 1
    with pytest.raises(AttributeError):
        event.allowed = True  # type: ignore[misc]  # frozen: the point of the test
    assert MigrationRan("app", "0001_x", "applied", 0.5) == MigrationRan(
        "app", "0001_x", "applied", 0.5
    )


def test_a_rate_limit_decision_can_be_published_and_heard() -> None:
    # RateLimiter publishes this itself (see docs/metrics.md); any publisher may.
    seen: list[RateLimitDecided] = []
    with RATELIMIT_DECIDED.subscribed(seen.append):
        if RATELIMIT_DECIDED.listeners:
            RATELIMIT_DECIDED.publish(RateLimitDecided("login", allowed=True, cost=2))
    assert seen == [RateLimitDecided("login", True, 2)]


def test_a_raising_listener_does_not_break_a_breaker_call_or_a_flag() -> None:
    def broken(event: object) -> None:
        raise RuntimeError("metrics backend down")

    flags = FeatureFlags(refresh_interval=None)
    asyncio.run(flags.upsert(Flag("on", "On", enabled=True)))
    with (
        capture_logs(),
        BREAKER_CREATED.subscribed(broken),
        FLAG_EVALUATED.subscribed(broken),
    ):
        breaker = CircuitBreaker("events-broken-listener", registry=None)
        assert breaker.call(lambda: 5) == 5
        assert flags.is_enabled("on") is True


def test_importing_buttress_and_events_pulls_in_no_metrics_library() -> None:
    code = (
        "import sys, buttress, buttress.events, buttress.breaker, buttress.flags\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('prometheus_client', 'opentelemetry'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == ""
