"""Circuit breakers: a pure state machine with sync/async wrappers on top.

``CircuitBreaker`` is the public face; ``breakers`` finds breakers by name;
the stores share one circuit across a fleet (Redis, PostgreSQL, or in memory).
"""

from buttress.breaker._breaker import BREAKER_CREATED, BreakerStats, CircuitBreaker
from buttress.breaker._config import BreakerConfig
from buttress.breaker._errors import CircuitOpenError
from buttress.breaker._events import (
    CallEvent,
    CallFailed,
    CallIgnored,
    CallRejected,
    CallSucceeded,
    StateChange,
)
from buttress.breaker._redis import RedisBreakerStore
from buttress.breaker._registry import BreakerRegistry, breakers
from buttress.breaker._sql import PostgresBreakerStore
from buttress.breaker._state import BreakerState
from buttress.breaker._store import MemoryBreakerStore, SharedStore, Snapshot, StepParams

__all__ = [
    "BREAKER_CREATED",
    "BreakerConfig",
    "BreakerRegistry",
    "BreakerState",
    "BreakerStats",
    "CallEvent",
    "CallFailed",
    "CallIgnored",
    "CallRejected",
    "CallSucceeded",
    "CircuitBreaker",
    "CircuitOpenError",
    "MemoryBreakerStore",
    "PostgresBreakerStore",
    "RedisBreakerStore",
    "SharedStore",
    "Snapshot",
    "StateChange",
    "StepParams",
    "breakers",
]
