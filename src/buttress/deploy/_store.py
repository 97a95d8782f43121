"""Where deployments live: the ``DeploymentStore`` interface and the in-process store.

A store loads and saves; the rules are the pure transitions of ``_model``.
``record`` is one atomic step: the new deployment, the deployment it rolls
back, the earlier failures it replaces, and the environment's ``app_version``
config entry are all written, or none of them.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import attrs

from buttress._seam import Seam
from buttress.deploy._core import config_reason, fail, replaced_by, with_lineage
from buttress.deploy._values import (
    APP_VERSION_DESCRIPTION,
    APP_VERSION_KEY,
    Deployment,
    DeploymentNotFoundError,
    RollbackOf,
)

if TYPE_CHECKING:
    from buttress.config import ConfigStore

__all__ = [
    "DEPLOY_STORES",
    "DeploymentSource",
    "DeploymentStore",
    "MemoryDeploymentStore",
    "MemoryDeployments",
]


class DeploymentStore(Protocol):
    """The storage side of ``DeploymentLog``."""

    async def open(self) -> None: ...

    async def get(self, deployment_id: int) -> Deployment | None: ...

    async def history(self, environment: str | None, limit: int) -> list[Deployment]:
        """Newest (highest id) first."""
        ...

    async def live_between(
        self, environment: str, since: datetime, until: datetime
    ) -> list[Deployment]:
        """Deployments of ``environment`` with ``since <= finished_at < until``."""
        ...

    async def record(self, draft: Deployment, rollback: RollbackOf | None) -> Deployment:
        """Store ``draft`` (its id is assigned here) and everything it implies, atomically.

        Raises ``DeploymentNotFoundError``/``DeploymentStateError`` (nothing
        written) when ``rollback`` names a missing or already rolled back deployment.
        """
        ...

    async def mark_failed(self, deployment_id: int, detected_at: datetime) -> Deployment: ...


@runtime_checkable
class DeploymentSource(Protocol):
    """What a backend holds for deployments; ``with_config`` makes it a store.

    The config store is where ``record`` keeps ``app_version``: SQL stores
    write the config tables in their own transaction and ignore it; the memory
    store writes through it.
    """

    def with_config(self, config: ConfigStore) -> DeploymentStore: ...


DEPLOY_STORES: Seam[DeploymentSource] = Seam("deploy", "DeploymentLog", DeploymentSource)
"""Where ``DeploymentLog`` finds its store on a backend (``buttress.backends.STORES``)."""


class MemoryDeployments:
    """The deployments of one process (or one ``MemoryBackend``), behind one lock.

    ``backend`` is accepted (and ignored) so that every store is built the same way.
    """

    __slots__ = ("lock", "next_id", "rows")

    def __init__(self, backend: object = None) -> None:
        self.rows: dict[int, Deployment] = {}
        self.next_id = 1
        # Held across both writes of record(), and by readers, so nobody ever
        # sees a deployment whose config entry is not written yet.
        self.lock = asyncio.Lock()

    def with_config(self, config: ConfigStore) -> DeploymentStore:
        return MemoryDeploymentStore(self, config)

    def __repr__(self) -> str:
        return f"MemoryDeployments(count={len(self.rows)})"


class MemoryDeploymentStore:
    """``DeploymentStore`` in this process; ``app_version`` goes through ``config``."""

    __slots__ = ("_config", "_data")

    def __init__(self, data: MemoryDeployments, config: ConfigStore) -> None:
        self._data = data
        self._config = config

    async def open(self) -> None:
        return None

    async def get(self, deployment_id: int) -> Deployment | None:
        async with self._data.lock:
            return self._data.rows.get(deployment_id)

    async def history(self, environment: str | None, limit: int) -> list[Deployment]:
        async with self._data.lock:
            rows = sorted(self._data.rows.values(), key=lambda d: d.id, reverse=True)
        return [d for d in rows if environment is None or d.environment == environment][:limit]

    async def live_between(
        self, environment: str, since: datetime, until: datetime
    ) -> list[Deployment]:
        async with self._data.lock:
            rows = list(self._data.rows.values())
        return [d for d in rows if d.environment == environment and since <= d.finished_at < until]

    async def record(self, draft: Deployment, rollback: RollbackOf | None) -> Deployment:
        data = self._data
        async with data.lock:
            if rollback is not None and rollback.deployment_id not in data.rows:
                raise DeploymentNotFoundError(rollback.deployment_id)
            same_environment = sorted(
                (d for d in data.rows.values() if d.environment == draft.environment),
                key=lambda d: d.id,
            )
            same_version = [d for d in same_environment if d.version == draft.version]
            new = with_lineage(
                attrs.evolve(draft, id=data.next_id),
                latest=same_environment[-1] if same_environment else None,
                same_version=same_version[-1] if same_version else None,
            )
            changed = replaced_by(new, data.rows.values(), rollback)
            before = {d.id: data.rows[d.id] for d in changed}
            data.rows.update({d.id: d for d in changed})
            data.rows[new.id] = new
            data.next_id += 1
            try:
                await self._set_app_version(new)
            except BaseException:
                # The config write failed: undo the deployment writes so neither stays.
                del data.rows[new.id]
                data.rows.update(before)
                data.next_id -= 1
                raise
            return new

    async def _set_app_version(self, deployment: Deployment) -> None:
        # Keep the entry's description and sensitivity, as the SQL store does.
        existing = await self._config.get_entry_in(APP_VERSION_KEY, deployment.environment)
        await self._config.set(
            APP_VERSION_KEY,
            deployment.version,
            environment=deployment.environment,
            updated_by=deployment.deployed_by,
            reason=config_reason(deployment),
            description=existing.description if existing else APP_VERSION_DESCRIPTION,
            sensitive=existing.sensitive if existing else False,
        )

    async def mark_failed(self, deployment_id: int, detected_at: datetime) -> Deployment:
        data = self._data
        async with data.lock:
            current = data.rows.get(deployment_id)
            if current is None:
                raise DeploymentNotFoundError(deployment_id)
            later = [
                d for d in data.rows.values()
                if d.environment == current.environment and d.id > current.id
            ]  # fmt: skip
            successor = min(later, key=lambda d: d.id, default=None)
            updated = fail(current, detected_at=detected_at, successor=successor)
            data.rows[deployment_id] = updated
            return updated

    def __repr__(self) -> str:
        return f"MemoryDeploymentStore({self._data!r})"
