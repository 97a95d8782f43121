"""The pure parts of ``buttress.deploy``: transitions and the delivery (DORA) metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buttress.deploy import DeliveryMetrics, Deployment, DeploymentStateError, delivery_metrics
from buttress.deploy._core import fail, is_unrestored_failure, median_duration, restore, roll_back
from buttress.errors import ValidationError

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def at(day: int, hour: float = 0.0) -> datetime:
    """``day`` of January 2024 at ``hour`` o'clock UTC."""
    return datetime(2024, 1, day, tzinfo=UTC) + timedelta(hours=hour)


def deployment(id: int, finished: datetime, **changes: Any) -> Deployment:
    base = Deployment(id=id, version=f"1.{id}", environment="production", deployed_at=finished)
    return attrs.evolve(base, **changes)


# -- the hand-computed history used in docs/deploy.md ---------------------------------------

HISTORY = [
    deployment(0, at(1) - timedelta(hours=1), committed_at=at(1) - timedelta(hours=3)),
    deployment(1, at(1, 10), committed_at=at(1, 8)),
    deployment(2, at(2, 13), committed_at=at(2, 9), status="failed",
               failed_at=at(2, 13.25), restored_at=at(2, 14.5), restored_by=3),
    deployment(3, at(2, 14.5), committed_at=at(2, 14)),
    deployment(4, at(5), committed_at=at(4), status="rolled_back", rollback_to="1.3",
               rollback_at=at(5, 0.75), failed_at=at(5, 0.75), restored_at=at(5, 0.75),
               restored_by=5),
    deployment(5, at(5, 0.75), version="1.3", is_rollback=True, rollback_of=4),
    deployment(6, at(6, 6), committed_at=at(6)),
    deployment(7, at(3), environment="staging", committed_at=at(1), status="failed"),
    deployment(8, at(8), committed_at=at(7)),
]  # fmt: skip


def test_hand_computed_history() -> None:
    metrics = delivery_metrics(HISTORY, since=at(1), until=at(8), environment="production")
    # Deployments 1-6 went live in production in [Jan 1, Jan 8): 0 is before, 8 is at
    # `until` (excluded), 7 is staging.
    assert metrics.deployments == 6
    assert metrics.deployment_frequency == pytest.approx(6 / 7)
    # 2 failed, 4 was rolled back: 2 of 6.
    assert metrics.failures == 2
    assert metrics.change_failure_rate == pytest.approx(1 / 3)
    # Lead times: 2 h, 4 h, 30 min, 24 h, 6 h (5 is a rollback): median 4 h.
    assert metrics.lead_time == timedelta(hours=4)
    # Restore times: 2 -> 1 h 30 min, 4 -> 45 min: median 1 h 7 min 30 s.
    assert metrics.time_to_restore == timedelta(hours=1, minutes=7, seconds=30)


def test_all_environments_when_none_is_named() -> None:
    metrics = delivery_metrics(HISTORY, since=at(1), until=at(8))
    assert metrics.environment is None
    assert metrics.deployments == 7
    assert metrics.failures == 3


def test_empty_period() -> None:
    metrics = delivery_metrics([], since=at(1), until=at(2), environment="production")
    assert metrics == DeliveryMetrics(
        environment="production", since=at(1), until=at(2), deployments=0, failures=0,
        deployment_frequency=0.0, change_failure_rate=0.0, lead_time=None, time_to_restore=None,
    )  # fmt: skip


def test_unrestored_failures_leave_time_to_restore_unknown() -> None:
    failed = deployment(1, at(1, 1), status="failed", failed_at=at(1, 2))
    metrics = delivery_metrics([failed], since=at(1), until=at(2))
    assert metrics.change_failure_rate == 1.0
    assert metrics.time_to_restore is None
    assert metrics.lead_time is None


def test_to_dict_is_json_ready() -> None:
    data = delivery_metrics(HISTORY, since=at(1), until=at(8), environment="production").to_dict()
    assert data["deployments"] == 6
    assert data["lead_time_seconds"] == 4 * 3600
    assert data["time_to_restore_seconds"] == 67.5 * 60
    assert data["since"] == "2024-01-01T00:00:00+00:00"


@pytest.mark.parametrize(
    ("since", "until", "field"),
    [
        (at(2), at(1), "until"),
        (at(1), at(1), "until"),
        (datetime(2024, 1, 1), at(2), "since"),  # naive on purpose
        (at(1), "2024-01-02", "until"),
    ],
)
def test_bad_period(since: object, until: object, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        delivery_metrics([], since=since, until=until)  # type: ignore[arg-type]  # bad on purpose
    assert caught.value.field == field


def test_median_duration() -> None:
    assert median_duration([]) is None
    assert median_duration([timedelta(3), timedelta(1), timedelta(2)]) == timedelta(2)
    assert median_duration([timedelta(4), timedelta(1)]) == timedelta(2.5)


# -- properties ------------------------------------------------------------------------------

offsets = st.integers(min_value=0, max_value=20 * 24 * 3600)


@st.composite
def deployments_(draw: st.DrawFn) -> list[Deployment]:
    count = draw(st.integers(min_value=0, max_value=12))
    result = []
    for index in range(1, count + 1):
        finished = T0 + timedelta(seconds=draw(offsets))
        status = draw(st.sampled_from(["success", "failed", "rolled_back"]))
        committed = draw(st.none() | offsets.map(lambda s: timedelta(seconds=s)))
        restored = None
        if status != "success":
            after = draw(st.none() | offsets.map(lambda s: timedelta(seconds=s)))
            restored = None if after is None else finished + after
        result.append(
            deployment(
                index,
                finished,
                environment=draw(st.sampled_from(["production", "staging"])),
                status=status,
                committed_at=None if committed is None else finished - committed,
                restored_at=restored,
                is_rollback=draw(st.booleans()),
            )
        )
    return result


periods = st.tuples(offsets, st.integers(min_value=1, max_value=20 * 24 * 3600)).map(
    lambda p: (T0 + timedelta(seconds=p[0]), T0 + timedelta(seconds=p[0] + p[1]))
)
environments = st.sampled_from([None, "production", "staging"])


@settings(max_examples=50, deadline=None)
@given(history=deployments_(), period=periods, environment=environments, data=st.data())
def test_reordering_never_changes_the_metrics(
    history: list[Deployment],
    period: tuple[datetime, datetime],
    environment: str | None,
    data: st.DataObject,
) -> None:
    since, until = period
    shuffled = data.draw(st.permutations(history))
    assert delivery_metrics(
        shuffled, since=since, until=until, environment=environment
    ) == delivery_metrics(history, since=since, until=until, environment=environment)


@settings(max_examples=50, deadline=None)
@given(history=deployments_(), period=periods, environment=environments)
def test_counts_rates_and_bounds(
    history: list[Deployment], period: tuple[datetime, datetime], environment: str | None
) -> None:
    since, until = period
    metrics = delivery_metrics(history, since=since, until=until, environment=environment)
    counted = [
        d
        for d in history
        if since <= d.finished_at < until and environment in (None, d.environment)
    ]
    days = (until - since).total_seconds() / 86400
    assert metrics.deployments == len(counted)
    assert metrics.deployment_frequency == pytest.approx(len(counted) / days, rel=1e-12)
    assert 0.0 <= metrics.change_failure_rate <= 1.0
    assert metrics.failures == sum(d.status != "success" for d in counted)
    leads = [d.finished_at - d.committed_at for d in counted
             if d.committed_at is not None and not d.is_rollback]  # fmt: skip
    if leads:
        assert metrics.lead_time is not None
        assert min(leads) <= metrics.lead_time <= max(leads)
    else:
        assert metrics.lead_time is None
    if metrics.time_to_restore is not None:
        assert metrics.time_to_restore >= timedelta(0)


@settings(max_examples=50, deadline=None)
@given(history=deployments_(), period=periods, extra=deployments_())
def test_deployments_outside_the_period_do_not_count(
    history: list[Deployment], period: tuple[datetime, datetime], extra: list[Deployment]
) -> None:
    since, until = period
    outside = [d for d in extra if not since <= d.finished_at < until]
    assert delivery_metrics(history + outside, since=since, until=until) == delivery_metrics(
        history, since=since, until=until
    )


@settings(max_examples=50, deadline=None)
@given(history=deployments_(), period=periods, cut=st.floats(min_value=0.01, max_value=0.99))
def test_adjacent_periods_add_up(
    history: list[Deployment], period: tuple[datetime, datetime], cut: float
) -> None:
    since, until = period
    middle = since + (until - since) * cut
    if not since < middle < until:
        return
    first = delivery_metrics(history, since=since, until=middle)
    second = delivery_metrics(history, since=middle, until=until)
    whole = delivery_metrics(history, since=since, until=until)
    assert first.deployments + second.deployments == whole.deployments
    assert first.failures + second.failures == whole.failures


# -- transitions -----------------------------------------------------------------------------


def test_fail_marks_a_successful_deployment() -> None:
    live = deployment(1, at(1))
    failed = fail(live, detected_at=at(1, 1), successor=None)
    assert (failed.status, failed.failed_at, failed.restored_at) == ("failed", at(1, 1), None)
    assert is_unrestored_failure(failed)


def test_fail_after_the_environment_moved_on_is_restored_by_the_next_deployment() -> None:
    successor = deployment(2, at(1, 2))
    failed = fail(deployment(1, at(1)), detected_at=at(1, 3), successor=successor)
    assert (failed.restored_at, failed.restored_by) == (at(1, 2), 2)
    assert not is_unrestored_failure(failed)


@pytest.mark.parametrize("status", ["failed", "rolled_back"])
def test_only_a_successful_deployment_can_fail(status: str) -> None:
    with pytest.raises(DeploymentStateError) as caught:
        fail(deployment(1, at(1), status=status), detected_at=at(1, 1), successor=None)
    assert caught.value.field == "deployment_id"
    assert status in str(caught.value)


def test_roll_back_records_target_reason_and_restoration() -> None:
    rolled = roll_back(deployment(1, at(1)), to_version="0.9", reason="500s", at=at(1, 1), by=2)
    assert rolled.status == "rolled_back"
    assert (rolled.rollback_to, rolled.rollback_at, rolled.rollback_reason) == (
        "0.9", at(1, 1), "500s",
    )  # fmt: skip
    assert (rolled.failed_at, rolled.restored_at, rolled.restored_by) == (at(1, 1), at(1, 1), 2)


def test_roll_back_keeps_an_earlier_detection_time() -> None:
    failed = fail(deployment(1, at(1)), detected_at=at(1, 0.5), successor=None)
    rolled = roll_back(failed, to_version="0.9", reason="500s", at=at(1, 1), by=2)
    assert rolled.failed_at == at(1, 0.5)


def test_a_rolled_back_deployment_cannot_be_rolled_back_again() -> None:
    rolled = roll_back(deployment(1, at(1)), to_version="0.9", reason="x", at=at(1, 1), by=2)
    with pytest.raises(DeploymentStateError, match=r"already rolled back to '0\.9'"):
        roll_back(rolled, to_version="0.8", reason="y", at=at(1, 2), by=3)


def test_restore_is_kept_once_set() -> None:
    failed = deployment(1, at(1), status="failed")
    once = restore(failed, at=at(1, 1), by=2)
    assert restore(once, at=at(1, 2), by=3) == once
    # Never restored before it went live (a backfilled record can finish earlier).
    assert restore(failed, at=at(1) - timedelta(hours=1), by=2).restored_at == at(1)


def test_to_dict() -> None:
    data = deployment(1, at(1), committed_at=at(1) - timedelta(hours=1)).to_dict()
    assert data["finished_at"] == data["deployed_at"] == "2024-01-01T00:00:00+00:00"
    assert data["committed_at"] == "2023-12-31T23:00:00+00:00"
    assert data["status"] == "success"
    assert data["rollback_to"] is None


def test_with_lineage() -> None:
    from buttress.deploy._core import with_lineage

    draft = deployment(3, at(2))
    before = deployment(2, at(1), commit_sha="bbb2222")
    assert with_lineage(draft, latest=before, same_version=None).previous_sha == "bbb2222"
    assert with_lineage(draft, latest=None, same_version=None).previous_sha is None
    build = deployment(1, at(1), commit_sha="aaa1111")
    rollback = attrs.evolve(draft, is_rollback=True)
    carried = with_lineage(rollback, latest=before, same_version=build)
    assert (carried.commit_sha, carried.previous_sha) == ("aaa1111", "bbb2222")
    # Only rollbacks inherit a commit, and never over one they were given.
    assert with_lineage(draft, latest=before, same_version=build).commit_sha is None
    given = attrs.evolve(rollback, commit_sha="ccc3333")
    assert with_lineage(given, latest=before, same_version=build).commit_sha == "ccc3333"
