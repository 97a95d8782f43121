"""PostgreSQL introspection: the catalog query's rows, read back into LiveSchema values.

A live catalog with the awkward cases (dropped columns, expression, partial and
INCLUDE indexes, keys into other schemas, hostile names, schema search order),
plus the rows the server would only rarely send (arrays out of attnum order).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from buttress import connect
from buttress.backends import SqlBackend, require_sql
from buttress.schema.introspect import introspect, postgres_catalog_query
from buttress.schema.live import LiveColumn, LiveForeignKey, LiveIndex, LiveSchema, LiveTable

_DDL = """
CREATE SCHEMA other;
CREATE SCHEMA "it's \\ odd";
CREATE TABLE other.ext (a int, b int, c text, PRIMARY KEY (a, b));
CREATE TABLE other.t1 (id int PRIMARY KEY, shadowed text);
CREATE TABLE t1 (id int PRIMARY KEY, name varchar(20) NOT NULL DEFAULT 'x', gone int,
                 z numeric(10,2));
ALTER TABLE t1 DROP COLUMN gone;
ALTER TABLE t1 ADD COLUMN later timestamptz DEFAULT now();
CREATE TABLE "x""; DROP TABLE t1;--" ("co""l" int, "x y" text UNIQUE,
    id bigint GENERATED ALWAYS AS IDENTITY, g int GENERATED ALWAYS AS (1) STORED);
CREATE TABLE empty_tbl ();
CREATE TABLE child (id serial PRIMARY KEY, t1_id int REFERENCES t1 (id), a int, b int,
    FOREIGN KEY (b, a) REFERENCES other.ext (b, a),
    CONSTRAINT zz_unique UNIQUE (a, b), CONSTRAINT aa_unique UNIQUE (b));
CREATE INDEX child_expr ON child ((a + b), t1_id);
CREATE INDEX child_partial ON child (a) WHERE a > 0;
CREATE UNIQUE INDEX child_incl ON child (b) INCLUDE (a);
CREATE MATERIALIZED VIEW mv AS SELECT 1 AS x;
CREATE INDEX mv_ix ON mv (x);
CREATE TABLE "it's \\ odd".q (id int PRIMARY KEY, t1_id int REFERENCES public.t1 (id));
"""

_T1 = LiveTable(
    "t1",
    (
        LiveColumn("id", "integer", nullable=False),
        LiveColumn("name", "character varying(20)", nullable=False, has_default=True),
        LiveColumn("z", "numeric(10,2)"),
        LiveColumn("later", "timestamp with time zone", has_default=True),
    ),
    primary_key=("id",),
    indexes=(LiveIndex("t1_pkey", ("id",), unique=True, primary=True),),
)
_CHILD = LiveTable(
    "child",
    (
        LiveColumn("id", "integer", nullable=False, has_default=True),
        LiveColumn("t1_id", "integer"),
        LiveColumn("a", "integer"),
        LiveColumn("b", "integer"),
    ),
    primary_key=("id",),
    unique=(("b",), ("a", "b")),
    indexes=(
        LiveIndex("aa_unique", ("b",), unique=True),
        LiveIndex("child_expr", (None, "t1_id")),
        LiveIndex("child_incl", ("b",), unique=True),
        LiveIndex("child_partial", ("a",), partial=True),
        LiveIndex("child_pkey", ("id",), unique=True, primary=True),
        LiveIndex("zz_unique", ("a", "b"), unique=True),
    ),
    foreign_keys=(
        LiveForeignKey(("b", "a"), "ext", ("b", "a"), name="child_b_a_fkey"),
        LiveForeignKey(("t1_id",), "t1", ("id",), name="child_t1_id_fkey"),
    ),
)


@pytest.fixture
async def db(postgres_dsn: str) -> AsyncIterator[SqlBackend]:
    async with connect(postgres_dsn, migrate=False) as raw:
        backend = require_sql(raw, "tests")
        await backend.execute_script(_DDL)
        yield backend


@pytest.mark.postgres
async def test_awkward_catalog_reads_back_exactly(db: SqlBackend) -> None:
    live = await introspect(db, "postgresql")
    assert [t.name for t in live.tables] == [
        "child",
        "empty_tbl",
        "t1",
        'x"; DROP TABLE t1;--',
    ]
    assert live.table("t1") == _T1
    assert live.table("child") == _CHILD
    assert live.table("empty_tbl") == LiveTable("empty_tbl")
    assert live.table('x"; DROP TABLE t1;--') == LiveTable(
        'x"; DROP TABLE t1;--',
        (
            LiveColumn('co"l', "integer"),
            LiveColumn("x y", "text"),
            LiveColumn("id", "bigint", nullable=False, has_default=True),
            LiveColumn("g", "integer", has_default=True),
        ),
        unique=(("x y",),),
        indexes=(LiveIndex('x"; DROP TABLE t1;--_x y_key', ("x y",), unique=True),),
    )


@pytest.mark.postgres
async def test_schema_search_order_decides_which_table_wins(db: SqlBackend) -> None:
    first_other = await introspect(db, "postgresql", schemas=("other", "public"))
    first_public = await introspect(db, "postgresql", schemas=("public", "other"))
    assert first_other.table("t1") == LiveTable(
        "t1",
        (LiveColumn("id", "integer", nullable=False), LiveColumn("shadowed", "text")),
        primary_key=("id",),
        indexes=(LiveIndex("t1_pkey", ("id",), unique=True, primary=True),),
    )
    assert first_public.table("t1") == _T1
    # Tables sort by schema rank, then name; the key into other.ext is read the same.
    assert [t.name for t in first_other.tables][:2] == ["ext", "t1"]
    assert first_public.table("child") == _CHILD


@pytest.mark.postgres
async def test_hostile_schema_names_are_literals_not_sql(db: SqlBackend) -> None:
    live = await introspect(db, "postgresql", schemas=("it's \\ odd",))
    assert live.tables == (
        LiveTable(
            "q",
            (LiveColumn("id", "integer", nullable=False), LiveColumn("t1_id", "integer")),
            primary_key=("id",),
            indexes=(LiveIndex("q_pkey", ("id",), unique=True, primary=True),),
            foreign_keys=(LiveForeignKey(("t1_id",), "t1", ("id",), name="q_t1_id_fkey"),),
        ),
    )
    assert (await introspect(db, "postgresql", schemas=("'; DROP TABLE t1; --",))).tables == ()
    assert (await introspect(db, "postgresql")).table("t1") == _T1


@pytest.mark.postgres
async def test_a_connection_in_a_transaction_reads_the_same(db: SqlBackend) -> None:
    async with db.transaction() as tx:  # its fetch() returns dicts, not Records
        inside = await introspect(tx, "postgresql", schemas=("public", "other"))
    assert inside == await introspect(db, "postgresql", schemas=("public", "other"))


def test_catalog_query_inlines_schema_names_as_escaped_literals() -> None:
    sql = postgres_catalog_query(("public", "it's \\ odd"))
    assert "ARRAY[E'public', E'it\\'s \\\\ odd']::text[]" in sql
    assert "$1" not in sql
    with pytest.raises(ValueError, match="NUL"):
        postgres_catalog_query(("bad\x00name",))


class _Rows:
    """A fetcher answering the catalog query with canned rows."""

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows = rows

    async def fetch(self, sql: str, *args: object) -> list[Any]:
        assert "pg_attribute" in sql
        return self.rows


def _table(oid: int, rank: int, name: str, *columns: tuple[int, str, str]) -> tuple[Any, ...]:
    nums = [c[0] for c in columns] or None
    names = [c[1] for c in columns] or None
    types = [c[2] for c in columns] or None
    flags = [True for _ in columns] or None
    return ("t", oid, rank, name, None, None, None, None, None, nums, None, None,
            names, types, flags, flags)  # fmt: skip


async def test_rows_out_of_attnum_order_are_sorted_and_keys_follow_attnums() -> None:
    rows = [
        # Arrays in any order, attnum 2 dropped: columns sort by attnum, and
        # key and index attnums map to names whatever their position.
        _table(10, 1, "b", (3, "c", "text"), (1, "a", "integer"), (4, "d", "bigint")),
        _table(11, 1, "a", (1, "id", "integer")),
        _table(12, 2, "a", (1, "shadowed", "integer")),
        ("i", 10, 1, "b_ix", None, False, False, True, False, [4, 1], None, None,
         None, None, None, None),
        ("k", 10, None, "b_fk", "f", None, None, None, None, [1], 11, [1],
         None, None, None, None),
        ("k", 10, None, "b_pk", "p", None, None, None, None, [4, 1], None, None,
         None, None, None, None),
    ]  # fmt: skip
    live = await introspect(_Rows(rows), "postgresql")
    assert live == LiveSchema(
        "postgresql",
        (
            LiveTable("a", (LiveColumn("id", "integer", True, True),)),
            LiveTable(
                "b",
                (
                    LiveColumn("a", "integer", True, True),
                    LiveColumn("c", "text", True, True),
                    LiveColumn("d", "bigint", True, True),
                ),
                primary_key=("d", "a"),
                indexes=(LiveIndex("b_ix", ("d",)),),
                foreign_keys=(LiveForeignKey(("a",), "a", ("id",), name="b_fk"),),
            ),
        ),
    )
