"""Where flags live: the ``FlagStore`` interface, change records, the memory store.

A store only loads and saves, atomically, and records who changed what; it
never evaluates. Stores that can push changes (memory, PostgreSQL) call the
subscribed callback; the others are polled through ``change_token``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol, runtime_checkable

from buttress._seam import Seam
from buttress.flags._values import Flag, FlagAction, FlagChange

__all__ = ["FLAG_STORES", "ChangeCallback", "FlagChange", "FlagStore", "MemoryFlagStore"]

ChangeCallback = Callable[[str | None, Flag | None], None]
"""Called with ``(key, flag)`` after a change (``flag`` None when deleted), or
``(None, None)`` when anything may have changed and a full reload is due."""


@runtime_checkable
class FlagStore(Protocol):
    """The storage side of ``FeatureFlags``; every method is one atomic step."""

    @property
    def pushes(self) -> bool:
        """True when ``subscribe`` delivers changes, so polling is unnecessary."""
        ...

    @property
    def listens(self) -> bool:
        """True when changes usually arrive by push (polling is then only a safety net)."""
        ...

    async def open(self) -> None:
        """Prepare storage (create tables); idempotent."""
        ...

    async def close(self) -> None: ...

    async def load(self) -> tuple[dict[str, Flag], int]:
        """Every flag, and the change token they correspond to."""
        ...

    async def change_token(self) -> int:
        """A number that changes whenever any flag changes (cheap to read)."""
        ...

    async def get(self, key: str) -> Flag | None: ...

    async def put(
        self, flag: Flag, *, changed_by: str | None, reason: str | None, at: datetime
    ) -> FlagChange: ...

    async def remove(
        self, key: str, *, changed_by: str | None, reason: str | None, at: datetime
    ) -> FlagChange | None: ...

    async def history(self, key: str, limit: int) -> list[FlagChange]:
        """The key's changes, newest first."""
        ...

    async def subscribe(self, callback: ChangeCallback) -> Callable[[], None]:
        """Deliver changes to ``callback``; returns a function that unsubscribes."""
        ...


FLAG_STORES: Seam[FlagStore] = Seam("flags", "FeatureFlags", FlagStore)
"""Where ``FeatureFlags`` finds its store on a backend (``buttress.backends.STORES``)."""


class MemoryFlagStore:
    """Flags in this process. Instances sharing one store see each other's changes at once.

    ``backend`` is accepted (and ignored) so that every store is built the same way.
    """

    __slots__ = ("_flags", "_history", "_subscribers", "_token")

    def __init__(self, backend: object = None) -> None:
        self._flags: dict[str, Flag] = {}
        self._history: dict[str, list[FlagChange]] = {}
        self._subscribers: list[ChangeCallback] = []
        self._token = 0

    @property
    def pushes(self) -> bool:
        return True

    @property
    def listens(self) -> bool:
        return True

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def load(self) -> tuple[dict[str, Flag], int]:
        return dict(self._flags), self._token

    async def change_token(self) -> int:
        return self._token

    async def get(self, key: str) -> Flag | None:
        return self._flags.get(key)

    def _record(self, change: FlagChange) -> FlagChange:
        self._history.setdefault(change.key, []).append(change)
        self._token += 1
        for callback in tuple(self._subscribers):
            callback(change.key, change.new)
        return change

    def _next_version(self, key: str) -> int:
        entries = self._history.get(key)
        return entries[-1].version + 1 if entries else 1

    async def put(
        self, flag: Flag, *, changed_by: str | None, reason: str | None, at: datetime
    ) -> FlagChange:
        old = self._flags.get(flag.key)
        self._flags[flag.key] = flag
        action: FlagAction = "create" if old is None else "update"
        version = self._next_version(flag.key)
        return self._record(
            FlagChange(flag.key, version, action, at, changed_by, reason, old, flag)
        )

    async def remove(
        self, key: str, *, changed_by: str | None, reason: str | None, at: datetime
    ) -> FlagChange | None:
        old = self._flags.pop(key, None)
        if old is None:
            return None
        version = self._next_version(key)
        return self._record(FlagChange(key, version, "delete", at, changed_by, reason, old, None))

    async def history(self, key: str, limit: int) -> list[FlagChange]:
        return list(reversed(self._history.get(key, [])))[:limit]

    async def subscribe(self, callback: ChangeCallback) -> Callable[[], None]:
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def __repr__(self) -> str:
        return f"MemoryFlagStore(flags={len(self._flags)})"
