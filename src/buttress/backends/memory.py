"""The in-process backend: nothing to connect to, nothing shared between processes.

A ``MemoryBackend`` holds one store per capability, handed to every component
given this backend, so two ``ConfigStore`` objects on it see the same entries
(as they would on a database). A component given no backend at all gets a
private memory store.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

from buttress.backends._base import Backend
from buttress.backends._dsn import DSN
from buttress.backends._options import check_known, opt_bool

__all__ = ["MemoryBackend"]

T = TypeVar("T")


class MemoryBackend(Backend):
    """``memory://``: state lives in this process and dies with it."""

    kind = "memory"
    schemes = ("memory",)

    def __init__(self) -> None:
        super().__init__("memory://")
        self._stores: dict[str, Any] = {}
        self._lock = threading.Lock()

    def provide(self, capability: str, build: Callable[[], T]) -> T:
        with self._lock:
            store = self._stores.get(capability)
            if store is None:
                store = self._stores[capability] = build()
            return cast(T, store)

    @classmethod
    async def open(cls, dsn: DSN, options: dict[str, object]) -> MemoryBackend:
        check_known("memory", options, frozenset({"create"}))
        opt_bool(options, "create", True)  # nothing to create in memory: accepted alike
        return cls()

    async def _ping(self) -> None:
        return None

    async def _close(self) -> None:
        return None
