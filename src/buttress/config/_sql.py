"""Config in SQLite or PostgreSQL: one row per (key, environment) plus its history.

Each write is one transaction: bump the ``config`` change counter (which
serialises writers), check ``expected_version``, upsert the row, append the
history row, and on PostgreSQL NOTIFY ``buttress_config``. The tables come
from buttress's migration ``0002_config``; ``open`` only checks they exist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from buttress._exceptions import BackendError, BackendUnavailableError, ButtressError
from buttress.backends import (
    SqlBackend,
    SqlConnection,
    Subscriber,
    bump_counter,
    from_db_time,
    read_counter,
)
from buttress.config._store import EntryEdit, EntryValue, StoredChange, StoredEntry
from buttress.config._values import ConfigAction
from buttress.errors import ErrorCategory, classify

# write_entry's arguments are exported with it: DeploymentLog imports all three from here.
__all__ = [
    "CHANNEL",
    "TABLES",
    "EntryEdit",
    "EntryValue",
    "SqlConfigStore",
    "remove_entry",
    "write_entry",
]

T = TypeVar("T")

CHANNEL = "buttress_config"
_COUNTER = "config"


def write_failed(exc: Exception, dialect: str, key: str, environment: str) -> BackendError:
    """The buttress error for a driver failure while writing ``key``.

    Names the key and the failure's kind, never the driver's text (it may quote
    values or the DSN). The write was one transaction, so it either happened in
    full or not at all; only a re-read can tell which when the link died at COMMIT.
    """
    where = f"config write of {key!r} ({environment}) failed"
    outcome = "it was applied completely or not at all; re-read the key to know which"
    if classify(exc).category in (ErrorCategory.NETWORK, ErrorCategory.TIMEOUT) or (
        type(exc).__name__ == "InterfaceError"  # asyncpg: the connection is closed
    ):
        return BackendUnavailableError(
            f"{where}: the {dialect} backend is unreachable ({type(exc).__name__}); {outcome}"
        )
    return BackendError(f"{where}: {dialect} error {type(exc).__name__}; {outcome}")


TABLES = ("buttress_config", "buttress_config_history", "buttress_change_counters")
"""What the config store reads and writes (migration ``0002_config``)."""

_ENTRY_COLUMNS = "key, environment, value, sensitive, description, updated_at, updated_by, version"
_CHANGE_COLUMNS = (
    "key, environment, version, action, changed_at, changed_by, reason, old_value, "
    "new_value, sensitive"
)


def _entry(row: Mapping[str, Any]) -> StoredEntry:
    return StoredEntry(
        row["key"],
        row["environment"],
        row["value"],
        bool(row["sensitive"]),
        row["description"],
        from_db_time(row["updated_at"]),
        row["updated_by"],
        int(row["version"]),
    )


def _change(row: Mapping[str, Any]) -> StoredChange:
    action: ConfigAction = row["action"]
    return StoredChange(
        row["key"],
        row["environment"],
        int(row["version"]),
        action,
        from_db_time(row["changed_at"]),
        row["changed_by"],
        row["reason"],
        row["old_value"],
        row["new_value"],
        bool(row["sensitive"]),
    )


async def _begin(tx: SqlConnection, edit: EntryEdit) -> tuple[StoredEntry | None, int]:
    """Bump the counter, read the current row, check the version, pick the next one."""
    await bump_counter(tx, _COUNTER)
    row = await tx.fetchrow(
        tx.dialect.placeholders(
            f"SELECT {_ENTRY_COLUMNS} FROM buttress_config WHERE key = ? AND environment = ?"
        ),
        edit.key,
        edit.environment,
    )
    old = _entry(row) if row is not None else None
    edit.check_version(old.version if old is not None else 0)
    last = await tx.fetchval(
        tx.dialect.placeholders(
            "SELECT COALESCE(MAX(version), 0) FROM buttress_config_history "
            "WHERE key = ? AND environment = ?"
        ),
        edit.key,
        edit.environment,
    )
    return old, int(last) + 1


async def _record(tx: SqlConnection, change: StoredChange) -> StoredChange:
    await tx.execute(
        tx.dialect.placeholders(
            f"INSERT INTO buttress_config_history ({_CHANGE_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ),
        change.key,
        change.environment,
        change.version,
        change.action,
        tx.dialect.to_db_time(change.changed_at),
        change.changed_by,
        change.reason,
        change.old_json,
        change.new_json,
        tx.dialect.to_db_bool(change.sensitive),
    )
    await tx.dialect.notify(tx, CHANNEL, change.key)
    return change


async def write_entry(tx: SqlConnection, edit: EntryEdit, value: EntryValue) -> StoredChange:
    """Set one entry inside the caller's transaction, exactly as ``ConfigStore.set`` does.

    For components that must change config atomically with their own rows
    (``DeploymentLog`` sets ``app_version``): bumps the change counter, checks
    the expected version, upserts, appends history and NOTIFYs on PostgreSQL.
    ``value.value_json`` must already be checked JSON text (``dumps``);
    ``value.sensitive=None`` keeps the entry's flag.
    """
    old, version = await _begin(tx, edit)
    # The flag is decided here, from the row read under the counter's lock: the
    # upsert writes it whole, so sensitive=None must never reach it undecided.
    value = value.keeping(old)
    entry = edit.entry(value, version)
    await tx.execute(
        tx.dialect.placeholders(
            f"INSERT INTO buttress_config ({_ENTRY_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (key, environment) DO UPDATE SET value = excluded.value, "
            "sensitive = excluded.sensitive, description = excluded.description, "
            "updated_at = excluded.updated_at, updated_by = excluded.updated_by, "
            "version = excluded.version"
        ),
        entry.key,
        entry.environment,
        entry.value_json,
        tx.dialect.to_db_bool(entry.sensitive),
        entry.description,
        tx.dialect.to_db_time(entry.updated_at),
        entry.updated_by,
        entry.version,
    )
    return await _record(tx, edit.written(value, old, version))


async def remove_entry(tx: SqlConnection, edit: EntryEdit) -> StoredChange | None:
    """Delete one entry inside the caller's transaction; None if there was none."""
    old, version = await _begin(tx, edit)
    if old is None:
        return None
    await tx.execute(
        tx.dialect.placeholders("DELETE FROM buttress_config WHERE key = ? AND environment = ?"),
        edit.key,
        edit.environment,
    )
    return await _record(tx, edit.removed(old, version))


class SqlConfigStore:
    """``ConfigBackendStore`` over a ``SqliteBackend`` or ``PostgresBackend``."""

    def __init__(self, backend: SqlBackend) -> None:
        self._backend = backend
        self._dialect = backend.dialect
        self._q = backend.dialect.placeholders

    async def open(self) -> None:
        await self._dialect.require_tables(self._backend, "ConfigStore", TABLES)

    async def close(self) -> None:
        return None

    async def fetch(self, key: str, environments: Sequence[str]) -> list[StoredEntry]:
        marks = ", ".join("?" for _ in environments)
        rows = await self._backend.fetch(
            self._q(
                f"SELECT {_ENTRY_COLUMNS} FROM buttress_config "
                f"WHERE key = ? AND environment IN ({marks})"
            ),
            key,
            *environments,
        )
        return [_entry(row) for row in rows]

    async def fetch_all(self, environments: Sequence[str] | None) -> list[StoredEntry]:
        if environments is None:
            rows = await self._backend.fetch(f"SELECT {_ENTRY_COLUMNS} FROM buttress_config")
        else:
            marks = ", ".join("?" for _ in environments)
            rows = await self._backend.fetch(
                self._q(
                    f"SELECT {_ENTRY_COLUMNS} FROM buttress_config WHERE environment IN ({marks})"
                ),
                *environments,
            )
        return [_entry(row) for row in rows]

    async def write(self, edit: EntryEdit, value: EntryValue) -> StoredChange:
        return await self._in_transaction(edit, lambda tx: write_entry(tx, edit, value))

    async def remove(self, edit: EntryEdit) -> StoredChange | None:
        return await self._in_transaction(edit, lambda tx: remove_entry(tx, edit))

    async def _in_transaction(
        self, edit: EntryEdit, step: Callable[[SqlConnection], Awaitable[T]]
    ) -> T:
        """``step(tx)`` in a transaction of its own; a driver failure as a buttress error."""
        failure: BackendError | None = None
        try:
            async with self._backend.transaction() as tx:
                return await step(tx)
        except ButtressError:
            raise
        except Exception as exc:  # noqa: BLE001 - every driver failure becomes a buttress error
            failure = write_failed(exc, self._dialect, edit.key, edit.environment)
        # Raised outside the except block: the driver's exception must not ride along.
        raise failure

    async def history(self, key: str, environment: str, limit: int) -> list[StoredChange]:
        rows = await self._backend.fetch(
            self._q(
                f"SELECT {_CHANGE_COLUMNS} FROM buttress_config_history "
                "WHERE key = ? AND environment = ? ORDER BY version DESC LIMIT ?"
            ),
            key,
            environment,
            limit,
        )
        return [_change(row) for row in rows]

    async def change_at(self, key: str, environment: str, version: int) -> StoredChange | None:
        row = await self._backend.fetchrow(
            self._q(
                f"SELECT {_CHANGE_COLUMNS} FROM buttress_config_history "
                "WHERE key = ? AND environment = ? AND version = ?"
            ),
            key,
            environment,
            version,
        )
        return _change(row) if row is not None else None

    async def change_token(self) -> int:
        return await read_counter(self._backend, _COUNTER)

    @property
    def shared(self) -> bool:
        return True

    async def listen(self, subscriber: Subscriber) -> None:
        # Returns at once where the backend cannot push (SQLite: the counter is polled).
        await self._backend.listen(CHANNEL, subscriber)

    def __repr__(self) -> str:
        return f"SqlConfigStore({self._dialect})"
