"""Properties of the pure aggregation rule and of the critical flag."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from buttress.health import ComponentStatus, HealthReport, Status, aggregate, effective_status

statuses = st.sampled_from(list(Status))
status_lists = st.lists(statuses, max_size=12)
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def test_empty_is_healthy() -> None:
    assert aggregate([]) is Status.HEALTHY


def test_worst_wins_examples() -> None:
    assert aggregate([Status.HEALTHY, Status.DEGRADED]) is Status.DEGRADED
    assert aggregate([Status.DEGRADED, Status.UNHEALTHY, Status.HEALTHY]) is Status.UNHEALTHY
    assert aggregate(iter([Status.HEALTHY])) is Status.HEALTHY


@given(status_lists, st.randoms())
def test_order_independent(items: list[Status], rnd: object) -> None:
    shuffled = list(items)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]  # hypothesis Random
    assert aggregate(shuffled) is aggregate(items)


@given(status_lists)
def test_is_the_most_severe(items: list[Status]) -> None:
    expected = max((s.severity for s in items), default=0)
    assert aggregate(items).severity == expected


@given(status_lists, st.integers(min_value=0, max_value=11), statuses)
def test_monotone_worsening_one_component_never_improves(
    items: list[Status], index: int, replacement: Status
) -> None:
    if not items:
        items = [Status.HEALTHY]
    index %= len(items)
    if replacement.severity < items[index].severity:
        return
    worse = list(items)
    worse[index] = replacement
    assert aggregate(worse).severity >= aggregate(items).severity


@given(status_lists, status_lists)
def test_associative(left: list[Status], right: list[Status]) -> None:
    assert aggregate([aggregate(left), *right]) is aggregate(left + right)


@given(statuses)
def test_effective_status_caps_non_critical_at_degraded(status: Status) -> None:
    assert effective_status(status, critical=True) is status
    capped = effective_status(status, critical=False)
    assert capped.severity == min(status.severity, Status.DEGRADED.severity)


@given(st.lists(st.tuples(statuses, st.booleans()), max_size=10))
def test_report_status_is_aggregate_of_effective_statuses(pairs: list[tuple[Status, bool]]) -> None:
    components = {
        f"c{i}": ComponentStatus(status, critical=critical)
        for i, (status, critical) in enumerate(pairs)
    }
    report = HealthReport.from_components(components, version="1", timestamp=T0)
    assert report.status is aggregate(effective_status(s, critical=c) for s, c in pairs)
    if all(not critical for _, critical in pairs):
        assert report.status is not Status.UNHEALTHY
    if any(s is Status.UNHEALTHY and c for s, c in pairs):
        assert report.status is Status.UNHEALTHY


def test_ietf_words() -> None:
    assert [s.ietf for s in Status] == ["pass", "warn", "fail"]
