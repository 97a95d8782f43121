"""Deployments in SQLite or PostgreSQL, and ``app_version`` in the config tables.

``record`` is one transaction: bump the config change counter (the lock order
``ConfigStore`` writers use too), lock the deployment being rolled back,
insert the new deployment, update what it replaces, then set ``app_version``
with the config package's own in-transaction writer (row, history row, NOTIFY
on PostgreSQL). The tables come from buttress's migrations ``0002_config`` and
``0004_deployments``; ``open`` only checks they exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from buttress.backends import SqlBackend, SqlConnection, bump_counter, from_db_time
from buttress.config import ConfigStore, dumps
from buttress.config._sql import TABLES as CONFIG_TABLES
from buttress.config._sql import EntryEdit, EntryValue, write_entry
from buttress.deploy._core import config_reason, fail, replaced_by, with_lineage
from buttress.deploy._store import DeploymentStore
from buttress.deploy._values import (
    APP_VERSION_DESCRIPTION,
    APP_VERSION_KEY,
    Deployment,
    DeploymentNotFoundError,
    DeploymentStatus,
    RollbackOf,
)

__all__ = ["SqlDeploymentStore"]

_CONFIG_COUNTER = "config"
_TABLES = ("buttress_deployments", *CONFIG_TABLES)  # record() writes app_version too

_INSERTED = (
    "version, environment, deployed_at, deployed_by, changelog, migration_notes, status, "
    "rollback_to, rollback_at, rollback_reason, commit_sha, committed_at, previous_sha, "
    "started_at, finished_at, is_rollback, rollback_of, failed_at, restored_at, restored_by"
)
_COLUMNS = "id, " + _INSERTED


def _deployment(row: Mapping[str, Any]) -> Deployment:
    def time(name: str) -> datetime | None:
        value = row[name]
        return None if value is None else from_db_time(value)

    def number(name: str) -> int | None:
        value = row[name]
        return None if value is None else int(value)

    status: DeploymentStatus = row["status"]
    deployed_at = from_db_time(row["deployed_at"])
    return Deployment(
        id=int(row["id"]),
        version=row["version"],
        environment=row["environment"],
        deployed_at=deployed_at,
        deployed_by=row["deployed_by"],
        changelog=row["changelog"],
        migration_notes=row["migration_notes"],
        status=status,
        rollback_to=row["rollback_to"],
        rollback_at=time("rollback_at"),
        rollback_reason=row["rollback_reason"],
        commit_sha=row["commit_sha"],
        committed_at=time("committed_at"),
        previous_sha=row["previous_sha"],
        started_at=time("started_at"),
        finished_at=from_db_time(row["finished_at"]),
        is_rollback=bool(row["is_rollback"]),
        rollback_of=number("rollback_of"),
        failed_at=time("failed_at"),
        restored_at=time("restored_at"),
        restored_by=number("restored_by"),
    )


class SqlDeploymentStore:
    """``DeploymentStore`` over a ``SqliteBackend`` or ``PostgresBackend``."""

    def __init__(self, backend: SqlBackend) -> None:
        self._backend = backend
        self._dialect = backend.dialect
        self._q = backend.dialect.placeholders

    def _time(self, value: datetime | None) -> object:
        return None if value is None else self._dialect.to_db_time(value)

    def with_config(self, config: ConfigStore) -> DeploymentStore:
        # app_version is written into this database's config tables, in the
        # deployment's own transaction; a ConfigStore on this backend reads it.
        return self

    async def open(self) -> None:
        await self._dialect.require_tables(self._backend, "DeploymentLog", _TABLES)

    async def get(self, deployment_id: int) -> Deployment | None:
        row = await self._backend.fetchrow(
            self._q(f"SELECT {_COLUMNS} FROM buttress_deployments WHERE id = ?"), deployment_id
        )
        return None if row is None else _deployment(row)

    async def history(self, environment: str | None, limit: int) -> list[Deployment]:
        if environment is None:
            rows = await self._backend.fetch(
                self._q(f"SELECT {_COLUMNS} FROM buttress_deployments ORDER BY id DESC LIMIT ?"),
                limit,
            )
        else:
            rows = await self._backend.fetch(
                self._q(
                    f"SELECT {_COLUMNS} FROM buttress_deployments WHERE environment = ? "
                    "ORDER BY id DESC LIMIT ?"
                ),
                environment,
                limit,
            )
        return [_deployment(row) for row in rows]

    async def live_between(
        self, environment: str, since: datetime, until: datetime
    ) -> list[Deployment]:
        rows = await self._backend.fetch(
            self._q(
                f"SELECT {_COLUMNS} FROM buttress_deployments WHERE environment = ? "
                "AND finished_at >= ? AND finished_at < ? ORDER BY id"
            ),
            environment,
            self._time(since),
            self._time(until),
        )
        return [_deployment(row) for row in rows]

    def _lock(self) -> str:
        # SQLite's BEGIN IMMEDIATE already serialises writers; PostgreSQL locks rows.
        return self._dialect.for_update

    async def record(self, draft: Deployment, rollback: RollbackOf | None) -> Deployment:
        async with self._backend.transaction() as tx:
            # Config writers take the counter's row lock first; so do we, which also
            # serialises deployment writers and so keeps their row locks deadlock-free.
            await bump_counter(tx, _CONFIG_COUNTER)
            earlier = []
            if rollback is not None:
                row = await tx.fetchrow(
                    self._q(f"SELECT {_COLUMNS} FROM buttress_deployments WHERE id = ?")
                    + self._lock(),
                    rollback.deployment_id,
                )
                if row is None:
                    raise DeploymentNotFoundError(rollback.deployment_id)
                earlier.append(_deployment(row))
            rows = await tx.fetch(
                self._q(
                    f"SELECT {_COLUMNS} FROM buttress_deployments WHERE environment = ? "
                    "AND status <> 'success' AND restored_at IS NULL"
                )
                + self._lock(),
                draft.environment,
            )
            earlier.extend(d for d in map(_deployment, rows) if d.id not in _ids(earlier))
            latest = await self._newest(tx, draft.environment, None)
            same_version = await self._newest(tx, draft.environment, draft.version)
            new = await self._insert(
                tx, with_lineage(draft, latest=latest, same_version=same_version)
            )
            for changed in replaced_by(new, earlier, rollback):
                await self._update(tx, changed)
            await _write_app_version(tx, new)
            return new

    async def mark_failed(self, deployment_id: int, detected_at: datetime) -> Deployment:
        async with self._backend.transaction() as tx:
            # Serialised with record(), so a deployment recorded meanwhile is seen as
            # the successor (or sees this failure and restores it).
            await bump_counter(tx, _CONFIG_COUNTER)
            row = await tx.fetchrow(
                self._q(f"SELECT {_COLUMNS} FROM buttress_deployments WHERE id = ?") + self._lock(),
                deployment_id,
            )
            if row is None:
                raise DeploymentNotFoundError(deployment_id)
            current = _deployment(row)
            after = await tx.fetchrow(
                self._q(
                    f"SELECT {_COLUMNS} FROM buttress_deployments WHERE environment = ? "
                    "AND id > ? ORDER BY id LIMIT 1"
                ),
                current.environment,
                current.id,
            )
            successor = None if after is None else _deployment(after)
            updated = fail(current, detected_at=detected_at, successor=successor)
            await self._update(tx, updated)
            return updated

    async def _newest(
        self, tx: SqlConnection, environment: str, version: str | None
    ) -> Deployment | None:
        """The environment's last deployment (of ``version`` when given)."""
        where, args = "environment = ?", [environment]
        if version is not None:
            where, args = where + " AND version = ?", [environment, version]
        row = await tx.fetchrow(
            self._q(
                f"SELECT {_COLUMNS} FROM buttress_deployments WHERE {where} "
                "ORDER BY id DESC LIMIT 1"
            ),
            *args,
        )
        return None if row is None else _deployment(row)

    async def _insert(self, tx: SqlConnection, draft: Deployment) -> Deployment:
        t = self._time
        args = (
            draft.version, draft.environment, t(draft.deployed_at), draft.deployed_by,
            draft.changelog, draft.migration_notes, draft.status, draft.rollback_to,
            t(draft.rollback_at), draft.rollback_reason, draft.commit_sha, t(draft.committed_at),
            draft.previous_sha, t(draft.started_at), t(draft.finished_at),
            self._dialect.to_db_bool(draft.is_rollback), draft.rollback_of, t(draft.failed_at),
            t(draft.restored_at), draft.restored_by,
        )  # fmt: skip
        marks = ", ".join("?" for _ in args)
        new_id = await tx.fetchval(
            self._q(
                f"INSERT INTO buttress_deployments ({_INSERTED}) VALUES ({marks}) RETURNING id"
            ),
            *args,
        )
        return attrs.evolve(draft, id=int(new_id))

    async def _update(self, tx: SqlConnection, deployment: Deployment) -> None:
        await tx.execute(
            self._q(
                "UPDATE buttress_deployments SET status = ?, rollback_to = ?, rollback_at = ?, "
                "rollback_reason = ?, failed_at = ?, restored_at = ?, restored_by = ? "
                "WHERE id = ?"
            ),
            deployment.status,
            deployment.rollback_to,
            self._time(deployment.rollback_at),
            deployment.rollback_reason,
            self._time(deployment.failed_at),
            self._time(deployment.restored_at),
            deployment.restored_by,
            deployment.id,
        )

    def __repr__(self) -> str:
        return f"SqlDeploymentStore({self._dialect})"


def _ids(deployments: list[Deployment]) -> set[int]:
    return {d.id for d in deployments}


async def _write_app_version(tx: SqlConnection, deployment: Deployment) -> None:
    """Set ``app_version`` for the deployment's environment through ``ConfigStore``'s writer."""
    environment = deployment.environment
    # Keep a description or sensitivity someone gave the entry, as the memory store does.
    old = await tx.fetchrow(
        tx.dialect.placeholders(
            "SELECT sensitive, description FROM buttress_config WHERE key = ? AND environment = ?"
        ),
        APP_VERSION_KEY,
        environment,
    )
    edit = EntryEdit(
        APP_VERSION_KEY,
        environment,
        deployment.deployed_by,
        config_reason(deployment),
        deployment.deployed_at,
    )
    await write_entry(
        tx,
        edit,
        EntryValue(
            dumps(deployment.version),
            sensitive=bool(old["sensitive"]) if old is not None else False,
            description=old["description"] if old is not None else APP_VERSION_DESCRIPTION,
        ),
    )
