"""Where config lives: the ``ConfigBackendStore`` interface and the memory store.

Stores keep values as JSON text exactly as written (so a damaged row can be
detected on read) and do each change, its version check and its history
record as one atomic step. They never validate, decode or redact.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

import attrs

from buttress._seam import Seam
from buttress.config._values import ConfigAction, ConfigConflictError

__all__ = [
    "CONFIG_STORES",
    "ConfigBackendStore",
    "MemoryConfigStore",
    "StoredChange",
    "StoredEntry",
]


@attrs.frozen(slots=True, repr=False)
class StoredEntry:
    key: str
    environment: str
    value_json: str
    sensitive: bool
    description: str | None
    updated_at: datetime
    updated_by: str | None
    version: int

    def __repr__(self) -> str:  # the JSON text may be a secret
        return f"StoredEntry(key={self.key!r}, environment={self.environment!r})"


@attrs.frozen(slots=True, repr=False)
class StoredChange:
    key: str
    environment: str
    version: int
    action: ConfigAction
    changed_at: datetime
    changed_by: str | None
    reason: str | None
    old_json: str | None
    new_json: str | None
    sensitive: bool

    def __repr__(self) -> str:
        return f"StoredChange(key={self.key!r}, version={self.version})"


@runtime_checkable
class ConfigBackendStore(Protocol):
    """The storage side of ``ConfigStore``; each write is one atomic step."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def fetch(self, key: str, environments: Sequence[str]) -> list[StoredEntry]:
        """The key's rows among ``environments`` (any order)."""
        ...

    async def fetch_all(self, environments: Sequence[str] | None) -> list[StoredEntry]: ...

    async def write(
        self,
        key: str,
        environment: str,
        value_json: str,
        *,
        sensitive: bool,
        description: str | None,
        changed_by: str | None,
        reason: str | None,
        at: datetime,
        expected_version: int | None,
        revert: bool = False,
    ) -> StoredChange:
        """Create or replace the row; raises ``ConfigConflictError`` on a version mismatch."""
        ...

    async def remove(
        self,
        key: str,
        environment: str,
        *,
        changed_by: str | None,
        reason: str | None,
        at: datetime,
        expected_version: int | None,
    ) -> StoredChange | None: ...

    async def history(self, key: str, environment: str, limit: int) -> list[StoredChange]:
        """Newest first."""
        ...

    async def change_at(self, key: str, environment: str, version: int) -> StoredChange | None:
        """The change that produced ``version``, if recorded."""
        ...

    async def change_token(self) -> int:
        """A number that moves whenever anything changes (for cache invalidation)."""
        ...

    @property
    def shared(self) -> bool:
        """True when other processes can change the data, so a local cache must be invalidated."""
        ...

    async def listen(
        self,
        *,
        on_connected: Callable[[], None],
        on_key: Callable[[str], Awaitable[None]],
        on_lost: Callable[[], None],
    ) -> None:
        """Push changed keys to ``on_key`` until cancelled; return at once if it cannot push."""
        ...


CONFIG_STORES: Seam[ConfigBackendStore] = Seam("config", "ConfigStore", ConfigBackendStore)
"""Where ``ConfigStore`` finds its store on a backend (``buttress.backends.STORES``)."""


class MemoryConfigStore:
    """Config in this process; ``ConfigStore`` instances sharing it share everything.

    ``backend`` is accepted (and ignored) so that every store is built the same way.
    """

    __slots__ = ("_history", "_rows", "_token")

    def __init__(self, backend: object = None) -> None:
        self._rows: dict[tuple[str, str], StoredEntry] = {}
        self._history: dict[tuple[str, str], list[StoredChange]] = {}
        self._token = 0

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def fetch(self, key: str, environments: Sequence[str]) -> list[StoredEntry]:
        return [self._rows[key, env] for env in environments if (key, env) in self._rows]

    async def fetch_all(self, environments: Sequence[str] | None) -> list[StoredEntry]:
        return [
            row
            for row in self._rows.values()
            if environments is None or row.environment in environments
        ]

    def _version(self, key: str, environment: str) -> tuple[int, int]:
        """(current row version or 0, last recorded version or 0)."""
        row = self._rows.get((key, environment))
        changes = self._history.get((key, environment))
        return (row.version if row else 0), (changes[-1].version if changes else 0)

    def _check(self, key: str, environment: str, expected: int | None, current: int) -> None:
        if expected is not None and expected != current:
            raise ConfigConflictError(key, environment, expected, current)

    def _record(self, change: StoredChange) -> StoredChange:
        self._history.setdefault((change.key, change.environment), []).append(change)
        self._token += 1
        return change

    async def write(
        self,
        key: str,
        environment: str,
        value_json: str,
        *,
        sensitive: bool,
        description: str | None,
        changed_by: str | None,
        reason: str | None,
        at: datetime,
        expected_version: int | None,
        revert: bool = False,
    ) -> StoredChange:
        current, last = self._version(key, environment)
        self._check(key, environment, expected_version, current)
        old = self._rows.get((key, environment))
        version = last + 1
        self._rows[key, environment] = StoredEntry(
            key, environment, value_json, sensitive, description, at, changed_by, version
        )
        action: ConfigAction = "revert" if revert else ("create" if old is None else "update")
        old_json = old.value_json if old else None
        return self._record(
            StoredChange(
                key, environment, version, action, at, changed_by, reason, old_json, value_json,
                sensitive or bool(old and old.sensitive),
            )
        )  # fmt: skip

    async def remove(
        self,
        key: str,
        environment: str,
        *,
        changed_by: str | None,
        reason: str | None,
        at: datetime,
        expected_version: int | None,
    ) -> StoredChange | None:
        current, last = self._version(key, environment)
        self._check(key, environment, expected_version, current)
        old = self._rows.pop((key, environment), None)
        if old is None:
            return None
        return self._record(
            StoredChange(
                key, environment, last + 1, "delete", at, changed_by, reason, old.value_json,
                None, old.sensitive,
            )
        )  # fmt: skip

    async def history(self, key: str, environment: str, limit: int) -> list[StoredChange]:
        return list(reversed(self._history.get((key, environment), [])))[:limit]

    async def change_at(self, key: str, environment: str, version: int) -> StoredChange | None:
        for change in self._history.get((key, environment), ()):
            if change.version == version:
                return change
        return None

    async def change_token(self) -> int:
        return self._token

    @property
    def shared(self) -> bool:
        return False

    async def listen(
        self,
        *,
        on_connected: Callable[[], None],
        on_key: Callable[[str], Awaitable[None]],
        on_lost: Callable[[], None],
    ) -> None:
        return None

    def corrupt(self, key: str, environment: str, text: str) -> None:
        """Overwrite a row's stored text (tests: simulate a damaged row)."""
        row = self._rows[key, environment]
        self._rows[key, environment] = attrs.evolve(row, value_json=text)

    def __repr__(self) -> str:
        return f"MemoryConfigStore(entries={len(self._rows)})"
