"""SchemaValidator against real SQLite files and real PostgreSQL databases."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buttress import connect
from buttress.backends import SqlBackend, require_sql
from buttress.errors import UnsupportedBackendError
from buttress.migrations.sqltext import destructive_reason
from buttress.schema import Column, FindingCode, ForeignKey, Index, Schema, Table, diff
from buttress.schema.introspect import introspect
from buttress.schema.live import LiveSchema
from buttress.schema.planner import plan_statements
from buttress.schema.types import parse_type
from buttress.schema.validator import SchemaFixError, SchemaValidator
from schema_strategies import schemas, subsets


@pytest.fixture
async def db(sql_dsn: str) -> AsyncIterator[SqlBackend]:
    backend = require_sql(await connect(sql_dsn, migrate=False), "tests")
    try:
        yield backend
    finally:
        await backend.close()


APP = Schema(
    [
        Table(
            "users",
            [
                Column("id", "bigint"),
                Column("email", "varchar(200)", nullable=False),
                Column("created_at", "timestamptz", default="CURRENT_TIMESTAMP"),
            ],
            primary_key=["id"],
            unique=[["email"]],
            indexes=[Index("users_created_ix", ["created_at"])],
        ),
        Table(
            "orders",
            [
                Column("id", "integer"),
                Column("user_id", "bigint", nullable=False),
                Column("total", "numeric(10,2)", default="0"),
            ],
            primary_key=["id"],
            foreign_keys=[ForeignKey(["user_id"], "users", ["id"])],
            indexes=[Index("orders_user_ix", ["user_id"])],
        ),
        Table(
            "audit",
            [Column("id", "integer"), Column("note", "text")],
            required=False,
            primary_key=["id"],
        ),
    ]
)


async def _tables(db: SqlBackend) -> set[str]:
    return {t.name for t in (await introspect(db, db.dialect)).tables}


async def test_fix_creates_everything_then_validate_is_clean(db: SqlBackend) -> None:
    validator = SchemaValidator(db, APP)
    report = await validator.validate()
    assert set(report.missing_tables) == {"users", "orders"}
    assert report.missing_optional_tables == ("audit",)
    plan = await validator.plan()
    assert plan[0].startswith('CREATE TABLE "users"')
    assert await validator.fix(dry_run=True) == plan
    assert await _tables(db) == set()
    assert await validator.fix() == plan
    after = await validator.validate()
    assert after.findings == ()
    assert after.ok
    assert await validator.plan() == []


async def test_equivalent_live_spellings_are_not_drift(db: SqlBackend) -> None:
    await db.execute(
        "CREATE TABLE t (a int4 PRIMARY KEY, b varchar(20), c timestamptz, d bool, e int8,"
        " f float8, g decimal(10, 2), h char(3))"
    )
    declared = Schema(
        [
            Table(
                "t",
                [
                    Column("a", "integer"),
                    Column("b", "character varying(20)"),
                    Column("c", "timestamp with time zone"),
                    Column("d", "boolean"),
                    Column("e", "bigint"),
                    Column("f", "double precision"),
                    Column("g", "numeric(10,2)"),
                    Column("h", "character(3)"),
                ],
                primary_key=["a"],
            )
        ]
    )
    report = await SchemaValidator(db, declared).validate()
    assert report.findings == ()


async def test_unsafe_not_null_column_is_reported_not_planned(db: SqlBackend) -> None:
    await db.execute("CREATE TABLE t (id integer PRIMARY KEY)")
    await db.execute("INSERT INTO t (id) VALUES (1)")
    declared = Schema(
        [
            Table(
                "t",
                [
                    Column("id", "integer"),
                    Column("must", "text", nullable=False),
                    Column("maybe", "text"),
                ],
                primary_key=["id"],
            )
        ]
    )
    validator = SchemaValidator(db, declared)
    report = await validator.validate()
    (unsafe,) = [f for f in report.errors if f.column == "must"]
    assert unsafe.code is FindingCode.UNSAFE_COLUMN
    assert await validator.fix() == ['ALTER TABLE "t" ADD COLUMN "maybe" text']
    assert [f.column for f in (await validator.validate()).errors] == ["must"]


async def test_type_and_nullability_mismatch_are_reported_and_never_planned(
    db: SqlBackend,
) -> None:
    await db.execute("CREATE TABLE t (id integer PRIMARY KEY, name text NOT NULL, n bigint)")
    declared = Schema(
        [
            Table(
                "t",
                [Column("id", "integer"), Column("name", "text"), Column("n", "integer")],
                primary_key=["id"],
            )
        ]
    )
    validator = SchemaValidator(db, declared)
    report = await validator.validate()
    assert {(f.code, f.column) for f in report.errors} == {
        (FindingCode.NULLABILITY_MISMATCH, "name"),
        (FindingCode.TYPE_MISMATCH, "n"),
    }
    assert await validator.plan() == []


async def test_fix_failure_rolls_back_everything(db: SqlBackend) -> None:
    await db.execute('CREATE TABLE "dup" (id integer PRIMARY KEY, v integer)')
    await db.execute('INSERT INTO "dup" VALUES (1, 5), (2, 5)')
    declared = Schema(
        [
            Table("fresh", [Column("id", "integer")], primary_key=["id"]),
            Table(
                "dup",
                [Column("id", "integer"), Column("v", "integer")],
                primary_key=["id"],
                indexes=[Index("dup_v_uq", ["v"], unique=True)],
            ),
        ]
    )
    validator = SchemaValidator(db, declared)
    with pytest.raises(SchemaFixError) as info:
        await validator.fix()
    assert "dup_v_uq" in info.value.statement
    assert "fresh" not in await _tables(db)


@pytest.mark.postgres
async def test_postgres_diagnosis_finds_invalid_duplicate_and_unindexed(
    postgres_dsn: str,
) -> None:
    async with connect(postgres_dsn, migrate=False) as raw:
        db = require_sql(raw, "tests")
        await db.execute("CREATE TABLE parent (id integer PRIMARY KEY)")
        await db.execute(
            "CREATE TABLE child (id integer, parent_id integer REFERENCES parent, v integer)"
        )
        await db.execute("INSERT INTO child VALUES (1, NULL, 1), (2, NULL, 1)")
        await db.execute("CREATE INDEX a_ix ON child (id)")
        await db.execute("CREATE INDEX b_ix ON child (id)")
        with pytest.raises(Exception, match="could not create unique index"):
            await db.execute("CREATE UNIQUE INDEX CONCURRENTLY v_uq ON child (v)")
        declared = Schema(
            [
                Table(
                    "child",
                    [Column("id", "integer"), Column("parent_id", "int4"), Column("v", "integer")],
                )
            ]
        )
        report = await SchemaValidator(db, declared).validate()
        assert report.ok
        found = {(f.code, f.index) for f in report.warnings}
        assert (FindingCode.INVALID_INDEX, "v_uq") in found
        assert (FindingCode.DUPLICATE_INDEX, "b_ix") in found
        assert (FindingCode.UNINDEXED_FOREIGN_KEY, None) in found
        assert (FindingCode.NO_PRIMARY_KEY, None) in found


@pytest.mark.postgres
async def test_postgres_foreign_keys_to_and_from_partitioned_tables_are_reported_once(
    postgres_dsn: str,
) -> None:
    # PostgreSQL keeps a copy of such a constraint per partition (conparentid):
    # they are its bookkeeping, not foreign keys of their own.
    async with connect(postgres_dsn, migrate=False) as raw:
        db = require_sql(raw, "tests")
        await db.execute(
            "CREATE TABLE orders (id integer, placed date, PRIMARY KEY (id, placed))"
            " PARTITION BY RANGE (placed)"
        )
        for year in (2024, 2025):
            await db.execute(
                f"CREATE TABLE orders_{year} PARTITION OF orders"
                f" FOR VALUES FROM ('{year}-01-01') TO ('{year + 1}-01-01')"
            )
        await db.execute("CREATE TABLE orders_default PARTITION OF orders DEFAULT")
        await db.execute(
            "CREATE TABLE items (id integer PRIMARY KEY, order_id integer, placed date,"
            " FOREIGN KEY (order_id, placed) REFERENCES orders)"
        )
        await db.execute(
            "CREATE TABLE notes (id integer, order_id integer, placed date, at date,"
            " PRIMARY KEY (id, at), FOREIGN KEY (order_id, placed) REFERENCES orders)"
            " PARTITION BY RANGE (at)"
        )
        await db.execute(
            "CREATE TABLE notes_all PARTITION OF notes FOR VALUES FROM (MINVALUE) TO (MAXVALUE)"
        )
        declared = Schema(
            [
                Table("items", [Column("id", "integer")], primary_key=["id"]),
                Table("notes", [Column("id", "integer"), Column("at", "date")]),
                Table("notes_all", [Column("id", "integer"), Column("at", "date")]),
            ]
        )
        report = await SchemaValidator(db, declared).validate()
        unindexed = sorted(
            (f.table, f.message)
            for f in report.warnings
            if f.code is FindingCode.UNINDEXED_FOREIGN_KEY
        )
        assert [table for table, _ in unindexed] == ["items", "notes"]
        assert all("-> orders has no" in message for _, message in unindexed), unindexed


_VALUES: dict[str, object] = {
    "integer": 1,
    "bigint": 2,
    "text": "t",
    "character varying": "v",
    "boolean": True,
    "timestamp with time zone": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    "numeric": Decimal("1.5"),
    "double precision": 2.5,
    "bytea": b"\x00",
}


_NONCE = itertools.count()


async def _insert_row(db: SqlBackend, table: Table) -> None:
    names = ", ".join('"' + c.name.replace('"', '""') + '"' for c in table.columns)
    marks = ", ".join(
        f"${i + 1}" if db.dialect == "postgresql" else "?" for i in range(len(table.columns))
    )
    values = [_VALUES[parse_type(c.type).base] for c in table.columns]
    if db.dialect == "sqlite":
        values = [
            v.isoformat()
            if isinstance(v, dt.datetime)
            else float(v)
            if isinstance(v, Decimal)
            else v
            for v in values
        ]
    quoted = '"' + table.name.replace('"', '""') + '"'
    # A fresh SQL text per call: asyncpg caches prepared statements by text, and
    # a cached INSERT would keep the parameter types of a previous example's table.
    nonce = next(_NONCE)
    await db.execute(f"INSERT INTO {quoted} ({names}) VALUES ({marks}) -- {nonce}", *values)


async def _reset(db: SqlBackend) -> None:
    if db.dialect == "postgresql":
        await db.execute("DROP SCHEMA public CASCADE")
        await db.execute("CREATE SCHEMA public")
    else:
        for table in (await introspect(db, "sqlite")).tables:
            await db.execute('DROP TABLE "' + table.name.replace('"', '""') + '"')
    await db.execute("CREATE TABLE victim (id integer)")


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_property_fix_closes_every_fixable_gap(db: SqlBackend, data: st.DataObject) -> None:
    await _reset(db)
    declared = data.draw(schemas())
    if "victim" in declared.by_name:
        return
    live_part = data.draw(subsets(declared))
    setup = plan_statements(live_part, diff(live_part, LiveSchema(db.dialect)))
    for statement in setup:
        await db.execute(statement)
    for table in live_part.tables:
        if data.draw(st.booleans(), label=f"rows in {table.name}"):
            await _insert_row(db, table)

    validator = SchemaValidator(db, declared)
    before = await validator.validate()
    plan = await validator.plan()
    assert all(destructive_reason(s) is None for s in plan)
    applied = await validator.fix()
    assert applied == plan
    after = await validator.validate()
    assert {(f.code, f.table, f.column) for f in after.errors} <= {
        (f.code, f.table, f.column) for f in before.unfixable
    }
    assert await validator.plan() == []
    assert await _tables(db) == {t.name for t in declared.tables} | {"victim"}


class _CountingPool:
    def __init__(self, pool: Any, counter: list[int]) -> None:
        self._pool, self._counter = pool, counter

    async def fetch(self, sql: str, *args: object) -> Any:
        self._counter[0] += 1
        return await self._pool.fetch(sql, *args)


async def _round_trips(db: SqlBackend, schema: Schema) -> int:
    counter = [0]
    original_fetch, original_pool = db.fetch, getattr(db, "pool", None)

    async def fetch(sql: str, *args: object) -> Any:
        counter[0] += 1
        return await original_fetch(sql, *args)

    db.fetch = fetch  # type: ignore[method-assign]  # counting wrapper for this test
    if original_pool is not None:
        db.pool = _CountingPool(original_pool, counter)  # type: ignore[attr-defined]
    try:
        await SchemaValidator(db, schema).validate()
    finally:
        db.fetch = original_fetch  # type: ignore[method-assign]
        if original_pool is not None:
            db.pool = original_pool  # type: ignore[attr-defined]
    return counter[0]


async def test_round_trips_do_not_grow_with_tables(db: SqlBackend) -> None:
    def schema(count: int) -> Schema:
        return Schema(
            [
                Table(
                    f"t{i}",
                    [Column("id", "integer"), Column("v", "text")],
                    primary_key=["id"],
                    indexes=[Index(f"t{i}_v", ["v"])],
                )
                for i in range(count)
            ]
        )

    await SchemaValidator(db, schema(25)).fix()
    few, many = await _round_trips(db, schema(2)), await _round_trips(db, schema(25))
    assert few == many
    assert many == (1 if db.dialect == "postgresql" else 3)


async def test_non_sql_backends_are_refused() -> None:
    async with connect("memory://") as memory:
        with pytest.raises(UnsupportedBackendError, match="SchemaValidator"):
            SchemaValidator(memory, APP)


_INDEXES = {
    # name: definition; "twin_*" repeat an earlier one exactly, the rest differ in one part
    "base": "(a)",
    "by_hash": "USING hash (a)",
    "by_brin": "USING brin (b)",
    "by_btree_b": "(b)",
    "pattern_ops": "(a text_pattern_ops)",
    "collated": '(a COLLATE "POSIX")',
    "descending": "(a DESC)",
    "nulls_first": "(a NULLS FIRST)",
    "partial": "(a) WHERE b > 0",
    "partial_other": "(a) WHERE b > 1",
    "covering": "(a) INCLUDE (b)",
    "covering_other": "(a) INCLUDE (c)",
    "two_columns": "(a, b)",
    "expression": "(lower(a))",
    "expression_other": "(upper(a))",
    "twin_base": "(a)",
    "twin_partial": "(a) WHERE b > 0",
    "twin_expression": "(lower(a))",
    "twin_covering": "(a) INCLUDE (b)",
    "twin_pattern_ops": "(a text_pattern_ops)",
}
_UNIQUE = {
    "u_b": "(b)",
    "u_b_nulls_not_distinct": "(b) NULLS NOT DISTINCT",
    "u_b_partial": "(b) WHERE c IS NULL",
    "u_twin_b": "(b)",
}


async def _duplicate_index_findings(db: SqlBackend) -> set[tuple[str | None, str]]:
    """(index, message) of each duplicate-index warning on table ``t`` (keyed by ``id``)."""
    declared = Schema([Table("t", [Column("id", "integer")], primary_key=["id"])])
    report = await SchemaValidator(db, declared).validate()
    return {(f.index, f.message) for f in report.warnings if f.code is FindingCode.DUPLICATE_INDEX}


@pytest.mark.postgres
async def test_postgres_duplicate_index_compares_the_whole_definition(postgres_dsn: str) -> None:
    """Indexes differing in access method, operator class, collation, sort
    order, predicate, INCLUDE columns, expression or uniqueness are not
    duplicates; exact repeats are, partial and expression ones included."""
    async with connect(postgres_dsn, migrate=False) as raw:
        db = require_sql(raw, "tests")
        await db.execute("CREATE TABLE t (id integer PRIMARY KEY, a text, b integer, c integer)")
        for name, body in _INDEXES.items():
            await db.execute(f"CREATE INDEX {name} ON t {body}")
        for name, body in _UNIQUE.items():
            await db.execute(f"CREATE UNIQUE INDEX {name} ON t {body}")
        assert await _duplicate_index_findings(db) == {
            ("twin_base", "index duplicates base"),
            ("twin_partial", "index duplicates partial"),
            ("twin_expression", "index duplicates expression"),
            ("twin_covering", "index duplicates covering"),
            ("twin_pattern_ops", "index duplicates pattern_ops"),
            ("u_twin_b", "index duplicates u_b"),
        }


async def test_sqlite_duplicate_index_compares_collation_and_order(sqlite_dsn: str) -> None:
    """Collation and order count on SQLite; expression and partial indexes
    are duplicates when their written text after the name is the same."""
    async with connect(sqlite_dsn, migrate=False) as raw:
        db = require_sql(raw, "tests")
        await db.execute("CREATE TABLE t (id integer PRIMARY KEY, a text)")
        for name, body in {
            "base": "(a)",
            "nocase": "(a COLLATE NOCASE)",
            "descending": "(a DESC)",
            "twin_base": "(a)",
            "twin_nocase": "(a COLLATE NOCASE)",
            "lowered": "(lower(a))",
            "uppered": "(upper(a))",
            "partial": "(a) WHERE id > 0",
            "partial_other": "(a) WHERE id > 1",
            '"twin ""on"" lowered"': "(lower(a))",
            "[twin partial]": "(a) WHERE id > 0",
        }.items():
            await db.execute(f"CREATE INDEX {name} ON t {body}")
        assert await _duplicate_index_findings(db) == {
            ("twin_base", "index duplicates base"),
            ("twin_nocase", "index duplicates nocase"),
            ('twin "on" lowered', "index duplicates lowered"),
            ("twin partial", "index duplicates partial"),
        }
