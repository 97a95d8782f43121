"""What should hold: ``ExpectUnique`` and ``ExpectRelation``, validated at construction.

Names are checked with ``buttress.schema.identifiers`` so a value that exists is
safe to quote into SQL; ``expectations_from_schema`` reads them off a ``Schema``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, TypeAlias

import attrs

from buttress._exceptions import ButtressError, ValidationError
from buttress.schema.identifiers import check_identifier
from buttress.schema.model import Schema

__all__ = [
    "AUX",
    "POLICIES",
    "POLICY_NAMES",
    "ExpectRelation",
    "ExpectUnique",
    "Expectation",
    "IntegrityError",
    "OrphanPolicy",
    "expectations_from_schema",
]

OrphanPolicy: TypeAlias = Literal["delete", "set_null", "keep"]
POLICIES = ("delete", "set_null", "keep")
POLICY_NAMES: dict[object, OrphanPolicy] = {
    "delete": "delete",
    "set_null": "set_null",
    "keep": "keep",
}
# Helper columns and aliases the queries add next to a table's own are named
# with this prefix; declared columns may not use it.
AUX = "__buttress_"


class IntegrityError(ButtressError):
    """A cleanup or undo that cannot be done safely (nothing was changed)."""


def _names(value: Iterable[str] | str, field: str) -> tuple[str, ...]:
    names = (value,) if isinstance(value, str) else tuple(value)
    for name in names:
        check_identifier(name, field=field)
        if name.startswith(AUX):
            raise ValidationError(field, f"must not start with {AUX!r} (reserved)")
    if len(set(names)) != len(names):
        raise ValidationError(field, "must not repeat a column")
    return names


def _strs(value: Iterable[str] | str) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


@attrs.frozen
class ExpectUnique:
    """Rows of ``table`` should be unique over ``columns`` (rows with a NULL in
    them never collide, as with a UNIQUE constraint). ``key`` identifies rows;
    cleanup keeps the oldest of each group, the one with the lowest ``key``.
    Empty ``key``: the declared, else the live, primary key."""

    table: str
    columns: tuple[str, ...] = attrs.field(converter=_strs)
    key: tuple[str, ...] = attrs.field(default=(), kw_only=True, converter=_strs)

    def __attrs_post_init__(self) -> None:
        check_identifier(self.table, field="ExpectUnique.table")
        object.__setattr__(self, "columns", _names(self.columns, "ExpectUnique.columns"))
        object.__setattr__(self, "key", _names(self.key, "ExpectUnique.key"))
        if not self.columns:
            raise ValidationError("ExpectUnique.columns", "must name at least one column")

    def describe(self) -> str:
        return f"unique {self.table}({', '.join(self.columns)})"


@attrs.frozen
class ExpectRelation:
    """Every ``columns`` value of ``table`` (no NULL among them) should exist as
    ``ref_columns`` of ``references``. ``on_orphan`` says what cleanup does with
    an orphaned row: ``delete`` it, ``set_null`` its columns, or ``keep`` it
    (report only)."""

    table: str
    columns: tuple[str, ...] = attrs.field(converter=_strs)
    references: str
    ref_columns: tuple[str, ...] = attrs.field(converter=_strs)
    on_orphan: OrphanPolicy = attrs.field(default="delete", kw_only=True)
    key: tuple[str, ...] = attrs.field(default=(), kw_only=True, converter=_strs)

    def __attrs_post_init__(self) -> None:
        check_identifier(self.table, field="ExpectRelation.table")
        check_identifier(self.references, field="ExpectRelation.references")
        object.__setattr__(self, "columns", _names(self.columns, "ExpectRelation.columns"))
        object.__setattr__(
            self, "ref_columns", _names(self.ref_columns, "ExpectRelation.ref_columns")
        )
        object.__setattr__(self, "key", _names(self.key, "ExpectRelation.key"))
        if not self.columns or len(self.columns) != len(self.ref_columns):
            raise ValidationError(
                "ExpectRelation.ref_columns",
                "must name as many columns as ExpectRelation.columns (>= 1)",
            )
        if self.on_orphan not in POLICIES:
            raise ValidationError("ExpectRelation.on_orphan", f"must be one of {list(POLICIES)}")

    def describe(self) -> str:
        return (
            f"relation {self.table}({', '.join(self.columns)}) -> "
            f"{self.references}({', '.join(self.ref_columns)})"
        )


Expectation: TypeAlias = ExpectUnique | ExpectRelation

_FK_POLICY: dict[str | None, OrphanPolicy] = {"cascade": "delete", "set null": "set_null"}


def expectations_from_schema(schema: Schema) -> tuple[Expectation, ...]:
    """What a declared ``Schema`` already says should hold: each table's unique
    groups and foreign keys. A foreign key's orphans follow its ``on_delete``
    (``cascade`` deletes them, ``set null`` clears them; anything else keeps them)."""
    found: list[Expectation] = []
    for table in schema.tables:
        for group in table.unique:
            found.append(ExpectUnique(table.name, group, key=table.primary_key))
        for fk in table.foreign_keys:
            found.append(
                ExpectRelation(
                    table.name,
                    fk.columns,
                    fk.references,
                    fk.ref_columns,
                    on_orphan=_FK_POLICY.get(fk.on_delete, "keep"),
                    key=table.primary_key,
                )
            )
    return tuple(found)
