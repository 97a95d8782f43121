"""``ConfigStore``: validated, environment-aware, audited runtime configuration.

This file owns the rules between callers and a ``ConfigBackendStore``: JSON
checks before any write, environment resolution, typed reads, secret
registration and redaction, history and revert. Stores only load and save.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar, overload

from buttress._checks import check_version, revert_reason, unknown_version, validate_key
from buttress._context import Running
from buttress._exceptions import ValidationError
from buttress._seam import resolve_store
from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.config._core import (
    Setting,
    check_default,
    coerce,
    dumps,
    loads,
    string_leaves,
    to_json,
)
from buttress.config._store import (
    CONFIG_STORES,
    ConfigBackendStore,
    EntryEdit,
    EntryValue,
    StoredChange,
    StoredEntry,
)
from buttress.config._values import (
    ALL,
    ConfigChange,
    ConfigEntry,
    ConfigMissingError,
    JSONValue,
    validate_environment,
)
from buttress.log import get_logger, register_secret

if TYPE_CHECKING:
    from buttress.backends import Backend

__all__ = ["MAINTENANCE_KEY", "ConfigStore"]

T = TypeVar("T")

MAINTENANCE_KEY = "maintenance_mode"
"""The config key behind ``is_maintenance_mode`` (a bool, per environment)."""

_UNSET: Any = object()


def _check_optional_text(field: str, value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise ValidationError(field, f"must be a str or None, got {type(value).__name__}")


def _check_version(field: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(field, "must be an int >= 0 (0 means 'must not exist yet')")


def _protect(value: JSONValue) -> None:
    """Register every leaf of a sensitive value (and its JSON text) with the log redactor."""
    for leaf in string_leaves(value):
        register_secret(leaf)
    if not isinstance(value, str):
        register_secret(dumps(value))


class ConfigStore(Running):
    """Runtime configuration for one environment's view.

    A store for environment E reads E's entry first, then ``"all"``'s; a store
    for ``"all"`` reads ``"all"`` entries only. Writes name their environment
    (``"all"`` unless told otherwise).
    """

    def __init__(
        self,
        backend: Backend | ConfigBackendStore | None = None,
        *,
        environment: str = ALL,
        clock: Clock = SYSTEM_CLOCK,
        refresh_interval: float = 1.0,
    ) -> None:
        if (
            isinstance(refresh_interval, bool)
            or not isinstance(refresh_interval, int | float)
            or not refresh_interval > 0
        ):
            raise ValidationError("refresh_interval", "must be a positive number of seconds")
        self._environment = validate_environment("environment", environment)
        self._store = resolve_store(backend, CONFIG_STORES)
        self._clock = clock
        self._opened = False
        self._log = get_logger("config", environment=self._environment)
        # Imported here: `import buttress.config` stays small (the cache is per store).
        from buttress.config._cache import ReadCache

        self._cache = ReadCache(self._store, clock, float(refresh_interval))
        self._declared_sensitive: set[str] = set()

    @property
    def environment(self) -> str:
        return self._environment

    def _view(self) -> tuple[str, ...]:
        return (ALL,) if self._environment == ALL else (self._environment, ALL)

    async def _open(self) -> None:
        if not self._opened:
            await self._store.open()
            self._opened = True

    async def start(self) -> None:
        """Serve reads from a local cache until ``stop()``.

        On SQL stores the cache is checked against the store's change counter
        at most every ``refresh_interval`` seconds; on PostgreSQL LISTEN/NOTIFY
        invalidates it at once on every instance (the counter is the fallback
        while the listener reconnects). Without ``start()`` every read goes to
        the store. Idempotent.
        """
        await self._open()
        self._cache.start()

    async def stop(self) -> None:
        """Stop caching and following changes; close the store. The store stays usable."""
        await self._cache.stop()
        if self._opened:
            await self._store.close()
            self._opened = False

    # -- decoding ---------------------------------------------------------

    def _sensitive(self, row: StoredEntry) -> bool:
        """The row's flag, or a ``Setting(sensitive=True)`` read through this store."""
        return row.sensitive or row.key in self._declared_sensitive

    def _decode(self, row: StoredEntry) -> tuple[bool, JSONValue]:
        try:
            value = loads(row.value_json)
        except ValueError:
            self._log.error("config.invalid_value", key=row.key, stored_environment=row.environment)
            return False, None
        if self._sensitive(row):
            _protect(value)
        return True, value

    def _entry(self, row: StoredEntry, value: JSONValue) -> ConfigEntry:
        return ConfigEntry(
            row.key,
            value,
            row.environment,
            self._sensitive(row),
            row.description,
            row.updated_at,
            row.updated_by,
            row.version,
        )

    def _change(self, change: StoredChange) -> ConfigChange:
        def decode(text: str | None) -> JSONValue:
            if text is None:
                return None
            try:
                return loads(text)
            except ValueError:
                return None

        return ConfigChange(
            change.key,
            change.environment,
            change.version,
            change.action,
            change.changed_at,
            change.changed_by,
            change.reason,
            decode(change.old_json),
            decode(change.new_json),
            change.sensitive,
        )

    async def _resolve(self, key: str) -> StoredEntry | None:
        if self._cache.active:
            return await self._cache.get(key, self._resolve_uncached)
        return await self._resolve_uncached(key)

    async def _resolve_uncached(self, key: str) -> StoredEntry | None:
        rows = await self._store.fetch(key, self._view())
        by_environment = {row.environment: row for row in rows}
        for environment in self._view():
            if environment in by_environment:
                return by_environment[environment]
        return None

    # -- reads ----------------------------------------------------------------

    @overload
    async def get(self, key: str, default: JSONValue = None) -> JSONValue: ...

    @overload
    async def get(self, key: str, default: T, *, type: builtins.type[T]) -> T: ...

    async def get(
        self,
        key: str,
        default: object = None,
        *,
        type: object = _UNSET,
    ) -> object:
        """The value for ``key`` in this store's view, or ``default``.

        With ``type=`` the value is checked (and attrs classes built) and a
        mismatch raises ``ConfigTypeError`` naming the key; a missing key
        gives ``default`` unchecked. A stored value that does not parse reads
        as ``default`` and is logged without the value.
        """
        found = await self._read(key)
        if found is None:
            return default
        _, value = found
        if type is _UNSET:
            return value
        return coerce(key, value, type)

    async def get_entry(self, key: str) -> ConfigEntry | None:
        """The entry this store's view resolves ``key`` to (real value; its repr masks secrets)."""
        found = await self._read(key)
        return None if found is None else self._entry(*found)

    async def _read(self, key: str) -> tuple[StoredEntry, JSONValue] | None:
        """``key``'s row in this view and its value; None when there is none or it is unreadable."""
        validate_key("key", key)
        await self._open()
        row = await self._resolve(key)
        if row is None:
            return None
        ok, value = self._decode(row)
        return (row, value) if ok else None

    async def list(self, environment: str | None = None) -> builtins.list[ConfigEntry]:
        """Every entry (or those of ``environment`` and ``"all"``), sensitive values masked."""
        environments: Sequence[str] | None = None
        if environment is not None:
            validate_environment("environment", environment)
            environments = (environment,) if environment == ALL else (environment, ALL)
        await self._open()
        rows = await self._store.fetch_all(environments)
        entries = []
        for row in sorted(rows, key=lambda r: (r.key, r.environment)):
            if self._sensitive(row):
                entries.append(self._entry(row, None).redacted())
                continue
            ok, value = self._decode(row)
            if ok:
                entries.append(self._entry(row, value))
        return entries

    async def read(self, setting: Setting[T]) -> T:
        """The typed value of a declared ``Setting`` (its default when unset).

        A ``Setting(..., sensitive=True)`` makes its key a secret for this store
        from then on, whatever the stored flag says: the value is registered with
        the redactor, ``list()`` masks it, ``get_entry()`` reports it sensitive
        and a later ``set()`` keeps it sensitive.
        """
        check_default(setting)
        if setting.sensitive:
            self._declared_sensitive.add(setting.key)
        value = await self.get(setting.key, _UNSET)
        if value is _UNSET:
            if setting.required:
                raise ConfigMissingError(setting.key)
            return setting.default
        result: T = coerce(setting.key, value, setting.type)
        return result

    async def missing(self, *settings: Setting[Any]) -> builtins.list[str]:
        """Keys of required settings (no default) that have no value in this view."""
        keys = []
        for setting in settings:
            if setting.required and await self._resolve(setting.key) is None:
                keys.append(setting.key)
        return keys

    # -- writes -------------------------------------------------------------------

    async def set(
        self,
        key: str,
        value: object,
        *,
        updated_by: str | None = None,
        environment: str = ALL,
        sensitive: bool | None = None,
        description: str | None = None,
        reason: str | None = None,
        expected_version: int | None = None,
    ) -> ConfigEntry:
        """Store ``value`` (JSON, or an attrs instance) for ``key`` in ``environment``.

        Everything is checked before anything is written. With
        ``expected_version`` the write happens only if the entry is still at
        that version (0: only if it does not exist), else ``ConfigConflictError``.

        ``sensitive=None`` (the default) keeps the key a secret once it is one:
        the entry keeps its flag, and a new entry for an environment is
        sensitive when the key's entry for ``"all"`` is. Only an explicit
        ``sensitive=False`` clears it.
        """
        validate_key("key", key)
        validate_environment("environment", environment)
        if sensitive is not None and not isinstance(sensitive, bool):
            raise ValidationError("sensitive", "must be a bool or None (keep the entry's flag)")
        _check_optional_text("updated_by", updated_by)
        _check_optional_text("description", description)
        _check_optional_text("reason", reason)
        _check_version("expected_version", expected_version)
        json_value = to_json(value)
        await self._open()
        if sensitive is None and (
            key in self._declared_sensitive or await self._is_sensitive(key, environment)
        ):
            sensitive = True
        if sensitive:
            _protect(json_value)
        edit = EntryEdit(key, environment, updated_by, reason, self._clock.now(), expected_version)
        change = await self._write(edit, EntryValue(dumps(json_value), sensitive, description))
        # None reached the store, which kept the row's flag: the change records it.
        stored_sensitive = change.sensitive if sensitive is None else sensitive
        if stored_sensitive:
            _protect(json_value)
        return ConfigEntry(
            key,
            json_value,
            environment,
            stored_sensitive or key in self._declared_sensitive,
            description,
            change.changed_at,
            updated_by,
            change.version,
        )

    async def _is_sensitive(self, key: str, environment: str) -> bool:
        """Whether ``key`` is already a secret where a write to ``environment`` would land
        (its entry there, or its ``"all"`` entry that the new one would override)."""
        view = (environment,) if environment == ALL else (environment, ALL)
        return any(row.sensitive for row in await self._store.fetch(key, view))

    async def delete(
        self,
        key: str,
        *,
        environment: str = ALL,
        updated_by: str | None = None,
        reason: str | None = None,
        expected_version: int | None = None,
    ) -> bool:
        """Delete ``key``'s entry for ``environment``; True if there was one. History stays."""
        validate_key("key", key)
        validate_environment("environment", environment)
        _check_version("expected_version", expected_version)
        await self._open()
        edit = EntryEdit(key, environment, updated_by, reason, self._clock.now(), expected_version)
        change = await self._store.remove(edit)
        self._cache.invalidate(key)
        if change is None:
            return False
        self._log_change(change)
        return True

    async def history(
        self, key: str, *, environment: str = ALL, limit: int = 50
    ) -> builtins.list[ConfigChange]:
        """``key``'s changes in ``environment``, newest first; sensitive values masked."""
        validate_key("key", key)
        validate_environment("environment", environment)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValidationError("limit", "must be a positive int")
        await self._open()
        changes = await self._store.history(key, environment, limit)
        return [self._change(change).redacted() for change in changes]

    async def revert(
        self,
        key: str,
        to_version: int,
        *,
        environment: str = ALL,
        updated_by: str | None = None,
        reason: str | None = None,
    ) -> ConfigEntry | None:
        """Restore the value ``key`` had at ``to_version``, recorded as a new change.

        Reverting to a version that was a deletion deletes the entry (returns None).
        """
        validate_key("key", key)
        validate_environment("environment", environment)
        check_version("to_version", to_version)
        await self._open()
        target = await self._store.change_at(key, environment, to_version)
        if target is None:
            raise unknown_version(key, to_version)
        why = revert_reason(reason, to_version)
        if target.new_json is None:
            await self.delete(key, environment=environment, updated_by=updated_by, reason=why)
            return None
        rows = await self._store.fetch(key, (environment,))
        description = rows[0].description if rows else None
        edit = EntryEdit(key, environment, updated_by, why, self._clock.now())
        # Back to a version that was a secret: a secret again. Back to one that was
        # not: the entry keeps the flag it has now (None), never loses it.
        keep = True if target.sensitive else None
        await self._write(edit, EntryValue(target.new_json, keep, description, True))
        return await self.get_entry_in(key, environment)

    async def get_entry_in(self, key: str, environment: str) -> ConfigEntry | None:
        """The entry stored for exactly ``environment`` (no fallback to ``"all"``)."""
        validate_key("key", key)
        validate_environment("environment", environment)
        await self._open()
        rows = await self._store.fetch(key, (environment,))
        if not rows:
            return None
        ok, value = self._decode(rows[0])
        return self._entry(rows[0], value) if ok else None

    async def _write(self, edit: EntryEdit, value: EntryValue) -> StoredChange:
        change = await self._store.write(edit, value)
        self._cache.invalidate(edit.key)
        self._log_change(change)
        return change

    def _log_change(self, change: StoredChange) -> None:
        self._log.info(
            "config.changed",
            key=change.key,
            stored_environment=change.environment,
            version=change.version,
            action=change.action,
            changed_by=change.changed_by,
            reason=change.reason,
            sensitive=change.sensitive,
        )

    # -- maintenance mode ---------------------------------------------------------------

    async def is_maintenance_mode(self) -> bool:
        """True when ``maintenance_mode`` is ``true`` in this store's view."""
        return await self.get(MAINTENANCE_KEY, False) is True

    async def set_maintenance_mode(
        self, enabled: bool, *, updated_by: str | None = None, reason: str | None = None
    ) -> None:
        """Switch maintenance mode for this store's environment."""
        if not isinstance(enabled, bool):
            raise ValidationError("enabled", "must be a bool")
        await self.set(
            MAINTENANCE_KEY,
            enabled,
            updated_by=updated_by,
            environment=self._environment,
            reason=reason,
            description="maintenance mode switch",
        )

    def __repr__(self) -> str:
        return f"ConfigStore(environment={self._environment!r}, store={self._store!r})"
