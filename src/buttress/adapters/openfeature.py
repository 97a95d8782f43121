"""An OpenFeature provider (``openfeature-sdk`` 0.10) backed by ``FeatureFlags``.

A flag with variants answers every lookup type itself (its served variant's
value, name, reason and metadata). A flag without variants answers boolean
lookups; string, integer, float and object lookups of a key without such a flag
are ``ConfigStore`` values, optionally gated by a boolean flag of the same key. This
module owns only the translation (contexts in, resolution details and provider
events out); every decision stays in ``buttress.flags``, and the values and
their changes come from the components' own snapshots and change hooks.
"""

from __future__ import annotations

import copy
import threading
import warnings
from collections.abc import Callable, Collection, Coroutine, Mapping, Sequence
from typing import Any, Final, Protocol, TypeAlias, TypeVar, cast

from buttress._context import Running
from buttress.adapters._config_snapshot import ConfigSnapshot
from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.config import ConfigEntry, ConfigStore, JSONValue
from buttress.errors import MissingDependencyError, SchemaMissingError, ValidationError
from buttress.flags import FeatureFlags, Flag, FlagContext, FlagEvaluation
from buttress.flags import Reason as FlagReason
from buttress.log import get_logger

try:
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.event import ProviderEventDetails
    from openfeature.exception import ErrorCode, ProviderFatalError, ProviderNotReadyError
    from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
    from openfeature.provider import AbstractProvider, Metadata
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("openfeature-sdk", "openfeature") from exc

__all__ = ["ButtressProvider", "to_flag_context"]

_T = TypeVar("_T")
_Bound_co = TypeVar("_Bound_co", covariant=True)
ObjectValue: TypeAlias = Sequence[FlagValueType] | Mapping[str, FlagValueType]

_ON: Final = "on"
_OFF: Final = "off"

# Enum attribute lookups cost a few hundred ns each on Python 3.11; bind the members once.
_STATIC: Final = Reason.STATIC
_DEFAULT: Final = Reason.DEFAULT
_DISABLED: Final = Reason.DISABLED
_SPLIT: Final = Reason.SPLIT
_STALE: Final = Reason.STALE
_CACHED: Final = Reason.CACHED
_TARGETING_MATCH: Final = Reason.TARGETING_MATCH
_FLAG_NOT_FOUND: Final = ErrorCode.FLAG_NOT_FOUND
_TYPE_MISMATCH: Final = ErrorCode.TYPE_MISMATCH
_INVALID_CONTEXT: Final = ErrorCode.INVALID_CONTEXT
_GENERAL: Final = ErrorCode.GENERAL
_B_DISABLED: Final = FlagReason.DISABLED
_B_SCHEDULED_OFF: Final = FlagReason.SCHEDULED_OFF
_B_UNKNOWN_FLAG: Final = FlagReason.UNKNOWN_FLAG
_B_ERROR: Final = FlagReason.ERROR
_B_USER_TARGET: Final = FlagReason.USER_TARGET
_B_ROLE_TARGET: Final = FlagReason.ROLE_TARGET
_B_PERCENTAGE: Final = FlagReason.PERCENTAGE
_B_RULE_MATCH: Final = FlagReason.RULE_MATCH
_B_SPLIT: Final = FlagReason.SPLIT
_B_TYPE_MISMATCH: Final = FlagReason.TYPE_MISMATCH

_KIND_TYPES: Final[Mapping[str, type]] = {
    "boolean": bool,
    "string": str,
    "integer": int,
    "float": float,
    "object": dict,
}
"""What ``FeatureFlags.resolve`` reads for each OpenFeature lookup."""


class _Absent:
    __slots__ = ()


_ABSENT: Final = _Absent()
"""No config value under a key (distinct from a stored JSON ``null``)."""


class _Sensitive:
    __slots__ = ()


_SENSITIVE: Final = _Sensitive()
"""A sensitive config value: never served, since hooks and telemetry would see it."""

_Lookup: TypeAlias = "JSONValue | _Absent | _Sensitive"


def _lookup(entry: ConfigEntry | None) -> _Lookup:
    if entry is None:
        return _ABSENT
    return _SENSITIVE if entry.sensitive else entry.value


def to_flag_context(context: EvaluationContext | None) -> FlagContext | None:
    """Map an OpenFeature context: ``targeting_key`` → ``user_id``, ``"role"`` → ``role``.

    Every other attribute goes to ``FlagContext.attributes``. An empty targeting
    key counts as none (it would put every anonymous caller in one bucket).
    Raises ``ValidationError`` when ``role`` is present but not a str.
    """
    if context is None:
        return None
    attributes = context.attributes
    user_id = context.targeting_key or None
    if not attributes:
        return None if user_id is None else FlagContext(user_id)
    role = attributes.get("role")
    if role is not None and not isinstance(role, str):
        raise ValidationError("role", f"must be a str, got {type(role).__name__}")
    others = {name: value for name, value in attributes.items() if name != "role"}
    return FlagContext(user_id, role, others)


def _as_kind(kind: str, value: JSONValue) -> tuple[bool, object]:
    """``(True, value)`` when ``value`` is exactly of ``kind``; a bool is never a number."""
    if kind == "string":
        return isinstance(value, str), value
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool), value
    if kind == "float":
        if isinstance(value, int | float) and not isinstance(value, bool):
            # JSON has one number type: an int stored for a float setting is still that number.
            return True, float(value)
        return False, value
    if kind == "object":
        return isinstance(value, dict | list), value
    return False, value


def _json_kind(value: JSONValue) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "object"


def _error(default: _T, code: ErrorCode, message: str) -> FlagResolutionDetails[_T]:
    return FlagResolutionDetails(
        value=default, error_code=code, error_message=message, reason=Reason.ERROR
    )


def _success_reason(evaluation: FlagEvaluation | FlagReason, flag: Flag | None) -> Reason:
    reason = evaluation if isinstance(evaluation, FlagReason) else evaluation.reason
    if reason is _B_USER_TARGET or reason is _B_ROLE_TARGET or reason is _B_RULE_MATCH:
        return _TARGETING_MATCH
    if reason is _B_PERCENTAGE or reason is _B_SPLIT:
        return _SPLIT
    # DEFAULT: no rule matched. A flag with nothing to evaluate is STATIC.
    if flag is not None and (flag.plain or flag.static):
        return _STATIC
    return _DEFAULT


class _Resolve(Protocol[_T]):
    """A bound ``resolve_<kind>_details``, as the SDK calls it."""

    def __call__(
        self, flag_key: str, default_value: _T, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[_T]: ...


class _AsyncResolve(Protocol[_T]):
    """A bound ``resolve_<kind>_details_async``, as the SDK calls it."""

    def __call__(
        self, flag_key: str, default_value: _T, evaluation_context: EvaluationContext | None = None
    ) -> Coroutine[Any, Any, FlagResolutionDetails[_T]]: ...


class _Method(Protocol[_Bound_co]):
    """A function stored on the provider's class: looked up on a provider, it is ``_Bound_co``."""

    def __get__(
        self, provider: ButtressProvider, owner: type[ButtressProvider] | None = None, /
    ) -> _Bound_co: ...


# The SDK calls one method per value type, sync and async; past their names they are one
# lookup each, told the kind it serves.


def _sync_lookup(kind: str) -> _Method[_Resolve[_T]]:
    def resolve(
        self: ButtressProvider,
        flag_key: str,
        default_value: _T,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[_T]:
        return self._sync_typed(kind, flag_key, default_value, evaluation_context)

    resolve.__name__ = f"resolve_{kind}_details"
    resolve.__qualname__ = f"ButtressProvider.{resolve.__name__}"
    return resolve


def _async_lookup(kind: str) -> _Method[_AsyncResolve[_T]]:
    async def resolve(
        self: ButtressProvider,
        flag_key: str,
        default_value: _T,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[_T]:
        return await self._async_typed(kind, flag_key, default_value, evaluation_context)

    resolve.__name__ = f"resolve_{kind}_details_async"
    resolve.__qualname__ = f"ButtressProvider.{resolve.__name__}"
    return resolve


class ButtressProvider(AbstractProvider, Running):
    """OpenFeature provider over a ``FeatureFlags`` (and optionally a ``ConfigStore``).

    >>> provider = ButtressProvider(flags, config=config)          # doctest: +SKIP
    >>> async with provider:                                       # doctest: +SKIP
    ...     api.set_provider_and_wait(provider)

    Once registered with the SDK it relays both components as they change:
    ``PROVIDER_CONFIGURATION_CHANGED`` with ``flags_changed`` the moment a new
    flag snapshot or config values are in force, ``PROVIDER_STALE`` when either
    goes stale (store down) and ``PROVIDER_READY`` when both are current again.
    ``start()`` loads the config values synchronous typed lookups read and
    reloads them every ``config_interval``; asynchronous lookups read the
    ``ConfigStore`` itself (its own read cache when it is started).
    """

    def __init__(
        self,
        flags: FeatureFlags,
        *,
        config: ConfigStore | None = None,
        name: str = "buttress",
        clock: Clock = SYSTEM_CLOCK,
        watch_interval: float | None = None,
        config_interval: float | None = 5.0,
        ready_timeout: float = 5.0,
        cache: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(flags, FeatureFlags):
            raise ValidationError("flags", f"must be a FeatureFlags, got {type(flags).__name__}")
        if config is not None and not isinstance(config, ConfigStore):
            raise ValidationError(
                "config", f"must be a ConfigStore or None, got {type(config).__name__}"
            )
        if not isinstance(name, str) or not name:
            raise ValidationError("name", "must be a non-empty str")
        if not isinstance(cache, bool):
            raise ValidationError("cache", f"must be a bool, got {type(cache).__name__}")
        for field, interval in (
            ("watch_interval", watch_interval),
            ("config_interval", config_interval),
            ("ready_timeout", ready_timeout),
        ):
            if interval is not None and (
                isinstance(interval, bool)
                or not isinstance(interval, int | float)
                or not interval > 0
            ):
                raise ValidationError(field, "must be a positive number of seconds or None")
        if watch_interval is not None:
            warnings.warn(
                "ButtressProvider(watch_interval=...) is ignored: flag changes and stale "
                "flips reach the SDK as they happen (FeatureFlags.on_change)",
                DeprecationWarning,
                stacklevel=2,
            )
        self._flags = flags
        self._config = config
        self._values = (
            None
            if config is None
            else ConfigSnapshot(config, clock=clock, interval=config_interval)
        )
        self._metadata = Metadata(name=name)
        self._lock = threading.Lock()
        # The flags the SDK has been told about, so each change is announced once.
        self._seen: dict[str, Flag] = dict(flags.snapshot)
        self._unsubscribe: tuple[Callable[[], None], ...] = ()
        self._reported_stale = False
        self._ready_timeout = float(ready_timeout)
        self._ready = flags.loaded
        self._fatal = False
        self._closed = threading.Event()
        self._cache: dict[tuple[str, str], tuple[Flag, FlagResolutionDetails[Any]]] | None = (
            {} if cache else None
        )
        self._log = get_logger("openfeature", provider=name)

    # -- OpenFeature lifecycle ------------------------------------------------------

    def get_metadata(self) -> Metadata:
        return self._metadata

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        """Follow the components (no I/O) and wait for the first flag snapshot.

        The SDK reports NOT_READY until this returns. A ``FeatureFlags`` not yet
        started is waited for (up to ``ready_timeout`` seconds, polling, never
        loading it); then READY once a snapshot is in force. Raises (the SDK
        reports ERROR, then READY when the store answers) when the store was
        unreachable at start and no snapshot was persisted, or nothing loaded in
        time; raises ``ProviderFatalError`` (FATAL: retrying cannot help) when
        the store's tables do not exist (``buttress migrate`` has not run).
        """
        with self._lock:
            self._closed.clear()
            self._fatal = False
            if not self._unsubscribe:
                hooks = [
                    self._flags.on_change(self._flags_changed),
                    self._flags.on_stale_change(self._stale_changed),
                ]
                if self._values is not None:
                    hooks.append(self._values.on_change(self._emit_changed))
                    hooks.append(self._values.on_stale_change(self._stale_changed))
                self._unsubscribe = tuple(hooks)
        self._wait_for_snapshot()
        with self._lock:
            current = self._flags.snapshot
            self._seen = dict(current)
            if self._cache is not None:
                self._cache.clear()
            # The SDK reports READY once this returns; a snapshot that is already stale
            # is announced at its first evaluation (see ``_boolean``).
            self._reported_stale = False
            if self._flags.loaded:
                self._ready = True
                return
            failure = self._flags.failure
            if isinstance(failure, SchemaMissingError):
                self._fatal = True
                raise ProviderFatalError(
                    f"the flag store cannot serve: {failure} (run buttress migrate)"
                )
            # Recovery must then announce itself with READY (see ``_sync_stale``).
            self._reported_stale = True
            if failure is not None:
                raise ProviderNotReadyError(
                    "the flag store was unreachable at start and no snapshot was persisted"
                )
            raise ProviderNotReadyError(
                f"no flag snapshot within {self._ready_timeout:g} s: start the FeatureFlags "
                "(await flags.start(), or async with flags) so it loads one"
            )

    def _wait_for_snapshot(self) -> None:
        """Until the flags load a snapshot or fail to, ``ready_timeout`` passes, or shutdown."""
        flags = self._flags
        remaining = self._ready_timeout
        while not flags.loaded and flags.failure is None and remaining > 0:
            if self._closed.wait(0.01):
                return
            remaining -= 0.01

    def shutdown(self) -> None:
        """Stop following changes (safe from the SDK's shutdown thread)."""
        self._closed.set()  # an initialize still waiting for a snapshot gives up
        with self._lock:
            unsubscribe, self._unsubscribe = self._unsubscribe, ()
        for stop_following in unsubscribe:
            stop_following()
        if self._values is not None:
            self._values.cancel()

    # -- following changes ------------------------------------------------------------

    async def start(self) -> None:
        """Load config values and reload them every ``config_interval``. Idempotent.

        Flag events need no ``start()``: they follow ``FeatureFlags`` from ``initialize``.
        """
        if self._values is not None:
            await self._values.start()

    async def stop(self) -> None:
        if self._values is not None:
            await self._values.stop()

    async def load_config(self) -> list[str]:
        """Reload the config values synchronous lookups read; return (and announce) changed keys.

        On failure the previous values keep serving, marked STALE.
        """
        return [] if self._values is None else await self._values.refresh()

    def check_for_changes(self) -> list[str]:
        """Announce whatever the SDK has not been told yet; return the changed flag keys.

        Changes and stale flips are relayed as they happen, so this is rarely
        needed: it reconciles after a snapshot replaced without notification
        (the persisted one loaded at start) or before ``initialize`` subscribed.
        """
        current = self._flags.snapshot
        with self._lock:
            keys = self._seen.keys() | current.keys()
            changed = sorted(k for k in keys if self._seen.get(k) != current.get(k))
            self._seen = dict(current)
        self._emit_changed(changed)
        self._sync_stale()
        return changed

    def _flags_changed(self, keys: frozenset[str]) -> None:
        current = self._flags.snapshot
        cache = self._cache
        if cache is not None:
            for cached in [k for k in cache if k[0] in keys]:
                cache.pop(cached, None)
        with self._lock:
            # Filtered against what was announced: a key reconciled by
            # ``check_for_changes`` on another thread is not announced twice.
            changed = sorted(k for k in keys if self._seen.get(k) != current.get(k))
            for key in changed:
                flag = current.get(key)
                if flag is None:
                    self._seen.pop(key, None)
                else:
                    self._seen[key] = flag
        self._emit_changed(changed)

    def _stale_changed(self, _stale: bool) -> None:
        if self._cache is not None:
            self._cache.clear()  # a stale flip changes every reason
        self._sync_stale()

    def _stale(self) -> bool:
        return self._flags.stale or (self._values is not None and self._values.stale)

    def _sync_stale(self) -> None:
        """Emit STALE or READY when the provider's staleness differs from what the SDK knows."""
        with self._lock:
            stale = self._stale()
            was_stale, self._reported_stale = self._reported_stale, stale
        if stale and not was_stale:
            self._log.warning("openfeature.stale")
            self.emit_provider_stale(
                ProviderEventDetails(message="store unreachable; serving the last snapshot")
            )
        elif was_stale and not stale and not self._fatal:
            self._ready = True
            self._log.info("openfeature.ready_again")
            self.emit_provider_ready(ProviderEventDetails(message="store reachable again"))

    def _emit_changed(self, changed: Collection[str]) -> None:
        if changed:
            flags_changed = sorted(changed)
            self._log.info("openfeature.configuration_changed", flags_changed=flags_changed)
            self.emit_provider_configuration_changed(
                ProviderEventDetails(flags_changed=flags_changed)
            )

    # -- boolean: buttress flags ---------------------------------------------------------

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        return self._boolean(flag_key, default_value, evaluation_context, None)

    async def resolve_boolean_details_async(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        if flag_key in self._flags.snapshot:
            return self._boolean(flag_key, default_value, evaluation_context, None)
        lookup, _stale = await self._fetch(flag_key)
        return self._boolean(flag_key, default_value, evaluation_context, lookup)

    def _boolean(
        self,
        key: str,
        default: bool,
        context: EvaluationContext | None,
        config_value: _Lookup | None,
    ) -> FlagResolutionDetails[bool]:
        """``config_value`` None: consult the loaded config copy only if the flag is unknown."""
        if not self._ready:
            refused = self._unready(default)
            if refused is not None:
                return refused
        flag = self._flags.snapshot.get(key)
        if flag is None:
            if config_value is None:
                config_value = self._cached(key)
            if isinstance(config_value, _Absent):
                return _error(default, _FLAG_NOT_FOUND, f"no flag {key!r}")
            return _error(default, _TYPE_MISMATCH, f"{key!r} is a config value, not a boolean flag")
        if flag.variants:
            return self._from_flag("boolean", key, default, context, flag)
        stale = self._flags.stale
        if stale and not self._reported_stale:
            self._sync_stale()  # registered while already stale: the SDK said READY
        metadata = flag.metadata
        if flag.plain:
            # No rule reads the context: the switch alone decides (the hot, common case).
            if flag.enabled:
                if stale:
                    return FlagResolutionDetails(
                        True, reason=_STALE, variant=_ON, flag_metadata=metadata
                    )
                hit = self._recall(key, "boolean", flag)
                if hit is not None:
                    return hit
                details = FlagResolutionDetails(
                    True, reason=_STATIC, variant=_ON, flag_metadata=metadata
                )
                return self._remember(key, "boolean", flag, details)
            return FlagResolutionDetails(
                default, reason=_STALE if stale else _DISABLED, flag_metadata=metadata
            )
        try:
            flag_context = to_flag_context(context)
        except ValidationError as exc:
            return _error(default, _INVALID_CONTEXT, str(exc))
        evaluation = self._flags.evaluate(key, flag_context)
        reason = evaluation.reason
        if reason is _B_DISABLED or reason is _B_SCHEDULED_OFF:
            return FlagResolutionDetails(
                default, reason=_STALE if stale else _DISABLED, flag_metadata=metadata
            )
        if reason is _B_UNKNOWN_FLAG:  # deleted since the lookup above
            return _error(default, _FLAG_NOT_FOUND, f"no flag {key!r}")
        if reason is _B_ERROR:
            return _error(default, _GENERAL, f"evaluating {key!r} failed")
        enabled = evaluation.enabled
        return FlagResolutionDetails(
            enabled,
            reason=_STALE if stale else _success_reason(evaluation, flag),
            variant=_ON if enabled else _OFF,
            flag_metadata=metadata,
        )

    # -- flags with variants: every lookup type, from the flag itself ----------------------

    def _from_flag(
        self,
        kind: str,
        key: str,
        default: _T,
        context: EvaluationContext | None,
        flag: Flag,
    ) -> FlagResolutionDetails[_T]:
        """The variant ``flag`` serves this context, if it is of ``kind``; else the default."""
        hit = self._recall(key, kind, flag)
        if hit is not None:
            return hit
        try:
            flag_context = to_flag_context(context)
        except ValidationError as exc:
            return _error(default, _INVALID_CONTEXT, str(exc))
        stale = self._flags.stale
        if stale and not self._reported_stale:
            self._sync_stale()  # registered while already stale: the SDK said READY
        result = self._flags.resolve(key, default, flag_context, kind=_KIND_TYPES[kind])
        reason = result.reason
        if reason is _B_UNKNOWN_FLAG:  # deleted since the caller's lookup
            return _error(default, _FLAG_NOT_FOUND, f"no flag {key!r}")
        if reason is _B_TYPE_MISMATCH:
            return _error(default, _TYPE_MISMATCH, result.error or f"{key!r} is not a {kind}")
        if reason is _B_ERROR:
            return _error(default, _GENERAL, result.error or f"evaluating {key!r} failed")
        metadata = flag.metadata
        if reason is _B_DISABLED or reason is _B_SCHEDULED_OFF:
            return FlagResolutionDetails(
                default, reason=_STALE if stale else _DISABLED, flag_metadata=metadata
            )
        if result.variant is None:  # nothing matched and the flag has no default variant
            return FlagResolutionDetails(
                default, reason=_STALE if stale else _DEFAULT, flag_metadata=metadata
            )
        details = FlagResolutionDetails(
            result.value,
            variant=result.variant,
            reason=_STALE if stale else _success_reason(reason, flag),
            flag_metadata=metadata,
        )
        return self._remember(key, kind, flag, details)

    # -- readiness and the static-resolution cache -------------------------------------------

    def _unready(self, default: _T) -> FlagResolutionDetails[_T] | None:
        """The error a lookup gets before the first snapshot (or when FATAL), else None."""
        if self._fatal:
            return _error(
                default, ErrorCode.PROVIDER_FATAL, "the flag store's tables do not exist"
            )
        if self._flags.loaded:
            self._ready = True
            if self._reported_stale:
                self._sync_stale()  # loaded after initialize gave up: the SDK hears READY
            return None
        return _error(
            default,
            ErrorCode.PROVIDER_NOT_READY,
            "no flag snapshot yet: the FeatureFlags has not loaded one (await flags.start())",
        )

    def _recall(self, key: str, kind: str, flag: Flag) -> FlagResolutionDetails[Any] | None:
        """A remembered STATIC resolution of this very flag, reported as CACHED."""
        cache = self._cache
        if cache is None:
            return None
        hit = cache.get((key, kind))
        if hit is None or hit[0] is not flag:  # another snapshot's flag: not this one's answer
            return None
        details = hit[1]
        value = details.value
        if isinstance(value, dict | list):
            value = copy.deepcopy(value)  # each caller its own copy
        return FlagResolutionDetails(
            value, variant=details.variant, reason=_CACHED, flag_metadata=details.flag_metadata
        )

    def _remember(
        self, key: str, kind: str, flag: Flag, details: FlagResolutionDetails[_T]
    ) -> FlagResolutionDetails[_T]:
        if self._cache is not None and details.reason is _STATIC and flag.static:
            self._cache[(key, kind)] = (flag, details)
        return details

    # -- typed values: ConfigStore, gated by a flag of the same key ------------------------

    resolve_string_details: _Method[_Resolve[str]] = _sync_lookup("string")
    resolve_integer_details: _Method[_Resolve[int]] = _sync_lookup("integer")
    resolve_float_details: _Method[_Resolve[float]] = _sync_lookup("float")
    resolve_object_details: _Method[_Resolve[ObjectValue]] = _sync_lookup("object")
    resolve_string_details_async: _Method[_AsyncResolve[str]] = _async_lookup("string")
    resolve_integer_details_async: _Method[_AsyncResolve[int]] = _async_lookup("integer")
    resolve_float_details_async: _Method[_AsyncResolve[float]] = _async_lookup("float")
    resolve_object_details_async: _Method[_AsyncResolve[ObjectValue]] = _async_lookup("object")

    def _cached(self, key: str) -> _Lookup:
        return _ABSENT if self._values is None else _lookup(self._values.snapshot.get(key))

    async def _fetch(self, key: str) -> tuple[_Lookup, bool]:
        """The config value now (and False), or the loaded copy (and True) if the store fails."""
        if self._config is None:
            return _ABSENT, False
        try:
            entry = await self._config.get_entry(key)
        except Exception as exc:  # noqa: BLE001 - fall back to the loaded values, flagged stale
            self._log.warning("openfeature.config_read_failed", key=key, error=type(exc).__name__)
            return self._cached(key), True
        return _lookup(entry), False

    def _before_config(
        self, kind: str, key: str, default: _T, context: EvaluationContext | None
    ) -> FlagResolutionDetails[_T] | None:
        """The answer when not ready or when a flag with variants serves ``key``; else None."""
        if not self._ready:
            refused = self._unready(default)
            if refused is not None:
                return refused
        flag = self._flags.snapshot.get(key)
        if flag is not None and flag.variants:
            return self._from_flag(kind, key, default, context, flag)
        return None

    def _sync_typed(
        self, kind: str, key: str, default: _T, context: EvaluationContext | None
    ) -> FlagResolutionDetails[_T]:
        answer = self._before_config(kind, key, default, context)
        if answer is not None:
            return answer
        values = self._values
        if values is not None and not values.loaded:
            return _error(
                default,
                ErrorCode.PROVIDER_NOT_READY,
                "config values are not loaded: await provider.start() or load_config() first "
                "(or use the async client methods)",
            )
        stale = values is not None and values.stale
        return self._typed(kind, key, default, context, self._cached(key), stale)

    async def _async_typed(
        self, kind: str, key: str, default: _T, context: EvaluationContext | None
    ) -> FlagResolutionDetails[_T]:
        answer = self._before_config(kind, key, default, context)
        if answer is not None:
            return answer
        lookup, stale = await self._fetch(key)
        return self._typed(kind, key, default, context, lookup, stale)

    def _typed(
        self,
        kind: str,
        key: str,
        default: _T,
        context: EvaluationContext | None,
        lookup: _Lookup,
        config_stale: bool,
    ) -> FlagResolutionDetails[_T]:
        flag = self._flags.snapshot.get(key)
        if isinstance(lookup, _Absent):
            if flag is None:
                return _error(default, ErrorCode.FLAG_NOT_FOUND, f"no flag or config value {key!r}")
            return _error(
                default, ErrorCode.TYPE_MISMATCH, f"{key!r} is a boolean flag, not a {kind} value"
            )
        if isinstance(lookup, _Sensitive):
            return _error(
                default,
                ErrorCode.GENERAL,
                f"config {key!r} is sensitive; sensitive values are not served to OpenFeature",
            )
        ok, value = _as_kind(kind, lookup)
        if not ok:
            return _error(
                default,
                ErrorCode.TYPE_MISMATCH,
                f"config {key!r} holds a {_json_kind(lookup)}, not a {kind}",
            )
        # The checks above make ``value`` a ``_T`` for the kind the caller asked for.
        typed = cast(_T, value)
        if flag is None:
            reason = Reason.STALE if config_stale else Reason.STATIC
            return FlagResolutionDetails(value=typed, reason=reason)
        try:
            flag_context = to_flag_context(context)
        except ValidationError as exc:
            return _error(default, ErrorCode.INVALID_CONTEXT, str(exc))
        evaluation = self._flags.evaluate(key, flag_context)
        if self._flags.stale and not self._reported_stale:
            self._sync_stale()  # registered while already stale: the SDK said READY
        stale = config_stale or self._flags.stale
        if evaluation.reason is FlagReason.ERROR:
            return _error(default, ErrorCode.GENERAL, f"evaluating {key!r} failed")
        if evaluation.reason is FlagReason.UNKNOWN_FLAG:
            # The flag was deleted between the two reads: the value is ungated now.
            return FlagResolutionDetails(
                value=typed, reason=Reason.STALE if stale else Reason.STATIC
            )
        if (
            evaluation.reason is FlagReason.DISABLED
            or evaluation.reason is FlagReason.SCHEDULED_OFF
        ):
            return FlagResolutionDetails(
                value=default, reason=Reason.STALE if stale else Reason.DISABLED
            )
        if not evaluation.enabled:
            # Outside a percentage rollout: the caller keeps its own default.
            return FlagResolutionDetails(
                value=default, reason=Reason.STALE if stale else Reason.SPLIT
            )
        return FlagResolutionDetails(
            value=typed,
            reason=Reason.STALE if stale else _success_reason(evaluation, flag),
        )

    def __repr__(self) -> str:
        return (
            f"ButtressProvider(name={self._metadata.name!r}, flags={self._flags!r}, "
            f"config={self._config!r})"
        )
