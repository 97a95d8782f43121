"""The pure rules of deployments: how a recorded deployment may change, and the
four delivery (DORA) metrics over a period.

Nothing here reads a clock or a store: transitions (``fail``, ``roll_back``,
``restore``, ``replaced_by``) map values to values, and ``delivery_metrics``
reads only the deployments it is given, in any order. ``docs/deploy.md``
defines each metric and works one example through by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

import attrs

from buttress._exceptions import ValidationError
from buttress.deploy._values import (
    DeliveryMetrics,
    Deployment,
    DeploymentStateError,
    RollbackOf,
)

__all__ = [
    "config_reason",
    "delivery_metrics",
    "fail",
    "is_unrestored_failure",
    "median_duration",
    "replaced_by",
    "restore",
    "roll_back",
    "with_lineage",
]

_DAY = timedelta(days=1)


def median_duration(durations: Sequence[timedelta]) -> timedelta | None:
    """The median (mean of the middle two for an even count), or None when empty."""
    if not durations:
        return None
    ordered = sorted(durations)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def _aware(field: str, value: object) -> datetime:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise ValidationError(field, "must be a timezone-aware datetime")
    return value


def check_period(since: object, until: object) -> tuple[datetime, datetime]:
    start, end = _aware("since", since), _aware("until", until)
    if end <= start:
        raise ValidationError("until", "must be later than since")
    return start, end


def delivery_metrics(
    deployments: Iterable[Deployment],
    *,
    since: datetime,
    until: datetime,
    environment: str | None = None,
) -> DeliveryMetrics:
    """Compute the metrics of ``deployments`` that went live (``finished_at``) in the period.

    With ``environment`` only that environment's deployments count.
    """
    since, until = check_period(since, until)
    counted = [
        d
        for d in deployments
        if since <= d.finished_at < until and (environment is None or d.environment == environment)
    ]
    failures = [d for d in counted if d.is_failure]
    lead_times = [
        d.finished_at - d.committed_at
        for d in counted
        if not d.is_rollback and d.committed_at is not None
    ]
    restore_times = [
        max(timedelta(0), d.restored_at - d.finished_at)
        for d in failures
        if d.restored_at is not None
    ]
    return DeliveryMetrics(
        environment=environment,
        since=since,
        until=until,
        deployments=len(counted),
        failures=len(failures),
        deployment_frequency=len(counted) / ((until - since) / _DAY),
        change_failure_rate=len(failures) / len(counted) if counted else 0.0,
        lead_time=median_duration(lead_times),
        time_to_restore=median_duration(restore_times),
    )


def with_lineage(
    draft: Deployment, *, latest: Deployment | None, same_version: Deployment | None
) -> Deployment:
    """``draft`` with the commit the environment ran before it (``latest``'s).

    A rollback redeploys an earlier build: without a commit of its own it takes
    that of ``same_version``, the environment's last deployment of its version.
    """
    commit_sha = draft.commit_sha
    if commit_sha is None and draft.is_rollback and same_version is not None:
        commit_sha = same_version.commit_sha
    previous = None if latest is None else latest.commit_sha
    return attrs.evolve(draft, commit_sha=commit_sha, previous_sha=previous)


def is_unrestored_failure(deployment: Deployment) -> bool:
    """A failed change the environment may still be running (nothing has replaced it yet)."""
    return deployment.is_failure and deployment.restored_at is None


def restore(deployment: Deployment, *, at: datetime, by: int) -> Deployment:
    """``deployment`` replaced by deployment ``by`` at ``at`` (kept if already restored)."""
    if deployment.restored_at is not None:
        return deployment
    return attrs.evolve(deployment, restored_at=max(at, deployment.finished_at), restored_by=by)


def fail(
    deployment: Deployment, *, detected_at: datetime, successor: Deployment | None
) -> Deployment:
    """``deployment`` marked failed, detected at ``detected_at``.

    Only a successful deployment can be marked failed. When the environment
    has already moved on to ``successor``, the failure ended when that
    deployment went live, so it is restored by it at once.
    """
    if deployment.status != "success":
        raise DeploymentStateError(
            deployment.id, deployment.status, "only a successful deployment can be marked failed"
        )
    failed = attrs.evolve(deployment, status="failed", failed_at=detected_at)
    if successor is None:
        return failed
    return restore(failed, at=successor.finished_at, by=successor.id)


def roll_back(
    deployment: Deployment, *, to_version: str, reason: str, at: datetime, by: int
) -> Deployment:
    """``deployment`` rolled back to ``to_version`` at ``at`` by rollback deployment ``by``.

    A rollback implies the change failed: ``failed_at`` is kept if it was
    already detected, else set to the rollback time.
    """
    if deployment.status == "rolled_back":
        raise DeploymentStateError(
            deployment.id,
            deployment.status,
            f"it was already rolled back to {deployment.rollback_to!r}",
        )
    rolled = attrs.evolve(
        deployment,
        status="rolled_back",
        rollback_to=to_version,
        rollback_at=at,
        rollback_reason=reason,
        failed_at=deployment.failed_at if deployment.failed_at is not None else at,
    )
    return restore(rolled, at=at, by=by)


def config_reason(deployment: Deployment) -> str:
    what = "rollback" if deployment.is_rollback else "deployment"
    return f"{what} {deployment.id}"


def replaced_by(
    new: Deployment, earlier: Iterable[Deployment], rollback: RollbackOf | None
) -> list[Deployment]:
    """What recording ``new`` changes among ``earlier`` deployments of its environment.

    The deployment being rolled back (if any) becomes rolled back; every other
    failure still running there is restored by ``new``. Raises
    ``DeploymentStateError`` if the rollback is not allowed.
    """
    changed = []
    for old in earlier:
        if rollback is not None and old.id == rollback.deployment_id:
            changed.append(
                roll_back(
                    old,
                    to_version=new.version,
                    reason=rollback.reason,
                    at=new.deployed_at,
                    by=new.id,
                )
            )
        elif old.environment == new.environment and is_unrestored_failure(old):
            changed.append(restore(old, at=new.finished_at, by=new.id))
    return changed
