"""``FeatureFlags.on_stale_change``: told when ``stale`` turns on or off, once per flip."""

from __future__ import annotations

import asyncio

import pytest

from buttress.errors import BackendUnavailableError
from buttress.flags import FeatureFlags, Flag, MemoryFlagStore
from buttress.testing import FakeClock


class SwitchableStore(MemoryFlagStore):
    """A memory store whose reads fail while ``down``, as an unreachable database."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def load(self) -> tuple[dict[str, Flag], int]:
        if self.down:
            raise BackendUnavailableError("flag store is down (test switch)")
        return await super().load()

    async def change_token(self) -> int:
        if self.down:
            raise BackendUnavailableError("flag store is down (test switch)")
        return await super().change_token()


async def test_stale_flips_are_reported_once_each() -> None:
    store = SwitchableStore()
    flags = FeatureFlags(store, clock=FakeClock(), refresh_interval=None)
    await flags.upsert(Flag("a", "A", enabled=True))
    await flags.start()
    seen: list[tuple[bool, bool]] = []
    unsubscribe = flags.on_stale_change(lambda stale: seen.append((stale, flags.stale)))

    await flags.refresh()  # healthy and healthy again: no flip
    store.down = True
    for _ in range(3):
        with pytest.raises(BackendUnavailableError):
            await flags.refresh()
    store.down = False
    await flags.refresh()
    # The callback runs once the new state is in force.
    assert seen == [(True, True), (False, False)]

    unsubscribe()
    store.down = True
    with pytest.raises(BackendUnavailableError):
        await flags.refresh()
    assert seen == [(True, True), (False, False)]
    assert flags.stale


class PollingStore(SwitchableStore):
    """Without push, so ``FeatureFlags`` polls ``change_token`` every ``refresh_interval``."""

    @property
    def pushes(self) -> bool:
        return False

    @property
    def listens(self) -> bool:
        return False


async def _spin() -> None:
    # FakeClock.sleep yields once, so the poller runs one round per few loop turns.
    for _ in range(20):
        await asyncio.sleep(0)


async def test_poller_flips_stale_once_and_a_failing_listener_is_ignored() -> None:
    store = PollingStore()
    flags = FeatureFlags(store, clock=FakeClock(), refresh_interval=1.0)
    seen: list[bool] = []

    def explode(_stale: bool) -> None:
        raise RuntimeError("listener bug")

    flags.on_stale_change(explode)
    flags.on_stale_change(seen.append)
    await flags.start()
    store.down = True
    await _spin()  # many failed polls
    assert seen == [True]
    store.down = False
    await _spin()
    assert seen == [True, False]
    await flags.stop()
