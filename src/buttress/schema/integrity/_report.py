"""What checks and cleanups report: frozen values with ``to_dict()`` and ``render_text()``.

``ExpectationResult``/``IntegrityReport`` for a check, ``RowChange``/``CleanupResult``
for a cleanup (planned or done), ``UndoResult`` for an undo.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Literal

import attrs

from buttress.schema.integrity._declare import Expectation, ExpectUnique

__all__ = [
    "CleanupResult",
    "ExpectationResult",
    "IntegrityReport",
    "RowChange",
    "UndoResult",
    "jsonable",
]


def jsonable(value: object) -> object:
    """A value fit for a JSON report (not for restoring: see ``_encode``)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return str(value)


@attrs.frozen
class ExpectationResult:
    """One expectation's violations: ``violations`` duplicate groups (``rows``
    surplus rows) or orphaned rows (``rows == violations``); a few ``samples``."""

    expectation: Expectation
    violations: int
    rows: int
    samples: tuple[Mapping[str, object], ...] = ()

    @property
    def ok(self) -> bool:
        return self.violations == 0

    @property
    def kind(self) -> Literal["duplicates", "orphans"]:
        return "duplicates" if isinstance(self.expectation, ExpectUnique) else "orphans"

    def to_dict(self) -> dict[str, object]:
        return {
            "expectation": self.expectation.describe(),
            "table": self.expectation.table,
            "kind": self.kind,
            "ok": self.ok,
            "violations": self.violations,
            "rows": self.rows,
            "samples": [jsonable(s) for s in self.samples],
        }

    def render_text(self) -> str:
        if self.ok:
            return f"  ok      {self.expectation.describe()}"
        what = (
            f"{self.violations} duplicate group(s), {self.rows} surplus row(s)"
            if self.kind == "duplicates"
            else f"{self.violations} orphaned row(s)"
        )
        lines = [f"  FAIL    {self.expectation.describe()}: {what}"]
        lines += [f"          e.g. {json.dumps(jsonable(s), default=str)}" for s in self.samples]
        return "\n".join(lines)


@attrs.frozen
class IntegrityReport:
    results: tuple[ExpectationResult, ...]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def exit_code(self) -> int:
        """0 when everything holds, 1 when some expectation is violated."""
        return 0 if self.ok else 1

    def to_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "results": [r.to_dict() for r in self.results]}

    def render_text(self) -> str:
        bad = sum(not r.ok for r in self.results)
        head = f"integrity: {len(self.results)} expectation(s), {bad} violated"
        return "\n".join([head, *(r.render_text() for r in self.results)])


@attrs.frozen
class RowChange:
    """One row a cleanup removes or updates. ``row`` is the row as read (on
    PostgreSQL in its JSON form); ``changes`` the new values of an update."""

    table: str
    action: Literal["delete", "update"]
    key: Mapping[str, object]
    row: Mapping[str, object]
    reason: str
    changes: Mapping[str, object] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "table": self.table,
            "action": self.action,
            "key": jsonable(self.key),
            "changes": jsonable(self.changes),
            "reason": self.reason,
        }


@attrs.frozen
class CleanupResult:
    """What a cleanup did (or, with ``dry_run``, would do). ``run_id`` names the
    backup to pass to ``undo``; None for a dry run or when nothing changed.
    ``refusals`` (dry run) say why the real cleanup would refuse: its undo could
    not restore the rows exactly."""

    run_id: str | None
    dry_run: bool
    changes: tuple[RowChange, ...]
    sample_limit: int = 20
    refusals: tuple[str, ...] = attrs.field(default=(), kw_only=True)

    @property
    def exit_code(self) -> int:
        """0, or 2 when the cleanup is refused (see ``refusals``)."""
        return 2 if self.refusals else 0

    @property
    def deleted(self) -> int:
        return sum(c.action == "delete" for c in self.changes)

    @property
    def updated(self) -> int:
        return sum(c.action == "update" for c in self.changes)

    def counts(self) -> dict[str, dict[str, int]]:
        """``{table: {"delete": n, "update": m}}``."""
        out: dict[str, dict[str, int]] = {}
        for change in self.changes:
            per = out.setdefault(change.table, {"delete": 0, "update": 0})
            per[change.action] += 1
        return out

    def to_dict(self) -> dict[str, object]:
        return {
            "run_id": self.run_id,
            "dry_run": self.dry_run,
            "deleted": self.deleted,
            "updated": self.updated,
            "tables": self.counts(),
            "changes": [c.to_dict() for c in self.changes[: self.sample_limit]],
            "truncated": len(self.changes) > self.sample_limit,
            "refused": list(self.refusals),
        }

    def render_text(self) -> str:
        if not self.changes:
            return "integrity cleanup: nothing to do"
        verb = "would delete" if self.dry_run else "deleted"
        verb2 = "would update" if self.dry_run else "updated"
        lines = [f"integrity cleanup: {verb} {self.deleted} row(s), {verb2} {self.updated}"]
        if self.run_id is not None:
            lines[0] += f" (run {self.run_id}; undo with `buttress integrity undo {self.run_id}`)"
        for table, per in sorted(self.counts().items()):
            lines.append(f"  {table}: {per['delete']} delete, {per['update']} update")
        for change in self.changes[: self.sample_limit]:
            extra = f" set {json.dumps(jsonable(change.changes))}" if change.changes else ""
            lines.append(
                f"    {change.action} {change.table} {json.dumps(jsonable(change.key))}"
                f"{extra}  ({change.reason})"
            )
        if len(self.changes) > self.sample_limit:
            lines.append(f"    … {len(self.changes) - self.sample_limit} more")
        if self.refusals:
            lines.append("  REFUSED: its undo could not restore these rows exactly:")
            lines += [f"    {reason}" for reason in self.refusals]
        return "\n".join(lines)


@attrs.frozen
class UndoResult:
    run_id: str
    restored: int
    tables: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {"run_id": self.run_id, "restored": self.restored, "tables": list(self.tables)}

    def render_text(self) -> str:
        return f"integrity undo {self.run_id}: restored {self.restored} row(s) in " + (
            ", ".join(self.tables) or "no table"
        )
