"""Flags keep evaluating from the last snapshot through a PostgreSQL outage, then catch up.

A reader instance goes through the proxy; a writer instance (another "pod")
talks to the database directly and keeps changing flags during the outage.
"""

from __future__ import annotations

import asyncio
import time

import buttress
from buttress.flags import FeatureFlags, Flag, FlagContext
from faults.driver import Load, ScenarioRow
from faults.proxy import FaultProxy

KEYS = [f"checkout-v{n}" for n in range(6)]
USERS = [FlagContext(user_id=f"user-{n}", role="staff" if n % 3 == 0 else None) for n in range(20)]


async def _until(predicate: object, seconds: float) -> bool:
    assert callable(predicate)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return bool(predicate())


async def test_flags_serve_last_snapshot_and_catch_up(
    postgres_dsn: str, proxied_postgres_dsn: str, pg_proxy: FaultProxy, scenario: ScenarioRow
) -> None:
    direct = await buttress.connect(postgres_dsn)
    backend = await buttress.connect(
        proxied_postgres_dsn, migrate=False, max_size=4, connect_timeout=0.3, connect_attempts=1
    )
    writer = FeatureFlags(direct, refresh_interval=None)
    reader = FeatureFlags(backend, refresh_interval=0.2)
    for n, key in enumerate(KEYS):
        await writer.upsert(Flag(key, key, enabled=n % 2 == 0, percentage=30 if n == 5 else 0))
    await reader.start()
    assert await _until(lambda: set(reader.snapshot) == set(KEYS), 3.0)
    changed: set[str] = set()
    reader.on_change(changed.update)

    def answers() -> dict[tuple[str, str | None], bool]:
        return {(k, c.user_id): reader.is_enabled(k, c) for k in KEYS for c in USERS}

    before = answers()
    seen_stale = False

    async def evaluate(index: int) -> str:
        nonlocal seen_stale
        context = USERS[index % len(USERS)]
        for key in KEYS:
            value = reader.is_enabled(key, context)
            if load.phase == "outage":
                seen_stale = seen_stale or reader.stale
                if value != before[key, context.user_id]:
                    return "changed during outage"
        return "ok"

    load = Load(evaluate, rate=300, hang_after=1.0)
    load.start()
    try:
        await asyncio.sleep(0.5)
        load.phase = "outage"
        pg_proxy.outage()
        # Changes made elsewhere while this instance cannot see the database.
        for n, key in enumerate(KEYS):
            await writer.update(key, enabled=n % 2 == 1)
            await asyncio.sleep(0.1)
        await writer.update(KEYS[5], percentage=80, roles=("staff",))
        await writer.delete(KEYS[4])
        await asyncio.sleep(0.5)
        outage_snapshot = dict(reader.snapshot)
        load.phase = "recovered"
        await pg_proxy.heal()
        await writer.upsert(Flag("late-change", "late", enabled=True))  # right at recovery
        expected = {flag.key: flag for flag in await writer.list()}
        caught_up = await _until(lambda: dict(reader.snapshot) == expected, 4.0)
    finally:
        await load.stop()
        await reader.stop()
    await backend.close()
    await direct.close()

    labels = load.labels()
    scenario.requests = load.sent
    scenario.served = labels["ok"]
    scenario.errors.update({k: n for k, n in labels.items() if k != "ok"})

    # During the outage: the old snapshot, unchanged, and evaluation never raised.
    assert set(outage_snapshot) == set(KEYS)
    assert load.count(phase="outage") > 0
    assert labels["ok"] == load.sent, labels
    assert load.escaped == []
    assert seen_stale
    # After it: every change made meanwhile, including the deletion and the late one.
    assert caught_up, (sorted(reader.snapshot), sorted(expected))
    assert not reader.stale
    assert changed >= {*KEYS, "late-change"}
    for key in KEYS:
        if key in expected:
            assert reader.is_enabled(key) is expected[key].enabled or key == KEYS[5]
    scenario.data_lost = len(set(expected) ^ set(reader.snapshot))
