"""The pure comparison of a declared ``Schema`` with a ``LiveSchema``.

``diff()`` decides everything: what is missing, what differs, what is merely
suspicious (diagnosis warnings), and whether each gap can be closed without
touching existing data on this dialect (``Finding.fixable``). The planner only
renders the fixable findings; it never decides anything itself.
"""

from __future__ import annotations

from collections.abc import Iterator

from buttress.schema.defaults import is_constant_default
from buttress.schema.live import LiveIndex, LiveSchema, LiveTable
from buttress.schema.model import Column, Schema, Table
from buttress.schema.report import Finding, FindingCode, SchemaReport, Severity
from buttress.schema.types import normalise_live_type, normalise_type, parse_type

__all__ = ["add_column_blocker", "diff"]

_VOLATILE_FUNCTIONS = ("gen_random_uuid", "uuid_generate_v4", "clock_timestamp")
_SQLITE_NON_CONSTANT = ("current_", "localtime", "(")


def _default_is_volatile(column: Column) -> bool:
    """A volatile default makes PostgreSQL rewrite every existing row on ADD COLUMN."""
    if parse_type(column.type).serial:
        return True
    text = (column.default or "").lower()
    return any(text.startswith(name) for name in _VOLATILE_FUNCTIONS)


def add_column_blocker(table: Table, column: Column, live: LiveTable, dialect: str) -> str | None:
    """Why ``column`` cannot be added to the existing ``live`` table safely, or None."""
    not_null = table.not_null(column)
    if column.name in table.primary_key:
        return "primary key columns can only be added by rebuilding the table"
    if column.has_default and column.default is None:
        return "the declaration requires a default but gives no expression to create it with"
    empty = live.has_rows is False
    if dialect == "sqlite":
        if column.default is not None and not is_constant_default(column.default):
            return "SQLite can only add columns whose default is a literal"
        if not_null and column.default is None:
            return "SQLite cannot add a NOT NULL column without a default"
        if parse_type(column.type).serial:
            return "SQLite cannot add an auto-incrementing column"
        return None
    if not_null and column.default is None and not empty:
        return "a NOT NULL column without a default cannot be added to a non-empty table"
    if _default_is_volatile(column) and not empty:
        return "a volatile default would rewrite every existing row"
    return None


def diff(declared: Schema, live: LiveSchema) -> SchemaReport:
    """Compare ``declared`` with ``live``; pure and deterministic."""
    findings: list[Finding] = []
    for table in declared.tables:
        live_table = live.table(table.name)
        if live_table is None:
            code = (
                FindingCode.MISSING_TABLE if table.required else FindingCode.MISSING_OPTIONAL_TABLE
            )
            message = f"{'required' if table.required else 'optional'} table does not exist"
            # Creating it would fail (PostgreSQL) or leave a key no row can satisfy.
            dangling = sorted(
                {
                    fk.references
                    for fk in table.foreign_keys
                    if live.table(fk.references) is None and declared.table(fk.references) is None
                }
            )
            if dangling:
                message += f"; it references {', '.join(dangling)}, which exists nowhere"
            severity: Severity = "error" if table.required else "warning"
            findings.append(Finding(code, severity, table.name, message, fixable=not dangling))
            continue
        findings.extend(_diff_table(table, live_table, live.dialect))
        findings.extend(_diagnose(live_table))
    return SchemaReport(findings=tuple(findings), dialect=live.dialect)


def _diff_table(table: Table, live: LiveTable, dialect: str) -> Iterator[Finding]:
    # The hot path of validate(): most tables match, so each check tries the
    # cheapest comparison first and builds sets only when that one fails.
    added: set[str] = set()
    live_columns = live.columns_by_name
    declared_key = table.primary_key
    live_key = live.primary_key
    for column in table.columns:
        name = column.name
        live_column = live_columns.get(name)
        if live_column is None:
            blocker = add_column_blocker(table, column, live, dialect)
            if blocker is None:
                added.add(name)
                yield Finding(
                    FindingCode.MISSING_COLUMN,
                    "error",
                    table.name,
                    "column does not exist",
                    column=name,
                    fixable=True,
                )
            else:
                yield Finding(
                    FindingCode.UNSAFE_COLUMN,
                    "error",
                    table.name,
                    f"column does not exist and cannot be added safely: {blocker}",
                    column=name,
                )
            continue
        expected, found = normalise_type(column.type), normalise_live_type(live_column.type)
        if expected != found:
            yield Finding(
                FindingCode.TYPE_MISMATCH,
                "error",
                table.name,
                f"type is {found!r}, declared {expected!r}",
                column=name,
            )
        not_null = not column.nullable or name in declared_key
        # SQLite lets non-INTEGER primary key columns hold NULL; a column that is
        # NOT NULL only by being in the key is satisfied by a live key column.
        if not_null == live_column.nullable and not (column.nullable and name in live_key):
            state = "nullable" if live_column.nullable else "NOT NULL"
            want = "NOT NULL" if not_null else "nullable"
            yield Finding(
                FindingCode.NULLABILITY_MISMATCH,
                "error",
                table.name,
                f"column is {state}, declared {want}",
                column=name,
            )
        if column.has_default and not live_column.has_default:
            yield Finding(
                FindingCode.MISSING_DEFAULT,
                "error",
                table.name,
                "column has no default, the declaration requires one",
                column=name,
            )
    if declared_key and declared_key != live_key and set(declared_key) != set(live_key):
        found_key = ", ".join(live_key) or "none"
        yield Finding(
            FindingCode.PRIMARY_KEY_MISMATCH,
            "error",
            table.name,
            f"primary key is ({found_key}), declared ({', '.join(declared_key)})",
        )
    live_unique: set[frozenset[str]] | None = None
    for group in table.unique:
        if group in live.unique:
            continue  # the same columns in the same order: no set needed
        if live_unique is None:
            live_unique = _unique_sets(live)
        if frozenset(group) not in live_unique:
            yield Finding(
                FindingCode.MISSING_UNIQUE,
                "error",
                table.name,
                f"unique constraint on ({', '.join(group)}) does not exist",
            )
    if table.indexes:
        yield from _diff_indexes(table, live, added)
    if table.foreign_keys:
        live_fks = {(fk.columns, fk.references, fk.ref_columns) for fk in live.foreign_keys}
        for fk in table.foreign_keys:
            if (fk.columns, fk.references, fk.ref_columns) not in live_fks:
                yield Finding(
                    FindingCode.MISSING_FOREIGN_KEY,
                    "error",
                    table.name,
                    f"foreign key ({', '.join(fk.columns)}) -> {fk.references}"
                    f"({', '.join(fk.ref_columns)}) does not exist",
                )


def _unique_sets(live: LiveTable) -> set[frozenset[str]]:
    """Column sets a unique constraint or a usable unique index enforces."""
    return {frozenset(u) for u in live.unique} | {
        frozenset(c for c in i.columns if c is not None)
        for i in live.indexes
        if i.unique and not i.partial and i.valid and None not in i.columns
    }


def _diff_indexes(table: Table, live: LiveTable, added: set[str]) -> Iterator[Finding]:
    present: set[str] | None = None
    for index in table.indexes:
        live_index = live.index(index.name)
        if live_index is not None:
            if live_index.columns != index.columns or live_index.unique != index.unique:
                yield Finding(
                    FindingCode.INDEX_MISMATCH,
                    "error",
                    table.name,
                    "an index with this name exists with other columns or uniqueness",
                    index=index.name,
                )
            continue
        if any(_same_index(index.columns, index.unique, other) for other in live.indexes):
            continue  # present under another name: equivalent, nothing to do
        if present is None:
            present = set(live.columns_by_name) | added
        fixable = all(c in present for c in index.columns)
        why = "" if fixable else " (needs columns that cannot be added safely)"
        yield Finding(
            FindingCode.MISSING_INDEX,
            "error",
            table.name,
            f"index on ({', '.join(index.columns)}) does not exist{why}",
            index=index.name,
            fixable=fixable,
        )


def _same_index(columns: tuple[str, ...], unique: bool, live: LiveIndex) -> bool:
    return live.columns == columns and live.unique == unique and live.valid and not live.partial


def _diagnose(live: LiveTable) -> Iterator[Finding]:
    if not live.primary_key:
        yield Finding(FindingCode.NO_PRIMARY_KEY, "warning", live.name, "table has no primary key")
    if live.foreign_keys:
        usable = [i.columns for i in live.indexes if i.valid and not i.partial]
        for fk in live.foreign_keys:
            if not _supported(fk.columns, usable):
                yield Finding(
                    FindingCode.UNINDEXED_FOREIGN_KEY,
                    "warning",
                    live.name,
                    f"foreign key ({', '.join(fk.columns)}) -> {fk.references} has no "
                    "supporting index; deletes and joins on it scan the table",
                )
    seen: dict[object, str] = {}
    for index in live.indexes:
        if not index.valid:
            yield Finding(
                FindingCode.INVALID_INDEX,
                "warning",
                live.name,
                "index is invalid (a failed concurrent build); drop and recreate it",
                index=index.name,
            )
            continue
        shape: object
        if index.definition is not None:
            shape = index.definition
        elif index.partial or None in index.columns:
            continue  # an expression or predicate not known: never call it a duplicate
        else:
            shape = (index.columns, index.unique or index.primary)
        twin = seen.setdefault(shape, index.name)
        if twin != index.name:
            yield Finding(
                FindingCode.DUPLICATE_INDEX,
                "warning",
                live.name,
                f"index duplicates {twin}",
                index=index.name,
            )


def _supported(columns: tuple[str, ...], indexes: list[tuple[str | None, ...]]) -> bool:
    """Whether an index leads with ``columns`` (in any order)."""
    width = len(columns)
    for index_columns in indexes:
        if index_columns[:width] == columns:
            return True
    wanted = set(columns)
    return any(set(index_columns[:width]) == wanted for index_columns in indexes)
