"""The state one conformance scenario builds up: stores, provider, client, inputs, results.

Steps only read and write a ``World``; everything that touches buttress or the
OpenFeature API lives here, so the step file stays a list of sentences.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import tempfile
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import cast

import attrs
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import (
    FlagEvaluationDetails,
    FlagEvaluationOptions,
    FlagResolutionDetails,
    FlagType,
    FlagValueType,
)
from openfeature.hook import Hook, HookContext, HookHints
from openfeature.transaction_context import (
    ContextVarsTransactionContextPropagator,
    clear_transaction_context_propagator,
)

from buttress import connect
from buttress.adapters.openfeature import ButtressProvider
from buttress.config import ConfigStore
from buttress.errors import BackendUnavailableError
from buttress.flags import FeatureFlags, Flag, FlagChange, MemoryFlagStore

from .seed import Translation

FLAG_TYPES: Mapping[str, FlagType] = {
    "boolean": FlagType.BOOLEAN,
    "string": FlagType.STRING,
    "integer": FlagType.INTEGER,
    "float": FlagType.FLOAT,
    "object": FlagType.OBJECT,
}

ContextValue = bool | int | float | str | datetime | None
ChangeCallback = Callable[[str | None, Flag | None], None]


class SwitchableStore:
    """A memory flag store whose reads can be made to fail, as an unreachable database."""

    def __init__(self, *, down: bool = False) -> None:
        self.inner = MemoryFlagStore()
        self.down = down

    def _check(self) -> None:
        if self.down:
            raise BackendUnavailableError("flag store is down (test switch)")

    @property
    def pushes(self) -> bool:
        return True

    @property
    def listens(self) -> bool:
        return True

    async def open(self) -> None:
        self._check()

    async def close(self) -> None:
        return None

    async def load(self) -> tuple[dict[str, Flag], int]:
        self._check()
        return await self.inner.load()

    async def change_token(self) -> int:
        self._check()
        return await self.inner.change_token()

    async def get(self, key: str) -> Flag | None:
        self._check()
        return await self.inner.get(key)

    async def put(
        self, flag: Flag, *, changed_by: str | None, reason: str | None, at: datetime
    ) -> FlagChange:
        self._check()
        return await self.inner.put(flag, changed_by=changed_by, reason=reason, at=at)

    async def remove(
        self, key: str, *, changed_by: str | None, reason: str | None, at: datetime
    ) -> FlagChange | None:
        self._check()
        return await self.inner.remove(key, changed_by=changed_by, reason=reason, at=at)

    async def history(self, key: str, limit: int) -> list[FlagChange]:
        return await self.inner.history(key, limit)

    async def subscribe(self, callback: ChangeCallback) -> Callable[[], None]:
        return await self.inner.subscribe(callback)


class ContextRecordingProvider(ButtressProvider):
    """A ``ButtressProvider`` that keeps the last context it was asked with."""

    last_context: EvaluationContext | None = None

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        self.last_context = evaluation_context
        return super().resolve_boolean_details(flag_key, default_value, evaluation_context)


class RecordingHook(Hook):
    """Records which stages ran (in order) and the details the after/finally stages saw."""

    def __init__(self, name: str = "hook", log: list[str] | None = None) -> None:
        self.name = name
        self.log: list[str] = [] if log is None else log
        self.stages: list[str] = []
        self.details: dict[str, FlagEvaluationDetails[FlagValueType]] = {}
        self.before_context: EvaluationContext | None = None

    def _record(self, stage: str) -> None:
        self.stages.append(stage)
        self.log.append(f"{self.name}.{stage}")

    def before(self, hook_context: HookContext, hints: HookHints) -> EvaluationContext | None:
        self._record("before")
        return self.before_context

    def after(
        self,
        hook_context: HookContext,
        details: FlagEvaluationDetails[FlagValueType],
        hints: HookHints,
    ) -> None:
        self._record("after")
        self.details["after"] = details

    def error(self, hook_context: HookContext, exception: Exception, hints: HookHints) -> None:
        self._record("error")

    def finally_after(
        self,
        hook_context: HookContext,
        details: FlagEvaluationDetails[FlagValueType],
        hints: HookHints,
    ) -> None:
        self._record("finally")
        self.details["finally"] = details


def parse_value(flag_type: FlagType, text: str) -> FlagValueType | None:
    """A value as the feature files write it, for ``flag_type``."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    if flag_type is FlagType.BOOLEAN:
        if text not in ("true", "false"):
            raise ValueError(f"not a boolean: {text!r}")
        return text == "true"
    if flag_type is FlagType.INTEGER:
        return int(text)
    if flag_type is FlagType.FLOAT:
        return float(text)
    if flag_type is FlagType.OBJECT:
        if text == "null":
            return None
        parsed: FlagValueType = json.loads(text.replace('\\"', '"'))
        return parsed
    return text


def parse_context_value(type_name: str, text: str) -> ContextValue:
    """A context attribute as ``with type "X" and with value "Y"`` writes it."""
    if type_name == "String":
        return text
    if type_name == "Integer":
        return int(text)
    if type_name == "Float":
        return float(text)
    if type_name == "Boolean":
        return text == "true"
    raise ValueError(f"unknown context attribute type {type_name!r}")


@attrs.define
class World:
    """One scenario's state; ``close()`` resets the OpenFeature API's globals."""

    flag_set: Translation | None = None
    store: SwitchableStore | None = None
    flags: FeatureFlags | None = None
    config: ConfigStore | None = None
    provider: ButtressProvider | None = None
    client: OpenFeatureClient | None = None
    init_error: Exception | None = None
    flag_type: FlagType = FlagType.BOOLEAN
    key: str = ""
    default: FlagValueType | None = None
    attributes: dict[str, ContextValue] = attrs.field(factory=dict)
    hook: RecordingHook | None = None
    option_hooks: list[RecordingHook] = attrs.field(factory=list)
    hook_log: list[str] = attrs.field(factory=list)
    levels: dict[str, dict[str, str]] = attrs.field(factory=dict)
    details: FlagEvaluationDetails[FlagValueType] | None = None
    results: list[FlagEvaluationDetails[FlagValueType]] = attrs.field(factory=list)
    context_snapshot: dict[str, ContextValue] | None = None
    level_order: list[str] = attrs.field(factory=list)
    elapsed: float = 0.0
    cache: bool = False
    """Run the provider with ``cache=True`` (the CACHED scenarios)."""
    scratch: str | None = None

    # -- providers -------------------------------------------------------------------

    def install(self, status: str, *, record_context: bool = False) -> None:
        """Register a provider over a freshly seeded store, in the named state.

        Every state is reached the way an application reaches it, with real
        components: ``not ready``, a FeatureFlags not started yet (the provider
        waits for its first snapshot); ``error``, a store down from the start;
        ``fatal``, a SQLite database whose migrations never ran; ``stale``, a
        store that went down after loading.
        """
        assert self.flag_set is not None, "the feature's flag set was not chosen"
        self.reset_api()
        # Transaction context needs a real propagator; reset_api puts the no-op one back.
        api.set_transaction_context_propagator(ContextVarsTransactionContextPropagator())
        translation = self.flag_set
        store = SwitchableStore()
        flags = FeatureFlags(store, refresh_interval=None)
        config = ConfigStore()

        async def seed() -> None:
            for flag in translation.flags:
                await flags.upsert(flag)
            if status == "error":
                store.down = True  # down from the start: nothing was ever loaded
                fresh = FeatureFlags(store, refresh_interval=None)
                await fresh.start()
                self.flags = fresh
                return
            if status == "fatal":
                self.scratch = tempfile.mkdtemp(prefix="buttress-of-fatal-")
                dsn = f"sqlite:///{self.scratch}/never-migrated.db"
                async with connect(dsn, migrate=False) as backend:
                    unmigrated = FeatureFlags(backend, refresh_interval=None)
                    await unmigrated.start()  # degrades: the tables do not exist
                    await unmigrated.stop()
                self.flags = unmigrated
                return
            if status != "not ready":
                await flags.start()
            self.flags = flags

        asyncio.run(seed())
        assert self.flags is not None
        provider_type = ContextRecordingProvider if record_context else ButtressProvider
        provider = provider_type(
            self.flags, config=config, config_interval=None, cache=self.cache
        )
        asyncio.run(provider.load_config())
        self.store, self.config, self.provider = store, config, provider
        if status == "not ready":
            api.set_provider(provider)  # initialize() waits for a snapshot on its own thread
        else:
            try:
                api.set_provider_and_wait(provider)
            except Exception as exc:  # noqa: BLE001 - the error and fatal states raise here
                self.init_error = exc
        if status == "stale":
            store.down = True
            with contextlib.suppress(BackendUnavailableError):
                asyncio.run(self.flags.refresh())
            provider.check_for_changes()
        self.client = api.get_client()

    @staticmethod
    def reset_api() -> None:
        api.clear_providers()
        api.clear_hooks()
        api.set_evaluation_context(EvaluationContext())
        api.set_transaction_context_propagator(ContextVarsTransactionContextPropagator())
        api.set_transaction_context(EvaluationContext())
        clear_transaction_context_propagator()

    def close(self) -> None:
        self.reset_api()
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)

    # -- evaluating ---------------------------------------------------------------------

    def context(self) -> EvaluationContext | None:
        if not self.attributes:
            return None
        attributes = {k: v for k, v in self.attributes.items() if v is not None}
        return EvaluationContext(attributes=attributes)

    def evaluate(
        self,
        *,
        context: EvaluationContext | None = None,
        options: FlagEvaluationOptions | None = None,
    ) -> FlagEvaluationDetails[FlagValueType]:
        assert self.client is not None, "no provider was installed"
        if context is None:
            context = self.context()
        # A null default is what the object scenarios ask for; the SDK passes it through.
        default = cast(FlagValueType, self.default)
        details = self.client.evaluate_flag_details(
            self.flag_type, self.key, default, context, options
        )
        self.details = details
        self.results.append(details)
        return details

    async def evaluate_async(self) -> FlagEvaluationDetails[FlagValueType]:
        assert self.client is not None, "no provider was installed"
        default = cast(FlagValueType, self.default)
        details = await self.client.evaluate_flag_details_async(
            self.flag_type, self.key, default, self.context()
        )
        self.details = details
        self.results.append(details)
        return details
