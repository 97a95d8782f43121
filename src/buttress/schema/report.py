"""``SchemaReport``: the findings of one comparison, with text and JSON renderings.

A ``Finding`` is an error (the code will break) or a warning (worth a look);
``fixable`` says whether ``plan()`` covers it, so the report can tell the
operator exactly what still needs a human.
"""

from __future__ import annotations

import enum
from typing import Literal

import attrs

__all__ = ["Finding", "FindingCode", "SchemaReport", "Severity"]

Severity = Literal["error", "warning"]


class FindingCode(enum.StrEnum):
    MISSING_TABLE = "missing_table"
    MISSING_OPTIONAL_TABLE = "missing_optional_table"
    MISSING_COLUMN = "missing_column"
    UNSAFE_COLUMN = "unsafe_column"
    TYPE_MISMATCH = "type_mismatch"
    NULLABILITY_MISMATCH = "nullability_mismatch"
    MISSING_DEFAULT = "missing_default"
    PRIMARY_KEY_MISMATCH = "primary_key_mismatch"
    MISSING_UNIQUE = "missing_unique"
    MISSING_INDEX = "missing_index"
    INDEX_MISMATCH = "index_mismatch"
    MISSING_FOREIGN_KEY = "missing_foreign_key"
    NO_PRIMARY_KEY = "no_primary_key"
    UNINDEXED_FOREIGN_KEY = "unindexed_foreign_key"
    INVALID_INDEX = "invalid_index"
    DUPLICATE_INDEX = "duplicate_index"


@attrs.frozen
class Finding:
    code: FindingCode
    severity: Severity
    table: str
    message: str
    column: str | None = None
    index: str | None = None
    fixable: bool = False

    def to_dict(self) -> dict[str, str | bool | None]:
        return {
            "code": self.code.value,
            "severity": self.severity,
            "table": self.table,
            "column": self.column,
            "index": self.index,
            "fixable": self.fixable,
            "message": self.message,
        }


@attrs.frozen
class SchemaReport:
    """The outcome of ``SchemaValidator.validate()``; ``ok`` means no errors."""

    findings: tuple[Finding, ...] = ()
    dialect: str = ""

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "warning")

    @property
    def ok(self) -> bool:
        return not self.errors

    def _of(self, code: FindingCode) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.code is code)

    @property
    def missing_tables(self) -> tuple[str, ...]:
        """Missing required tables."""
        return tuple(f.table for f in self._of(FindingCode.MISSING_TABLE))

    @property
    def missing_optional_tables(self) -> tuple[str, ...]:
        return tuple(f.table for f in self._of(FindingCode.MISSING_OPTIONAL_TABLE))

    @property
    def missing_columns(self) -> tuple[tuple[str, str], ...]:
        """(table, column) pairs missing from existing tables, fixable or not."""
        codes = {FindingCode.MISSING_COLUMN, FindingCode.UNSAFE_COLUMN}
        return tuple((f.table, f.column or "") for f in self.findings if f.code in codes)

    @property
    def type_mismatches(self) -> tuple[Finding, ...]:
        return self._of(FindingCode.TYPE_MISMATCH)

    @property
    def nullability_mismatches(self) -> tuple[Finding, ...]:
        return self._of(FindingCode.NULLABILITY_MISMATCH)

    @property
    def unfixable(self) -> tuple[Finding, ...]:
        """Errors ``fix()`` will not touch: they need a human (or a migration)."""
        return tuple(f for f in self.errors if not f.fixable)

    @property
    def exit_code(self) -> int:
        """0 clean, 1 warnings only, 2 errors (the CLI's convention)."""
        return 2 if self.errors else 1 if self.warnings else 0

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "dialect": self.dialect,
            "errors": [f.to_dict() for f in self.errors],
            "warnings": [f.to_dict() for f in self.warnings],
        }

    def render_text(self) -> str:
        if not self.findings:
            return "schema ok: the database matches the declaration"
        lines = [
            f"schema {'ok' if self.ok else 'drift'}: "
            f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)"
        ]
        for finding in self.errors + self.warnings:
            where = finding.table + (f".{finding.column}" if finding.column else "")
            where += f" ({finding.index})" if finding.index else ""
            hint = " [fixable]" if finding.fixable else ""
            lines.append(
                f"  {finding.severity:7} {finding.code.value:22} {where}: {finding.message}{hint}"
            )
        return "\n".join(lines)
