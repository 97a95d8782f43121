"""Hypothesis strategies for drifted live copies of declared schemas.

Declared schemas come from ``buttress.testing.strategies.schemas`` (public, so
users can property-test their own schema code); this adds the live side.
"""

from __future__ import annotations

import attrs
from hypothesis import strategies as st

from buttress.schema import Schema, Table
from buttress.schema.live import LiveColumn, LiveIndex, LiveSchema, LiveTable
from buttress.testing.strategies import HOSTILE_IDENTIFIERS, schemas

__all__ = ["HOSTILE_NAMES", "drifted", "live_table", "schemas", "subsets"]

HOSTILE_NAMES = list(HOSTILE_IDENTIFIERS)


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
