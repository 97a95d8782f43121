"""``HealthHistory`` on memory, SQLite and PostgreSQL: recording, series, retention, checks."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buttress import connect
from buttress.backends import Backend, MissingTableError, SqlBackend
from buttress.errors import BackendError, UnsupportedBackendError, ValidationError
from buttress.health import ComponentStatus, HealthRegistry, HealthReport, Status
from buttress.migrations import apply_builtin
from buttress.migrations.builtin import builtin_migrator
from buttress.monitoring import (
    AlertLevel,
    DropRule,
    FlatRule,
    HealthHistory,
    Rule,
    Sample,
    SpikeRule,
    alert_level,
    detect,
)
from buttress.monitoring._service import PRUNE_EVERY, check_metrics
from buttress.monitoring._store import MemoryHistoryStore
from buttress.testing import FakeClock

START = datetime(2024, 3, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
POSTGRES = pytest.param("postgresql", marks=pytest.mark.postgres)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=START)


@pytest.fixture
def history(backend: Backend, clock: FakeClock) -> HealthHistory:
    return HealthHistory(backend, clock=clock)


def report(
    at: datetime,
    latencies: Mapping[str, float] | None = None,
    *,
    failing: tuple[str, ...] = (),
    version: str | None = "1.0",
) -> HealthReport:
    components = {
        name: ComponentStatus(
            Status.UNHEALTHY if name in failing else Status.HEALTHY, latency_ms=latency
        )
        for name, latency in (latencies or {"db": 1.0}).items()
    }
    return HealthReport.from_components(components, version=version, timestamp=at)


async def record_hourly(
    history: HealthHistory, clock: FakeClock, metric: str, values: list[float]
) -> None:
    """One run per hour, ``metric`` taking ``values`` in turn; the clock ends at the last run."""
    for index, value in enumerate(values):
        if index:
            clock.advance(3600)
        await history.record(report(clock.now()), {metric: value})


async def test_record_stores_status_components_and_metrics(history: HealthHistory) -> None:
    run = report(START, {"db": 2.5, "cache": 0.25}, failing=("cache",), version="2.1")
    await history.record(run, {"signups": 12, "queue.depth": 3.5})
    [stored] = await history.recent()
    assert stored.recorded_at == START
    assert stored.status is Status.UNHEALTHY
    assert stored.version == "2.1"
    assert {name: (c.status, c.latency_ms) for name, c in stored.components.items()} == {
        "db": (Status.HEALTHY, 2.5),
        "cache": (Status.UNHEALTHY, 0.25),
    }
    assert stored.metrics == {"signups": 12.0, "queue.depth": 3.5}
    assert stored.to_dict()["recorded_at"] == START.isoformat()
    assert stored.to_dict()["components"] == {
        "db": {"status": "healthy", "latency_ms": 2.5},
        "cache": {"status": "unhealthy", "latency_ms": 0.25},
    }


async def test_record_without_metrics_and_recent_is_newest_first(
    history: HealthHistory, clock: FakeClock
) -> None:
    for _ in range(4):
        await history.record(report(clock.now()))
        clock.advance(60)
    runs = await history.recent(limit=3)
    assert [r.recorded_at for r in runs] == [START + timedelta(minutes=m) for m in (3, 2, 1)]
    assert all(r.metrics == {} for r in runs)
    assert len({r.id for r in runs}) == 3
    assert await history.count() == 4


async def test_series_reads_one_metric_in_time_order_and_skips_runs_without_it(
    history: HealthHistory,
) -> None:
    # Recorded out of order: the series is ordered by time, not by insertion.
    await history.record(report(START + 2 * HOUR), {"signups": 30})
    await history.record(report(START), {"signups": 10, "errors": 1})
    await history.record(report(START + HOUR), {"errors": 2})
    await history.record(report(START + 3 * HOUR), {"signups": 0})
    assert await history.series("signups") == [
        Sample(START, 10),
        Sample(START + 2 * HOUR, 30),
        Sample(START + 3 * HOUR, 0),
    ]
    assert await history.series("errors") == [Sample(START, 1), Sample(START + HOUR, 2)]
    assert await history.series("unknown") == []


async def test_series_bounds_are_since_inclusive_until_exclusive(history: HealthHistory) -> None:
    for hour in range(5):
        await history.record(report(START + hour * HOUR), {"m": hour})
    window = await history.series("m", since=START + HOUR, until=START + 3 * HOUR)
    assert [s.value for s in window] == [1, 2]
    assert [s.value for s in await history.series("m", since=START + 3 * HOUR)] == [3, 4]
    assert [s.value for s in await history.series("m", until=START + HOUR)] == [0]


async def test_latency_series_per_component(history: HealthHistory) -> None:
    await history.record(report(START, {"db": 1.5, "redis": 0.5}))
    await history.record(report(START + HOUR, {"db": 4.0}))
    assert await history.series("latency:db") == [Sample(START, 1.5), Sample(START + HOUR, 4.0)]
    assert await history.series("latency:redis") == [Sample(START, 0.5)]
    assert await history.series("latency:nope") == []


async def test_metric_names_are_matched_exactly_whatever_they_contain(
    history: HealthHistory,
) -> None:
    names = ["a.b", 'quote"d', "sp ace", "$.path", "ünï", "x'y", "percent%_"]
    await history.record(report(START), {name: i for i, name in enumerate(names)})
    for i, name in enumerate(names):
        assert await history.series(name) == [Sample(START, i)]
    assert await history.series("a") == []


async def test_timestamps_in_other_zones_are_stored_as_the_same_instant(
    history: HealthHistory,
) -> None:
    plus_two = START.astimezone(timezone(timedelta(hours=2)))
    await history.record(report(plus_two + HOUR), {"m": 2})
    await history.record(report(START), {"m": 1})
    assert [s.value for s in await history.series("m")] == [1, 2]
    [newest, _] = await history.recent()
    assert newest.recorded_at == START + HOUR


BAD_METRICS: list[tuple[object, str]] = [
    ({"": 1}, "metrics"),
    ({"   ": 1}, "metrics"),
    ({3: 1}, "metrics"),
    ({"latency:db": 1}, "metrics"),
    ({"x" * 201: 1}, "metrics"),
    ({"ok": 1, "bad": math.nan}, "metrics['bad']"),
    ({"bad": math.inf}, "metrics['bad']"),
    ({"bad": -math.inf}, "metrics['bad']"),
    ({"bad": 10**400}, "metrics['bad']"),
    ({"bad": True}, "metrics['bad']"),
    ({"bad": "12"}, "metrics['bad']"),
    ({"bad": None}, "metrics['bad']"),
    ([("a", 1)], "metrics"),
]


@pytest.mark.parametrize(("metrics", "field"), BAD_METRICS)
async def test_bad_metrics_are_refused_before_anything_is_written(
    history: HealthHistory, metrics: object, field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        await history.record(report(START), metrics)  # type: ignore[arg-type]  # bad on purpose
    assert caught.value.field == field
    assert await history.count() == 0


def test_check_metrics_names_the_field_it_was_given() -> None:
    assert check_metrics("extra", None) == {}
    assert check_metrics("extra", {"jobs": 3}, taken={"queue": 1.0}) == {"jobs": 3.0}
    with pytest.raises(ValidationError) as caught:
        check_metrics("extra", {"queue": 1}, taken={"queue": 1.0})
    assert (caught.value.field, caught.value.rule) == (
        "extra['queue']",
        "collides with a metric the collector reports",
    )
    with pytest.raises(ValidationError) as caught:
        check_metrics("extra", {"jobs": 10**400})
    assert (caught.value.field, caught.value.rule) == ("extra['jobs']", "must be a finite number")
    with pytest.raises(ValidationError) as caught:
        check_metrics("extra", {"jobs": "3"})  # type: ignore[dict-item]  # bad on purpose
    assert caught.value.rule == "must be a number, not str"


async def test_bad_reports_and_arguments_are_refused(history: HealthHistory) -> None:
    with pytest.raises(ValidationError, match="report"):
        await history.record({"status": "healthy"})  # type: ignore[arg-type]  # bad on purpose
    naive = report(datetime(2024, 1, 1))
    with pytest.raises(ValidationError, match="timezone-aware"):
        await history.record(naive)
    with pytest.raises(ValidationError, match="metric"):
        await history.series("")
    with pytest.raises(ValidationError, match="component"):
        await history.series("latency:")
    with pytest.raises(ValidationError, match="since"):
        await history.series("m", since=datetime(2024, 1, 1))
    with pytest.raises(ValidationError, match="until"):
        await history.series("m", since=START, until=START - HOUR)
    with pytest.raises(ValidationError, match="limit"):
        await history.recent(0)
    with pytest.raises(ValidationError, match="rules"):
        await history.check(["drop:signups"])  # type: ignore[list-item]  # bad on purpose
    with pytest.raises(ValidationError, match="now"):
        await history.check([DropRule("m")], now=datetime(2024, 1, 1))
    assert await history.count() == 0


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"retention_days": 0}, "retention_days"),
        ({"retention_days": -1}, "retention_days"),
        ({"retention_days": math.nan}, "retention_days"),
        ({"retention_days": 10**7}, "retention_days"),
        ({"retention_days": "30"}, "retention_days"),
        ({"retention_rows": 0}, "retention_rows"),
        ({"retention_rows": 1.5}, "retention_rows"),
        ({"retention_rows": True}, "retention_rows"),
    ],
)
def test_bad_retention_is_refused(options: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        HealthHistory(**options)  # type: ignore[arg-type]  # bad on purpose
    assert caught.value.field == field


async def test_prune_keeps_only_the_last_retention_days(backend: Backend, clock: FakeClock) -> None:
    history = HealthHistory(backend, clock=clock, retention_days=2, retention_rows=None)
    for day in range(5):
        await history.record(report(START + timedelta(days=day)), {"m": day})
    clock.advance(timedelta(days=3, hours=12).total_seconds())
    assert await history.prune() == 2  # day 0 and day 1 are older than two days
    assert [s.value for s in await history.series("m")] == [2, 3, 4]
    assert await history.prune() == 0


async def test_prune_keeps_only_the_newest_retention_rows(
    backend: Backend, clock: FakeClock
) -> None:
    history = HealthHistory(backend, clock=clock, retention_days=None, retention_rows=3)
    # Two runs share a timestamp: the later-recorded one counts as newer.
    times = [START, START + HOUR, START + 2 * HOUR, START + 2 * HOUR, START + 3 * HOUR]
    for value, at in enumerate(times):
        await history.record(report(at), {"m": value})
    assert await history.prune() == 2
    assert await history.count() == 3
    assert [s.value for s in await history.series("m")] == [2, 3, 4]


async def test_record_applies_retention_on_its_first_call_and_every_so_often(
    backend: Backend, clock: FakeClock
) -> None:
    keep_all = HealthHistory(backend, clock=clock, retention_days=None, retention_rows=None)
    await keep_all.record(report(START - timedelta(days=40)), {"m": -1})
    assert await keep_all.count() == 1
    history = HealthHistory(backend, clock=clock, retention_rows=2)
    await history.record(report(START), {"m": 0})
    assert await history.series("m") == [Sample(START, 0)]  # the 40-day-old run went
    for index in range(1, PRUNE_EVERY):
        await history.record(report(START + index * timedelta(seconds=1)), {"m": index})
    assert await history.count() == PRUNE_EVERY  # between prunes nothing is deleted
    await history.record(report(START + HOUR), {"m": PRUNE_EVERY})
    assert await history.count() == 2


async def test_retention_runs_again_after_an_hour_even_when_quiet(
    backend: Backend, clock: FakeClock
) -> None:
    history = HealthHistory(backend, clock=clock, retention_rows=1)
    await history.record(report(clock.now()), {"m": 1})
    await history.record(report(clock.now()), {"m": 2})
    assert await history.count() == 2
    clock.advance(3600)
    await history.record(report(clock.now()), {"m": 3})
    assert [s.value for s in await history.series("m")] == [3]


async def test_a_failing_prune_does_not_lose_the_recorded_run(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    history = HealthHistory(clock=clock)

    async def broken(self: object, older_than: object, keep_rows: object) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(MemoryHistoryStore, "prune", broken)
    await history.record(report(START), {"m": 1})
    assert await history.series("m") == [Sample(START, 1)]


async def test_histories_on_one_backend_share_records(backend: Backend, clock: FakeClock) -> None:
    await HealthHistory(backend, clock=clock).record(report(START), {"m": 1})
    assert await HealthHistory(backend, clock=clock).series("m") == [Sample(START, 1)]


async def test_without_a_backend_each_history_is_private(clock: FakeClock) -> None:
    await HealthHistory(clock=clock).record(report(START), {"m": 1})
    assert await HealthHistory(clock=clock).count() == 0


@pytest.mark.redis
async def test_redis_is_refused(redis_dsn: str) -> None:
    async with connect(redis_dsn) as redis:
        with pytest.raises(UnsupportedBackendError, match="HealthHistory"):
            HealthHistory(redis)


async def test_a_database_without_the_table_gets_a_clear_error(sqlite_dsn: str) -> None:
    async with connect(sqlite_dsn, migrate=False) as bare:
        with pytest.raises(MissingTableError, match=r"buttress_health_history.*migrate=True") as e:
            await HealthHistory(bare).record(report(START))
        assert isinstance(e.value, BackendError)
        assert (e.value.component, e.value.tables) == (
            "HealthHistory",
            ("buttress_health_history",),
        )
        await apply_builtin(bare)
        await HealthHistory(bare).record(report(START))


async def test_the_migration_rolls_back_and_reapplies(sql_dsn: str) -> None:
    async with connect(sql_dsn) as opened:
        assert isinstance(opened, SqlBackend)
        history = HealthHistory(opened)
        await history.record(report(START), {"m": 1})
        undone = await builtin_migrator(opened).rollback(4)
        assert "0005_health_history" in undone
        with pytest.raises(BackendError, match="buttress_health_history"):
            await history.count()
        await apply_builtin(opened)
        assert await history.count() == 0


async def test_check_finds_a_drop_in_a_recorded_metric(
    history: HealthHistory, clock: FakeClock
) -> None:
    await record_hourly(history, clock, "signups", [120, 130, 110, 40])
    [anomaly] = await history.check([DropRule("signups", warning=0.5)])
    assert (anomaly.metric, anomaly.rule, anomaly.level) == ("signups", "drop", AlertLevel.WARNING)
    assert anomaly.baseline == 120
    assert await history.check([DropRule("signups", warning=0.7)]) == []


async def test_check_finds_a_latency_spike(history: HealthHistory, clock: FakeClock) -> None:
    for latency in [10.0, 12.0, 9.0, 11.0, 55.0]:
        await history.record(report(clock.now(), {"db": latency}))
        clock.advance(600)
    [anomaly] = await history.check([SpikeRule("latency:db", warning=1.0, critical=3.0)])
    assert (anomaly.metric, anomaly.level) == ("latency:db", AlertLevel.CRITICAL)


async def test_flat_at_zero_needs_the_period_covered(
    history: HealthHistory, clock: FakeClock
) -> None:
    rule = FlatRule("signups", period=timedelta(hours=24))
    await record_hourly(history, clock, "signups", [0.0] * 24)  # 23 hours of zeros
    assert await history.check([rule]) == []
    clock.advance(3600)
    await history.record(report(clock.now()), {"signups": 0})
    [anomaly] = await history.check([rule])
    assert (anomaly.rule, anomaly.level) == ("flat", AlertLevel.WARNING)
    clock.advance(600)
    await history.record(report(clock.now()), {"signups": 1})
    assert await history.check([rule]) == []


async def test_check_as_of_an_earlier_moment_ignores_later_runs(
    history: HealthHistory, clock: FakeClock
) -> None:
    await record_hourly(history, clock, "signups", [100, 100, 100, 10, 100])
    assert await history.check([DropRule("signups")]) == []
    as_of = START + 3 * HOUR
    [anomaly] = await history.check([DropRule("signups")], now=as_of)
    assert anomaly.observed == 10
    assert await history.check([DropRule("signups")], now=START - HOUR) == []


async def test_check_reports_in_rule_order_across_metrics(
    history: HealthHistory, clock: FakeClock
) -> None:
    for errors, signups in [(1, 100), (1, 100), (1, 100), (9, 10)]:
        await history.record(report(clock.now()), {"errors": errors, "signups": signups})
        clock.advance(600)
    rules: list[Rule] = [SpikeRule("errors"), DropRule("signups"), SpikeRule("signups")]
    found = await history.check(rules)
    assert [(a.metric, a.rule) for a in found] == [("errors", "spike"), ("signups", "drop")]
    assert alert_level(found) is AlertLevel.WARNING
    assert await history.check([]) == []


SERIES = [100.0, 120.0, 90.0, 110.0, 45.0, 130.0, 15.0]


@pytest.mark.parametrize("factor", [0.001, 3.7, 1e6])
async def test_a_series_scaled_by_a_constant_gets_the_same_verdict_through_storage(
    history: HealthHistory, clock: FakeClock, factor: float
) -> None:
    rules: list[Rule] = []
    for metric in ("orders", "scaled"):
        rules += [
            DropRule(metric, warning=0.5, critical=0.8, window=timedelta(hours=4)),
            SpikeRule(metric, warning=0.3, window=timedelta(hours=3)),
        ]
    verdicts = []
    for index, value in enumerate(SERIES):
        await history.record(report(clock.now()), {"orders": value, "scaled": value * factor})
        found = await history.check(rules)
        by_metric = {
            metric: [(a.rule, a.level) for a in found if a.metric == metric]
            for metric in ("orders", "scaled")
        }
        assert by_metric["orders"] == by_metric["scaled"], index
        verdicts.append(by_metric["orders"])
        clock.advance(3600)
    # The series does trigger something, so the comparison above is not vacuous.
    assert ("drop", AlertLevel.CRITICAL) in verdicts[-1]
    assert any(("spike", AlertLevel.WARNING) in v for v in verdicts)


async def test_recorded_registry_runs_give_latency_series(clock: FakeClock) -> None:
    registry = HealthRegistry(version="3.0", clock=clock)
    registry.register("always", lambda: True)
    history = HealthHistory(clock=clock)
    for _ in range(3):
        await history.record(await registry.run(), {"active_users": 5})
        clock.advance(60)
    latencies = await history.series("latency:always")
    assert len(latencies) == 3
    assert all(s.value >= 0 for s in latencies)
    [newest, *_] = await history.recent()
    assert newest.version == "3.0"
    assert newest.status is Status.HEALTHY


# Property tests on the in-process store: reading only the part of each series a
# rule can see gives exactly detect() over the whole recorded history.

MINUTE = timedelta(minutes=1)
offsets = st.integers(min_value=0, max_value=60 * 72)
values = st.sampled_from([0.0, 0.0, 1.0, 2.0, 5.0, 10.0, 40.0, 100.0])
windows = st.integers(min_value=1, max_value=48).map(lambda h: timedelta(hours=h))
rules_strategy = st.lists(
    st.one_of(
        st.builds(
            DropRule,
            st.just("m"),
            warning=st.sampled_from([0.2, 0.5, 0.9]),
            window=windows,
            min_samples=st.integers(1, 4),
        ),
        st.builds(
            SpikeRule,
            st.just("m"),
            warning=st.sampled_from([0.5, 1.0, 3.0]),
            window=windows,
            min_samples=st.integers(1, 4),
        ),
        st.builds(FlatRule, st.just("m"), period=windows),
    ),
    min_size=1,
    max_size=4,
)


def recorded(points: list[tuple[int, float]]) -> list[Sample]:
    return [Sample(START + offset * MINUTE, value) for offset, value in points]


async def check_on_memory(
    points: list[tuple[int, float]], rules: list[Rule], now: datetime, scale: float = 1.0
) -> list[tuple[str, AlertLevel]]:
    history = HealthHistory(retention_days=None, retention_rows=None)
    for sample in recorded(points):
        await history.record(report(sample.at), {"m": sample.value * scale})
    return [(a.rule, a.level) for a in await history.check(rules, now=now)]


@settings(max_examples=60, deadline=None)
@given(
    points=st.lists(st.tuples(offsets, values), max_size=30),
    rules=rules_strategy,
    now_offset=offsets,
)
def test_check_equals_detect_over_the_whole_history(
    points: list[tuple[int, float]], rules: list[Rule], now_offset: int
) -> None:
    now = START + now_offset * MINUTE
    # detect() sorts stably, so runs sharing a time keep their recording order,
    # as the store does (time, then id).
    visible = [s for s in recorded(points) if s.at <= now]
    expected = [(a.rule, a.level) for a in detect(visible, rules, now)]
    assert asyncio.run(check_on_memory(points, rules, now)) == expected


@settings(max_examples=40, deadline=None)
@given(
    points=st.lists(st.tuples(offsets, values), min_size=1, max_size=30),
    rules=rules_strategy,
    # Powers of two scale exactly, so no ratio can round across a threshold.
    scale=st.sampled_from([0.25, 0.5, 4.0, 1024.0]),
)
def test_scaling_the_recorded_metric_never_changes_the_verdict(
    points: list[tuple[int, float]], rules: list[Rule], scale: float
) -> None:
    now = START + 80 * HOUR
    plain = asyncio.run(check_on_memory(points, rules, now))
    assert asyncio.run(check_on_memory(points, rules, now, scale)) == plain


async def test_flat_rule_sees_coverage_from_a_run_long_before_its_period(
    history: HealthHistory,
) -> None:
    # Only the runs of the last two hours are read, plus one older run to show
    # that the history covers the period.
    await history.record(report(START), {"jobs": 3})
    for minutes in (300, 330, 360):
        await history.record(report(START + timedelta(minutes=minutes)), {"jobs": 0})
    rule = FlatRule("jobs", period=timedelta(hours=2))
    now = START + timedelta(hours=6)
    [anomaly] = await history.check([rule], now=now)
    assert anomaly.rule == "flat"
    assert await history.check([rule], now=START + timedelta(hours=1)) == []
