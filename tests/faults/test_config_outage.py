"""Config writes while PostgreSQL goes away mid-write: clear errors, nothing half-written.

Writers keep setting keys (one marked sensitive) through the proxy while it is
slowed, cut, refused and healed. Every acknowledged write must be in the
database afterwards, and each config row must agree with its history.
"""

from __future__ import annotations

import asyncio

import buttress
from buttress.backends import SqlBackend
from buttress.config import ConfigStore
from buttress.errors import ButtressError
from faults.driver import HANG, Load, ScenarioRow
from faults.proxy import FaultProxy
from servers import PostgresServer

KEYS = [f"feature_{n}" for n in range(8)]
SECRET_KEY = "payments_api_token"


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


async def test_config_writes_fail_cleanly_and_atomically(
    postgres_dsn: str,
    proxied_postgres_dsn: str,
    postgres_server: PostgresServer,
    pg_proxy: FaultProxy,
    scenario: ScenarioRow,
) -> None:
    direct = await buttress.connect(postgres_dsn)  # creates buttress's tables
    assert isinstance(direct, SqlBackend)
    backend = await buttress.connect(
        proxied_postgres_dsn, migrate=False, max_size=6, connect_timeout=0.3, connect_attempts=1
    )
    store = ConfigStore(backend)
    acknowledged: dict[tuple[str, int], str] = {}  # (key, version) -> JSON value
    failures: list[BaseException] = []

    async def write(index: int) -> str:
        key = SECRET_KEY if index % 10 == 0 else KEYS[index % len(KEYS)]
        value = f"secret-{index}" if key == SECRET_KEY else index
        try:
            # No deadline of our own: Load counts a write still running after
            # hang_after (plus any time this process was not scheduled) as a HANG.
            entry = await store.set(
                key, value, updated_by="fault-suite", sensitive=key == SECRET_KEY
            )
        except ButtressError as exc:
            failures.append(exc)
            raise
        acknowledged[key, entry.version] = f'"secret-{index}"' if key == SECRET_KEY else str(index)
        return "ok"

    load = Load(write, rate=120, hang_after=3.0)
    load.start()
    try:
        await asyncio.sleep(0.6)
        load.phase = "slow"
        pg_proxy.add_latency(0.05)  # writes are in flight when the cut lands
        await asyncio.sleep(0.3)
        load.phase = "outage"
        pg_proxy.outage()
        await asyncio.sleep(1.0)
        load.phase = "recovered"
        await pg_proxy.heal()
        await asyncio.sleep(1.0)
    finally:
        await load.stop()

    labels = load.labels()
    scenario.requests = load.sent + 1
    scenario.served = labels["ok"] + 1
    scenario.errors.update({k: n for k, n in labels.items() if k != "ok"})

    # Writes after recovery succeed.
    entry = await store.set("after_recovery", {"ok": True})
    assert await store.get("after_recovery") == {"ok": True}
    assert entry.version == 1

    assert labels[HANG] == 0, load.outcomes  # every write answered within hang_after
    outage = load.labels("outage")
    assert outage["ok"] < outage.total(), outage
    assert failures, "no write failed during the outage"
    secrets = (postgres_server.password, proxied_postgres_dsn, postgres_dsn)
    for exc in failures:
        for link in _chain(exc):
            text = str(link) + repr(link)
            assert not any(secret in text for secret in secrets), type(link)
    # Only buttress errors reach the caller (anything else is counted as escaped).
    assert not load.escaped or all(isinstance(e, ButtressError) for e in load.escaped), {
        type(e).__name__ for e in load.escaped
    }

    # Nothing half-written: every row has its history, versions are gapless,
    # and every acknowledged write is recorded.
    rows = await direct.fetch("SELECT key, value, version FROM buttress_config")
    history = await direct.fetch(
        "SELECT key, version, new_value FROM buttress_config_history ORDER BY key, version"
    )
    versions: dict[str, list[int]] = {}
    recorded: dict[tuple[str, int], str] = {}
    for change in history:
        versions.setdefault(change["key"], []).append(change["version"])
        recorded[change["key"], change["version"]] = change["new_value"]
    for row in rows:
        key, version = row["key"], row["version"]
        assert versions[key] == list(range(1, version + 1)), key
        assert recorded[key, version] == row["value"], key
    assert {row["key"] for row in rows} == set(versions)
    lost = [k for k, value in acknowledged.items() if recorded.get(k) != value]
    await backend.close()
    await direct.close()

    scenario.data_lost = len(lost)
    assert lost == []
