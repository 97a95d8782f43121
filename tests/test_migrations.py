"""Pure parts of buttress.migrations: file parsing, checksums, ordering, SQL text."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buttress.migrations import decide
from buttress.migrations.decide import Snapshot
from buttress.migrations.files import (
    CHECKSUM_ALGORITHM,
    Migration,
    checksum,
    load_directory,
    parse_migration,
)
from buttress.migrations.resolver import resolve
from buttress.migrations.sqltext import destructive_reason, split_statements
from buttress.migrations.store import AppliedMigration, TrackingState


def test_transaction_control_is_allowed_in_no_transaction_files() -> None:
    text = "-- buttress: no-transaction\nBEGIN;\nCREATE TABLE t (a int);\nCOMMIT;"
    assert parse_migration("0001_x.sql", text).errors == ()
    trigger = "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END;"
    assert parse_migration("0002_y.sql", trigger).errors == ()


def test_parse_full_file() -> None:
    text = (
        "-- depends: 0001_users, 0002\n"
        "-- buttress: no-transaction allow-destructive\n"
        "CREATE INDEX CONCURRENTLY ix ON t (a);\n"
        "DROP TABLE old;\n"
        "-- down\n"
        "DROP INDEX ix;\n"
    )
    outcome = parse_migration("0003_index.sql", text)
    assert outcome.errors == ()
    m = outcome.migration
    assert m is not None
    assert (m.version, m.name, m.id) == (3, "index", "0003_index")
    assert m.depends == ("0001_users", "0002")
    assert m.no_transaction
    assert m.allow_destructive
    assert "CREATE INDEX" in m.up
    assert "DROP INDEX" not in m.up
    assert m.down == "DROP INDEX ix;"
    assert m.checksum == checksum(text)


@pytest.mark.parametrize(
    ("filename", "text", "problem"),
    [
        ("1_short.sql", "SELECT 1;", "NNNN_name.sql"),
        ("0001_x.sql", "-- buttress: no-transactoin\nSELECT 1;", "unknown directive"),
        ("0001_x.sql", "-- depends: users\nSELECT 1;", "bad dependency"),
        ("0001_x.sql", "SELECT 1;\n-- down\nSELECT 2;\n-- down\n", "second '-- down'"),
        ("0001_x.sql", "-- only a comment\n-- down\nDROP TABLE t;", "no statements"),
        ("0001_x.sql", "BEGIN;\nCREATE TABLE t (a int);\nCOMMIT;", "controls transactions"),
    ],
)
def test_parse_problems_are_reported(filename: str, text: str, problem: str) -> None:
    assert any(problem in e for e in parse_migration(filename, text).errors)


def test_checksum_ignores_line_endings_bom_and_trailing_whitespace() -> None:
    base = "CREATE TABLE t (a int);\nINSERT INTO t VALUES (1);\n"
    variants = [
        base.replace("\n", "\r\n"),
        "\ufeff" + base,
        "CREATE TABLE t (a int);   \nINSERT INTO t VALUES (1);\t\n\n\n",
        base.rstrip("\n"),
    ]
    assert {checksum(v) for v in variants} == {checksum(base)}
    assert checksum(base.replace("(1)", "(2)")) != checksum(base)
    assert CHECKSUM_ALGORITHM == "sha256-normalised-v1"
    with pytest.raises(ValueError, match="unknown checksum algorithm"):
        checksum(base, "md5")


@settings(max_examples=200)
@given(
    lines=st.lists(
        st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=30), max_size=8
    ),
    ending=st.sampled_from(["\n", "\r\n", "\r"]),
    pad=st.sampled_from(["", " ", "\t "]),
)
def test_checksum_is_stable_under_resaving(lines: list[str], ending: str, pad: str) -> None:
    clean = [line.replace("\r", "").replace("\n", "").rstrip() for line in lines]
    original = "\n".join(clean)
    resaved = ending.join(line + pad for line in clean) + ending
    assert checksum(original) == checksum(resaved)


def test_load_directory_sorts_and_collects(tmp_path: Path) -> None:
    (tmp_path / "0002_b.sql").write_text("SELECT 2;")
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "notes.sql").write_text("SELECT 3;")
    (tmp_path / "README.md").write_text("ignored")
    migrations, errors = load_directory(tmp_path)
    assert [m.id for m in migrations] == ["0001_a", "0002_b"]
    assert errors == ["notes.sql: name must look like NNNN_name.sql"]
    assert load_directory(tmp_path / "missing")[1][0].endswith("does not exist")


def _m(version: int, *depends: str, name: str | None = None) -> Migration:
    return Migration(version=version, name=name or f"m{version}", up="SELECT 1", depends=depends)


def test_resolve_orders_dependencies_before_versions() -> None:
    resolution = resolve([_m(1), _m(2, "0003"), _m(3), _m(4, "0001_m1")])
    assert resolution.ok
    assert [m.version for m in resolution.order] == [1, 3, 2, 4]


def test_resolve_collects_every_problem() -> None:
    resolution = resolve(
        [
            _m(1),
            _m(1, name="dup"),
            _m(2, "0009"),
            _m(3, "0004"),
            _m(4, "0005"),
            _m(5, "0003"),
            _m(6, "0006"),
        ]
    )
    text = "\n".join(resolution.errors)
    assert "version 0001 is used by several files" in text
    assert "depends on 0009, which does not exist" in text
    assert "dependency cycle: 0003_m3 -> 0004_m4 -> 0005_m5 -> 0003_m3" in text
    assert "0006_m6.sql: depends on itself" in text
    assert len(resolution.errors) == 4


@settings(max_examples=200)
@given(st.data())
def test_resolve_order_respects_every_dependency(data: st.DataObject) -> None:
    count = data.draw(st.integers(1, 12))
    migrations = []
    for version in range(1, count + 1):
        deps = data.draw(st.lists(st.integers(1, count), max_size=3, unique=True))
        migrations.append(_m(version, *(f"{d:04d}" for d in deps if d != version)))
    resolution = resolve(migrations)
    position = {m.id: i for i, m in enumerate(resolution.order)}
    for migration in resolution.order:
        for dep in resolution.edges[migration.id]:
            assert position[dep] < position[migration.id]
    if resolution.ok:
        assert len(resolution.order) == count
    else:
        assert all("cycle" in e for e in resolution.errors)


@pytest.mark.parametrize(
    ("sql", "destructive"),
    [
        ("DROP TABLE users", True),
        ("drop index ix", True),
        ("TRUNCATE logs", True),
        ("DELETE FROM users", True),
        ("DELETE FROM users WHERE id = 1", False),
        ("ALTER TABLE t DROP COLUMN c", True),
        ("ALTER TABLE t DROP CONSTRAINT c", True),
        ("ALTER TABLE t ALTER COLUMN c DROP DEFAULT", False),
        ("ALTER TABLE t ALTER COLUMN c DROP NOT NULL", False),
        ("INSERT INTO t VALUES ('DROP TABLE users')", False),
        ('CREATE TABLE "drop" (x int)', False),
        ("CREATE TABLE t (a int REFERENCES u ON DELETE CASCADE)", False),
        ("-- DROP TABLE x\nSELECT 1", False),
        ("CREATE TRIGGER tr AFTER DELETE ON t BEGIN DELETE FROM log WHERE id = old.id; END", False),
        ("WITH gone AS (DELETE FROM t RETURNING *) SELECT count(*) FROM gone", True),
    ],
)
def test_destructive_detection(sql: str, destructive: bool) -> None:
    assert (destructive_reason(sql) is not None) is destructive


def test_split_statements_keeps_bodies_and_literals_whole() -> None:
    sql = (
        "CREATE TABLE a (x text DEFAULT ';');\n"
        "/* a /* nested ; */ ; */ INSERT INTO a VALUES ($$;$$);\n"
        "CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT CASE WHEN 1 THEN 2 END; "
        "DELETE FROM a WHERE 0; END;\n"
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $body$ SELECT 1; $body$;\n"
        "-- trailing comment only\n"
    )
    statements = split_statements(sql)
    assert len(statements) == 4
    assert statements[2].endswith("END")
    assert split_statements("  ;; -- nothing\n") == []


def _snapshot(
    files: list[Migration], rows: list[AppliedMigration], legacy: tuple[str, ...] = ()
) -> Snapshot:
    return Snapshot(
        tuple(files), (), resolve(files), TrackingState(True, legacy), {r.version: r for r in rows}
    )


def _row(
    m: Migration,
    *,
    digest: str | None = None,
    success: bool = True,
    algorithm: str = CHECKSUM_ALGORITHM,
) -> AppliedMigration:
    return AppliedMigration(
        "app",
        m.version,
        m.name,
        digest or m.checksum,
        algorithm,
        dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        5,
        success,
        "me",
    )


def _file(name: str, text: str) -> Migration:
    migration = parse_migration(name, text).migration
    assert migration is not None
    return migration


def test_decisions_over_a_snapshot() -> None:
    a = _file("0001_a.sql", "CREATE TABLE a (x int);")
    b = _file("0002_b.sql", "DROP TABLE old;")
    c = _file("0003_c.sql", "-- buttress: allow-destructive\nTRUNCATE t;")
    d = _file("0004_d.sql", "SELECT 1;")
    gone = _file("0005_gone.sql", "SELECT 1;")
    snap = _snapshot(
        [a, b, c, d],
        [_row(a, digest="0" * 64), _row(d, success=False), _row(gone)],
        legacy=("alembic_version",),
    )
    assert [m.id for m in decide.pending(snap)] == ["0002_b", "0003_c", "0004_d"]
    assert [(s.id, s.state) for s in decide.states(snap)] == [
        ("0001_a", "changed"),
        ("0002_b", "pending"),
        ("0003_c", "pending"),
        ("0004_d", "failed"),
        ("0005_gone", "missing_file"),
    ]
    relaxed = decide.report(snap, production=False)
    assert len(relaxed.errors) == 2  # drift on 0001, missing file for 0005
    assert len(relaxed.warnings) == 2  # failed 0004, legacy alembic_version
    strict = decide.report(snap, production=True)
    assert strict.errors[2:] == (
        "0002_b.sql: statement 'DROP TABLE old': DROP removes an object and its data",
    )


def test_unknown_checksum_algorithm_is_a_warning_not_drift() -> None:
    a = _file("0001_a.sql", "SELECT 1;")
    snap = _snapshot([a], [_row(a, digest="x", algorithm="sha512-v9")])
    result = decide.report(snap, production=False)
    assert result.errors == ()
    assert "cannot verify" in result.warnings[0]
    assert decide.states(snap)[0].state == "applied"
