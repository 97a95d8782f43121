"""Error statistics: sliding-window counts, the capture hook, the error-rate rule,
per-minute persistence in SQLite and PostgreSQL, and ``buttress errors``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from buttress import connect
from buttress.backends import MissingTableError, SqlBackend, require_sql
from buttress.cli import build_parser as parser
from buttress.errors import (
    ErrorCategory,
    Severity,
    UnsupportedBackendError,
    ValidationError,
    capture,
    with_error_handling,
)
from buttress.migrations.builtin import apply_builtin, builtin_migrator
from buttress.monitoring import AlertLevel, alert_level
from buttress.monitoring.errors import (
    OTHER_COMPONENT,
    ErrorCount,
    ErrorRateRule,
    ErrorStats,
    read_error_counts,
    summarize,
)
from buttress.testing import FakeClock
from cli_support import set_up

START = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
DB, NET = ErrorCategory.DATABASE, ErrorCategory.NETWORK
HIGH, LOW = Severity.HIGH, Severity.LOW


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=START)


@pytest.fixture
def stats(clock: FakeClock) -> ErrorStats:
    return ErrorStats(clock=clock)


# -- counting in memory ------------------------------------------------------------------------


def test_counts_by_category_severity_and_component(stats: ErrorStats) -> None:
    stats.record(DB, HIGH, "billing", count=3)
    stats.record(NET, LOW, "billing")
    stats.record("database", "high", "search")
    summary = stats.summary()
    assert summary.total == 5
    assert summary.by_category == {"database": 4, "network": 1}
    assert summary.by_severity == {"high": 4, "low": 1}
    assert summary.by_component == {"billing": 4, "search": 1}
    assert stats.count(category=DB) == 4
    assert stats.count(severity="low", component="billing") == 1
    assert stats.count(category=NET, component="search") == 0


def test_the_window_slides_with_the_clock(stats: ErrorStats, clock: FakeClock) -> None:
    stats.record(DB, HIGH, "billing")
    clock.advance(30)
    stats.record(DB, HIGH, "billing", count=2)
    assert stats.count(MINUTE) == 3
    clock.advance(40)  # first error 70 s old, second 40 s
    assert stats.count(MINUTE) == 2
    assert stats.count(timedelta(minutes=5)) == 3
    clock.advance(3600)  # both beyond the hour the statistics keep
    assert stats.count(timedelta(hours=1)) == 0
    assert stats.summary().total == 0
    assert stats.counts() == []


def test_buckets_count_whole_so_the_count_is_exact_to_one_bucket(
    stats: ErrorStats, clock: FakeClock
) -> None:
    stats.record(DB, HIGH, "billing")  # bucket [0 s, 5 s)
    clock.advance(64.9)  # the window [4.9 s, 64.9 s] still touches the bucket
    assert stats.count(MINUTE) == 1
    clock.advance(0.2)
    assert stats.count(MINUTE) == 0


def test_memory_stays_bounded(clock: FakeClock) -> None:
    stats = ErrorStats(clock=clock, window=timedelta(minutes=10), bucket_seconds=10, max_keys=3)
    for _ in range(0, 3600, 7):
        clock.advance(7)
        for component in ("a", "b", "c", "d", "e"):
            stats.record(DB, HIGH, component)
    counts = stats.counts()
    assert len({c.at for c in counts}) <= 10 * 6 + 1
    assert {c.component for c in counts} == {"a", "b", "c", OTHER_COMPONENT}
    assert sum(c.count for c in counts if c.component == OTHER_COMPONENT) == 2 * sum(
        c.count for c in counts if c.component == "a"
    )


def test_metrics_for_the_health_history(stats: ErrorStats, clock: FakeClock) -> None:
    stats.record(DB, HIGH, "billing", count=4)
    clock.advance(120)
    stats.record(DB, HIGH, "billing")
    assert stats.metrics() == {"errors_last_minute": 1.0, "errors_last_hour": 5.0}


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s: s.record("disk", HIGH, "x"), "category"),
        (lambda s: s.record(DB, "urgent", "x"), "severity"),
        (lambda s: s.record(DB, HIGH, ""), "component"),
        (lambda s: s.record(DB, HIGH, "x", count=0), "count"),
        (lambda s: s.count(timedelta(0)), "window"),
        (lambda s: s.count(category="nope"), "category"),
        (lambda s: s.check(["rule"]), "rules[0]"),
    ],
)
def test_bad_input_names_the_field(stats: ErrorStats, call: object, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        call(stats)  # type: ignore[operator]  # the lambdas take an ErrorStats
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"window": timedelta(days=8)}, "window"),
        ({"bucket_seconds": 7}, "bucket_seconds"),
        ({"bucket_seconds": 0}, "bucket_seconds"),
        ({"max_keys": 0}, "max_keys"),
        ({"max_pending": True}, "max_pending"),
        ({"flush_interval": 0}, "flush_interval"),
        ({"retention_days": float("inf")}, "retention_days"),
    ],
)
def test_bad_options_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ErrorStats(**kwargs)  # type: ignore[arg-type]  # bad on purpose
    assert caught.value.field == field


@settings(max_examples=50, deadline=None)
@given(
    steps=st.lists(st.tuples(st.floats(0, 400), st.integers(1, 5)), max_size=30),
    window_s=st.integers(1, 3600),
)
def test_counts_are_exact_to_one_bucket(steps: list[tuple[float, int]], window_s: int) -> None:
    clock = FakeClock(start=START)
    stats = ErrorStats(clock=clock)
    recorded: list[tuple[float, int]] = []
    for wait, count in steps:
        clock.advance(wait)
        stats.record(DB, HIGH, "billing", count=count)
        recorded.append((clock.time(), count))
    now = clock.time()
    counted = stats.count(timedelta(seconds=window_s))
    within = sum(n for at, n in recorded if at >= now - window_s and now - at < 3600)
    widened = sum(n for at, n in recorded if at > now - window_s - stats.bucket_seconds)
    assert within <= counted <= widened


# -- the capture hook --------------------------------------------------------------------------


def test_installed_statistics_count_captured_errors(stats: ErrorStats) -> None:
    stats.install()
    try:
        capture(ConnectionResetError("peer gone"), component="payments")
        capture(ValueError("bad"), component="payments", operation="parse")

        @with_error_handling(component="billing")
        def charge() -> None:
            raise TimeoutError

        assert charge().is_err()
        stats.install()  # twice is once
        capture(ValueError("again"), component="payments")
    finally:
        stats.uninstall()
    capture(ValueError("not counted"), component="payments")
    summary = stats.summary()
    assert summary.total == 4
    assert summary.by_component == {"payments": 3, "billing": 1}
    assert summary.by_category["timeout"] == 1


def test_a_failing_listener_never_breaks_capture(stats: ErrorStats) -> None:
    from buttress.errors._capture import add_capture_listener, remove_capture_listener

    def broken(_error: object) -> None:
        raise RuntimeError("listener bug")

    add_capture_listener(broken)
    stats.install()
    try:
        result = capture(ValueError("x"), component="c")
    finally:
        remove_capture_listener(broken)
        stats.uninstall()
    assert result.is_err()
    assert stats.count() == 1


def test_the_log_processor_counts_logged_errors_once(stats: ErrorStats) -> None:
    processor = stats.log_processor
    processor(None, "error", {"event": "upstream_down", "component": "payments"})
    processor(None, "critical", {"event": "disk_full"})
    processor(None, "warning", {"event": "slow"})
    processor(None, "error", {"event": "error_captured", "component": "payments"})
    summary = stats.summary()
    assert summary.total == 2
    assert summary.by_component == {"log": 1, "payments": 1}
    assert summary.by_severity == {"critical": 1, "high": 1}
    assert summary.by_category == {"system": 2}


def test_the_log_processor_works_in_a_structlog_pipeline(stats: ErrorStats) -> None:
    logger = structlog.wrap_logger(
        structlog.testing.CapturingLogger(), processors=[stats.log_processor]
    )
    logger.error("boom", component="search")
    logger.info("fine")
    assert stats.count(component="search") == 1


# -- the error-rate rule ------------------------------------------------------------------------


def test_more_than_ten_errors_a_minute_warns(stats: ErrorStats, clock: FakeClock) -> None:
    rules = [ErrorRateRule(10, critical=50)]
    stats.record(DB, HIGH, "billing", count=10)
    assert stats.check(rules) == []
    stats.record(DB, HIGH, "billing")
    [found] = stats.check(rules)
    assert (found.level, found.rule, found.metric) == (
        AlertLevel.WARNING,
        "error_rate",
        "errors_per_minute",
    )
    assert found.observed == 11
    assert "11 errors a minute" in found.message
    stats.record(NET, LOW, "search", count=40)
    assert alert_level(stats.check(rules)) is AlertLevel.CRITICAL
    clock.advance(120)
    assert stats.check(rules) == []


def test_rules_narrow_what_they_count(stats: ErrorStats) -> None:
    stats.record(DB, HIGH, "billing", count=20)
    stats.record(NET, LOW, "search", count=20)
    narrow = ErrorRateRule(9, window=timedelta(minutes=2), category="network", severity="low")
    [found] = stats.check([narrow, ErrorRateRule(1, component="nowhere")])
    assert found.metric == "errors_per_minute[category=network,severity=low]"
    assert found.observed == 10  # 20 errors over two minutes
    assert stats.check([ErrorRateRule(10, window=timedelta(minutes=2), category="network")]) == []
    assert ErrorRateRule(9.9, window=timedelta(minutes=2), component="search").rate(
        stats.counts(), START
    ) == pytest.approx(10)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"per_minute": 0}, "per_minute"),
        ({"per_minute": float("nan")}, "per_minute"),
        ({"critical": 5}, "critical"),
        ({"window": timedelta(0)}, "window"),
        ({"component": ""}, "component"),
    ],
)
def test_bad_rules_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ErrorRateRule(**kwargs)  # type: ignore[arg-type]  # bad on purpose
    assert caught.value.field == field


error_counts = st.lists(
    st.builds(
        ErrorCount,
        at=st.integers(0, 600).map(lambda s: START + timedelta(seconds=5 * s)),
        seconds=st.just(5.0),
        category=st.sampled_from([c.value for c in ErrorCategory]),
        severity=st.sampled_from([s.value for s in Severity]),
        component=st.sampled_from(["a", "b", "c"]),
        count=st.integers(1, 50),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(counts=error_counts, minutes=st.integers(1, 60))
def test_summary_totals_agree_across_every_breakdown(
    counts: list[ErrorCount], minutes: int
) -> None:
    until = START + timedelta(minutes=50)
    summary = summarize(counts, until - timedelta(minutes=minutes), until)
    assert summary.total == sum(summary.by_category.values())
    assert summary.total == sum(summary.by_severity.values())
    assert summary.total == sum(summary.by_component.values())
    assert list(summary.by_component.values()) == sorted(
        summary.by_component.values(), reverse=True
    )
    rule = ErrorRateRule(1, window=timedelta(minutes=minutes))
    assert rule.rate(counts, until) * minutes == pytest.approx(summary.total)


@settings(max_examples=60, deadline=None)
@given(counts=error_counts, threshold=st.floats(0.1, 100), step=st.floats(0, 100))
def test_a_higher_threshold_never_raises_the_level(
    counts: list[ErrorCount], threshold: float, step: float
) -> None:
    now = START + timedelta(minutes=30)
    low = ErrorRateRule(threshold).check(counts, now)
    high = ErrorRateRule(threshold + step).check(counts, now)
    assert alert_level([high] if high else []) <= alert_level([low] if low else [])


# -- persistence ---------------------------------------------------------------------------------


@pytest.fixture
async def db(sql_dsn: str) -> AsyncIterator[SqlBackend]:
    async with connect(sql_dsn) as backend:
        yield require_sql(backend, "tests")


async def test_flush_writes_per_minute_counts_and_adds_up(db: SqlBackend) -> None:
    clock = FakeClock(start=START + timedelta(seconds=10))
    stats = ErrorStats(db, clock=clock)
    assert stats.persistent
    stats.record(DB, HIGH, "billing", count=2)
    clock.advance(20)
    stats.record(DB, HIGH, "billing")
    stats.record(NET, LOW, "search")
    clock.advance(60)
    stats.record(DB, HIGH, "billing")
    assert await stats.flush() == 3
    assert await stats.flush() == 0  # nothing pending
    stats.record(DB, HIGH, "billing", count=5)  # the same minute again: added to its row
    assert await stats.flush() == 1

    counts = await read_error_counts(db, START - timedelta(hours=1))
    assert [(c.at, c.seconds, c.category, c.component, c.count) for c in counts] == [
        (START, 60, "database", "billing", 3),
        (START, 60, "network", "search", 1),
        (START + MINUTE, 60, "database", "billing", 6),
    ]
    assert summarize(counts, START, START + 2 * MINUTE).total == 10
    assert await read_error_counts(db, START + 2 * MINUTE) == []
    assert len(await read_error_counts(db, START, START + timedelta(seconds=30))) == 2


async def test_a_failed_flush_keeps_the_counts_for_the_next(db: SqlBackend) -> None:
    clock = FakeClock(start=START)
    stats = ErrorStats(db, clock=clock)
    stats.record(DB, HIGH, "billing", count=4)
    await builtin_migrator(db).rollback(7)  # the table is gone
    with pytest.raises(MissingTableError, match="0008_system_health"):
        await stats.flush()
    with pytest.raises(MissingTableError):
        await read_error_counts(db, START)
    await apply_builtin(db)
    assert await stats.flush() == 1
    [count] = await read_error_counts(db, START)
    assert count.count == 4


async def test_a_full_buffer_drops_and_counts_what_it_dropped(db: SqlBackend) -> None:
    clock = FakeClock(start=START)
    stats = ErrorStats(db, clock=clock, max_pending=2)
    for component in ("a", "b", "c"):
        stats.record(DB, HIGH, component, count=2)
    assert stats.dropped == 2
    assert stats.count() == 6  # memory is unaffected
    assert await stats.flush() == 2


async def test_old_rows_are_pruned_on_flush(db: SqlBackend) -> None:
    clock = FakeClock(start=START)
    stats = ErrorStats(db, clock=clock, retention_days=1)
    stats.record(DB, HIGH, "billing")
    await stats.flush()
    clock.advance(2 * 86400)
    stats.record(DB, HIGH, "billing")
    await stats.flush()
    counts = await read_error_counts(db, START - MINUTE)
    assert [c.at for c in counts] == [START + timedelta(days=2)]


async def test_start_and_stop_flush_in_the_background(db: SqlBackend) -> None:
    clock = FakeClock(start=START)
    async with ErrorStats(db, clock=clock, flush_interval=5) as stats:
        capture(ValueError("x"), component="billing")
        stats.record(DB, HIGH, "billing")
    capture(ValueError("after stop"), component="billing")
    counts = await read_error_counts(db, START - MINUTE)
    assert sum(c.count for c in counts) == 2


async def test_memory_backends_keep_counts_in_memory_only() -> None:
    async with connect("memory://") as backend:
        stats = ErrorStats(backend)
        stats.record(DB, HIGH, "billing")
        assert not stats.persistent
        assert await stats.flush() == 0


async def test_redis_is_refused(redis_dsn: str) -> None:
    async with connect(redis_dsn) as backend:
        with pytest.raises(UnsupportedBackendError, match="sqlite or postgresql"):
            ErrorStats(backend)


# -- buttress errors -------------------------------------------------------------------------


def run_cli(*argv: str) -> int:
    args = parser().parse_args(["errors", *argv])
    code: int = args.handler(args)
    return code


def seeded(sqlite_dsn: str, per_minute: list[int]) -> None:
    """Persist ``per_minute[i]`` database errors in minute ``i`` after START."""
    asyncio.run(_seed(sqlite_dsn, per_minute))


async def _seed(sqlite_dsn: str, per_minute: list[int]) -> None:
    async with connect(sqlite_dsn) as backend:
        clock = FakeClock(start=START)
        stats = ErrorStats(backend, clock=clock)
        for count in per_minute:
            if count:
                stats.record(DB, HIGH, "billing", count=count)
                stats.record(NET, LOW, "search")
            clock.advance(60)
        await stats.flush()


def test_cli_shows_counts_and_a_healthy_rate(
    sqlite_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    seeded(sqlite_dsn, [5, 3, 0, 2])
    capsys.readouterr()  # drop the seeding's own log lines
    at = (START + timedelta(minutes=4, seconds=30)).isoformat()
    assert run_cli("--dsn", sqlite_dsn, "--at", at) == 0
    out = capsys.readouterr().out
    assert out.startswith("healthy: 13 errors in the last 60 min")
    assert "database" in out
    assert "billing                  10" in out


def test_cli_warns_above_the_rate_and_prints_json(
    sqlite_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    seeded(sqlite_dsn, [0, 0, 30])
    capsys.readouterr()  # drop the seeding's own log lines
    at = (START + timedelta(minutes=2, seconds=40)).isoformat()
    assert run_cli("--dsn", sqlite_dsn, "--at", at) == 1
    assert "errors a minute" in capsys.readouterr().out
    code = run_cli("--dsn", sqlite_dsn, "--at", at, "--critical-per-minute", "20", "--json")
    assert code == 2
    report = json.loads(capsys.readouterr().out)
    assert report["level"] == "critical"
    assert report["summary"]["by_component"] == {"billing": 30, "search": 1}
    assert report["anomalies"][0]["threshold"] == 20


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--since", "soon"], "--since"),
        (["--max-per-minute", "0"], "per_minute"),
        (["--at", "yesterday"], "--at"),
        (["--top", "0"], "--top"),
    ],
)
def test_cli_bad_input_exits_2(
    sqlite_dsn: str, capsys: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    assert run_cli("--dsn", set_up(sqlite_dsn), *argv) == 2
    assert words in capsys.readouterr().err


def test_cli_refuses_a_memory_backend(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("--dsn", "memory://", "--json") == 2
    assert json.loads(capsys.readouterr().out)["ok"] is False
