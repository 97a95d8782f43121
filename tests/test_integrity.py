"""Integrity expectations on real SQLite files and PostgreSQL databases: seeded
duplicates and orphans are found, cleaned up with a backup, and undone exactly."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buttress import connect
from buttress.backends import MissingTableError, SqlBackend, require_sql
from buttress.cli import build_parser
from buttress.errors import UnsupportedBackendError, ValidationError
from buttress.schema import Column, ForeignKey, Schema, Table
from buttress.schema.integrity import (
    BACKUP_TABLE,
    Expectation,
    ExpectRelation,
    ExpectUnique,
    IntegrityChecker,
    IntegrityError,
    declarations_from_dict,
    expectations_from_schema,
    load_declarations,
)
from buttress.schema.integrity._sql import dump_row, load_row
from cli_support import set_up

EMAIL = ExpectUnique("users", ["email"])
ORDERS = ExpectRelation("orders", ["user_id"], "users", ["id"])

USERS = [
    (1, "a@x", "first a"),
    (2, "b@x", "only b"),
    (3, "a@x", "second a"),
    (4, "c@x", "first c"),
    (5, "a@x", "third a"),
    (6, "c@x", "second c"),
    (7, None, "no email"),
    (8, None, "no email either"),
]
ORDERS_ROWS = [
    (10, 1, "of first a"),
    (11, 3, "of second a"),
    (12, 5, "of third a"),
    (13, 2, "of b"),
    (14, 99, "orphan"),
    (15, 98, "orphan too"),
    (16, None, "no user"),
    (17, 6, "of second c"),
]


def ph(db: SqlBackend, sql: str) -> str:
    if db.dialect != "postgresql":
        return sql
    parts = sql.split("?")
    return parts[0] + "".join(f"${i}{p}" for i, p in enumerate(parts[1:], start=1))


async def seed(db: SqlBackend, users: list[Any] = USERS, orders: list[Any] = ORDERS_ROWS) -> None:
    await db.execute("CREATE TABLE users (id integer PRIMARY KEY, email text, name text)")
    await db.execute("CREATE TABLE orders (id integer PRIMARY KEY, user_id integer, note text)")
    if users:
        await db.executemany(ph(db, "INSERT INTO users VALUES (?, ?, ?)"), users)
    if orders:
        await db.executemany(ph(db, "INSERT INTO orders VALUES (?, ?, ?)"), orders)


async def snapshot(db: SqlBackend, *tables: str) -> dict[str, list[dict[str, object]]]:
    return {t: [dict(r) for r in await db.fetch(f"SELECT * FROM {t} ORDER BY id")] for t in tables}


@pytest.fixture
async def db(sql_dsn: str) -> AsyncIterator[SqlBackend]:
    async with connect(sql_dsn) as backend:
        yield require_sql(backend, "tests")


# -- declarations --------------------------------------------------------------------------


def test_declarations_validate_names_and_shapes() -> None:
    assert EMAIL.columns == ("email",)
    assert ORDERS.describe() == "relation orders(user_id) -> users(id)"
    with pytest.raises(ValidationError, match=r"ExpectUnique\.columns"):
        ExpectUnique("users", [])
    with pytest.raises(ValidationError, match=r"ExpectUnique\.table"):
        ExpectUnique("", ["email"])
    with pytest.raises(ValidationError, match="must not repeat"):
        ExpectUnique("users", ["a", "a"])
    with pytest.raises(ValidationError, match="as many columns"):
        ExpectRelation("orders", ["a", "b"], "users", ["id"])
    with pytest.raises(ValidationError, match="on_orphan"):
        ExpectRelation("orders", ["a"], "users", ["id"], on_orphan="drop")  # type: ignore[arg-type]  # the point of the test
    with pytest.raises(ValidationError, match="reserved"):
        ExpectUnique("users", ["__buttress_rn"])
    with pytest.raises(ValidationError, match="control"):
        ExpectRelation("orders", ["a"], "users\x00", ["id"])


def test_expectations_follow_the_declared_schema() -> None:
    schema = Schema(
        [
            Table("users", [Column("id", "integer"), Column("email", "text")], primary_key=["id"],
                  unique=[["email"]]),
            Table("orders", [Column("id", "integer"), Column("user_id", "integer"),
                             Column("owner_id", "integer"), Column("other_id", "integer")],
                  primary_key=["id"],
                  foreign_keys=[ForeignKey(["user_id"], "users", ["id"], on_delete="cascade"),
                                ForeignKey(["owner_id"], "users", ["id"], on_delete="set null"),
                                ForeignKey(["other_id"], "users", ["id"])]),
        ]
    )  # fmt: skip
    found = expectations_from_schema(schema)
    assert found[0] == ExpectUnique("users", ["email"], key=["id"])
    assert [e.on_orphan for e in found[1:] if isinstance(e, ExpectRelation)] == [
        "delete",
        "set_null",
        "keep",
    ]


async def test_checker_refuses_bad_options_and_non_sql_backends(db: SqlBackend) -> None:
    with pytest.raises(ValidationError, match="sample_limit"):
        IntegrityChecker(db, [EMAIL], sample_limit=0)
    with pytest.raises(ValidationError, match="expectations"):
        IntegrityChecker(db, ["users"])  # type: ignore[list-item]  # the point of the test
    async with connect("memory://") as memory:
        with pytest.raises(UnsupportedBackendError, match="IntegrityChecker"):
            IntegrityChecker(memory, [EMAIL])


# -- check ---------------------------------------------------------------------------------


async def test_check_counts_duplicate_groups_and_orphans_with_samples(db: SqlBackend) -> None:
    await seed(db)
    report = await IntegrityChecker(db, [EMAIL, ORDERS], sample_limit=5).check()
    assert not report.ok
    assert report.exit_code == 1
    unique, relation = report.results
    assert (unique.kind, unique.violations, unique.rows) == ("duplicates", 2, 3)
    assert unique.samples[0] == {"email": "a@x", "count": 3}
    assert {"email": "c@x", "count": 2} in unique.samples
    assert (relation.kind, relation.violations, relation.rows) == ("orphans", 2, 2)
    assert relation.samples == ({"user_id": 98}, {"user_id": 99})
    text = report.render_text()
    assert "2 duplicate group(s), 3 surplus row(s)" in text
    assert "2 orphaned row(s)" in text
    assert report.to_dict()["ok"] is False


async def test_samples_are_bounded_and_show_the_declared_key(db: SqlBackend) -> None:
    await seed(db)
    keyed = ExpectRelation("orders", ["user_id"], "users", ["id"], key=["id"])
    report = await IntegrityChecker(db, [EMAIL, keyed], sample_limit=1).check()
    assert len(report.results[0].samples) == 1
    assert report.results[0].violations == 2
    assert report.results[1].samples == ({"id": 14, "user_id": 99},)
    assert report.results[1].violations == 2


async def test_a_clean_database_passes(db: SqlBackend) -> None:
    await seed(db, users=[(1, "a@x", "a")], orders=[(1, 1, "ok"), (2, None, "none")])
    report = await IntegrityChecker(db, [EMAIL, ORDERS]).check()
    assert report.ok
    assert report.exit_code == 0
    assert "0 violated" in report.render_text()


async def test_missing_declared_tables_are_named(db: SqlBackend) -> None:
    with pytest.raises(IntegrityError, match=r"\['orders', 'users'\]"):
        await IntegrityChecker(db, [ORDERS]).check()


# -- cleanup and undo ------------------------------------------------------------------------


async def test_dry_run_lists_the_plan_and_changes_nothing(db: SqlBackend) -> None:
    await seed(db)
    before = await snapshot(db, "users", "orders")
    result = await IntegrityChecker(db, [EMAIL, ORDERS]).cleanup(dry_run=True)
    assert result.dry_run
    assert result.run_id is None
    assert await snapshot(db, "users", "orders") == before
    assert await db.fetchval(f"SELECT count(*) FROM {BACKUP_TABLE}") == 0
    assert result.counts() == {"users": {"delete": 3, "update": 0},
                               "orders": {"delete": 2, "update": 3}}  # fmt: skip
    deleted_users = sorted(c.key["id"] for c in result.changes if c.table == "users")  # type: ignore[type-var]  # ints
    assert deleted_users == [3, 5, 6]
    repointed = {c.key["id"]: c.changes for c in result.changes if c.action == "update"}
    assert repointed == {11: {"user_id": 1}, 12: {"user_id": 1}, 17: {"user_id": 4}}
    assert "would delete 5 row(s), would update 3" in result.render_text()


async def test_cleanup_keeps_the_oldest_repoints_children_and_undo_restores(
    db: SqlBackend,
) -> None:
    await seed(db)
    before = await snapshot(db, "users", "orders")
    checker = IntegrityChecker(db, [EMAIL, ORDERS])
    result = await checker.cleanup(dry_run=False)
    assert result.run_id is not None
    assert not result.dry_run
    assert (result.deleted, result.updated) == (5, 3)
    after = await snapshot(db, "users", "orders")
    assert [u["id"] for u in after["users"]] == [1, 2, 4, 7, 8]
    assert {o["id"]: o["user_id"] for o in after["orders"]} == {
        10: 1, 11: 1, 12: 1, 13: 2, 16: None, 17: 4
    }  # fmt: skip
    assert (await checker.check()).ok
    backup = await db.fetch(
        ph(db, f"SELECT table_name, action FROM {BACKUP_TABLE} WHERE run_id = ?"), result.run_id
    )
    assert len(backup) == 8
    undone = await checker.undo(result.run_id)
    assert undone.restored == 8
    assert set(undone.tables) == {"users", "orders"}
    assert await snapshot(db, "users", "orders") == before
    with pytest.raises(IntegrityError, match="already undone"):
        await checker.undo(result.run_id)
    with pytest.raises(IntegrityError, match="no integrity cleanup run"):
        await checker.undo("nope")


async def test_orphan_policies_set_null_and_keep(db: SqlBackend) -> None:
    await seed(db)
    before = await snapshot(db, "users", "orders")
    nulling = ExpectRelation("orders", ["user_id"], "users", ["id"], on_orphan="set_null")
    checker = IntegrityChecker(db, [nulling])
    result = await checker.cleanup(dry_run=False)
    assert (result.deleted, result.updated) == (0, 2)
    rows = {o["id"]: o["user_id"] for o in (await snapshot(db, "orders"))["orders"]}
    assert rows[14] is None
    assert rows[15] is None
    assert rows[11] == 3
    assert result.run_id is not None
    await checker.undo(result.run_id)
    assert await snapshot(db, "users", "orders") == before

    keeping = ExpectRelation("orders", ["user_id"], "users", ["id"], on_orphan="keep")
    kept = await IntegrityChecker(db, [keeping]).cleanup(dry_run=False)
    assert kept.changes == ()
    assert kept.run_id is None
    assert not (await IntegrityChecker(db, [keeping]).check()).ok
    assert await snapshot(db, "users", "orders") == before


async def test_only_declared_tables_are_touched(db: SqlBackend) -> None:
    await seed(db)
    await db.execute("CREATE TABLE audit (id integer PRIMARY KEY, user_id integer)")
    await db.execute("INSERT INTO audit VALUES (1, 3), (2, 99)")
    await IntegrityChecker(db, [EMAIL, ORDERS]).cleanup(dry_run=False)
    assert [dict(r) for r in await db.fetch("SELECT * FROM audit ORDER BY id")] == [
        {"id": 1, "user_id": 3},
        {"id": 2, "user_id": 99},
    ]


async def test_max_rows_refuses_before_changing_anything(db: SqlBackend) -> None:
    await seed(db)
    before = await snapshot(db, "users", "orders")
    checker = IntegrityChecker(db, [EMAIL, ORDERS], max_rows=4)
    with pytest.raises(IntegrityError, match="max_rows=4"):
        await checker.cleanup(dry_run=False)
    assert await snapshot(db, "users", "orders") == before
    assert await db.fetchval(f"SELECT count(*) FROM {BACKUP_TABLE}") == 0


async def test_a_cascading_live_foreign_key_from_an_undeclared_table_is_refused(
    db: SqlBackend,
) -> None:
    await seed(db)
    await db.execute(
        "CREATE TABLE sessions (id integer PRIMARY KEY, "
        "user_id integer REFERENCES users (id) ON DELETE CASCADE)"
    )
    await db.execute("INSERT INTO sessions VALUES (1, 3)")
    before = await snapshot(db, "users", "orders", "sessions")
    with pytest.raises(IntegrityError, match=r"sessions\(user_id\) -> users ON DELETE cascade"):
        await IntegrityChecker(db, [EMAIL, ORDERS]).cleanup(dry_run=False)
    assert await snapshot(db, "users", "orders", "sessions") == before
    # Declared, the relation's rows are re-pointed first, so the cascade reaches nothing.
    sessions = ExpectRelation("sessions", ["user_id"], "users", ["id"])
    result = await IntegrityChecker(db, [EMAIL, ORDERS, sessions]).cleanup(dry_run=False)
    assert (await snapshot(db, "sessions"))["sessions"] == [{"id": 1, "user_id": 1}]
    assert result.run_id is not None


async def test_a_table_without_a_key_needs_one_declared(db: SqlBackend) -> None:
    await db.execute("CREATE TABLE tags (name text, label text)")
    await db.execute("INSERT INTO tags VALUES ('a', 'x'), ('a', 'y')")
    with pytest.raises(IntegrityError, match="no primary key"):
        await IntegrityChecker(db, [ExpectUnique("tags", ["name"])]).cleanup()
    report = await IntegrityChecker(db, [ExpectUnique("tags", ["name"])]).check()
    assert report.results[0].violations == 1


async def test_the_declared_schema_supplies_keys(db: SqlBackend) -> None:
    await db.execute("CREATE TABLE tags (code text, name text)")
    await db.execute("INSERT INTO tags VALUES ('b', 'x'), ('a', 'x')")
    schema = Schema(
        [Table("tags", [Column("code", "text"), Column("name", "text")], primary_key=["code"])]
    )
    checker = IntegrityChecker(db, [ExpectUnique("tags", ["name"])], schema=schema)
    result = await checker.cleanup(dry_run=False)
    assert [dict(r) for r in await db.fetch("SELECT * FROM tags")] == [{"code": "a", "name": "x"}]
    assert result.run_id is not None
    await checker.undo(result.run_id)
    assert await db.fetchval("SELECT count(*) FROM tags") == 2


async def test_cleanup_without_buttress_migrations_names_the_table(sql_dsn: str) -> None:
    async with connect(sql_dsn, migrate=False) as raw:
        db = require_sql(raw, "tests")
        await seed(db)
        with pytest.raises(MissingTableError, match=BACKUP_TABLE):
            await IntegrityChecker(db, [EMAIL]).cleanup(dry_run=False)
        assert (await IntegrityChecker(db, [EMAIL]).cleanup()).dry_run


@pytest.mark.postgres
async def test_postgres_types_round_trip_through_the_backup(postgres_dsn: str) -> None:
    async with connect(postgres_dsn) as raw:
        db = require_sql(raw, "tests")
        await db.execute_script(
            """
            CREATE TABLE items (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                sku text,
                price numeric(12, 4),
                seen timestamptz,
                tags text[],
                blob bytea,
                meta jsonb,
                ratio double precision,
                ref uuid,
                doubled numeric GENERATED ALWAYS AS (price * 2) STORED
            );
            INSERT INTO items (sku, price, seen, tags, blob, meta, ratio, ref) VALUES
              ('a', 1.2345, '2024-02-29 12:34:56.789012+00', '{x,"y z"}', '\\x00ff',
               '{"k": [1, 2.5, null], "$bytes": "AA=="}', 'NaN',
               'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),
              ('a', 99999999.9999, '1999-12-31 23:59:59+05', NULL, '\\x', '{"$float": "nan"}',
               '-Infinity', NULL),
              ('b', NULL, NULL, '{}', NULL, NULL, 1e-300, NULL);
            """
        )
        before = [dict(r) for r in await db.fetch("SELECT * FROM items ORDER BY id")]
        checker = IntegrityChecker(db, [ExpectUnique("items", ["sku"])])
        result = await checker.cleanup(dry_run=False)
        assert result.deleted == 1
        assert result.run_id is not None
        await checker.undo(result.run_id)
        after = [dict(r) for r in await db.fetch("SELECT * FROM items ORDER BY id")]
        assert repr(after) == repr(before)  # repr: NaN != NaN


@pytest.mark.postgres
async def test_postgres_db_schema_qualifies_every_name(postgres_dsn: str) -> None:
    async with connect(postgres_dsn) as raw:
        db = require_sql(raw, "tests")
        await db.execute('CREATE SCHEMA "Shop"')
        await db.execute('CREATE TABLE "Shop".users (id integer PRIMARY KEY, email text)')
        await db.execute("INSERT INTO \"Shop\".users VALUES (1, 'a'), (2, 'a')")
        checker = IntegrityChecker(db, [EMAIL], db_schema="Shop")
        assert (await checker.check()).results[0].violations == 1
        result = await checker.cleanup(dry_run=False)
        assert await db.fetchval('SELECT count(*) FROM "Shop".users') == 1
        assert result.run_id is not None
        with pytest.raises(IntegrityError, match="db_schema='Shop'"):
            await IntegrityChecker(db, [EMAIL]).undo(result.run_id)
        await checker.undo(result.run_id)
        assert await db.fetchval('SELECT count(*) FROM "Shop".users') == 2


# -- properties ----------------------------------------------------------------------------

emails = st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d"]))
# PostgreSQL text cannot hold NUL; every other character is fair game.
names = st.text(st.characters(blacklist_characters="\x00"), max_size=5)
user_rows = st.lists(st.tuples(emails, names), max_size=12)
order_rows = st.lists(st.one_of(st.none(), st.integers(0, 15)), max_size=12)
policies = st.sampled_from(["delete", "set_null", "keep"])


async def _property_round(
    dsn: str, users: list[tuple[str | None, str]], orders: list[int | None], policy: str
) -> None:
    async with connect(dsn) as raw:
        db = require_sql(raw, "tests")
        await db.execute("DROP TABLE IF EXISTS orders")
        await db.execute("DROP TABLE IF EXISTS users")
        await seed(
            db,
            users=[(i + 1, e, n) for i, (e, n) in enumerate(users)],
            orders=[(i + 1, u, "o") for i, u in enumerate(orders)],
        )
        relation = ExpectRelation("orders", ["user_id"], "users", ["id"], on_orphan=policy)  # type: ignore[arg-type]  # sampled from the three policies
        checker = IntegrityChecker(db, [EMAIL, relation])
        before = await snapshot(db, "users", "orders")
        plan = await checker.cleanup(dry_run=True)
        assert await snapshot(db, "users", "orders") == before
        result = await checker.cleanup(dry_run=False)
        assert len(result.changes) == len(plan.changes)
        report = await checker.check()
        assert report.results[0].ok
        if policy != "keep":
            assert report.results[1].ok
        if result.run_id is not None:
            await checker.undo(result.run_id)
        assert await snapshot(db, "users", "orders") == before


sqlite_values = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True),
    st.text(),
    st.binary(),
)


@given(st.dictionaries(st.text(min_size=1), sqlite_values))
def test_property_sqlite_rows_survive_their_json(row: dict[str, object]) -> None:
    back = load_row(dump_row(row), tagged=True)
    assert repr(back) == repr(row)  # repr: NaN != NaN, and 1 vs 1.0 must differ
    assert [type(v) for v in back.values()] == [type(v) for v in row.values()]


_PROPERTY = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_PROPERTY
@given(users=user_rows, orders=order_rows, policy=policies)
def test_property_dry_run_changes_nothing_and_undo_restores_sqlite(
    sqlite_dsn: str, users: list[tuple[str | None, str]], orders: list[int | None], policy: str
) -> None:
    asyncio.run(_property_round(sqlite_dsn, users, orders, policy))


@pytest.mark.postgres
@settings(_PROPERTY, max_examples=8)
@given(users=user_rows, orders=order_rows, policy=policies)
def test_property_dry_run_changes_nothing_and_undo_restores_postgres(
    postgres_dsn: str, users: list[tuple[str | None, str]], orders: list[int | None], policy: str
) -> None:
    asyncio.run(_property_round(postgres_dsn, users, orders, policy))


# -- declarations from a file and the command line -----------------------------------------------

SCHEMA_TOML = """
[tables.users]
primary_key = ["id"]
columns = { id = "integer", email = "text", name = "text" }

[tables.orders]
primary_key = ["id"]
columns = { id = "integer", user_id = "integer", note = "text" }
[[tables.orders.foreign_keys]]
columns = ["user_id"]
references = "users"
ref_columns = ["id"]
on_delete = "cascade"

[[integrity.unique]]
table = "users"
columns = ["email"]

[audit]
allowed_roles = ["app"]
row_level_security = ["orders"]
force_row_level_security = ["orders", "users"]
"""


def test_declarations_load_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "schema.toml"
    path.write_text(SCHEMA_TOML)
    declared = load_declarations(path)
    assert declared.expectations == (
        ExpectRelation("orders", ["user_id"], "users", ["id"], on_orphan="delete", key=["id"]),
        ExpectUnique("users", ["email"]),
    )
    assert declared.allowed_roles == ("app",)
    assert declared.allow_superuser is False
    flags = [(t.table, t.row_level_security, t.force_row_level_security) for t in declared.security]
    assert flags == [("orders", True, True), ("users", False, True)]
    only = declarations_from_dict({"integrity": {"from_schema": False}})
    assert only.expectations == ()
    assert only.allowed_roles is None


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"integrity": {"uniq": []}}, "integrity"),
        ({"integrity": {"unique": [{"table": "t", "cols": ["a"]}]}}, r"integrity.unique\[0\]"),
        (
            {
                "integrity": {
                    "relations": [
                        {
                            "table": "t",
                            "columns": ["a"],
                            "references": "u",
                            "ref_columns": ["id"],
                            "on_orphan": "drop",
                        }
                    ]
                }
            },
            "on_orphan",
        ),
        ({"audit": {"allowed_roles": [1]}}, "audit.allowed_roles"),
        ({"audit": {"allow_superuser": "yes"}}, "audit.allow_superuser"),
        ({"extra": 1}, "schema"),
    ],
)
def test_bad_declarations_name_their_path(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        declarations_from_dict(data)


def _cli(*argv: str) -> int:
    args = build_parser().parse_args(argv)
    with structlog.testing.capture_logs():
        code: int = args.handler(args)
    return code


def test_cli_check_cleanup_undo(
    sqlite_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "schema.toml"
    path.write_text(SCHEMA_TOML)

    async def prepare() -> dict[str, list[dict[str, object]]]:
        async with connect(sqlite_dsn) as raw:  # as `buttress migrate` leaves it
            db = require_sql(raw, "tests")
            await seed(db)
            return await snapshot(db, "users", "orders")

    before = asyncio.run(prepare())
    base = ("--dsn", sqlite_dsn, "--schema", str(path))
    assert _cli("integrity", "check", *base) == 1
    assert "2 orphaned row(s)" in capsys.readouterr().out
    assert _cli("integrity", "cleanup", *base, "--dry-run", "--json") == 0
    planned = json.loads(capsys.readouterr().out)
    assert planned["dry_run"] is True
    assert planned["deleted"] == 5
    assert _cli("integrity", "cleanup", *base, "--json") == 0
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    assert _cli("integrity", "check", *base, "--json") == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert _cli("integrity", "undo", run_id, *base) == 0
    assert "restored 8 row(s)" in capsys.readouterr().out

    async def read() -> dict[str, list[dict[str, object]]]:
        async with connect(sqlite_dsn, migrate=False) as raw:
            return await snapshot(require_sql(raw, "tests"), "users", "orders")

    assert asyncio.run(read()) == before
    assert _cli("integrity", "undo", run_id, *base, "--json") == 2
    assert "already undone" in json.loads(capsys.readouterr().out)["error"]["message"]
    assert _cli("integrity", "check", "--dsn", sqlite_dsn, "--schema", str(tmp_path / "no")) == 2
    assert "cannot read" in capsys.readouterr().err


def test_cli_audit_on_sqlite_has_no_findings(
    sqlite_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli("audit", "--dsn", set_up(sqlite_dsn), "--json") == 0
    assert json.loads(capsys.readouterr().out) == {
        "ok": True,
        "dialect": "sqlite",
        "applicable": False,
        "message": "not applicable on SQLite (no roles)",
        "findings": [],
    }


async def test_a_refused_change_rolls_everything_back_and_says_which(db: SqlBackend) -> None:
    await db.execute("CREATE TABLE users (id integer PRIMARY KEY, email text)")
    await db.execute("CREATE TABLE orders (id integer PRIMARY KEY, user_id integer NOT NULL)")
    await db.execute("INSERT INTO users VALUES (1, 'a'), (2, 'a')")
    await db.execute("INSERT INTO orders VALUES (1, 7)")
    nulling = ExpectRelation("orders", ["user_id"], "users", ["id"], on_orphan="set_null")
    with pytest.raises(IntegrityError, match=r"update of orders \{'id': 1\}.*nothing was changed"):
        await IntegrityChecker(db, [EMAIL, nulling]).cleanup(dry_run=False)
    assert await db.fetchval("SELECT count(*) FROM users") == 2
    assert await db.fetchval(f"SELECT count(*) FROM {BACKUP_TABLE}") == 0


async def test_undo_refuses_when_a_deleted_key_came_back(db: SqlBackend) -> None:
    await seed(db)
    checker = IntegrityChecker(db, [EMAIL])
    result = await checker.cleanup(dry_run=False)
    assert result.run_id is not None
    await db.execute("INSERT INTO users VALUES (3, 'new', 'reused key')")
    with pytest.raises(IntegrityError, match=r"cannot re-insert \{'id': 3\} into 'users'"):
        await checker.undo(result.run_id)
    assert await db.fetchval("SELECT count(*) FROM users") == 6
    await db.execute("DELETE FROM users WHERE id = 3")
    assert (await checker.undo(result.run_id)).restored == 3


async def test_composite_keys_and_hostile_names(db: SqlBackend) -> None:
    parent, child = 'Team "x"; DROP TABLE users; --', "member list"
    q = {name: '"' + name.replace('"', '""') + '"' for name in (parent, child)}
    await db.execute(
        f'CREATE TABLE {q[parent]} ("org id" integer, "team no" integer, "Name" text, '
        'PRIMARY KEY ("org id", "team no"))'
    )
    await db.execute(
        f'CREATE TABLE {q[child]} (id integer PRIMARY KEY, "org" integer, "team" integer)'
    )
    await db.executemany(
        ph(db, f"INSERT INTO {q[parent]} VALUES (?, ?, ?)"),
        [(1, 2, "red"), (1, 1, "red"), (2, 1, "red"), (2, 5, "blue")],
    )
    await db.executemany(
        ph(db, f"INSERT INTO {q[child]} VALUES (?, ?, ?)"),
        [(1, 1, 2), (2, 2, 1), (3, 7, 7), (4, 1, None)],
    )
    before = await snapshot(db, q[child])
    expected: list[Expectation] = [
        ExpectUnique(parent, ["Name"]),
        ExpectRelation(child, ["org", "team"], parent, ["org id", "team no"]),
    ]
    checker = IntegrityChecker(db, expected)
    report = await checker.check()
    assert [(r.violations, r.rows) for r in report.results] == [(1, 2), (1, 1)]
    result = await checker.cleanup(dry_run=False)
    kept = [dict(r) for r in await db.fetch(f"SELECT * FROM {q[parent]} ORDER BY 1, 2")]
    assert kept == [{"org id": 1, "team no": 1, "Name": "red"},
                    {"org id": 2, "team no": 5, "Name": "blue"}]  # fmt: skip
    members = {r["id"]: (r["org"], r["team"]) for r in (await snapshot(db, q[child]))[q[child]]}
    assert members == {1: (1, 1), 2: (1, 1), 4: (1, None)}
    assert result.run_id is not None
    await checker.undo(result.run_id)
    assert await snapshot(db, q[child]) == before
    assert await db.fetchval(f"SELECT count(*) FROM {q[parent]}") == 4


# -- undo exact or refused up front (issue #15 item 9) --------------------------------------

_PAGILA_LIKE = """
CREATE TABLE customer (id integer PRIMARY KEY, email text,
                       last_update timestamptz NOT NULL DEFAULT now());
CREATE TABLE rental (id integer PRIMARY KEY, customer_id integer,
                     last_update timestamptz NOT NULL DEFAULT now());
CREATE FUNCTION last_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.last_update := clock_timestamp(); RETURN NEW; END $$;
CREATE TRIGGER last_updated BEFORE UPDATE ON rental
    FOR EACH ROW EXECUTE FUNCTION last_updated();
INSERT INTO customer VALUES (1, 'a', '2020-01-01'), (2, 'a', '2020-01-02'), (3, 'b', '2020-01-03');
INSERT INTO rental VALUES (10, 1, '2021-01-01'), (11, 2, '2021-01-02'), (12, 99, '2021-01-03');
"""


@pytest.mark.postgres
async def test_postgres_a_before_update_trigger_refuses_cleanup_and_undo_up_front(
    postgres_dsn: str,
) -> None:
    """Pagila's last_update trigger: cleanup and undo would fire it, so the undo
    would not restore rows exactly. The dry run says so, the cleanup refuses;
    with the trigger disabled both run and the rows come back byte for byte."""
    async with connect(postgres_dsn) as raw:
        db = require_sql(raw, "tests")
        await db.execute_script(_PAGILA_LIKE)
        declared: list[ExpectUnique | ExpectRelation] = [
            ExpectUnique("customer", ["email"]),
            ExpectRelation("rental", ["customer_id"], "customer", ["id"], on_orphan="set_null"),
        ]
        checker = IntegrityChecker(db, declared)
        before = await snapshot(db, "customer", "rental")
        plan = await checker.cleanup()
        assert plan.exit_code == 2
        assert plan.refusals == (
            "trigger last_updated (BEFORE UPDATE) on rental fires on the cleanup or its "
            "undo and would change rows or write elsewhere; disable it for both (ALTER TABLE "
            "... DISABLE TRIGGER) or clean up by hand",
        )
        assert "REFUSED" in plan.render_text()
        assert plan.to_dict()["refused"] == list(plan.refusals)
        with pytest.raises(IntegrityError, match=r"cleanup refused.*last_updated.*nothing was"):
            await checker.cleanup(dry_run=False)
        assert await snapshot(db, "customer", "rental") == before
        assert await db.fetchval(f"SELECT count(*) FROM {BACKUP_TABLE}") == 0

        await db.execute("ALTER TABLE rental DISABLE TRIGGER last_updated")
        assert (await checker.cleanup()).refusals == ()
        result = await checker.cleanup(dry_run=False)
        assert result.run_id is not None
        changed = await snapshot(db, "customer", "rental")
        # Re-enabled, the trigger would fire on the undo: refused, nothing restored.
        await db.execute("ALTER TABLE rental ENABLE TRIGGER last_updated")
        with pytest.raises(IntegrityError, match=r"undo of .* refused: trigger last_updated"):
            await checker.undo(result.run_id)
        assert await snapshot(db, "customer", "rental") == changed
        await db.execute("ALTER TABLE rental DISABLE TRIGGER last_updated")
        assert (await checker.undo(result.run_id)).restored == 3
        assert repr(await snapshot(db, "customer", "rental")) == repr(before)


@pytest.mark.postgres
async def test_postgres_undo_checks_the_rows_came_back_exactly(postgres_dsn: str) -> None:
    """Whatever else changes a restored row (here a rule added after the
    cleanup), the undo reads it back, notices and restores nothing."""
    async with connect(postgres_dsn) as raw:
        db = require_sql(raw, "tests")
        await db.execute_script(_PAGILA_LIKE)
        checker = IntegrityChecker(db, [ExpectUnique("customer", ["email"])])
        result = await checker.cleanup(dry_run=False)
        assert result.run_id is not None
        changed = await snapshot(db, "customer", "rental")
        await db.execute(
            "CREATE RULE shout AS ON INSERT TO customer DO ALSO "
            "UPDATE customer SET email = upper(email) WHERE id = NEW.id"
        )
        with pytest.raises(IntegrityError, match=r"row \{'id': 2\} of 'customer' did not come"):
            await checker.undo(result.run_id)
        assert await snapshot(db, "customer", "rental") == changed
        await db.execute("DROP RULE shout ON customer")
        assert (await checker.undo(result.run_id)).restored == 1


@pytest.mark.postgres
@pytest.mark.parametrize("on_orphan", ["delete", "set_null"])
async def test_postgres_orphans_behind_a_bypassed_foreign_key(
    postgres_dsn: str, on_orphan: str
) -> None:
    """Orphans that exist only because the foreign key was bypassed could never
    be put back while the key is enforced: the dry run says so and the cleanup
    refuses. With the key's triggers disabled the undo is exact; a run whose
    key is enforced again fails naming the foreign key, not a reused key."""
    async with connect(postgres_dsn) as raw:
        db = require_sql(raw, "tests")
        await db.execute("CREATE TABLE users (id integer PRIMARY KEY, email text, name text)")
        await db.execute(
            "CREATE TABLE orders (id integer PRIMARY KEY, "
            "user_id integer CONSTRAINT orders_user_fk REFERENCES users (id), note text)"
        )
        await db.execute("INSERT INTO users VALUES (1, 'a', 'x')")
        async with db.transaction() as tx:
            await tx.execute("SET LOCAL session_replication_role = replica")
            await tx.execute("INSERT INTO orders VALUES (1, 1, 'ok'), (2, 99, 'orphan')")
        relation = ExpectRelation("orders", ["user_id"], "users", ["id"], on_orphan=on_orphan)  # type: ignore[arg-type]
        checker = IntegrityChecker(db, [relation])
        before = await snapshot(db, "users", "orders")
        plan = await checker.cleanup()
        assert len(plan.changes) == 1
        (reason,) = plan.refusals
        assert "1 orphan(s) of relation orders(user_id) -> users(id)" in reason
        assert "foreign key orders_user_fk enforces that relation" in reason
        assert "session_replication_role=replica" in reason
        with pytest.raises(IntegrityError, match=r"cleanup refused.*orders_user_fk"):
            await checker.cleanup(dry_run=False)
        assert await snapshot(db, "users", "orders") == before

        await db.execute("ALTER TABLE orders DISABLE TRIGGER ALL")
        assert (await checker.cleanup()).refusals == ()
        result = await checker.cleanup(dry_run=False)
        assert result.run_id is not None
        await db.execute("ALTER TABLE orders ENABLE TRIGGER ALL")
        with pytest.raises(IntegrityError, match="foreign key refuses it") as caught:
            await checker.undo(result.run_id)
        assert "exists again" not in str(caught.value)
        await db.execute("ALTER TABLE orders DISABLE TRIGGER ALL")
        await checker.undo(result.run_id)
        assert repr(await snapshot(db, "users", "orders")) == repr(before)


async def test_sqlite_triggers_and_bypassed_foreign_keys_refuse_up_front(sqlite_dsn: str) -> None:
    async with connect(sqlite_dsn) as raw:
        db = require_sql(raw, "tests")
        await db.execute("CREATE TABLE users (id integer PRIMARY KEY, email text, name text)")
        await db.execute(
            "CREATE TABLE orders (id integer PRIMARY KEY, "
            "user_id integer REFERENCES users (id), note text)"
        )
        # Another client, with foreign keys off (SQLite's default), adds an orphan.
        other = sqlite3.connect(sqlite_dsn.removeprefix("sqlite:///"))
        with other:
            other.execute("INSERT INTO orders VALUES (1, 99, 'orphan')")
        other.close()
        await db.execute("CREATE TRIGGER audit_orders AFTER DELETE ON orders BEGIN SELECT 1; END")
        plan = await IntegrityChecker(db, [ORDERS]).cleanup()
        assert plan.exit_code == 2
        assert plan.refusals[0].startswith("trigger audit_orders on orders fires")
        assert "foreign key #0 enforces that relation" in plan.refusals[1]
        with pytest.raises(IntegrityError, match="cleanup refused"):
            await IntegrityChecker(db, [ORDERS]).cleanup(dry_run=False)
        assert await db.fetchval("SELECT count(*) FROM orders") == 1


def test_cli_dry_run_refusal_exits_2_and_the_cleanup_changes_nothing(
    sqlite_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "schema.toml"
    path.write_text(SCHEMA_TOML)

    async def prepare() -> dict[str, list[dict[str, object]]]:
        async with connect(sqlite_dsn) as raw:
            db = require_sql(raw, "tests")
            await seed(db)
            await db.execute("CREATE TRIGGER touch AFTER UPDATE ON orders BEGIN SELECT 1; END")
            await db.execute("CREATE TRIGGER gone AFTER DELETE ON users BEGIN SELECT 1; END")
            return await snapshot(db, "users", "orders")

    before = asyncio.run(prepare())
    base = ("--dsn", sqlite_dsn, "--schema", str(path))
    assert _cli("integrity", "cleanup", *base, "--dry-run") == 2
    out = capsys.readouterr().out
    assert "REFUSED" in out
    assert "trigger gone on users fires" in out
    assert _cli("integrity", "cleanup", *base, "--dry-run", "--json") == 2
    assert len(json.loads(capsys.readouterr().out)["refused"]) == 2
    assert _cli("integrity", "cleanup", *base, "--json") == 2
    assert "cleanup refused" in json.loads(capsys.readouterr().out)["error"]["message"]

    async def read() -> dict[str, list[dict[str, object]]]:
        async with connect(sqlite_dsn, migrate=False) as raw:
            return await snapshot(require_sql(raw, "tests"), "users", "orders")

    assert asyncio.run(read()) == before
