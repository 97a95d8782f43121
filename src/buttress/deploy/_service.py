"""``DeploymentLog``: records deployments and rollbacks, knows what runs where, measures delivery.

This file owns the boundary: every argument is checked before a store is
touched, times come from the injected clock, and events are logged. The
transitions are pure (``_model``), the metrics are pure (``_metrics``), and
stores only load and save, atomically.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from buttress._exceptions import ValidationError
from buttress._seam import resolve_store
from buttress.backends import Backend, MemoryBackend
from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.config import ConfigStore
from buttress.deploy._core import check_period, delivery_metrics
from buttress.deploy._store import DEPLOY_STORES, DeploymentStore
from buttress.deploy._values import (
    DeliveryMetrics,
    Deployment,
    DeploymentNotFoundError,
    RollbackOf,
    check_environment,
    check_id,
    check_limit,
    check_optional_text,
    check_sha,
    check_text,
    check_time,
    check_version,
)
from buttress.log import get_logger

__all__ = ["DEFAULT_METRICS_PERIOD", "DeploymentLog"]

DEFAULT_METRICS_PERIOD = timedelta(days=30)


class DeploymentLog:
    """The deployments of every environment, and their delivery metrics.

    ``record`` also sets the environment's ``app_version`` config entry, in
    the same transaction on SQL backends (under one lock in memory). On a
    memory backend (or none) that entry is written through ``config`` (by
    default a ``ConfigStore`` on the same backend); on SQL backends it is
    written into the same database's config tables, which a ``ConfigStore``
    on that backend reads.
    """

    def __init__(
        self,
        backend: Backend | None = None,
        *,
        config: ConfigStore | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if config is not None and not isinstance(config, ConfigStore):
            raise ValidationError("config", f"must be a ConfigStore, got {type(config).__name__}")
        if backend is None:
            backend = MemoryBackend()  # private, shared with the default config store below
        source = resolve_store(backend, DEPLOY_STORES)
        self._store = source.with_config(config or ConfigStore(backend, clock=clock))
        self._clock = clock
        self._opened = False
        self._log = get_logger("deploy")

    async def _open(self) -> DeploymentStore:
        if not self._opened:
            await self._store.open()
            self._opened = True
        return self._store

    async def record(
        self,
        version: str,
        environment: str,
        *,
        deployed_by: str | None = None,
        changelog: str | None = None,
        migration_notes: str | None = None,
        commit_sha: str | None = None,
        committed_at: datetime | None = None,
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
    ) -> Deployment:
        """Record a successful deployment of ``version`` to ``environment`` and return it.

        ``finished_at`` (default now) is when the change went live;
        ``committed_at`` feeds the lead time. Failures still running in the
        environment are marked restored by this deployment.
        """
        now = self._clock.now()
        draft = Deployment(
            id=0,
            version=check_version("version", version),
            environment=check_environment(environment),
            deployed_at=now,
            deployed_by=check_optional_text("deployed_by", deployed_by),
            changelog=check_optional_text("changelog", changelog),
            migration_notes=check_optional_text("migration_notes", migration_notes),
            commit_sha=check_sha("commit_sha", commit_sha),
            committed_at=check_time("committed_at", committed_at),
            started_at=check_time("started_at", started_at),
            finished_at=check_time("finished_at", finished_at) or now,
        )
        _check_order(draft, now)
        store = await self._open()
        deployment = await store.record(draft, None)
        self._log.info("deploy.recorded", **_named(deployment), deployed_by=deployment.deployed_by)
        return deployment

    async def rollback(
        self,
        deployment_id: int,
        *,
        to_version: str,
        reason: str,
        deployed_by: str | None = None,
    ) -> Deployment:
        """Roll deployment ``deployment_id`` back to ``to_version``; return it, now rolled back.

        The rollback itself is recorded as a new deployment of ``to_version``
        (``is_rollback``, ``rollback_of``), which becomes ``app_version``; its
        id is the returned deployment's ``restored_by`` unless a later
        deployment had already replaced it.
        """
        check_id("deployment_id", deployment_id)
        check_version("to_version", to_version)
        check_text("reason", reason)
        check_optional_text("deployed_by", deployed_by)
        store = await self._open()
        target = await store.get(deployment_id)
        if target is None:
            raise DeploymentNotFoundError(deployment_id)
        now = self._clock.now()
        draft = Deployment(
            id=0,
            version=to_version,
            environment=target.environment,
            deployed_at=now,
            deployed_by=deployed_by,
            changelog=f"rollback of deployment {deployment_id} ({target.version})",
            is_rollback=True,
            rollback_of=deployment_id,
        )
        rollback = await store.record(draft, RollbackOf(deployment_id, reason))
        rolled_back = await store.get(deployment_id)
        assert rolled_back is not None  # deployments are never deleted
        self._log.warning(
            "deploy.rolled_back", **_named(target), to_version=to_version, rollback_id=rollback.id
        )
        return rolled_back

    async def mark_failed(
        self, deployment_id: int, detected_at: datetime | None = None
    ) -> Deployment:
        """Mark a successful deployment failed (detected at ``detected_at``, default now)."""
        check_id("deployment_id", deployment_id)
        now = self._clock.now()
        detected = check_time("detected_at", detected_at) or now
        if detected > now:
            raise ValidationError("detected_at", "must not be in the future")
        store = await self._open()
        current = await store.get(deployment_id)
        if current is None:
            raise DeploymentNotFoundError(deployment_id)
        if detected < current.finished_at:
            raise ValidationError(
                "detected_at", "must not be before the deployment went live (finished_at)"
            )
        failed = await store.mark_failed(deployment_id, detected)
        self._log.warning("deploy.failed", **_named(failed))
        return failed

    async def get(self, deployment_id: int) -> Deployment:
        """The deployment with this id, or ``DeploymentNotFoundError``."""
        check_id("deployment_id", deployment_id)
        store = await self._open()
        deployment = await store.get(deployment_id)
        if deployment is None:
            raise DeploymentNotFoundError(deployment_id)
        return deployment

    async def history(self, environment: str | None = None, limit: int = 50) -> list[Deployment]:
        """The last ``limit`` deployments (of ``environment``, or all), newest first."""
        if environment is not None:
            check_environment(environment)
        check_limit(limit)
        store = await self._open()
        return await store.history(environment, limit)

    async def latest(self, environment: str) -> Deployment | None:
        """The environment's most recent deployment (a rollback included), or None."""
        check_environment(environment)
        store = await self._open()
        newest = await store.history(environment, 1)
        return newest[0] if newest else None

    async def current_version(self, environment: str) -> str | None:
        """The version the latest deployment put in ``environment``, or None."""
        latest = await self.latest(environment)
        return None if latest is None else latest.version

    async def metrics(
        self,
        environment: str,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> DeliveryMetrics:
        """Delivery metrics of ``environment`` over ``[since, until)``.

        ``until`` defaults to now and ``since`` to 30 days before ``until``.
        """
        check_environment(environment)
        end = until if until is not None else self._clock.now()
        start = since if since is not None else end - DEFAULT_METRICS_PERIOD
        start, end = check_period(start, end)
        store = await self._open()
        deployments = await store.live_between(environment, start, end)
        return delivery_metrics(deployments, since=start, until=end, environment=environment)

    def __repr__(self) -> str:
        return f"DeploymentLog(store={self._store!r})"


def _named(deployment: Deployment) -> dict[str, object]:
    """How every log line names the deployment it is about."""
    return {
        "deployment_id": deployment.id,
        "version": deployment.version,
        "environment": deployment.environment,
    }


def _check_order(draft: Deployment, now: datetime) -> None:
    if draft.finished_at > now:
        raise ValidationError("finished_at", "must not be in the future")
    for field, value in (("started_at", draft.started_at), ("committed_at", draft.committed_at)):
        if value is not None and value > draft.finished_at:
            raise ValidationError(field, "must not be later than finished_at")
