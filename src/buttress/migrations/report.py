"""What the migrator reports: validation findings, per-migration state, results.

Plain frozen values with ``to_dict()`` (for ``--json``), ``render_text()`` and
the CLI's exit code convention (0 ok, 1 warnings, 2 errors).
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import attrs

from buttress._topic import Topic
from buttress.migrations.store import AppliedMigration

__all__ = [
    "MIGRATION_RAN",
    "MigrateResult",
    "MigrationOutcome",
    "MigrationRan",
    "MigrationReport",
    "MigrationState",
    "MigrationStatus",
    "State",
]

State = Literal["applied", "pending", "failed", "changed", "missing_file"]


@attrs.frozen
class MigrationReport:
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def exit_code(self) -> int:
        return 2 if self.errors else 1 if self.warnings else 0

    def to_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "errors": list(self.errors), "warnings": list(self.warnings)}

    def render_text(self) -> str:
        if not self.errors and not self.warnings:
            return "migrations ok"
        lines = [f"migrations: {len(self.errors)} error(s), {len(self.warnings)} warning(s)"]
        lines += [f"  error   {e}" for e in self.errors]
        lines += [f"  warning {w}" for w in self.warnings]
        return "\n".join(lines)


@attrs.frozen
class MigrationState:
    id: str
    state: State
    applied_at: dt.datetime | None = None
    execution_ms: int | None = None
    applied_by: str | None = None
    category: str | None = None

    @classmethod
    def of(cls, id: str, state: State, row: AppliedMigration | None) -> MigrationState:
        if row is None:
            return cls(id, state)
        return cls(id, state, row.applied_at, row.execution_ms, row.applied_by)

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "state": self.state,
            "applied_at": self.applied_at.isoformat() if self.applied_at else None,
            "execution_ms": self.execution_ms,
            "applied_by": self.applied_by,
            "category": self.category,
        }


@attrs.frozen
class MigrationStatus:
    namespace: str
    entries: tuple[MigrationState, ...]
    legacy_tables: tuple[str, ...] = ()
    report: MigrationReport = MigrationReport()
    category: str | None = None
    """The category ``entries`` were filtered by (None: all of them)."""

    @property
    def pending(self) -> tuple[str, ...]:
        return tuple(e.id for e in self.entries if e.state in {"pending", "failed"})

    @property
    def applied(self) -> tuple[str, ...]:
        return tuple(e.id for e in self.entries if e.state in {"applied", "changed"})

    @property
    def exit_code(self) -> int:
        return max(self.report.exit_code, 1 if self.pending else 0)

    def to_dict(self) -> dict[str, object]:
        return {
            "namespace": self.namespace,
            "migrations": [e.to_dict() for e in self.entries],
            "pending": list(self.pending),
            "legacy_tables": list(self.legacy_tables),
            "category": self.category,
            **self.report.to_dict(),
        }

    def render_text(self) -> str:
        only = f" (category {self.category})" if self.category is not None else ""
        lines = [
            f"namespace {self.namespace}{only}: {len(self.applied)} applied, "
            f"{len(self.pending)} pending"
        ]
        for entry in self.entries:
            when = f"  {entry.applied_at:%Y-%m-%d %H:%M:%S}" if entry.applied_at else ""
            tag = f"  [{entry.category}]" if entry.category else ""
            lines.append(f"  {entry.state:12} {entry.id}{when}{tag}")
        if self.report.errors or self.report.warnings:
            lines.append(self.report.render_text())
        return "\n".join(lines)


@attrs.frozen
class MigrateResult:
    """``applied``: ids applied (with ``dry_run``: the ones that would be)."""

    applied: tuple[str, ...]
    dry_run: bool = False

    def to_dict(self) -> dict[str, object]:
        return {"applied": list(self.applied), "dry_run": self.dry_run}

    def render_text(self) -> str:
        if not self.applied:
            return "nothing to migrate"
        verb = "would apply" if self.dry_run else "applied"
        return "\n".join(
            [f"{verb} {len(self.applied)} migration(s):", *(f"  {m}" for m in self.applied)]
        )


MigrationOutcome = Literal["applied", "failed", "rolled_back"]


@attrs.frozen(slots=True)
class MigrationRan:
    """One migration file of ``namespace`` was applied, failed or rolled back.

    ``migration`` is its id (``NNNN_name``); ``duration`` is in seconds.
    """

    namespace: str
    migration: str
    outcome: MigrationOutcome
    duration: float


MIGRATION_RAN: Topic[MigrationRan] = Topic("migration.ran")
"""Every migration a ``Migrator`` applied, failed to apply or rolled back."""
