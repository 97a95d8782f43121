"""Pure parts of buttress.schema: model validation, types, identifiers, diff, planner."""

from __future__ import annotations

import json
import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buttress.errors import ValidationError
from buttress.migrations.sqltext import destructive_reason, split_statements, tokenize
from buttress.schema import (
    Column,
    FindingCode,
    ForeignKey,
    Index,
    Schema,
    Table,
    diff,
    normalise_type,
    plan_statements,
    quote_identifier,
)
from buttress.schema.live import LiveColumn, LiveForeignKey, LiveIndex, LiveSchema, LiveTable
from buttress.schema.types import normalise_live_type, render_type
from schema_strategies import HOSTILE_NAMES, drifted, live_table, schemas

SAFE_PREFIXES = (
    ("CREATE", "TABLE"),
    ("ALTER", "TABLE"),
    ("CREATE", "INDEX"),
    ("CREATE", "UNIQUE"),
)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("int4", "integer"),
        ("INT", "integer"),
        ("int8", "bigint"),
        ("bigserial", "bigint"),
        ("varchar(255)", "character varying(255)"),
        ("VARCHAR ( 255 )", "character varying(255)"),
        ("timestamptz", "timestamp with time zone"),
        ("timestamp", "timestamp without time zone"),
        ("timestamp(3) with time zone", "timestamptz(3)"),
        ("bool", "boolean"),
        ("float8", "double precision"),
        ("float4", "real"),
        ("decimal(10,2)", "numeric(10, 2)"),
        ("char", "character(1)"),
        ("bpchar(3)", "character(3)"),
        ("int4[]", "integer[]"),
        ("BLOB", "bytea"),
    ],
)
def test_equivalent_type_spellings_normalise_alike(a: str, b: str) -> None:
    assert normalise_type(a) == normalise_type(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("varchar(10)", "varchar(20)"),
        ("integer", "bigint"),
        ("timestamp", "timestamptz"),
        ("text", "varchar"),
        ("numeric(10,2)", "numeric(10,3)"),
    ],
)
def test_different_types_stay_different(a: str, b: str) -> None:
    assert normalise_type(a) != normalise_type(b)


@pytest.mark.parametrize(
    "bad",
    [
        "int; DROP TABLE x",
        "text)",
        "integer references users",
        "integer primary key",
        "x(1,2,3)",
        '"quoted"',
        "",
        "text -- comment",
        "varchar(a)",
        "text with time zone",
    ],
)
def test_declared_types_that_could_smuggle_sql_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError) as info:
        Column("c", bad)
    assert info.value.field == "Column('c').type"


def test_live_type_normalisation_never_raises() -> None:
    assert normalise_live_type("geometry(Point,4326)") == "geometry(point,4326)"
    assert normalise_live_type("character varying(12)") == "character varying(12)"


def test_render_type_per_dialect() -> None:
    assert render_type("serial", "postgresql") == "serial"
    assert render_type("serial", "sqlite") == "INTEGER"
    assert render_type("bytea", "sqlite") == "BLOB"
    assert render_type("varchar(3)", "sqlite") == "character varying(3)"


@pytest.mark.parametrize("name", ["", "a\x00b", "tab\there", "x" * 64, " lead", "bidi\u202e"])
def test_unrepresentable_identifiers_are_refused(name: str) -> None:
    with pytest.raises(ValidationError) as info:
        Table(name, [Column("id", "integer")])
    assert info.value.field == "Table.name"


def test_long_multibyte_identifier_counts_bytes() -> None:
    with pytest.raises(ValidationError, match="63 bytes"):
        Column("é" * 32, "text")
    Column("é" * 31, "text")


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_quoted_hostile_identifier_is_one_identifier(name: str) -> None:
    quoted = quote_identifier(name)
    tokens = [t for t in tokenize(quoted) if t.kind != "space"]
    assert len(tokens) == 1
    assert tokens[0].kind == "ident"
    conn = sqlite3.connect(":memory:")
    conn.execute(f"CREATE TABLE {quoted} ({quote_identifier(name + '_c')} integer)")
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    assert rows == [(name,)]


@pytest.mark.parametrize(
    "default",
    [
        "0",
        "-1.5",
        "'text'",
        "'it''s'",
        "true",
        "NULL",
        "CURRENT_TIMESTAMP",
        "now()",
        "gen_random_uuid()",
        "'{}'::jsonb",
    ],
)
def test_safe_defaults_accepted(default: str) -> None:
    assert Column("c", "text", default=default).has_default


@pytest.mark.parametrize(
    "default",
    [
        "0; DROP TABLE x",
        "'a' || (SELECT password FROM users)",
        "pg_sleep(10)",
        "'unterminated",
        "now() + 1",
        "1)",
        "''; --",
    ],
)
def test_unsafe_defaults_refused(default: str) -> None:
    with pytest.raises(ValidationError) as info:
        Column("c", "text", default=default)
    assert info.value.field == "Column('c').default"


def test_model_validation_names_field_and_rule() -> None:
    cols = [Column("id", "integer"), Column("name", "text")]
    with pytest.raises(ValidationError, match=r"primary_key.*undeclared"):
        Table("t", cols, primary_key=["missing"])
    with pytest.raises(ValidationError, match="twice"):
        Table("t", [Column("a", "text"), Column("a", "text")])
    with pytest.raises(ValidationError, match=r"indexes.*undeclared"):
        Table("t", cols, indexes=[Index("ix", ["nope"])])
    with pytest.raises(ValidationError, match="index name twice"):
        Schema(
            [
                Table("a", cols, indexes=[Index("ix", ["id"])]),
                Table("b", cols, indexes=[Index("ix", ["id"])]),
            ]
        )
    with pytest.raises(ValidationError, match="as many columns"):
        ForeignKey(["a", "b"], "t", ["id"])
    with pytest.raises(ValidationError, match="on_delete"):
        ForeignKey(["a"], "t", ["id"], on_delete="explode")
    with pytest.raises(ValidationError, match="undeclared columns"):
        Schema(
            [
                Table("a", cols),
                Table(
                    "b",
                    [Column("a_id", "integer")],
                    foreign_keys=[ForeignKey(["a_id"], "a", ["zz"])],
                ),
            ]
        )


def test_serial_and_default_imply_has_default() -> None:
    assert Column("id", "serial").has_default
    assert Column("at", "timestamptz", default="now()").has_default
    assert not Column("x", "text").has_default


USERS = Table(
    "users",
    [
        Column("id", "bigint"),
        Column("email", "varchar(200)", nullable=False),
        Column("created_at", "timestamptz", default="now()"),
    ],
    primary_key=["id"],
    unique=[["email"]],
    indexes=[Index("users_created_ix", ["created_at"])],
)


def test_diff_reports_each_kind_of_drift() -> None:
    orders = Table(
        "orders",
        [Column("id", "integer"), Column("user_id", "bigint")],
        primary_key=["id"],
        foreign_keys=[ForeignKey(["user_id"], "users", ["id"])],
    )
    audit = Table("audit", [Column("id", "integer")], required=False)
    declared = Schema([USERS, orders, audit])
    live = LiveSchema(
        "postgresql",
        (
            LiveTable(
                "users",
                (
                    LiveColumn("id", "integer", nullable=False),
                    LiveColumn("email", "character varying(200)", nullable=True),
                ),
                primary_key=("id",),
                has_rows=True,
            ),
        ),
    )
    report = diff(declared, live)
    codes = {(f.code, f.table, f.column) for f in report.findings}
    assert (FindingCode.TYPE_MISMATCH, "users", "id") in codes
    assert (FindingCode.NULLABILITY_MISMATCH, "users", "email") in codes
    assert (FindingCode.MISSING_COLUMN, "users", "created_at") in codes
    assert (FindingCode.MISSING_UNIQUE, "users", None) in codes
    assert report.missing_tables == ("orders",)
    assert report.missing_optional_tables == ("audit",)
    assert report.missing_columns == (("users", "created_at"),)
    assert not report.ok
    assert report.exit_code == 2
    assert {f.code for f in report.unfixable} == {
        FindingCode.TYPE_MISMATCH,
        FindingCode.NULLABILITY_MISMATCH,
        FindingCode.MISSING_UNIQUE,
    }
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is False
    assert {e["code"] for e in data["errors"]} >= {"type_mismatch", "missing_table"}
    assert "users.id" in report.render_text()


def test_not_null_without_default_on_non_empty_table_is_reported_not_planned() -> None:
    declared = Schema(
        [Table("t", [Column("id", "integer"), Column("must", "text", nullable=False)])]
    )
    for has_rows, dialect, fixable in [
        (True, "postgresql", False),
        (None, "postgresql", False),
        (False, "postgresql", True),
        (False, "sqlite", False),
    ]:
        live = LiveSchema(
            dialect, (LiveTable("t", (LiveColumn("id", "integer"),), has_rows=has_rows),)
        )
        report = diff(declared, live)
        (finding,) = [f for f in report.findings if f.column == "must"]
        assert finding.fixable is fixable
        plan = plan_statements(declared, report)
        assert any('"must"' in s for s in plan) is fixable
        if not fixable:
            assert finding.code is FindingCode.UNSAFE_COLUMN
            assert "cannot be added safely" in finding.message


def test_sqlite_refuses_non_constant_default_on_add_column() -> None:
    declared = Schema(
        [
            Table(
                "t",
                [Column("id", "integer"), Column("at", "timestamptz", default="CURRENT_TIMESTAMP")],
            )
        ]
    )
    live = LiveSchema("sqlite", (LiveTable("t", (LiveColumn("id", "integer"),), has_rows=False),))
    (finding,) = [f for f in diff(declared, live).findings if f.column == "at"]
    assert not finding.fixable


def test_diagnosis_warnings() -> None:
    live = LiveSchema(
        "postgresql",
        (
            LiveTable(
                "child",
                (LiveColumn("id", "integer"), LiveColumn("parent_id", "integer")),
                indexes=(
                    LiveIndex("a", ("id",)),
                    LiveIndex("b", ("id",)),
                    LiveIndex("broken", ("parent_id",), valid=False),
                ),
                foreign_keys=(LiveForeignKey(("parent_id",), "parent", ("id",)),),
            ),
        ),
    )
    declared = Schema([Table("child", [Column("id", "integer"), Column("parent_id", "integer")])])
    report = diff(declared, live)
    assert report.ok
    assert {f.code for f in report.warnings} == {
        FindingCode.NO_PRIMARY_KEY,
        FindingCode.UNINDEXED_FOREIGN_KEY,
        FindingCode.INVALID_INDEX,
        FindingCode.DUPLICATE_INDEX,
    }
    assert report.exit_code == 1


def test_equivalent_index_under_another_name_is_not_missing() -> None:
    declared = Schema([USERS])
    table = live_table(USERS)
    renamed = LiveTable(
        table.name,
        table.columns,
        table.primary_key,
        unique=(("email",),),
        indexes=(LiveIndex("other_name", ("created_at",)),),
    )
    report = diff(declared, LiveSchema("sqlite", (renamed,)))
    assert report.findings == ()


def test_index_with_same_name_and_other_columns_is_an_unfixable_error() -> None:
    table = live_table(USERS)
    wrong = LiveTable(
        table.name,
        table.columns,
        table.primary_key,
        unique=(("email",),),
        indexes=(LiveIndex("users_created_ix", ("email",)),),
    )
    (finding,) = diff(Schema([USERS]), LiveSchema("sqlite", (wrong,))).findings
    assert finding.code is FindingCode.INDEX_MISMATCH
    assert not finding.fixable


def test_plan_orders_new_tables_by_foreign_keys_and_defers_cycles() -> None:
    a = Table(
        "a",
        [Column("id", "integer"), Column("b_id", "integer")],
        primary_key=["id"],
        foreign_keys=[ForeignKey(["b_id"], "b", ["id"], name="a_b_fk")],
    )
    b = Table(
        "b",
        [Column("id", "integer"), Column("a_id", "integer")],
        primary_key=["id"],
        foreign_keys=[ForeignKey(["a_id"], "a", ["id"], on_delete="cascade")],
    )
    c = Table(
        "c",
        [Column("id", "integer"), Column("b_id", "integer")],
        primary_key=["id"],
        foreign_keys=[ForeignKey(["b_id"], "b", ["id"])],
    )
    declared = Schema([c, a, b])
    plan = plan_statements(declared, diff(declared, LiveSchema("postgresql")))
    creates = [s.split('"')[1] for s in plan if s.startswith("CREATE TABLE")]
    assert creates.index("b") < creates.index("c")
    assert any(s.startswith("ALTER TABLE") and "FOREIGN KEY" in s for s in plan)
    sqlite_plan = plan_statements(declared, diff(declared, LiveSchema("sqlite")))
    assert all(s.startswith("CREATE") for s in sqlite_plan)
    conn = sqlite3.connect(":memory:")
    for statement in sqlite_plan:
        conn.execute(statement)


def _is_safe(statement: str) -> bool:
    words = [t.text.upper() for t in tokenize(statement) if t.kind == "word"]
    if tuple(words[:2]) not in SAFE_PREFIXES:
        return False
    if words[:2] == ["ALTER", "TABLE"]:
        return words[2:4] == ["ADD", "COLUMN"] or (words[2:3] == ["ADD"] and "FOREIGN" in words)
    return True


@settings(max_examples=80, deadline=None)
@given(data=st.data(), dialect=st.sampled_from(["sqlite", "postgresql"]))
def test_plan_never_contains_a_destructive_statement(data: st.DataObject, dialect: str) -> None:
    declared = data.draw(schemas())
    live = data.draw(drifted(declared, dialect))
    report = diff(declared, live)
    plan = plan_statements(declared, report)
    for statement in plan:
        assert destructive_reason(statement) is None, statement
        assert _is_safe(statement), statement
        assert split_statements(statement) == [statement]
    assert len(plan) >= sum(1 for f in report.findings if f.fixable)


@settings(max_examples=50, deadline=None)
@given(declared=schemas())
def test_plan_for_an_empty_sqlite_database_runs_and_creates_only_declared_tables(
    declared: Schema,
) -> None:
    plan = plan_statements(declared, diff(declared, LiveSchema("sqlite")))
    conn = sqlite3.connect(":memory:")
    for statement in plan:
        conn.execute(statement)
    found = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert found == {t.name for t in declared.tables}


@settings(max_examples=50, deadline=None)
@given(declared=schemas(), dialect=st.sampled_from(["sqlite", "postgresql"]))
def test_a_live_copy_of_the_declaration_has_no_drift(declared: Schema, dialect: str) -> None:
    live = LiveSchema(dialect, tuple(live_table(t) for t in declared.tables))
    report = diff(declared, live)
    assert report.errors == ()
    assert plan_statements(declared, report) == []


def test_table_referencing_a_table_that_exists_nowhere_is_not_planned() -> None:
    orphan = Table(
        "orphan",
        [Column("id", "integer"), Column("ghost_id", "integer")],
        foreign_keys=[ForeignKey(["ghost_id"], "ghost", ["id"])],
    )
    report = diff(Schema([orphan]), LiveSchema("postgresql"))
    (finding,) = report.findings
    assert not finding.fixable
    assert "references ghost, which exists nowhere" in finding.message
    assert plan_statements(Schema([orphan]), report) == []
    live_ghost = LiveSchema("postgresql", (LiveTable("ghost", (LiveColumn("id", "integer"),)),))
    assert diff(Schema([orphan]), live_ghost).findings[0].fixable
