"""Migrator against real SQLite files and real PostgreSQL databases."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from buttress import connect
from buttress.backends import SqlBackend, require_sql
from buttress.errors import UnsupportedBackendError, ValidationError
from buttress.migrations import (
    DestructiveMigrationError,
    MigrationFailedError,
    MigrationLockTimeout,
    MigrationValidationError,
    Migrator,
    apply_builtin,
)
from buttress.migrations.builtin import builtin_migrator
from buttress.migrations.files import load_directory
from buttress.migrations.lock import ADVISORY_LOCK_KEY, migration_lock
from buttress.testing import FakeClock


@pytest.fixture
async def db(sql_dsn: str) -> AsyncIterator[SqlBackend]:
    backend = require_sql(await connect(sql_dsn, migrate=False), "tests")
    try:
        yield backend
    finally:
        await backend.close()


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


BASIC = {
    "0001_users.sql": "CREATE TABLE users (id integer PRIMARY KEY, name text);\n"
    "-- down\nDROP TABLE users;\n",
    "0002_orders.sql": "-- depends: 0003_seed\n"
    "CREATE TABLE orders (id integer PRIMARY KEY, user_id integer);\n"
    "-- down\nDROP TABLE orders;\n",
    "0003_seed.sql": "-- depends: 0001\nINSERT INTO users (id, name) VALUES (1, 'a; b');\n"
    "-- down\nDELETE FROM users WHERE id = 1;\n",
}


async def tables(db: SqlBackend) -> set[str]:
    if db.dialect == "sqlite":
        rows = await db.fetch("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {r["name"] for r in rows}
    rows = await db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r["tablename"] for r in rows}


async def test_migrate_applies_in_dependency_order_once(db: SqlBackend, tmp_path: Path) -> None:
    migrator = Migrator(db, write(tmp_path / "m", BASIC), applied_by="tester")
    assert (await migrator.status()).pending == ("0001_users", "0003_seed", "0002_orders")
    result = await migrator.migrate()
    assert result.applied == ("0001_users", "0003_seed", "0002_orders")
    assert await db.fetchval("SELECT name FROM users WHERE id = 1") == "a; b"
    rows = await db.fetch(
        "SELECT namespace, version, checksum_algorithm, success, applied_by "
        "FROM schema_migrations ORDER BY version"
    )
    assert [(r["namespace"], r["version"], bool(r["success"]), r["applied_by"]) for r in rows] == [
        ("app", 1, True, "tester"),
        ("app", 2, True, "tester"),
        ("app", 3, True, "tester"),
    ]
    assert {r["checksum_algorithm"] for r in rows} == {"sha256-normalised-v1"}
    assert (await migrator.migrate()).applied == ()
    status = await migrator.status()
    assert status.pending == ()
    assert status.exit_code == 0
    assert (await migrator.validate()).ok


async def test_dry_run_changes_nothing(db: SqlBackend, tmp_path: Path) -> None:
    migrator = Migrator(db, write(tmp_path / "m", BASIC))
    before = await tables(db)
    result = await migrator.migrate(dry_run=True)
    assert result.dry_run
    assert result.applied == ("0001_users", "0003_seed", "0002_orders")
    assert await tables(db) == before


async def test_tampered_checksum_is_detected_and_blocks(db: SqlBackend, tmp_path: Path) -> None:
    directory = write(tmp_path / "m", BASIC)
    migrator = Migrator(db, directory)
    await migrator.migrate()
    # A re-save with CRLF line ends and trailing spaces is not drift...
    original = (directory / "0001_users.sql").read_text()
    (directory / "0001_users.sql").write_bytes(original.replace("\n", "  \r\n").encode())
    assert (await migrator.validate()).ok
    # ...an edit is.
    (directory / "0001_users.sql").write_text(original.replace("name text", "name varchar"))
    write(directory, {"0004_more.sql": "CREATE TABLE more (id integer);"})
    report = await migrator.validate()
    assert len(report.errors) == 1
    assert "0001_users.sql: changed after it was applied" in report.errors[0]
    assert {e.id: e.state for e in (await migrator.status()).entries}["0001_users"] == "changed"
    with pytest.raises(MigrationValidationError, match="changed after it was applied"):
        await migrator.migrate()
    assert "more" not in await tables(db)
    assert (await migrator.migrate(force=True)).applied == ("0004_more",)


async def test_applied_version_without_file_and_bad_dependencies_all_reported(
    db: SqlBackend, tmp_path: Path
) -> None:
    directory = write(tmp_path / "m", BASIC)
    await Migrator(db, directory).migrate()
    (directory / "0002_orders.sql").unlink()
    write(
        directory,
        {
            "0005_a.sql": "-- depends: 0006\nSELECT 1;",
            "0006_b.sql": "-- depends: 0005\nSELECT 1;",
            "0007_c.sql": "-- depends: 0042_nowhere\nSELECT 1;",
            "7_bad.sql": "SELECT 1;",
        },
    )
    report = await Migrator(db, directory).validate()
    text = "\n".join(report.errors)
    assert "0002_orders: applied on" in text
    assert "dependency cycle" in text
    assert "depends on 0042_nowhere" in text
    assert "7_bad.sql" in text
    assert len(report.errors) == 4


async def test_failing_migration_rolls_back_and_names_file_and_statement(
    db: SqlBackend, tmp_path: Path
) -> None:
    directory = write(
        tmp_path / "m",
        {
            "0001_ok.sql": "CREATE TABLE ok (id integer);",
            "0002_bad.sql": "CREATE TABLE half (id integer);\n"
            "INSERT INTO half VALUES (1);\n"
            "INSERT INTO no_such_table VALUES (1);\n",
            "0003_later.sql": "CREATE TABLE later (id integer);",
        },
    )
    migrator = Migrator(db, directory)
    with pytest.raises(MigrationFailedError) as info:
        await migrator.migrate()
    error = info.value
    assert error.filename == "0002_bad.sql"
    assert error.index == 2
    assert error.line == 3
    assert "no_such_table" in error.statement
    assert "0002_bad.sql: statement 3 (line 3)" in str(error)
    found = await tables(db)
    assert "ok" in found
    assert "half" not in found
    assert "later" not in found
    status = await migrator.status()
    assert status.applied == ("0001_ok",)
    assert status.pending == ("0002_bad", "0003_later")


async def test_concurrent_migrators_apply_each_migration_exactly_once(
    sql_dsn: str, tmp_path: Path
) -> None:
    files = {"0001_hits.sql": "CREATE TABLE hits (migration text NOT NULL);"}
    for n in range(2, 8):
        files[f"{n:04d}_hit.sql"] = f"INSERT INTO hits VALUES ('{n:04d}');"
    directory = write(tmp_path / "m", files)
    backends = [require_sql(await connect(sql_dsn, migrate=False), "tests") for _ in range(3)]
    try:
        results = await asyncio.gather(*(Migrator(b, directory).migrate() for b in backends))
        applied = [m for r in results for m in r.applied]
        assert sorted(applied) == sorted(f.removesuffix(".sql") for f in files)
        rows = await backends[0].fetch("SELECT migration FROM hits ORDER BY migration")
        assert [r["migration"] for r in rows] == [f"{n:04d}" for n in range(2, 8)]
    finally:
        for backend in backends:
            await backend.close()


async def test_lock_timeout_names_the_holder(db: SqlBackend, tmp_path: Path) -> None:
    migrator = Migrator(db, write(tmp_path / "m", BASIC), lock_timeout=5, clock=FakeClock())
    async with db.connection() as conn:
        if db.dialect == "postgresql":
            assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", ADVISORY_LOCK_KEY)
            holder = "backend pid"
        else:
            holder = "SQLite's write lock"
        async with migration_lock(db, conn) if db.dialect == "sqlite" else _nothing():
            with pytest.raises(MigrationLockTimeout) as info:
                await migrator.migrate()
        if db.dialect == "postgresql":
            await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)
    assert holder in info.value.holder
    assert "gave up after 5s" in str(info.value)
    assert (await migrator.migrate()).applied


class _nothing:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


DESTRUCTIVE = {
    "0001_t.sql": "CREATE TABLE t (id integer, note text);",
    "0002_drop.sql": "ALTER TABLE t DROP COLUMN note;",
}


async def test_production_refuses_destructive_without_opt_in(
    db: SqlBackend, tmp_path: Path
) -> None:
    directory = write(tmp_path / "m", DESTRUCTIVE)
    production = Migrator(db, directory, environment="production")
    report = await production.validate()
    assert any("0002_drop.sql" in e and "ALTER" in e for e in report.errors)
    for force in (False, True):
        with pytest.raises(DestructiveMigrationError, match=r"0002_drop\.sql"):
            await production.migrate(force=force)
    assert "t" not in await tables(db)
    assert (await Migrator(db, directory, environment="staging").validate()).ok
    write(
        directory,
        {"0002_drop.sql": "-- buttress: allow-destructive\n" + DESTRUCTIVE["0002_drop.sql"]},
    )
    assert (await production.migrate()).applied == ("0001_t", "0002_drop")


async def test_rollback_runs_down_sections_newest_first(db: SqlBackend, tmp_path: Path) -> None:
    directory = write(tmp_path / "m", BASIC)
    migrator = Migrator(db, directory)
    await migrator.migrate()
    assert await migrator.rollback(1) == ("0002_orders", "0003_seed")
    assert "orders" not in await tables(db)
    assert await db.fetchval("SELECT count(*) FROM users") == 0
    assert (await migrator.status()).pending == ("0003_seed", "0002_orders")
    write(directory, {"0004_nodown.sql": "CREATE TABLE nd (id integer);"})
    await migrator.migrate()
    with pytest.raises(MigrationValidationError, match=r"0004_nodown\.sql: has no '-- down'"):
        await migrator.rollback(0)
    assert "users" in await tables(db)


async def test_legacy_tracking_table_detected_and_baseline_adopts(
    db: SqlBackend, tmp_path: Path
) -> None:
    await db.execute("CREATE TABLE schema_migrations (version varchar(255) PRIMARY KEY)")
    await db.execute("INSERT INTO schema_migrations VALUES ('20200101000000')")
    await db.execute("CREATE TABLE alembic_version (version_num varchar(32))")
    await db.execute("CREATE TABLE users (id integer PRIMARY KEY, name text)")
    migrator = Migrator(db, write(tmp_path / "m", BASIC))
    report = await migrator.validate()
    assert any("another tool's shape" in e and "baseline" in e for e in report.errors)
    assert any("alembic_version" in w for w in report.warnings)
    with pytest.raises(MigrationValidationError):
        await migrator.migrate(force=True)
    assert await migrator.baseline(version=1) == ("0001_users",)
    assert "schema_migrations_legacy" in await tables(db)
    assert await db.fetchval("SELECT version FROM schema_migrations_legacy") == "20200101000000"
    status = await migrator.status()
    assert status.applied == ("0001_users",)
    assert "schema_migrations" not in status.legacy_tables
    assert (await migrator.migrate()).applied == ("0003_seed", "0002_orders")


async def test_namespaces_do_not_collide_and_builtin_migrations_apply(
    db: SqlBackend, tmp_path: Path
) -> None:
    directory = write(tmp_path / "m", {"0001_init.sql": "CREATE TABLE app_things (id integer);"})
    packaged, problems = load_directory(builtin_migrator(db).directory)
    assert problems == []
    first = await apply_builtin(db)
    # Every packaged file, in order; later modules add theirs after these.
    assert first.applied == tuple(m.id for m in packaged)
    assert first.applied[:4] == ("0001_init", "0002_config", "0003_flags", "0004_deployments")
    assert (await apply_builtin(db)).applied == ()
    assert (
        await db.fetchval("SELECT value FROM buttress_meta WHERE key = 'created_by'") == "buttress"
    )
    assert (await Migrator(db, directory).migrate()).applied == ("0001_init",)
    rows = await db.fetch(
        "SELECT namespace, version FROM schema_migrations ORDER BY namespace, version"
    )
    assert [(r["namespace"], r["version"]) for r in rows] == [("app", 1)] + [
        ("buttress", m.version) for m in packaged
    ]


@pytest.mark.postgres
async def test_no_transaction_file_runs_concurrent_index(postgres_dsn: str, tmp_path: Path) -> None:
    directory = write(
        tmp_path / "m",
        {
            "0001_t.sql": "CREATE TABLE t (id integer);",
            "0002_ix.sql": "-- buttress: no-transaction\nCREATE INDEX CONCURRENTLY t_ix ON t (id);",
        },
    )
    async with connect(postgres_dsn, migrate=False) as raw:
        db = require_sql(raw, "tests")
        assert (await Migrator(db, directory).migrate()).applied == ("0001_t", "0002_ix")
        assert await db.fetchval("SELECT count(*) FROM pg_indexes WHERE indexname = 't_ix'") == 1


async def test_memory_backend_is_refused_and_has_no_builtin_work(tmp_path: Path) -> None:
    async with connect("memory://") as memory:
        with pytest.raises(UnsupportedBackendError, match="Migrator"):
            Migrator(memory, tmp_path)
        assert (await apply_builtin(memory)).applied == ()


@pytest.mark.parametrize("bad", [-1, float("nan"), "5", True])
async def test_bad_lock_timeout_is_refused(sqlite_dsn: str, tmp_path: Path, bad: object) -> None:
    async with connect(sqlite_dsn, migrate=False) as backend:
        with pytest.raises(ValidationError, match="lock_timeout"):
            Migrator(backend, tmp_path, lock_timeout=bad)  # type: ignore[arg-type]


_HOLD_LOCK = """
import asyncio, sys
from buttress import connect
from buttress.backends import require_sql
from buttress.migrations.builtin import builtin_migrator
from buttress.migrations.files import load_directory
from buttress.migrations.lock import migration_lock

async def main():
    async with connect(sys.argv[1], migrate=False) as raw:
        db = require_sql(raw, "holder")
        async with db.connection() as conn, migration_lock(db, conn):
            print("locked", flush=True)
            await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_a_killed_migrator_leaves_no_stale_lock(sql_dsn: str, tmp_path: Path) -> None:
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _HOLD_LOCK, sql_dsn, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert holder.stdout is not None
        assert await asyncio.wait_for(holder.stdout.readline(), 30) == b"locked\n"
        async with connect(sql_dsn, migrate=False) as raw:
            migrator = Migrator(
                require_sql(raw, "tests"),
                write(tmp_path / "m", BASIC),
                lock_timeout=1,
                clock=FakeClock(),
            )
            with pytest.raises(MigrationLockTimeout):
                await migrator.migrate()
            holder.kill()  # SIGKILL: no cleanup code runs in the holder
            await holder.wait()
            # The OS (SQLite) or the server ending the session (PostgreSQL) freed it.
            migrator = Migrator(require_sql(raw, "tests"), tmp_path / "m", lock_timeout=30)
            assert len((await migrator.migrate()).applied) == 3
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()


async def test_failed_no_transaction_file_is_recorded_and_rerun(
    db: SqlBackend, tmp_path: Path
) -> None:
    directory = write(tmp_path / "m", {
        "0001_nt.sql": "-- buttress: no-transaction\nCREATE TABLE a (id integer);\n"
                       "INSERT INTO nope VALUES (1);",
    })  # fmt: skip
    migrator = Migrator(db, directory)
    with pytest.raises(MigrationFailedError, match="statement 2"):
        await migrator.migrate()
    assert "a" in await tables(db)  # outside a transaction, statement 1 stays
    status = await migrator.status()
    assert [(e.id, e.state) for e in status.entries] == [("0001_nt", "failed")]
    assert any("failed part-way" in w for w in status.report.warnings)
    write(directory, {
        "0001_nt.sql": "-- buttress: no-transaction\nCREATE TABLE IF NOT EXISTS a (id integer);\n"
                       "CREATE TABLE b (id integer);",
    })  # fmt: skip
    assert (await migrator.migrate()).applied == ("0001_nt",)
    assert (await migrator.status()).entries[0].state == "applied"
