"""Render the fixable findings of a ``SchemaReport`` as SQL statements.

The planner only ever emits CREATE TABLE, ALTER TABLE … ADD COLUMN, CREATE
INDEX and (PostgreSQL, for foreign-key cycles among new tables) ALTER TABLE …
ADD CONSTRAINT … FOREIGN KEY on a table it just created. Every name is quoted
by ``quote_identifier``; every type and default was validated by the model.
"""

from __future__ import annotations

from buttress.schema.defaults import render_default
from buttress.schema.identifiers import quote_identifier as q
from buttress.schema.model import Column, ForeignKey, Index, Schema, Table
from buttress.schema.report import FindingCode, SchemaReport
from buttress.schema.types import render_type

__all__ = ["plan_statements", "render_create_table"]


def _column_sql(table: Table, column: Column, dialect: str, standard_strings: bool) -> str:
    parts = [q(column.name), render_type(column.type, dialect)]
    if table.not_null(column):
        parts.append("NOT NULL")
    if column.default is not None:
        default = render_default(
            column.default,
            standard_strings=standard_strings,
            field=f"Column({column.name!r}).default",
        )
        parts.append(f"DEFAULT {default}")
    return " ".join(parts)


def _fk_sql(fk: ForeignKey) -> str:
    name = f"CONSTRAINT {q(fk.name)} " if fk.name else ""
    cols = ", ".join(q(c) for c in fk.columns)
    refs = ", ".join(q(c) for c in fk.ref_columns)
    action = f" ON DELETE {fk.on_delete.upper()}" if fk.on_delete else ""
    return f"{name}FOREIGN KEY ({cols}) REFERENCES {q(fk.references)} ({refs}){action}"


def _index_sql(table: Table, index: Index) -> str:
    unique = "UNIQUE " if index.unique else ""
    cols = ", ".join(q(c) for c in index.columns)
    return f"CREATE {unique}INDEX {q(index.name)} ON {q(table.name)} ({cols})"


def render_create_table(
    table: Table,
    dialect: str,
    *,
    deferred: tuple[ForeignKey, ...] = (),
    standard_strings: bool = True,
) -> str:
    """CREATE TABLE for ``table``, leaving out the foreign keys in ``deferred``."""
    items = [_column_sql(table, c, dialect, standard_strings) for c in table.columns]
    if table.primary_key:
        items.append(f"PRIMARY KEY ({', '.join(q(c) for c in table.primary_key)})")
    items.extend(f"UNIQUE ({', '.join(q(c) for c in group)})" for group in table.unique)
    items.extend(_fk_sql(fk) for fk in table.foreign_keys if fk not in deferred)
    return f"CREATE TABLE {q(table.name)} ({', '.join(items)})"


def _creation_order(tables: list[Table]) -> tuple[list[Table], dict[str, tuple[ForeignKey, ...]]]:
    """New tables ordered so referenced ones come first; foreign keys that would
    need a table created later (cycles) are returned as deferred."""
    pending = {t.name: t for t in tables}
    ordered: list[Table] = []
    deferred: dict[str, tuple[ForeignKey, ...]] = {}
    while pending:
        ready = [
            t
            for t in pending.values()
            if all(fk.references not in pending or fk.references == t.name for fk in t.foreign_keys)
        ]
        if not ready:
            ready = [_on_cycle(pending)]
        for table in ready:
            later = tuple(
                fk
                for fk in table.foreign_keys
                if fk.references in pending and fk.references != table.name
            )
            if later:
                deferred[table.name] = later
            ordered.append(table)
            del pending[table.name]
    return ordered, deferred


def _on_cycle(pending: dict[str, Table]) -> Table:
    """A table on a foreign-key cycle: following pending references from any
    table must revisit one. Breaking the cycle there defers the fewest keys."""
    seen: set[str] = set()
    table = next(iter(pending.values()))
    while table.name not in seen:
        seen.add(table.name)
        table = next(
            pending[fk.references]
            for fk in table.foreign_keys
            if fk.references in pending and fk.references != table.name
        )
    return table


def plan_statements(
    declared: Schema, report: SchemaReport, *, standard_strings: bool = True
) -> list[str]:
    """The SQL closing every fixable gap in ``report``, in a safe order.

    ``standard_strings``: False for a PostgreSQL session with
    ``standard_conforming_strings = off``, where a default holding a backslash
    is refused (``ValidationError``) as ambiguous.
    """
    dialect = report.dialect
    fixable = [f for f in report.findings if f.fixable]
    new_tables = [
        t
        for t in declared.tables
        if any(
            f.table == t.name
            and f.code in {FindingCode.MISSING_TABLE, FindingCode.MISSING_OPTIONAL_TABLE}
            for f in fixable
        )
    ]
    ordered, deferred = _creation_order(new_tables)
    if dialect == "sqlite":
        deferred = {}  # SQLite checks references when rows arrive, not at CREATE
    statements = [
        render_create_table(
            t, dialect, deferred=deferred.get(t.name, ()), standard_strings=standard_strings
        )
        for t in ordered
    ]
    for table in ordered:
        statements.extend(_index_sql(table, index) for index in table.indexes)
    for finding in fixable:
        owner = declared.table(finding.table)
        if owner is None or finding.code is not FindingCode.MISSING_COLUMN:
            continue
        column = owner.column(finding.column or "")
        if column is not None:
            statements.append(
                f"ALTER TABLE {q(owner.name)} ADD COLUMN "
                f"{_column_sql(owner, column, dialect, standard_strings)}"
            )
    for finding in fixable:
        owner = declared.table(finding.table)
        if owner is None or finding.code is not FindingCode.MISSING_INDEX:
            continue
        index = next((i for i in owner.indexes if i.name == finding.index), None)
        if index is not None:
            statements.append(_index_sql(owner, index))
    for name, fks in deferred.items():
        statements.extend(f"ALTER TABLE {q(name)} ADD {_fk_sql(fk)}" for fk in fks)
    return statements
