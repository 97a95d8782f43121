"""Hypothesis strategies for declared schemas and drifted live copies of them."""

from __future__ import annotations

import attrs
from hypothesis import strategies as st

from buttress.schema import Column, Index, Schema, Table
from buttress.schema.live import LiveColumn, LiveIndex, LiveSchema, LiveTable

HOSTILE_NAMES = [
    'x"; DROP TABLE victim; --',
    "Robert'); DROP TABLE victim;--",
    "select",
    "order by",
    "a;b",
    '""',
    "ünïcødé",
    "`tick`",
    "[brackets]",
    "-- comment",
    "/* open",
    "$$dollar$$",
]

plain_names = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
names = st.one_of(plain_names, st.sampled_from(HOSTILE_NAMES))

# (declared type, a constant default that suits it on both dialects)
TYPES = [
    ("integer", "0"),
    ("bigint", "42"),
    ("text", "'it''s'"),
    ("varchar(20)", "'x'"),
    ("boolean", "false"),
    ("timestamptz", "'2024-01-01 00:00:00+00'"),
    ("numeric(10,2)", "1.5"),
    ("double precision", "2.5"),
    ("bytea", None),
]


@st.composite
def columns(draw: st.DrawFn, name: str) -> Column:
    type_, default = draw(st.sampled_from(TYPES))
    with_default = default is not None and draw(st.booleans())
    return Column(
        name, type_, nullable=draw(st.booleans()), default=default if with_default else None
    )


@st.composite
def tables(draw: st.DrawFn, name: str, number: int) -> Table:
    col_names = draw(st.lists(names, min_size=1, max_size=5, unique=True))
    cols = [draw(columns(n)) for n in col_names]
    primary_key = (col_names[0],) if draw(st.booleans()) else ()
    if primary_key:
        cols[0] = attrs.evolve(cols[0], type="integer", default=None, has_default=False)
    indexes = []
    for i, index_columns in enumerate(
        draw(
            st.lists(
                st.lists(st.sampled_from(col_names), min_size=1, max_size=2, unique=True),
                max_size=2,
            )
        )
    ):
        prefix = draw(st.sampled_from(["ix", *HOSTILE_NAMES]))
        indexes.append(Index(f"{prefix}{number}_{i}", index_columns, unique=draw(st.booleans())))
    return Table(name, cols, required=draw(st.booleans()), primary_key=primary_key, indexes=indexes)


@st.composite
def schemas(draw: st.DrawFn) -> Schema:
    table_names = draw(st.lists(names, min_size=1, max_size=4, unique=True))
    return Schema([draw(tables(n, i)) for i, n in enumerate(table_names)])


def live_table(table: Table, *, has_rows: bool | None = False) -> LiveTable:
    """What a database holding exactly ``table`` reports."""
    return LiveTable(
        name=table.name,
        columns=tuple(
            LiveColumn(c.name, c.type, nullable=not table.not_null(c), has_default=c.has_default)
            for c in table.columns
        ),
        primary_key=table.primary_key,
        indexes=tuple(LiveIndex(i.name, i.columns, unique=i.unique) for i in table.indexes),
        has_rows=has_rows,
    )


@st.composite
def subsets(draw: st.DrawFn, declared: Schema) -> Schema:
    """Part of ``declared``: some tables gone, some columns and indexes missing."""
    kept_tables: list[Table] = []
    for table in declared.tables:
        if draw(st.booleans()):
            continue
        keep = [c for c in table.columns if c.name in table.primary_key or draw(st.booleans())] or [
            table.columns[0]
        ]
        kept = {c.name for c in keep}
        kept_tables.append(
            attrs.evolve(
                table,
                columns=keep,
                indexes=[
                    i for i in table.indexes if set(i.columns) <= kept and draw(st.booleans())
                ],
            )
        )
    return Schema(kept_tables)


@st.composite
def drifted(draw: st.DrawFn, declared: Schema, dialect: str) -> LiveSchema:
    """A live schema missing some of ``declared``: tables, columns, indexes."""
    part = draw(subsets(declared))
    return LiveSchema(
        dialect,
        tuple(
            live_table(t, has_rows=draw(st.sampled_from([True, False, None]))) for t in part.tables
        ),
    )
