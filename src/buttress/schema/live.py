"""What introspection found in a live database, as plain frozen values.

Introspection code fills these in; the diff reads them. Type names are kept as
the database spells them and normalised only when compared.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

__all__ = ["LiveColumn", "LiveForeignKey", "LiveIndex", "LiveSchema", "LiveTable"]


@attrs.frozen
class LiveColumn:
    name: str
    type: str
    nullable: bool = True
    has_default: bool = False


@attrs.frozen
class LiveIndex:
    """``columns`` holds ``None`` for an expression part; ``partial`` indexes have
    a WHERE clause; ``valid`` is False for a failed concurrent build (PostgreSQL).
    ``definition`` is the whole definition without the name (method, columns or
    expressions, operator classes, collations, order, predicate, INCLUDE,
    uniqueness): two indexes of a table with equal definitions duplicate each
    other. None where it is not known; a comparison key, not part of equality.
    """

    name: str
    columns: tuple[str | None, ...]
    unique: bool = False
    primary: bool = False
    partial: bool = False
    valid: bool = True
    definition: str | None = attrs.field(default=None, eq=False, kw_only=True)


@attrs.frozen
class LiveForeignKey:
    columns: tuple[str, ...]
    references: str
    ref_columns: tuple[str, ...]
    name: str | None = None


@attrs.frozen
class LiveTable:
    """``has_rows`` is None until someone asked the database (it costs a query)."""

    name: str
    columns: tuple[LiveColumn, ...] = ()
    primary_key: tuple[str, ...] = ()
    unique: tuple[tuple[str, ...], ...] = ()
    indexes: tuple[LiveIndex, ...] = ()
    foreign_keys: tuple[LiveForeignKey, ...] = ()
    has_rows: bool | None = None
    _columns: dict[str, LiveColumn] = attrs.field(init=False, repr=False, eq=False)
    _indexes: dict[str, LiveIndex] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_columns", {c.name: c for c in reversed(self.columns)})
        object.__setattr__(self, "_indexes", {i.name: i for i in reversed(self.indexes)})

    def column(self, name: str) -> LiveColumn | None:
        return self._columns.get(name)

    @property
    def columns_by_name(self) -> Mapping[str, LiveColumn]:
        """The columns by name (read it, do not change it)."""
        return self._columns

    def index(self, name: str) -> LiveIndex | None:
        return self._indexes.get(name)


@attrs.frozen
class LiveSchema:
    dialect: str
    tables: tuple[LiveTable, ...] = ()
    _tables: dict[str, LiveTable] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_tables", {t.name: t for t in reversed(self.tables)})

    def table(self, name: str) -> LiveTable | None:
        return self._tables.get(name)

    def with_rows(self, has_rows: dict[str, bool]) -> LiveSchema:
        """A copy with ``has_rows`` filled in for the named tables."""
        return attrs.evolve(
            self,
            tables=tuple(
                attrs.evolve(t, has_rows=has_rows[t.name]) if t.name in has_rows else t
                for t in self.tables
            ),
        )
