"""Migrations against what real-world files do: pg_dump output, odd names, undo trails."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from buttress import connect
from buttress.backends import PostgresBackend, SqlBackend, require_sql
from buttress.migrations import (
    DestructiveMigrationError,
    MigrationFailedError,
    MigrationValidationError,
    Migrator,
)
from buttress.migrations.files import load_directory


@pytest.fixture
async def db(sql_dsn: str) -> AsyncIterator[SqlBackend]:
    backend = require_sql(await connect(sql_dsn, migrate=False), "tests")
    try:
        yield backend
    finally:
        await backend.close()


@pytest.fixture
async def pg(postgres_dsn: str) -> AsyncIterator[PostgresBackend]:
    backend = await connect(postgres_dsn, migrate=False)
    assert isinstance(backend, PostgresBackend)
    try:
        yield backend
    finally:
        await backend.close()


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


PG_DUMP_DATA = """--
-- PostgreSQL database dump
--

SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);

CREATE TABLE public.actor (actor_id integer NOT NULL, first_name text NOT NULL);

COPY public.actor (actor_id, first_name) FROM stdin;
1\tPENELOPE
2\tNICK
\\.
"""


async def test_copy_from_stdin_is_refused_at_validation_naming_file_and_line(
    pg: PostgresBackend, tmp_path: Path
) -> None:
    directory = write(tmp_path / "m", {"0001_data.sql": PG_DUMP_DATA})
    migrator = Migrator(pg, directory)
    report = await migrator.validate()
    problems = [e for e in report.errors if "COPY" in e]
    assert problems == [
        "0001_data.sql:10: COPY ... FROM stdin needs psql's copy protocol, which a migration "
        "cannot use; load the data with `psql -1 -f FILE`, or rewrite it as INSERT "
        "statements (pg_dump --inserts)"
    ]
    # Refused before anything runs: no hang waiting for data, nothing created.
    with pytest.raises(MigrationValidationError, match="COPY"):
        await asyncio.wait_for(migrator.migrate(), timeout=30)
    assert await pg.fetchval("SELECT to_regclass('public.actor')") is None


async def test_a_migration_emptying_search_path_keeps_the_bookkeeping_working(
    pg: PostgresBackend, tmp_path: Path
) -> None:
    directory = write(
        tmp_path / "m",
        {
            "0001_dump.sql": (
                "SELECT pg_catalog.set_config('search_path', '', false);\n"
                "CREATE TABLE public.film (film_id integer PRIMARY KEY);\n"
            ),
            "0002_more.sql": "CREATE TABLE public.actor (actor_id integer PRIMARY KEY);\n",
        },
    )
    result = await Migrator(pg, directory).migrate()
    assert result.applied == ("0001_dump", "0002_more")
    status = await Migrator(pg, directory).status()
    assert [e.state for e in status.entries] == ["applied", "applied"]


def test_an_upper_case_extension_is_an_error_not_silence(tmp_path: Path) -> None:
    directory = write(
        tmp_path / "m",
        {"0001_a.sql": "CREATE TABLE a (id integer);\n", "0002_upper.SQL": "SELECT 1;\n"},
    )
    migrations, errors = load_directory(directory)
    assert [m.id for m in migrations] == ["0001_a"]
    assert errors == ["0002_upper.SQL: name must end in '.sql' (lower case)"]


async def test_a_production_refusal_quotes_the_statement_not_its_comment(
    db: SqlBackend, tmp_path: Path
) -> None:
    directory = write(
        tmp_path / "m",
        {
            "0001_a.sql": "CREATE TABLE a (id integer);\n",
            "0002_drop.sql": "-- the old table goes\n-- (really)\nDROP TABLE a;\n",
        },
    )
    await Migrator(db, directory).migrate(dry_run=True)
    with pytest.raises(DestructiveMigrationError) as info:
        await Migrator(db, directory, environment="production").migrate()
    assert "'DROP TABLE a'" in str(info.value)
    assert "the old table goes" not in str(info.value)


async def test_a_rollback_leaves_a_trail_of_who_undid_what_when(
    db: SqlBackend, tmp_path: Path
) -> None:
    directory = write(
        tmp_path / "m",
        {"0001_a.sql": "CREATE TABLE a (id integer);\n-- down\nDROP TABLE a;\n"},
    )
    await Migrator(db, directory, applied_by="alice").migrate()
    undone = await Migrator(db, directory, applied_by="bob").rollback(0)
    assert undone == ("0001_a",)
    rows = await db.fetch(
        "SELECT version, name, action, by FROM schema_migrations_history "
        "WHERE namespace = 'app' ORDER BY at"
    )
    assert [(r["version"], r["name"], r["action"], r["by"]) for r in rows] == [
        (1, "a", "applied", "alice"),
        (1, "a", "rolled_back", "bob"),
    ]
    assert (await Migrator(db, directory).status()).entries[0].state == "pending"


async def test_a_failing_statement_deep_in_a_large_file_is_named_by_index_and_line(
    db: SqlBackend, tmp_path: Path
) -> None:
    statements = ["CREATE TABLE t (id integer PRIMARY KEY);"]
    statements += [f"INSERT INTO t VALUES ({i});" for i in range(1, 700)]
    statements[450] = "INSERT INTO t VALUES (3);"  # a duplicate key, statement index 450
    directory = write(tmp_path / "m", {"0001_t.sql": "-- seed\n\n" + "\n".join(statements)})
    with pytest.raises(MigrationFailedError) as info:
        await Migrator(db, directory).migrate()
    assert (info.value.index, info.value.line) == (450, 453)
    assert info.value.statement == "INSERT INTO t VALUES (3)"
    # The whole file rolled back: the batches before the failure are gone too.
    assert (
        await db.fetchval(
            "SELECT count(*) FROM sqlite_master WHERE name = 't'"
            if db.dialect == "sqlite"
            else "SELECT count(*) FROM pg_tables WHERE tablename = 't'"
        )
        == 0
    )


# Literals as a migration file spells them; the server decides what each means.
ESCAPE_LITERALS = [
    "E'escaped \\' quote; here'",
    "E'tab\\there; back\\\\slash \\x41\\101 \\u00e9 it''s \\;'",
    "e'line one;\\nline two'",
    "U&'d\\0061t; a'",
    "'plain \\ backslash; ''quoted'''",
]


async def test_escape_strings_are_stored_exactly_as_psql_would_store_them(
    pg: PostgresBackend, tmp_path: Path
) -> None:
    inserts = [
        f"INSERT INTO notes (id, note) VALUES ({i}, {literal});"
        for i, literal in enumerate(ESCAPE_LITERALS)
    ]
    text = "CREATE TABLE notes (id integer PRIMARY KEY, note text);\n" + "\n".join(inserts)
    directory = write(tmp_path / "m", {"0001_notes.sql": text})
    assert (await Migrator(pg, directory).migrate()).applied == ("0001_notes",)
    stored = [
        await pg.fetchval("SELECT note FROM notes WHERE id = $1", i)
        for i in range(len(ESCAPE_LITERALS))
    ]
    # Each literal sent to the server on its own, as psql sends a statement.
    assert stored == [await pg.fetchval(f"SELECT {literal}") for literal in ESCAPE_LITERALS]
    assert stored[0] == "escaped ' quote; here"


async def test_a_failure_after_an_escape_string_is_blamed_on_the_failing_statement(
    pg: PostgresBackend, tmp_path: Path
) -> None:
    text = (
        "CREATE TABLE notes (id integer PRIMARY KEY, note text);\n"
        "INSERT INTO notes (id, note) VALUES (1, E'escaped \\' quote; here');\n"
        "INSERT INTO missing VALUES (1);\n"
    )
    directory = write(tmp_path / "m", {"0001_notes.sql": text})
    with pytest.raises(MigrationFailedError) as info:
        await Migrator(pg, directory).migrate()
    assert (info.value.index, info.value.line) == (2, 3)
    assert info.value.statement == "INSERT INTO missing VALUES (1)"


HOWTO_FUNCTION = (
    "CREATE FUNCTION howto() RETURNS text LANGUAGE sql AS $$ SELECT 'Write migrations like this:\n"
    "-- buttress: no-transaction\n"
    "CREATE INDEX CONCURRENTLY ix ON t (a);' $$;"
)


async def test_a_directive_quoted_in_a_function_body_leaves_the_file_transactional(
    pg: PostgresBackend, tmp_path: Path
) -> None:
    text = f"{HOWTO_FUNCTION}\nCREATE TABLE kept (a integer);\nINSERT INTO missing VALUES (1);\n"
    directory = write(tmp_path / "m", {"0001_howto.sql": text})
    with pytest.raises(MigrationFailedError) as info:
        await Migrator(pg, directory).migrate()
    assert info.value.index == 2
    # One transaction: nothing of the file was kept.
    assert await pg.fetchval("SELECT to_regclass('public.kept')") is None
    assert await pg.fetchval("SELECT to_regprocedure('public.howto()')") is None


@pytest.mark.parametrize("down", ["", "-- down\nDROP FUNCTION one();\n"])
async def test_a_down_comment_inside_a_plpgsql_body_stays_in_the_body(
    pg: PostgresBackend, tmp_path: Path, down: str
) -> None:
    text = (
        "CREATE FUNCTION one() RETURNS integer LANGUAGE plpgsql AS $$\n"
        "BEGIN\n"
        "-- down\n"
        "  RETURN 1;\n"
        "END\n"
        "$$;\n"
    )
    directory = write(tmp_path / "m", {"0001_one.sql": text + down})
    migrator = Migrator(pg, directory)
    assert (await migrator.validate()).ok
    assert (await migrator.migrate()).applied == ("0001_one",)
    assert await pg.fetchval("SELECT one()") == 1
    if down:
        assert await migrator.rollback(0) == ("0001_one",)
        assert await pg.fetchval("SELECT to_regprocedure('public.one()')") is None
