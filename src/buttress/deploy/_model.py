"""``Deployment`` and the pure rules for how a recorded deployment may change.

A deployment is written once by ``record`` and afterwards changes only by
these transitions: marked failed, rolled back, restored by a later
deployment. Each takes a value and returns a new one, or raises
``DeploymentStateError``; stores only load and save the results.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import attrs

from buttress.deploy._errors import DeploymentStateError

__all__ = [
    "STATUSES",
    "Deployment",
    "DeploymentStatus",
    "fail",
    "is_unrestored_failure",
    "restore",
    "roll_back",
    "with_lineage",
]

DeploymentStatus = Literal["success", "failed", "rolled_back"]
STATUSES: tuple[DeploymentStatus, ...] = ("success", "failed", "rolled_back")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@attrs.frozen(slots=True, kw_only=True)
class Deployment:
    """One deployment of ``version`` to ``environment``.

    ``deployed_at`` is when it was recorded; ``finished_at`` when the change
    went live (the same unless given), which is the time the delivery metrics
    use. A rollback is itself a deployment (``is_rollback``, ``rollback_of``);
    the deployment it undid has status ``"rolled_back"`` with ``rollback_to``,
    ``rollback_at`` and ``rollback_reason``. ``failed_at`` is when a failure
    was detected; ``restored_at``/``restored_by`` say when and by which later
    deployment the environment stopped running it. ``previous_sha`` is the
    commit the environment ran before, so the commits a deployment shipped are
    ``previous_sha..commit_sha``.
    """

    id: int
    version: str
    environment: str
    deployed_at: datetime
    deployed_by: str | None = None
    changelog: str | None = None
    migration_notes: str | None = None
    status: DeploymentStatus = "success"
    rollback_to: str | None = None
    rollback_at: datetime | None = None
    rollback_reason: str | None = None
    commit_sha: str | None = None
    committed_at: datetime | None = None
    previous_sha: str | None = None
    started_at: datetime | None = None
    finished_at: datetime = attrs.field()
    is_rollback: bool = False
    rollback_of: int | None = None
    failed_at: datetime | None = None
    restored_at: datetime | None = None
    restored_by: int | None = None

    @finished_at.default
    def _finished_when_deployed(self) -> datetime:
        return self.deployed_at

    @property
    def is_failure(self) -> bool:
        """True when this change failed in production (marked failed or rolled back)."""
        return self.status != "success"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: timestamps as ISO 8601 text."""
        return {
            "id": self.id,
            "version": self.version,
            "environment": self.environment,
            "deployed_at": _iso(self.deployed_at),
            "deployed_by": self.deployed_by,
            "changelog": self.changelog,
            "migration_notes": self.migration_notes,
            "status": self.status,
            "rollback_to": self.rollback_to,
            "rollback_at": _iso(self.rollback_at),
            "rollback_reason": self.rollback_reason,
            "commit_sha": self.commit_sha,
            "committed_at": _iso(self.committed_at),
            "previous_sha": self.previous_sha,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "is_rollback": self.is_rollback,
            "rollback_of": self.rollback_of,
            "failed_at": _iso(self.failed_at),
            "restored_at": _iso(self.restored_at),
            "restored_by": self.restored_by,
        }


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
