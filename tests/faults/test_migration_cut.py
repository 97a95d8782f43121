"""A migration whose connection is cut mid-way leaves the database as before, lock released.

The second migration file sleeps on the server between two schema changes; the
proxy cuts the migrator's connection while it sleeps. A second ``migrate()``
afterwards must find the old state, take the lock and apply the file whole.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import buttress
from buttress.errors import ButtressError
from buttress.migrations import Migrator
from buttress.migrations.lock import ADVISORY_LOCK_KEY
from faults.driver import ScenarioRow
from faults.proxy import FaultProxy

FIRST = "CREATE TABLE accounts (id INTEGER PRIMARY KEY);\nINSERT INTO accounts VALUES (1), (2);\n"
SECOND = (
    "ALTER TABLE accounts ADD COLUMN region TEXT;\n"
    "UPDATE accounts SET region = 'eu';\n"
    "SELECT pg_sleep(1.5);\n"
    "CREATE INDEX accounts_region ON accounts (region);\n"
)


async def _columns(backend: buttress.backends.SqlBackend) -> list[str]:
    rows = await backend.fetch(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_name = 'accounts' ORDER BY ordinal_position"
    )
    return [row["column_name"] for row in rows]


async def _lock_holders(backend: buttress.backends.SqlBackend) -> int:
    count: int = await backend.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = $1",
        ADVISORY_LOCK_KEY,
    )
    return count


async def test_cut_migration_rolls_back_and_releases_the_lock(
    postgres_dsn: str,
    proxied_postgres_dsn: str,
    pg_proxy: FaultProxy,
    scenario: ScenarioRow,
    tmp_path: Path,
) -> None:
    direct = await buttress.connect(postgres_dsn, migrate=False)
    assert isinstance(direct, buttress.backends.SqlBackend)
    backend = await buttress.connect(proxied_postgres_dsn, migrate=False, connect_attempts=1)
    (tmp_path / "0001_accounts.sql").write_text(FIRST)
    assert (await Migrator(backend, tmp_path).migrate()).applied == ("0001_accounts",)
    before = await _columns(direct)
    (tmp_path / "0002_regions.sql").write_text(SECOND)

    migrating = asyncio.ensure_future(Migrator(backend, tmp_path, lock_timeout=5).migrate())
    for _ in range(100):  # until the server is inside the sleep
        busy = await direct.fetchval(
            # Statements go in batches: the sleep may be anywhere in the query text.
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE query LIKE '%SELECT pg_sleep(1.5)%' AND pid <> pg_backend_pid()"
        )
        if busy:
            break
        await asyncio.sleep(0.02)
    assert busy, "the migration never reached its sleep"
    cut = pg_proxy.cut()
    assert cut >= 1
    with pytest.raises(ButtressError) as failure:
        await asyncio.wait_for(migrating, 5.0)
    scenario.requests, scenario.errors[type(failure.value).__name__] = 2, 1

    # The server notices the dead client when the sleep ends and rolls back.
    for _ in range(100):
        if not await _lock_holders(direct):
            break
        await asyncio.sleep(0.05)
    assert await _lock_holders(direct) == 0
    assert await _columns(direct) == before == ["id"]
    versions = await direct.fetch(
        "SELECT version, success FROM schema_migrations WHERE namespace = 'app' ORDER BY version"
    )
    assert [(row["version"], row["success"]) for row in versions] == [(1, True)]

    # The lock is free and the file applies whole on the next run.
    result = await Migrator(backend, tmp_path, lock_timeout=5).migrate()
    assert result.applied == ("0002_regions",)
    assert await _columns(direct) == ["id", "region"]
    assert await direct.fetchval("SELECT count(*) FROM accounts WHERE region = 'eu'") == 2
    scenario.served = 1
    scenario.data_lost = 2 - await direct.fetchval("SELECT count(*) FROM accounts")
    await backend.close()
    await direct.close()
