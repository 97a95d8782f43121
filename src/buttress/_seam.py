"""Names bound on first use: the storage seam, and packages' lazy attributes.

The storage seam says which store serves which capability on which kind of
backend. A capability declares a ``Seam`` (its name and the protocol its stores
follow) next to its memory store; ``store_for(backend, seam)`` looks the pair
(capability, backend kind) up in ``STORES`` and builds the store, importing its
module only then, so asking for a config store never loads Redis code. A
capability that cannot live on a kind of backend is refused here, with one
message, and nowhere else.

``lazy_attributes`` does the same for a package's public names (PEP 562): the
package lists which module holds each name, and the module is imported when
the name is first read. Both resolve a ``"module:attribute"`` path with one
function, ``load``.

This module sits below the backends and the capabilities alike
(``buttress.backends`` re-exports the seam): it knows a backend only as
something with a ``kind`` that can ``provide`` a store.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any, Final, Generic, Protocol, TypeVar, cast, runtime_checkable

from buttress._exceptions import UnsupportedBackendError

__all__ = [
    "STORES",
    "Provider",
    "Seam",
    "lazy_attributes",
    "load",
    "public_dir",
    "resolve_store",
    "store_for",
    "supported_kinds",
]

S = TypeVar("S")
T = TypeVar("T")


@runtime_checkable
class Provider(Protocol):
    """What the seam asks of a backend (every ``buttress.backends.Backend`` is one)."""

    @property
    def kind(self) -> str: ...

    def provide(self, capability: str, build: Callable[[], T]) -> T: ...

_SQL_AND_MEMORY = ("memory", "sqlite", "postgresql")

STORES: Final[Mapping[str, Mapping[str, str]]] = {
    "config": {
        "memory": "buttress.config._store:MemoryConfigStore",
        "sqlite": "buttress.config._sql:SqlConfigStore",
        "postgresql": "buttress.config._sql:SqlConfigStore",
    },
    "flags": {
        "memory": "buttress.flags._store:MemoryFlagStore",
        "sqlite": "buttress.flags._sql:SqlFlagStore",
        "postgresql": "buttress.flags._sql:SqlFlagStore",
    },
    "deploy": {
        "memory": "buttress.deploy._store:MemoryDeployments",
        "sqlite": "buttress.deploy._sql:SqlDeploymentStore",
        "postgresql": "buttress.deploy._sql:SqlDeploymentStore",
    },
    "health_history": {
        "memory": "buttress.monitoring._store:MemoryHistoryStore",
        "sqlite": "buttress.monitoring._sql:SqlHistoryStore",
        "postgresql": "buttress.monitoring._sql:SqlHistoryStore",
    },
    "ratelimit": {
        "memory": "buttress.ratelimit._store:MemoryStore",
        "sqlite": "buttress.ratelimit._sqlite:SqliteStore",
        "postgresql": "buttress.ratelimit._postgres:PostgresStore",
        "redis": "buttress.ratelimit._redis:RedisStore",
    },
    "error_events": {
        "memory": "buttress.monitoring.errors._store:in_process",
        "sqlite": "buttress.monitoring.errors._sql:SqlErrorEvents",
        "postgresql": "buttress.monitoring.errors._sql:SqlErrorEvents",
    },
    "breaker": {
        "memory": "buttress.breaker._store:in_process",
        "postgresql": "buttress.breaker._sql:PostgresBreakerStore",
        "redis": "buttress.breaker._redis:RedisBreakerStore.on",
    },
}
"""capability -> backend kind -> ``"module:factory"``; the factory takes the backend
(``None`` for a component given no backend, which gets a private in-process store)."""


class Seam(Generic[S]):
    """A capability's storage seam: its name in ``STORES``, who uses it, and the
    protocol its stores follow (a runtime-checkable ``Protocol``).

    ``component`` names the public class in messages ("ConfigStore needs ...").
    """

    __slots__ = ("component", "name", "protocol")

    def __init__(self, name: str, component: str, protocol: type) -> None:
        if name not in STORES:
            raise ValueError(f"no stores are registered for capability {name!r}")
        self.name = name
        self.component = component
        self.protocol = protocol

    def __repr__(self) -> str:
        return f"Seam({self.name!r})"


def supported_kinds(seam: Seam[Any]) -> tuple[str, ...]:
    """The backend kinds that can hold this capability's state."""
    return tuple(STORES[seam.name])


def load(path: str) -> Any:
    """What ``"module:attribute.attribute"`` names, importing the module if need be."""
    module, _, attributes = path.partition(":")
    found: Any = importlib.import_module(module)
    for attribute in attributes.split("."):
        found = getattr(found, attribute)
    return found


def _factory(path: str) -> Callable[[Provider | None], object]:
    factory: Callable[[Provider | None], object] = load(path)
    return factory


def lazy_attributes(
    package: str, modules: Mapping[str, str], namespace: MutableMapping[str, object]
) -> Callable[[str], object]:
    """``package``'s ``__getattr__``: ``name`` from the module ``modules[name]``,
    imported when the name is first read and then kept in ``namespace``, so later
    reads are plain lookups."""

    def __getattr__(name: str) -> object:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = load(f"{module}:{name}")
        namespace[name] = value  # later lookups skip __getattr__
        return value

    return __getattr__


def public_dir(namespace: Mapping[str, object]) -> Callable[[], list[str]]:
    """A package's ``__dir__``: its public names (``__all__``), whether loaded yet
    or still waiting in ``lazy_attributes``."""

    def __dir__() -> list[str]:
        names = cast("Iterable[str]", namespace["__all__"])
        return sorted(names)

    return __dir__


def store_for(backend: Provider, seam: Seam[S]) -> S:
    """``seam``'s store on ``backend``, or ``UnsupportedBackendError`` saying which kinds fit."""
    path = STORES[seam.name].get(backend.kind)
    if path is None:
        kinds = supported_kinds(seam)
        listed = ", ".join(kinds[:-1]) + f" or {kinds[-1]}" if len(kinds) > 1 else kinds[0]
        raise UnsupportedBackendError(
            f"{seam.component} needs a {listed} backend, not {backend.kind!r}"
        )
    factory = _factory(path)
    return cast(S, backend.provide(seam.name, lambda: factory(backend)))


def resolve_store(target: object, seam: Seam[S]) -> S:
    """What a component was given, as its store.

    ``None`` gets a private in-process store, a ``Backend`` the store that
    serves ``seam`` on it, and a store following ``seam.protocol`` itself
    (tests and applications may hand one in directly); anything else is refused.
    """
    if target is None:
        return cast(S, _factory(STORES[seam.name]["memory"])(None))
    if isinstance(target, Provider):
        return store_for(target, seam)
    if not isinstance(target, seam.protocol):
        raise UnsupportedBackendError(
            f"{seam.component} needs a buttress Backend (from buttress.connect) or a "
            f"{seam.protocol.__name__}, got {type(target).__name__}"
        )
    return cast(S, target)
