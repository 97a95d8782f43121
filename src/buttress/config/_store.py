"""Where config lives: the ``ConfigBackendStore`` interface, what it is asked to change
(``EntryEdit``, ``EntryValue``), and the memory store.

Stores keep values as JSON text exactly as written (so a damaged row can be
detected on read) and do each change, its version check and its history
record as one atomic step. They never validate, decode or redact.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import attrs

from buttress._seam import Seam
from buttress.config._values import ChangeRecord, ConfigAction, ConfigConflictError

if TYPE_CHECKING:
    from buttress.backends import Subscriber

__all__ = [
    "CONFIG_STORES",
    "ConfigBackendStore",
    "EntryEdit",
    "EntryValue",
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
class StoredChange(ChangeRecord):
    old_json: str | None
    new_json: str | None
    sensitive: bool

    def __repr__(self) -> str:
        return f"StoredChange(key={self.key!r}, version={self.version})"


@attrs.frozen(slots=True)
class EntryValue:
    """What a write sets: checked JSON text (``dumps``), its sensitivity and description.

    ``sensitive=None`` keeps the flag the entry has (a new entry is not
    sensitive): a secret stays a secret until a write says ``False``.
    """

    value_json: str = attrs.field(repr=False)  # may be a secret
    sensitive: bool | None = None
    description: str | None = None
    revert: bool = False
    """Recorded as a revert to an earlier version rather than as an update."""

    def keeping(self, old: StoredEntry | None) -> EntryValue:
        """This value with ``sensitive`` decided: as given, else as ``old`` has it.

        Stores call it with the row they read in the write's own transaction, so
        a concurrent write cannot slip a secret out of its flag.
        """
        if self.sensitive is not None:
            return self
        return attrs.evolve(self, sensitive=old is not None and old.sensitive)


@attrs.frozen(slots=True)
class EntryEdit:
    """A change asked of a store for one entry: who, why, when, and the version it expects."""

    key: str
    environment: str
    changed_by: str | None
    reason: str | None
    at: datetime
    expected_version: int | None = None

    def check_version(self, current: int) -> None:
        """``ConfigConflictError`` unless the entry is at the expected version (0: absent)."""
        if self.expected_version is not None and self.expected_version != current:
            raise ConfigConflictError(self.key, self.environment, self.expected_version, current)

    def entry(self, value: EntryValue, version: int) -> StoredEntry:
        """The row that writing ``value`` (its flag decided by ``keeping``) leaves."""
        return StoredEntry(
            self.key, self.environment, value.value_json, bool(value.sensitive),
            value.description, self.at, self.changed_by, version,
        )  # fmt: skip

    def written(self, value: EntryValue, old: StoredEntry | None, version: int) -> StoredChange:
        """The history record of writing ``value`` over ``old`` (None: a new entry).

        A change stays sensitive when either side of it was.
        """
        action: ConfigAction = "revert" if value.revert else ("update" if old else "create")
        return StoredChange(
            self.key, self.environment, version, action, self.at, self.changed_by, self.reason,
            old.value_json if old else None, value.value_json,
            bool(value.sensitive) or bool(old and old.sensitive),
        )  # fmt: skip

    def removed(self, old: StoredEntry, version: int) -> StoredChange:
        """The history record of deleting ``old``, as ``version``."""
        return StoredChange(
            self.key, self.environment, version, "delete", self.at, self.changed_by, self.reason,
            old.value_json, None, old.sensitive,
        )  # fmt: skip


@runtime_checkable
class ConfigBackendStore(Protocol):
    """The storage side of ``ConfigStore``; each write is one atomic step."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def fetch(self, key: str, environments: Sequence[str]) -> list[StoredEntry]:
        """The key's rows among ``environments`` (any order)."""
        ...

    async def fetch_all(self, environments: Sequence[str] | None) -> list[StoredEntry]: ...

    async def write(self, edit: EntryEdit, value: EntryValue) -> StoredChange:
        """Create or replace the row; raises ``ConfigConflictError`` on a version mismatch.

        ``value.sensitive=None`` keeps the row's flag (``EntryValue.keeping``).
        """
        ...

    async def remove(self, edit: EntryEdit) -> StoredChange | None:
        """Delete the row (None when there was none); ``ConfigConflictError`` as ``write``."""
        ...

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

    async def listen(self, subscriber: Subscriber) -> None:
        """Push changed keys to ``subscriber`` until cancelled; return at once if it cannot."""
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

    def _next_version(self, edit: EntryEdit) -> int:
        """Check ``edit``'s expected version; the version its change will have."""
        row = self._rows.get((edit.key, edit.environment))
        edit.check_version(row.version if row else 0)
        changes = self._history.get((edit.key, edit.environment))
        return (changes[-1].version if changes else 0) + 1

    def _record(self, change: StoredChange) -> StoredChange:
        self._history.setdefault((change.key, change.environment), []).append(change)
        self._token += 1
        return change

    async def write(self, edit: EntryEdit, value: EntryValue) -> StoredChange:
        version = self._next_version(edit)
        old = self._rows.get((edit.key, edit.environment))
        value = value.keeping(old)
        self._rows[edit.key, edit.environment] = edit.entry(value, version)
        return self._record(edit.written(value, old, version))

    async def remove(self, edit: EntryEdit) -> StoredChange | None:
        version = self._next_version(edit)
        old = self._rows.pop((edit.key, edit.environment), None)
        if old is None:
            return None
        return self._record(edit.removed(old, version))

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

    async def listen(self, subscriber: Subscriber) -> None:
        return None

    def corrupt(self, key: str, environment: str, text: str) -> None:
        """Overwrite a row's stored text (tests: simulate a damaged row)."""
        row = self._rows[key, environment]
        self._rows[key, environment] = attrs.evolve(row, value_json=text)

    def __repr__(self) -> str:
        return f"MemoryConfigStore(entries={len(self._rows)})"
