"""The declared schema: ``Column``, ``Index``, ``ForeignKey``, ``Table``, ``Schema``.

Frozen attrs values validated at construction: every name is a representable
identifier, every type parses, every key, index and foreign key names columns
the table has. A value that exists is therefore safe to render into DDL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs

from buttress._exceptions import ValidationError
from buttress.schema.defaults import check_default
from buttress.schema.identifiers import check_identifier
from buttress.schema.types import parse_type

__all__ = ["Column", "ForeignKey", "Index", "Schema", "Table"]

_ON_DELETE = frozenset({"cascade", "restrict", "set null", "set default", "no action"})


def _names(value: Iterable[str] | str, field: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    names = tuple(value)
    for name in names:
        check_identifier(name, field=field)
    if len(set(names)) != len(names):
        raise ValidationError(field, "must not repeat a column")
    return names


def _strs(value: Iterable[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _columns(value: Iterable[Column]) -> tuple[Column, ...]:
    return tuple(value)


def _indexes(value: Iterable[Index]) -> tuple[Index, ...]:
    return tuple(value)


def _foreign_keys(value: Iterable[ForeignKey]) -> tuple[ForeignKey, ...]:
    return tuple(value)


def _tables(value: Iterable[Table]) -> tuple[Table, ...]:
    return tuple(value)


def _groups(value: Iterable[Iterable[str]]) -> tuple[tuple[str, ...], ...]:
    return tuple((group,) if isinstance(group, str) else tuple(group) for group in value)


@attrs.frozen
class Column:
    """A declared column. ``default`` is a safe SQL expression (see
    ``buttress.schema.defaults``); giving one implies ``has_default``."""

    name: str
    type: str
    nullable: bool = attrs.field(default=True, kw_only=True)
    has_default: bool = attrs.field(default=False, kw_only=True)
    default: str | None = attrs.field(default=None, kw_only=True)

    def __attrs_post_init__(self) -> None:
        check_identifier(self.name, field="Column.name")
        parsed = parse_type(self.type, field=f"Column({self.name!r}).type")
        if self.default is not None:
            object.__setattr__(
                self, "default", check_default(self.default, field=f"Column({self.name!r}).default")
            )
        if self.default is not None or parsed.serial:
            object.__setattr__(self, "has_default", True)


@attrs.frozen
class Index:
    """A declared index over plain columns."""

    name: str
    columns: tuple[str, ...] = attrs.field(converter=_strs)
    unique: bool = attrs.field(default=False, kw_only=True)

    def __attrs_post_init__(self) -> None:
        check_identifier(self.name, field="Index.name")
        object.__setattr__(self, "columns", _names(self.columns, f"Index({self.name!r}).columns"))
        if not self.columns:
            raise ValidationError(f"Index({self.name!r}).columns", "must name at least one column")


@attrs.frozen
class ForeignKey:
    """``columns`` of this table reference ``ref_columns`` of ``references``."""

    columns: tuple[str, ...] = attrs.field(converter=_strs)
    references: str
    ref_columns: tuple[str, ...] = attrs.field(converter=_strs)
    name: str | None = attrs.field(default=None, kw_only=True)
    on_delete: str | None = attrs.field(default=None, kw_only=True)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "columns", _names(self.columns, "ForeignKey.columns"))
        object.__setattr__(self, "ref_columns", _names(self.ref_columns, "ForeignKey.ref_columns"))
        check_identifier(self.references, field="ForeignKey.references")
        if self.name is not None:
            check_identifier(self.name, field="ForeignKey.name")
        if not self.columns or len(self.columns) != len(self.ref_columns):
            raise ValidationError(
                "ForeignKey.ref_columns", "must name as many columns as ForeignKey.columns (>= 1)"
            )
        if self.on_delete is not None:
            action = " ".join(self.on_delete.lower().split())
            if action not in _ON_DELETE:
                raise ValidationError(
                    "ForeignKey.on_delete", f"must be one of {sorted(_ON_DELETE)}"
                )
            object.__setattr__(self, "on_delete", action)


@attrs.frozen
class Table:
    """A declared table. A missing ``required`` table is an error, a missing
    optional one a warning. Primary key columns are implicitly NOT NULL."""

    name: str
    columns: tuple[Column, ...] = attrs.field(converter=_columns)
    required: bool = attrs.field(default=True, kw_only=True)
    primary_key: tuple[str, ...] = attrs.field(default=(), kw_only=True, converter=_strs)
    unique: tuple[tuple[str, ...], ...] = attrs.field(default=(), kw_only=True, converter=_groups)
    indexes: tuple[Index, ...] = attrs.field(default=(), kw_only=True, converter=_indexes)
    foreign_keys: tuple[ForeignKey, ...] = attrs.field(
        default=(), kw_only=True, converter=_foreign_keys
    )
    _columns: dict[str, Column] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_columns", {c.name: c for c in self.columns})
        check_identifier(self.name, field="Table.name")
        where = f"Table({self.name!r})"
        if not self.columns:
            raise ValidationError(f"{where}.columns", "must declare at least one column")
        for column in self.columns:
            if not isinstance(column, Column):
                raise ValidationError(f"{where}.columns", "must contain Column values")
        known = [c.name for c in self.columns]
        if len(set(known)) != len(known):
            raise ValidationError(f"{where}.columns", "must not declare a column twice")
        columns = set(known)

        def check_refs(names: tuple[str, ...], field: str) -> None:
            missing = [n for n in names if n not in columns]
            if missing:
                raise ValidationError(f"{where}.{field}", f"names undeclared columns {missing}")

        object.__setattr__(self, "primary_key", _names(self.primary_key, f"{where}.primary_key"))
        check_refs(self.primary_key, "primary_key")
        for group in self.unique:
            if not group:
                raise ValidationError(f"{where}.unique", "must not contain an empty column list")
            check_refs(_names(group, f"{where}.unique"), "unique")
        for index in self.indexes:
            check_refs(index.columns, f"indexes[{index.name!r}]")
        for fk in self.foreign_keys:
            check_refs(fk.columns, "foreign_keys")

    def column(self, name: str) -> Column | None:
        return self._columns.get(name)

    @property
    def columns_by_name(self) -> Mapping[str, Column]:
        """The columns by name (read it, do not change it)."""
        return self._columns

    def not_null(self, column: Column) -> bool:
        """Whether the column must be NOT NULL (declared so, or part of the key)."""
        return not column.nullable or column.name in self.primary_key


@attrs.frozen
class Schema:
    """The tables an application expects to find."""

    tables: tuple[Table, ...] = attrs.field(converter=_tables)
    _tables: dict[str, Table] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_tables", {t.name: t for t in self.tables})
        names = [t.name for t in self.tables]
        if len(set(names)) != len(names):
            raise ValidationError("Schema.tables", "must not declare a table twice")
        # Index names share one namespace per schema on both SQLite and PostgreSQL.
        index_names = [i.name for t in self.tables for i in t.indexes]
        if len(set(index_names)) != len(index_names):
            raise ValidationError("Schema.tables", "must not declare an index name twice")
        by_name = {t.name: t for t in self.tables}
        for table in self.tables:
            for fk in table.foreign_keys:
                target = by_name.get(fk.references)
                if target is None:
                    continue  # a table the application does not declare; checked live
                missing = [c for c in fk.ref_columns if target.column(c) is None]
                if missing:
                    raise ValidationError(
                        f"Table({table.name!r}).foreign_keys",
                        f"references undeclared columns {missing} of {fk.references!r}",
                    )

    def table(self, name: str) -> Table | None:
        return self._tables.get(name)

    @property
    def by_name(self) -> Mapping[str, Table]:
        return dict(self._tables)
