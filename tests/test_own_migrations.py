"""buttress's own tables for config, flags and deployments come from its packaged
migrations (0002-0004); the stores only check them and say how to fix a gap."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.resources
import json
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from buttress import connect
from buttress.backends import OWN_TABLES, MissingTableError, SqlBackend, require_sql
from buttress.config import ConfigStore
from buttress.deploy import DeploymentLog
from buttress.errors import BackendError
from buttress.flags import FeatureFlags, Flag
from buttress.migrations import Migrator, apply_builtin
from buttress.migrations.files import Migration, load_directory
from buttress.migrations.sqltext import split_statements

BUILTIN = Path(str(importlib.resources.files("buttress.migrations") / "builtin"))
OURS = ("0002_config", "0003_flags", "0004_deployments")
DEPENDS = {"0002_config": (), "0003_flags": ("0002_config",), "0004_deployments": ("0002_config",)}


@pytest.fixture
async def raw(sql_dsn: str) -> AsyncIterator[SqlBackend]:
    """A SQL backend opened with ``migrate=False``: none of buttress's tables exist."""
    async with connect(sql_dsn, migrate=False) as backend:
        yield require_sql(backend, "tests")


def migrator_over(db: SqlBackend, tmp_path: Path, ids: tuple[str, ...]) -> Migrator:
    """A migrator over copies of some packaged files (namespace ``buttress``)."""
    directory = tmp_path / "subset"
    directory.mkdir()
    for name in ids:
        shutil.copy(BUILTIN / db.dialect / f"{name}.sql", directory)
    return Migrator(db, directory, namespace="buttress")


# -- the packaged files ----------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_packaged_files_parse_with_dependencies_and_down_parts(dialect: str) -> None:
    migrations, problems = load_directory(BUILTIN / dialect)
    assert problems == []
    by_id = {m.id: m for m in migrations}
    for name in OURS:
        migration = by_id[name]
        assert migration.depends == DEPENDS[name]
        assert migration.down is not None
        assert not migration.no_transaction
    # Every table the stores check is created by the migration the error names;
    # a name ending in "()" is a PostgreSQL function (SQLite has none).
    for table, name in OWN_TABLES.items():
        if name not in by_id:  # the shared breaker's state is PostgreSQL-only
            assert (dialect, name) == ("sqlite", "0007_breaker_state")
            continue
        up = by_id[name].up
        if table.endswith("()"):
            if dialect == "postgresql":
                assert f"CREATE OR REPLACE FUNCTION {table[:-1]}" in up
        else:
            assert re.search(rf"CREATE (UNLOGGED )?TABLE IF NOT EXISTS {table} \(", up)


# What each packaged file parses to (up and down text, their statements,
# dependencies, flags, category), as sha256 prefixes: a change to the parser or
# the lexer must leave every one of them exactly as it is (files added later
# are not pinned here).
PARSED_DIGESTS = {
    "postgresql/0001_init": "51d6cbbd54c24907",
    "postgresql/0002_config": "98a30a4891b3067f",
    "postgresql/0003_flags": "dc96ad012d3674cb",
    "postgresql/0004_deployments": "5086a639a4c71721",
    "postgresql/0005_health_history": "853cf951a8e3939f",
    "postgresql/0006_rate_limits": "0ab058c594d79672",
    "postgresql/0007_breaker_state": "fbcd7b78d75f66f8",
    "postgresql/0008_system_health": "84644e0d328cdf30",
    "postgresql/0009_integrity_backup": "b5d6fe906acc914e",
    "postgresql/0010_rate_limit_single_key": "282e37dddebe267b",
    "postgresql/0011_system_health_roles": "a4976525bddf5e17",
    "sqlite/0001_init": "6e4eb041ee26043d",
    "sqlite/0002_config": "5c612ab7343f2def",
    "sqlite/0003_flags": "3e77cff6952eb94c",
    "sqlite/0004_deployments": "595f3e2054e0e51e",
    "sqlite/0005_health_history": "91f807feac8bdbf3",
    "sqlite/0006_rate_limits": "e908eff852a3d19d",
    "sqlite/0008_system_health": "16ee004938749bc7",
    "sqlite/0009_integrity_backup": "66bdaa7675757e85",
    "sqlite/0010_rate_limit_single_key": "205655ed671cced6",
}


def _parsed_digest(migration: Migration) -> str:
    parsed = {
        "up": migration.up,
        "down": migration.down,
        "depends": migration.depends,
        "flags": [migration.no_transaction, migration.allow_destructive],
        "category": migration.category,
        "up_statements": split_statements(migration.up),
        "down_statements": split_statements(migration.down or ""),
    }
    return hashlib.sha256(json.dumps(parsed).encode()).hexdigest()[:16]


def test_packaged_files_parse_exactly_as_pinned() -> None:
    found = {}
    for dialect in ("postgresql", "sqlite"):
        migrations, problems = load_directory(BUILTIN / dialect)
        assert problems == []
        found.update({f"{dialect}/{m.id}": _parsed_digest(m) for m in migrations})
    assert {name: found.get(name) for name in PARSED_DIGESTS} == PARSED_DIGESTS


def test_both_dialects_ship_the_same_versions() -> None:
    sqlite, _ = load_directory(BUILTIN / "sqlite")
    postgresql, _ = load_directory(BUILTIN / "postgresql")
    assert {m.id for m in sqlite if m.id in OURS} == set(OURS)
    assert {m.id for m in postgresql if m.id in OURS} == set(OURS)


# -- migrate=False: a clear error, not a driver error -------------------------------------


async def test_config_store_names_its_missing_tables_and_the_fix(raw: SqlBackend) -> None:
    with pytest.raises(MissingTableError) as caught:
        await ConfigStore(raw).get("feature.limit")
    error = caught.value
    assert isinstance(error, BackendError)
    assert error.component == "ConfigStore"
    assert error.tables == (
        "buttress_config",
        "buttress_config_history",
        "buttress_change_counters",
    )
    assert error.migrations == ("0002_config",)
    message = str(error)
    assert "buttress_config" in message
    assert "buttress migrate" in message
    assert "migrate=True" in message


async def test_flags_and_deployments_name_their_tables(raw: SqlBackend) -> None:
    with pytest.raises(MissingTableError, match="FeatureFlags: tables buttress_flags") as flags:
        await FeatureFlags(raw).upsert(Flag("new-checkout", "New checkout", enabled=True))
    assert flags.value.migrations == ("0002_config", "0003_flags")
    with pytest.raises(MissingTableError, match="DeploymentLog: tables buttress_deployments"):
        await DeploymentLog(raw).record("1.0", "production")
    with pytest.raises(MissingTableError, match="run `buttress migrate`"):
        await DeploymentLog(raw).history("production")


async def test_a_partial_migration_names_only_what_is_missing(
    raw: SqlBackend, tmp_path: Path
) -> None:
    await migrator_over(raw, tmp_path, ("0001_init", "0002_config")).migrate()
    config = ConfigStore(raw)
    await config.set("limit", 5)
    assert await config.get("limit") == 5
    with pytest.raises(MissingTableError) as caught:
        await FeatureFlags(raw).get("new-checkout")
    assert caught.value.tables == ("buttress_flags", "buttress_flag_history")
    assert "table" in str(caught.value)
    assert "0003_flags" in str(caught.value)
    assert "0002_config" not in str(caught.value)
    with pytest.raises(MissingTableError, match="table buttress_deployments is missing"):
        await DeploymentLog(raw).history()


async def test_the_same_store_works_once_migrations_are_applied(raw: SqlBackend) -> None:
    config, flags, log = ConfigStore(raw), FeatureFlags(raw), DeploymentLog(raw)
    with pytest.raises(MissingTableError):
        await config.get("limit")
    await apply_builtin(raw)
    await config.set("limit", 7)
    assert await config.get("limit") == 7
    await flags.upsert(Flag("new-checkout", "New checkout", enabled=True))
    assert (await flags.get("new-checkout")) is not None
    deployed = await log.record("1.0", "production")
    assert await log.get(deployed.id) == deployed
    assert await ConfigStore(raw, environment="production").get("app_version") == "1.0"


# -- the layout, adoption of first-use tables, rollback -----------------------------------


async def columns(db: SqlBackend, table: str) -> list[tuple[str, str, bool]]:
    if db.dialect == "sqlite":
        rows = await db.fetch(f"PRAGMA table_info({table})")
        return [(r["name"], str(r["type"]).upper(), bool(r["notnull"])) for r in rows]
    rows = await db.fetch(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_name = $1 AND table_schema = current_schema() ORDER BY ordinal_position",
        table,
    )
    return [(r["column_name"], str(r["data_type"]).upper(), r["is_nullable"] == "NO") for r in rows]


async def test_tables_have_the_layout_the_stores_read_and_write(raw: SqlBackend) -> None:
    await apply_builtin(raw)
    pg = raw.dialect == "postgresql"
    time = "TIMESTAMP WITH TIME ZONE" if pg else "TEXT"
    flag = "BOOLEAN" if pg else "INTEGER"
    big = "BIGINT" if pg else "INTEGER"
    assert await columns(raw, "buttress_config") == [
        ("key", "TEXT", True),
        ("environment", "TEXT", True),
        ("value", "TEXT", True),
        ("sensitive", flag, True),
        ("description", "TEXT", False),
        ("updated_at", time, True),
        ("updated_by", "TEXT", False),
        ("version", "INTEGER", True),
    ]
    assert [c[0] for c in await columns(raw, "buttress_config_history")] == [
        "key", "environment", "version", "action", "changed_at", "changed_by", "reason",
        "old_value", "new_value", "sensitive",
    ]  # fmt: skip
    assert await columns(raw, "buttress_change_counters") == [
        ("name", "TEXT", pg),  # SQLite lets a TEXT primary key be NULL: as first-use DDL had it
        ("value", big, True),
    ]
    assert [c[0] for c in await columns(raw, "buttress_flags")] == [
        "key", "data", "version", "updated_at", "updated_by",
    ]  # fmt: skip
    assert [c[0] for c in await columns(raw, "buttress_flag_history")] == [
        "key", "version", "action", "changed_at", "changed_by", "reason", "old_data", "new_data",
    ]  # fmt: skip
    deployments = await columns(raw, "buttress_deployments")
    assert [c[0] for c in deployments][:4] == ["id", "version", "environment", "deployed_at"]
    assert ("is_rollback", flag, True) in deployments
    assert ("restored_by", "BIGINT", False) in deployments
    counters = await raw.fetch("SELECT name, value FROM buttress_change_counters ORDER BY name")
    assert [(r["name"], r["value"]) for r in counters] == [("config", 0), ("flags", 0)]


# The DDL buttress ran on first use before these migrations existed:
# upgrading must adopt the tables and keep their rows.
_FIRST_USE = """
CREATE TABLE buttress_config (key TEXT NOT NULL, environment TEXT NOT NULL,
    value TEXT NOT NULL, sensitive {b} NOT NULL, description TEXT,
    updated_at {t} NOT NULL, updated_by TEXT, version INTEGER NOT NULL,
    PRIMARY KEY (key, environment));
CREATE TABLE buttress_config_history (key TEXT NOT NULL, environment TEXT NOT NULL,
    version INTEGER NOT NULL, action TEXT NOT NULL, changed_at {t} NOT NULL,
    changed_by TEXT, reason TEXT, old_value TEXT, new_value TEXT,
    sensitive {b} NOT NULL, PRIMARY KEY (key, environment, version));
CREATE TABLE buttress_change_counters (name TEXT PRIMARY KEY, value {n} NOT NULL);
INSERT INTO buttress_change_counters (name, value) VALUES ('config', 41);
INSERT INTO buttress_config VALUES ('limit', 'all', '3', {false}, NULL,
    '2026-01-01T00:00:00+00:00', 'ops', 1);
"""


async def test_tables_created_on_first_use_by_older_buttress_are_adopted(sql_dsn: str) -> None:
    async with connect(sql_dsn, migrate=False) as backend:
        db = require_sql(backend, "tests")
        pg = db.dialect == "postgresql"
        await db.execute_script(
            _FIRST_USE.format(
                t="TIMESTAMPTZ" if pg else "TEXT",
                b="BOOLEAN" if pg else "INTEGER",
                n="BIGINT" if pg else "INTEGER",
                false="false" if pg else "0",
            )
        )
    async with connect(sql_dsn) as backend:  # applies 0001-0004 (and later ones)
        db = require_sql(backend, "tests")
        config = ConfigStore(db)
        assert await config.get("limit") == 3
        await config.set("limit", 4)
        assert await config.get("limit") == 4
        counters = await db.fetch("SELECT name, value FROM buttress_change_counters ORDER BY name")
        assert [(r["name"], r["value"]) for r in counters] == [("config", 42), ("flags", 0)]


async def test_down_parts_undo_the_tables_and_migrate_again(
    raw: SqlBackend, tmp_path: Path
) -> None:
    migrator = migrator_over(raw, tmp_path, ("0001_init", *OURS))
    assert (await migrator.migrate()).applied == ("0001_init", *OURS)
    await DeploymentLog(raw).record("1.0", "production")
    undone = await migrator.rollback(1)
    assert set(undone) == set(OURS)
    assert undone[-1] == "0002_config"  # dependants first
    with pytest.raises(MissingTableError) as caught:
        await ConfigStore(raw).get("limit")
    assert len(caught.value.tables) == 3
    assert (await migrator.migrate()).applied == OURS
    assert await DeploymentLog(raw).history() == []


@pytest.mark.postgres
async def test_concurrent_first_connects_create_the_tables_once(postgres_dsn: str) -> None:
    # What the deployment store's lock-and-retry used to guard against: several
    # processes starting at once on an empty database. The migrator's lock does it now.
    async def start(n: int) -> int:
        async with connect(postgres_dsn) as backend:
            deployed = await DeploymentLog(backend).record(f"1.{n}", "production")
            return deployed.id

    ids = await asyncio.gather(*(start(n) for n in range(4)))
    assert len(set(ids)) == 4
    async with connect(postgres_dsn, migrate=False) as backend:
        db = require_sql(backend, "tests")
        recorded = await db.fetchval(
            "SELECT count(*) FROM schema_migrations WHERE namespace = 'buttress' AND version = 4"
        )
        assert recorded == 1
