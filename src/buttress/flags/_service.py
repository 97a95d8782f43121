"""``FeatureFlags``: a store, an in-memory snapshot, and the sync hot path over it.

``is_enabled`` and ``evaluate`` read only the snapshot (no I/O, never raise).
The snapshot is replaced whole on every change (copy on write), fed by the
store's push where it has one, else by polling ``change_token`` every
``refresh_interval``; when the store is unreachable the last snapshot stays.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal, TypeVar, cast

import attrs

from buttress._checks import check_version, revert_reason, unknown_version, validate_key
from buttress._context import Running, cancel_and_wait
from buttress._exceptions import ValidationError
from buttress._seam import resolve_store
from buttress.backends import Backend
from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.flags._core import decide, rollout_warning
from buttress.flags._store import FLAG_STORES, FlagStore
from buttress.flags._targeting import JSONValue, copy_json
from buttress.flags._values import (
    FLAG_EVALUATED,
    Flag,
    FlagChange,
    FlagContext,
    FlagEvaluation,
    FlagNotFoundError,
    JSONObject,
    Reason,
    Resolution,
)
from buttress.log import get_logger

__all__ = ["POLLED_REFRESH", "PUSHED_REFRESH", "FeatureFlags"]

T = TypeVar("T")

_REVERT_HORIZON = 10_000
"""How far back in a flag's history ``revert`` looks for the version."""

PUSHED_REFRESH = 30.0
"""Seconds between safety-net polls of a store that pushes changes (``refresh_interval="auto"``)."""
POLLED_REFRESH = 1.0
"""Seconds between polls of a store that cannot push changes (``refresh_interval="auto"``)."""

_NOT_SCHEDULED = datetime(1970, 1, 1, tzinfo=UTC)
"""Handed to ``decide`` for flags without a schedule, which never read ``now``."""

_observed = False
"""Whether ``FLAG_EVALUATED`` has listeners: a module global is the cheapest test
``is_enabled`` can make (an attribute read costs it ~8 ns more)."""


def _follow(active: bool) -> None:
    global _observed
    _observed = active


FLAG_EVALUATED.watch(_follow)


def _typed(kind: type, value: JSONValue) -> tuple[bool, object]:
    """``(True, value as kind)`` when ``value`` is exactly of ``kind``; a bool is never a number.

    An int is a float (JSON has one number type); objects are JSON objects or
    arrays, handed out as copies so a caller cannot change the snapshot.
    """
    if kind is bool or kind is str:
        return isinstance(value, kind), value
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return True, float(value)
        return False, value
    if isinstance(value, dict | list):
        return True, copy_json(value)
    return False, value


_KINDS: Final = {bool: bool, str: str, int: int, float: float, dict: dict, list: dict}
"""The kind a typed read asks for, by the type of its default (a list default reads objects)."""


def _kind_name(value: object) -> str:
    if isinstance(value, dict | list):
        return "object"
    return type(value).__name__


class FeatureFlags(Running):
    """Feature flags served from an in-memory snapshot of a store.

    >>> flags = FeatureFlags()          # memory store
    >>> flags.is_enabled("new-checkout")
    False
    """

    def __init__(
        self,
        backend: Backend | FlagStore | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        refresh_interval: float | Literal["auto"] | None = "auto",
        snapshot_path: str | Path | None = None,
    ) -> None:
        if (
            refresh_interval != "auto"
            and refresh_interval is not None
            and (
                isinstance(refresh_interval, bool)
                or not isinstance(refresh_interval, int | float)
                or not refresh_interval > 0
            )
        ):
            raise ValidationError(
                "refresh_interval", "must be a positive number of seconds, 'auto' or None"
            )
        self._store = resolve_store(backend, FLAG_STORES)
        self._clock = clock
        if refresh_interval == "auto":
            # A store that pushes changes is polled only as a safety net; one that
            # cannot push (SQLite, PostgreSQL through a transaction pooler) is polled
            # often enough that a change reaches every instance within a second or so.
            refresh_interval = PUSHED_REFRESH if self._store.listens else POLLED_REFRESH
        self._refresh_interval: float | None = refresh_interval
        self._snapshot_path = Path(snapshot_path) if snapshot_path is not None else None
        self._snapshot: dict[str, Flag] = {}
        self._token: int | None = None
        self._opened = False
        self._started = False
        self._stale = False
        self._loaded = False
        self._failure: Exception | None = None
        # Changes applied while a full load is in flight: that load may have read
        # the store before them, so they are laid over its result, never lost.
        self._loading = 0
        self._during_load: dict[str, Flag | None] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self._poller: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._listeners: list[Callable[[frozenset[str]], None]] = []
        self._stale_listeners: list[Callable[[bool], None]] = []
        self._log = get_logger("flags")

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        """Load the snapshot and follow changes (push, else polling). Idempotent."""
        if self._started:
            return
        self._started = True
        try:
            await self._open()
            self._unsubscribe = await self._store.subscribe(self._on_change)
            await self.refresh()
        except Exception as exc:  # noqa: BLE001 - any store failure: serve the last snapshot
            # Serve what we have (or the persisted snapshot) rather than fail startup.
            self._failure = exc
            self._set_stale(True)
            self._load_persisted()
            self._log.warning("flags.start_degraded", error=type(exc).__name__)
        if not self._store.pushes and self._refresh_interval is not None:
            self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self) -> None:
        """Stop following changes and close the store; the snapshot keeps serving."""
        poller, self._poller = self._poller, None
        await cancel_and_wait(poller)
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for task in tuple(self._tasks):
            await cancel_and_wait(task)
        if self._opened:
            await self._store.close()
            self._opened = False
        self._started = False

    async def _open(self) -> None:
        if not self._opened:
            await self._store.open()
            self._opened = True

    # -- the hot path --------------------------------------------------------

    def is_enabled(self, key: str, context: FlagContext | None = None) -> bool:
        """Whether ``key`` is on for ``context``: snapshot only, never raises, unknown is False."""
        if _observed:
            # Someone counts evaluations by reason: take the path that knows it.
            return self.evaluate(key, context).enabled
        try:
            flag = self._snapshot.get(key)
            if flag is None or not flag.enabled:
                return False
            if flag.plain:
                return True
            now = self._clock.now() if flag.scheduled else _NOT_SCHEDULED
            if context is None:
                return decide(flag, None, None, now)[0]
            return decide(flag, context.user_id, context.role, now, context.attributes)[0]
        except Exception as exc:  # noqa: BLE001 - the contract: evaluation fails closed
            self._log_error(key, exc)
            return False

    def evaluate(self, key: str, context: FlagContext | None = None) -> FlagEvaluation:
        """Like ``is_enabled``, and says which rule decided (``UNKNOWN_FLAG``, ``ERROR``...)
        and which variant it serves, with its value."""
        try:
            flag = self._snapshot.get(key)
            if flag is None:
                evaluation = FlagEvaluation(key, False, Reason.UNKNOWN_FLAG)
            else:
                now = self._clock.now() if flag.scheduled else _NOT_SCHEDULED
                if context is None:
                    enabled, reason, user_bucket, variant = decide(flag, None, None, now)
                else:
                    user, role, attributes = context.user_id, context.role, context.attributes
                    enabled, reason, user_bucket, variant = decide(
                        flag, user, role, now, attributes
                    )
                value = None if variant is None else flag.served[variant]
                evaluation = FlagEvaluation(key, enabled, reason, user_bucket, variant, value)
        except Exception as exc:  # noqa: BLE001 - the contract: evaluation fails closed
            self._log_error(key, exc)
            evaluation = FlagEvaluation(str(key), False, Reason.ERROR)
        if FLAG_EVALUATED.listeners:
            FLAG_EVALUATED.publish(evaluation)
        return evaluation

    # -- typed reads: the served variant's value, or the caller's default -----------

    def resolve(
        self,
        key: str,
        default: T,
        context: FlagContext | None = None,
        *,
        kind: type | None = None,
    ) -> Resolution[T]:
        """The served variant's value if it has the type asked for, else ``default``.

        The type asked for is ``kind`` or else ``default``'s: bool, str, int (never
        a bool), float (an int counts), or dict (list reads the same) for a JSON
        object or array (a copy). ``kind`` lets a caller whose default is None
        (an OpenFeature object lookup) say what it reads. ``reason`` says where
        the value came from (``Resolution``); never raises.
        """
        wanted = _KINDS.get(kind if kind is not None else type(default))
        if wanted is None:
            given = kind.__name__ if kind is not None else type(default).__name__
            return Resolution(
                str(key),
                default,
                Reason.ERROR,
                error=(
                    f"a {'kind' if kind is not None else 'default'} of type {given} says "
                    "nothing about the type to read: use bool, str, int, float, dict or list"
                ),
            )
        return self._resolve(wanted, key, default, context)

    def get_bool(self, key: str, default: bool, context: FlagContext | None = None) -> bool:
        """The flag's boolean value, or ``default`` (off, unknown, another type); never raises.

        Unlike ``is_enabled``, a flag switched off gives ``default``, not False.
        """
        return self._resolve(bool, key, default, context).value

    def get_string(self, key: str, default: str, context: FlagContext | None = None) -> str:
        """The flag's str value, or ``default``; never raises."""
        return self._resolve(str, key, default, context).value

    def get_int(self, key: str, default: int, context: FlagContext | None = None) -> int:
        """The flag's int value (a float or bool is a type mismatch), or ``default``."""
        return self._resolve(int, key, default, context).value

    def get_float(self, key: str, default: float, context: FlagContext | None = None) -> float:
        """The flag's number as a float (an int counts; a bool does not), or ``default``."""
        return self._resolve(float, key, default, context).value

    def get_object(
        self, key: str, default: JSONObject, context: FlagContext | None = None
    ) -> JSONObject:
        """A copy of the flag's JSON object or array, or ``default``; never raises."""
        return self._resolve(dict, key, default, context).value

    def _resolve(
        self, kind: type, key: str, default: T, context: FlagContext | None
    ) -> Resolution[T]:
        evaluation = self.evaluate(key, context)
        reason, variant = evaluation.reason, evaluation.variant
        name = evaluation.key
        if reason is Reason.UNKNOWN_FLAG:
            return Resolution(name, default, reason, error=f"no flag {name!r}")
        if reason is Reason.ERROR:
            return Resolution(name, default, reason, error=f"evaluating {name!r} failed")
        if variant is None:  # switched off, scheduled off, or no default variant
            return Resolution(name, default, reason, bucket=evaluation.bucket)
        ok, value = _typed(kind, evaluation.value)
        if not ok:
            wanted = "object" if kind is dict else kind.__name__
            return Resolution(
                name,
                default,
                Reason.TYPE_MISMATCH,
                error=(
                    f"{name!r} serves variant {variant!r}, a {_kind_name(evaluation.value)}, "
                    f"not a {wanted}"
                ),
            )
        # ``_typed`` checked that ``value`` is of the kind ``default``'s type asked for.
        return Resolution(name, cast(T, value), reason, variant, evaluation.bucket)

    def _log_error(self, key: object, exc: Exception) -> None:
        with contextlib.suppress(Exception):
            self._log.error("flags.evaluation_failed", key=str(key), error=type(exc).__name__)

    @property
    def snapshot(self) -> Mapping[str, Flag]:
        """The flags ``is_enabled`` decides from right now: a read-only view, O(1).

        A snapshot is never modified once in force (changes swap in a new one),
        so the view stays consistent; read ``snapshot`` again for newer flags.
        """
        return MappingProxyType(self._snapshot)

    @property
    def stale(self) -> bool:
        """True while the last refresh failed and an older snapshot is serving."""
        return self._stale

    @property
    def loaded(self) -> bool:
        """True once a snapshot is in force: loaded from the store (``start``/``refresh``),
        or from ``snapshot_path`` when the store was unreachable at ``start``."""
        return self._loaded

    @property
    def failure(self) -> Exception | None:
        """Why the snapshot is stale or missing: the last failed load's exception, else None.

        A ``buttress.errors.SchemaMissingError`` means the store's tables do not exist
        (``buttress migrate`` has not run): retrying alone will not help.
        """
        return self._failure

    # -- storage ---------------------------------------------------------------

    async def upsert(
        self, flag: Flag, *, updated_by: str | None = None, reason: str | None = None
    ) -> Flag:
        """Create or replace ``flag`` (recorded in its history with who and why)."""
        if not isinstance(flag, Flag):
            raise ValidationError("flag", f"must be a Flag, got {type(flag).__name__}")
        if flag.problems:  # read from storage under looser rules (a revert, say): fix first
            raise ValidationError(*flag.problems[0])
        await self._open()
        change = await self._store.put(
            flag, changed_by=updated_by, reason=reason, at=self._clock.now()
        )
        self._apply(flag.key, flag)
        self._log_change(change)
        return flag

    async def update(
        self,
        key: str,
        /,
        *,
        updated_by: str | None = None,
        reason: str | None = None,
        **changes: Any,
    ) -> Flag:
        """Change some fields of an existing flag; raises ``FlagNotFoundError`` if absent."""
        validate_key("key", key)
        if "key" in changes:
            raise ValidationError("key", "cannot be changed by update; upsert a new flag")
        unknown = set(changes) - {a.name for a in attrs.fields(Flag) if a.init}
        if unknown:
            raise ValidationError(", ".join(sorted(unknown)), "is not a Flag field")
        await self._open()
        current = await self._store.get(key)
        if current is None:
            raise FlagNotFoundError(key)
        return await self.upsert(
            attrs.evolve(current, **changes), updated_by=updated_by, reason=reason
        )

    async def get(self, key: str) -> Flag | None:
        """The stored flag (read from the store, not the snapshot), or None."""
        validate_key("key", key)
        await self._open()
        return await self._store.get(key)

    async def list(self) -> builtins.list[Flag]:
        """Every stored flag, sorted by key."""
        await self._open()
        flags, _token = await self._store.load()
        return [flags[key] for key in sorted(flags)]

    async def delete(
        self, key: str, *, updated_by: str | None = None, reason: str | None = None
    ) -> bool:
        """Delete ``key``; True if it existed. Its history is kept."""
        validate_key("key", key)
        await self._open()
        change = await self._store.remove(
            key, changed_by=updated_by, reason=reason, at=self._clock.now()
        )
        self._apply(key, None)
        if change is None:
            return False
        self._log_change(change)
        return True

    async def revert(
        self,
        key: str,
        to_version: int,
        *,
        updated_by: str | None = None,
        reason: str | None = None,
    ) -> Flag | None:
        """Restore the flag as it was at ``to_version`` (see ``history``), recorded as
        a new change; reverting to a version that deleted it deletes it (None)."""
        validate_key("key", key)
        check_version("to_version", to_version)
        await self._open()
        changes = await self._store.history(key, _REVERT_HORIZON)
        target = next((c for c in changes if c.version == to_version), None)
        if target is None:
            raise unknown_version(key, to_version)
        why = revert_reason(reason, to_version)
        if target.new is None:
            await self.delete(key, updated_by=updated_by, reason=why)
            return None
        return await self.upsert(target.new, updated_by=updated_by, reason=why)

    async def history(self, key: str, limit: int = 50) -> builtins.list[FlagChange]:
        """The flag's changes, newest first: who, when, why, old and new."""
        validate_key("key", key)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValidationError("limit", "must be a positive int")
        await self._open()
        return await self._store.history(key, limit)

    async def refresh(self) -> None:
        """Reload the whole snapshot from the store now.

        On failure the previous snapshot stays and ``stale`` turns True; the
        error propagates to the caller (the poller logs and retries instead).
        """
        self._loading += 1
        try:
            await self._open()
            flags, token = await self._store.load()
        except Exception as exc:
            self._failure = exc
            self._set_stale(True)
            raise
        except BaseException:
            self._set_stale(True)
            raise
        finally:
            self._loading -= 1
            later = dict(self._during_load)
            if not self._loading:
                self._during_load.clear()
        for key, flag in later.items():  # newer than what the load may have read
            if flag is None:
                flags.pop(key, None)
            else:
                flags[key] = flag
        self._token = token
        self._failure = None
        self._loaded = True
        self._set_stale(False)
        self._swap(flags)
        if self._started and self._unsubscribe is None:
            # Started while the store was down: follow its pushes now that it answers.
            self._unsubscribe = await self._store.subscribe(self._on_change)

    # -- following changes -------------------------------------------------------

    def on_change(self, callback: Callable[[frozenset[str]], None]) -> Callable[[], None]:
        """Call ``callback(keys)`` after the snapshot changes (flags added, changed or removed).

        Called on the event loop, after the new snapshot is in force; an
        exception in a callback is logged and ignored. Returns an unsubscribe function.
        """
        self._listeners.append(callback)

        def unsubscribe() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return unsubscribe

    def on_stale_change(self, callback: Callable[[bool], None]) -> Callable[[], None]:
        """Call ``callback(stale)`` each time ``stale`` turns on or off (not on every failure).

        Same terms as ``on_change``: on the event loop, exceptions logged and
        ignored. Returns an unsubscribe function.
        """
        self._stale_listeners.append(callback)

        def unsubscribe() -> None:
            if callback in self._stale_listeners:
                self._stale_listeners.remove(callback)

        return unsubscribe

    def _set_stale(self, stale: bool) -> None:
        if stale == self._stale:
            return
        self._stale = stale
        for callback in tuple(self._stale_listeners):
            try:
                callback(stale)
            except Exception as exc:  # noqa: BLE001 - a listener must not break refreshing
                self._log.error("flags.listener_failed", error=type(exc).__name__)

    def _swap(self, snapshot: dict[str, Flag]) -> None:
        old = self._snapshot
        changed = frozenset(
            key for key in old.keys() | snapshot.keys() if old.get(key) != snapshot.get(key)
        )
        self._snapshot = snapshot
        if not changed:
            return
        self._warn_problems(snapshot, changed)
        self._persist()
        for callback in tuple(self._listeners):
            try:
                callback(changed)
            except Exception as exc:  # noqa: BLE001 - a listener must not break propagation
                self._log.error("flags.listener_failed", error=type(exc).__name__)

    def _warn_problems(self, snapshot: Mapping[str, Flag], keys: Iterable[str]) -> None:
        """Log what today's rules refuse in flags now served (each time one changes)."""
        for key in sorted(keys):
            flag = snapshot.get(key)
            for field, rule in () if flag is None else flag.problems:
                self._log.warning("flags.stored_flag_refused", key=key, field=field, rule=rule)

    def _apply(self, key: str, flag: Flag | None) -> None:
        if self._loading:
            self._during_load[key] = flag
        snapshot = dict(self._snapshot)
        if flag is None:
            snapshot.pop(key, None)
        else:
            snapshot[key] = flag
        self._swap(snapshot)

    def _on_change(self, key: str | None, flag: Flag | None) -> None:
        if key is None:
            task = asyncio.get_running_loop().create_task(self._refresh_logged())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        self._apply(key, flag)

    async def _refresh_logged(self) -> None:
        try:
            await self.refresh()
        except Exception as exc:  # noqa: BLE001 - logged; the snapshot keeps serving
            self._log.warning("flags.refresh_failed", error=type(exc).__name__)

    async def _poll(self) -> None:
        assert self._refresh_interval is not None
        while True:
            await self._clock.sleep(self._refresh_interval)
            try:
                token = await self._store.change_token()
                if token != self._token or self._stale:
                    await self.refresh()
            except Exception as exc:  # noqa: BLE001 - logged; retried at the next interval
                self._failure = exc
                self._set_stale(True)
                self._log.warning("flags.refresh_failed", error=type(exc).__name__)

    def _log_change(self, change: FlagChange) -> None:
        if change.new is not None:
            warning = rollout_warning(change.old, change.new)
            if warning is not None:
                self._log.warning("flags.rollout_warning", key=change.key, warning=warning)
        self._log.info(
            "flags.changed",
            key=change.key,
            version=change.version,
            action=change.action,
            changed_by=change.changed_by,
            reason=change.reason,
        )

    # -- surviving a restart while the store is down ----------------------------

    def _persist(self) -> None:
        if self._snapshot_path is None:
            return
        payload = {key: flag.to_dict() for key, flag in self._snapshot.items()}
        tmp = self._snapshot_path.with_suffix(self._snapshot_path.suffix + ".tmp")
        try:
            tmp.write_text(json.dumps(payload, sort_keys=True))
            tmp.replace(self._snapshot_path)
        except OSError as exc:
            self._log.warning("flags.snapshot_persist_failed", error=type(exc).__name__)

    def _load_persisted(self) -> None:
        if self._snapshot_path is None or self._snapshot:
            return
        try:
            payload = json.loads(self._snapshot_path.read_text())
            self._snapshot = {
                key: Flag.from_dict(data, stored=True) for key, data in payload.items()
            }
            self._loaded = True
            self._warn_problems(self._snapshot, self._snapshot)
        except (OSError, ValueError, TypeError) as exc:
            self._log.warning("flags.snapshot_load_failed", error=type(exc).__name__)

    def __repr__(self) -> str:
        return (
            f"FeatureFlags(store={self._store!r}, flags={len(self._snapshot)}, stale={self._stale})"
        )
