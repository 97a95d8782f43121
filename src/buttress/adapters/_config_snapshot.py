"""A ``ConfigStore`` view in memory, shaped like ``FeatureFlags``, for synchronous lookups.

``ConfigSnapshot`` offers what ``ButtressProvider`` follows in both components
(``snapshot``, ``stale``, ``on_change``, ``on_stale_change``) and ``ConfigStore``
does not export yet: it loads the view with ``list()`` and reloads it every
``interval``. Once ``ConfigStore`` has these itself, this module goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TypeVar

from structlog.typing import FilteringBoundLogger

from buttress._context import cancel_and_wait
from buttress.clock import Clock
from buttress.config import ConfigEntry, ConfigStore
from buttress.log import get_logger

__all__ = ["ConfigSnapshot"]

T = TypeVar("T")


def _fingerprint(entry: ConfigEntry | None) -> str:
    # Python's == says 1 == 1.0 == True; a change between those is still a change.
    if entry is None:
        return "<absent>"
    if entry.sensitive:
        return "<sensitive>"
    return json.dumps(entry.value, sort_keys=True)


class ConfigSnapshot:
    """``config``'s entries by key as its environment resolves them (sensitive ones
    masked by ``ConfigStore.list``), reloaded by ``refresh()`` and every ``interval``.

    ``loaded`` turns True at the first reload; ``stale`` is True while the last
    reload failed and older entries are serving. Only this class sets them.
    """

    def __init__(self, config: ConfigStore, *, clock: Clock, interval: float | None) -> None:
        self._config = config
        self._clock = clock
        self._interval = interval
        self._entries: dict[str, ConfigEntry] = {}
        self.loaded = False
        self.stale = False
        self._listeners: list[Callable[[frozenset[str]], None]] = []
        self._stale_listeners: list[Callable[[bool], None]] = []
        self._poller: asyncio.Task[None] | None = None
        self._log = get_logger("openfeature", environment=config.environment)

    @property
    def snapshot(self) -> Mapping[str, ConfigEntry]:
        """The entries in force: a read-only view, swapped whole by each reload."""
        return MappingProxyType(self._entries)

    def on_change(self, callback: Callable[[frozenset[str]], None]) -> Callable[[], None]:
        """Call ``callback(keys)`` after a reload changed entries; returns an unsubscribe."""
        return _follow(self._listeners, callback)

    def on_stale_change(self, callback: Callable[[bool], None]) -> Callable[[], None]:
        """Call ``callback(stale)`` each time ``stale`` flips; returns an unsubscribe."""
        return _follow(self._stale_listeners, callback)

    async def refresh(self) -> list[str]:
        """Reload now; the sorted keys whose value changed (none at the first load).

        On failure the entries loaded before keep serving, marked stale.
        """
        try:
            listed = await self._config.list(environment=self._config.environment)
        except Exception as exc:  # noqa: BLE001 - the last entries keep serving, flagged stale
            self._log.warning("openfeature.config_refresh_failed", error=type(exc).__name__)
            self._set_stale(True)
            return []
        entries: dict[str, ConfigEntry] = {}
        # The store's own environment wins over "all": apply "all" first.
        for entry in sorted(listed, key=lambda e: e.environment != "all"):
            entries[entry.key] = entry
        previous, self._entries = self._entries, entries
        first_load, self.loaded = not self.loaded, True
        changed: list[str] = []
        if not first_load:
            keys = previous.keys() | entries.keys()
            changed = sorted(
                k for k in keys if _fingerprint(previous.get(k)) != _fingerprint(entries.get(k))
            )
        if changed:
            _tell(self._listeners, frozenset(changed), self._log)
        self._set_stale(False)
        return changed

    async def start(self) -> None:
        """Load, and reload every ``interval`` on the running loop; idempotent."""
        if self._poller is not None:
            return
        await self.refresh()
        if self._interval is not None:
            self._poller = asyncio.get_running_loop().create_task(self._poll(self._interval))

    async def stop(self) -> None:
        poller, self._poller = self._poller, None
        await cancel_and_wait(poller)

    def cancel(self) -> None:
        """Stop reloading from any thread (the SDK shuts providers down on its own)."""
        poller = self._poller
        if poller is not None:
            with contextlib.suppress(RuntimeError):  # the loop may already be closed
                poller.get_loop().call_soon_threadsafe(poller.cancel)

    async def _poll(self, interval: float) -> None:
        while True:
            await self._clock.sleep(interval)
            try:
                await self.refresh()
            except Exception as exc:  # noqa: BLE001 - the reloads must go on
                self._log.error("openfeature.watch_failed", error=type(exc).__name__)

    def _set_stale(self, stale: bool) -> None:
        if stale != self.stale:
            self.stale = stale
            _tell(self._stale_listeners, stale, self._log)


def _follow(
    listeners: list[Callable[[T], None]], callback: Callable[[T], None]
) -> Callable[[], None]:
    listeners.append(callback)

    def unsubscribe() -> None:
        if callback in listeners:
            listeners.remove(callback)

    return unsubscribe


def _tell(listeners: list[Callable[[T], None]], value: T, log: FilteringBoundLogger) -> None:
    for callback in tuple(listeners):
        try:
            callback(value)
        except Exception as exc:  # noqa: BLE001 - a listener must not stop the reloads
            log.error("openfeature.listener_failed", error=type(exc).__name__)
