"""What the migrator decides, as pure functions over one ``Snapshot``.

A snapshot is everything read once (files, their order, the tracking rows);
from it follow what is pending, what is wrong (``report``), each migration's
state, and which statements production must refuse. No I/O here.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from buttress.migrations.files import CHECKSUM_ALGORITHM, Migration
from buttress.migrations.report import MigrationReport, MigrationState, State
from buttress.migrations.resolver import Resolution
from buttress.migrations.sqltext import destructive_reason, split_statements
from buttress.migrations.store import TRACKING_TABLE, AppliedMigration, TrackingState

__all__ = ["Snapshot", "blocking_errors", "destructive_problems", "pending", "report", "states"]


@attrs.frozen
class Snapshot:
    migrations: tuple[Migration, ...]
    parse_errors: tuple[str, ...]
    resolution: Resolution
    tracking: TrackingState
    applied: dict[int, AppliedMigration]


def pending(snap: Snapshot) -> list[Migration]:
    """Files to apply, in order: never applied, or a non-transactional run that failed."""
    return [
        m
        for m in snap.resolution.order
        if m.version not in snap.applied or not snap.applied[m.version].success
    ]


def _first_line(statement: str) -> str:
    """The statement's first line of SQL, skipping the comments that lead it."""
    in_block = False
    for raw in statement.strip().splitlines():
        line = raw.strip()
        if in_block:
            in_block = "*/" not in line
            continue
        if not line or line.startswith("--"):
            continue
        if line.startswith("/*"):
            in_block = "*/" not in line
            continue
        return line if len(line) <= 80 else line[:77] + "..."
    return ""


def destructive_problems(migrations: Sequence[Migration], *, down: bool = False) -> list[str]:
    """One line per destructive statement in files that did not opt in."""
    problems = []
    for migration in migrations:
        if migration.allow_destructive:
            continue
        for statement in split_statements((migration.down if down else migration.up) or ""):
            reason = destructive_reason(statement)
            if reason is not None:
                part = "down section" if down else "statement"
                problems.append(
                    f"{migration.filename}: {part} {_first_line(statement)!r}: {reason}"
                )
    return problems


def blocking_errors(snap: Snapshot) -> list[str]:
    """Problems that make applying impossible, which ``force`` cannot skip."""
    errors = list(snap.parse_errors) + list(snap.resolution.errors)
    if snap.tracking.conflicting:
        errors.append(
            f"a '{TRACKING_TABLE}' table of another tool's shape exists; run "
            "`buttress migrate baseline` to adopt the database"
        )
    return errors


def report(snap: Snapshot, *, production: bool) -> MigrationReport:
    errors = blocking_errors(snap)
    warnings: list[str] = []
    by_version = {m.version: m for m in snap.migrations}
    for version, row in sorted(snap.applied.items()):
        migration = by_version.get(version)
        if migration is None:
            errors.append(f"{row.id}: applied on {row.applied_at:%Y-%m-%d} but its file is missing")
            continue
        if migration.name != row.name:
            warnings.append(f"{migration.filename}: applied under the name {row.id!r}")
        if not row.success:
            warnings.append(
                f"{migration.filename}: a previous non-transactional run failed "
                "part-way; check the database, migrate will re-run it"
            )
        elif row.checksum_algorithm != CHECKSUM_ALGORITHM:
            warnings.append(
                f"{migration.filename}: recorded with checksum algorithm "
                f"{row.checksum_algorithm!r}, which this buttress cannot verify"
            )
        elif row.checksum != migration.checksum:
            errors.append(
                f"{migration.filename}: changed after it was applied "
                f"(checksum {row.checksum[:12]}… recorded, "
                f"{migration.checksum[:12]}… on disk)"
            )
    for name in snap.tracking.legacy:
        if name != TRACKING_TABLE:
            warnings.append(
                f"legacy migration table {name!r} found; if it tracked these "
                "files, run `buttress migrate baseline` instead of re-running them"
            )
    if production:
        errors.extend(destructive_problems(pending(snap)))
    return MigrationReport(errors=tuple(errors), warnings=tuple(warnings))


def states(snap: Snapshot) -> tuple[MigrationState, ...]:
    """Each file's state in apply order, then applied rows whose file is gone."""
    entries: list[MigrationState] = []
    ordered = list(snap.resolution.order)
    ordered += [m for m in snap.migrations if m not in snap.resolution.order]
    for migration in ordered:
        row = snap.applied.get(migration.version)
        state: State
        if row is None:
            state = "pending"
        elif not row.success:
            state = "failed"
        elif row.checksum_algorithm == CHECKSUM_ALGORITHM and row.checksum != migration.checksum:
            state = "changed"
        else:
            state = "applied"
        entries.append(MigrationState.of(migration.id, state, row))
    files = {m.version for m in snap.migrations}
    entries += [
        MigrationState.of(row.id, "missing_file", row)
        for version, row in sorted(snap.applied.items())
        if version not in files
    ]
    return tuple(entries)
