"""Circuit breakers: a pure state machine with sync/async wrappers on top.

``CircuitBreaker`` is the public face (``_service``; given a backend that shares
circuits it is built as ``SharedCircuitBreaker``, ``_shared``); the decisions
live in ``_state``; ``breakers`` finds breakers by name; the stores share one
circuit across a fleet (``_store``, ``_redis``, ``_sql``).
"""

from buttress.breaker._redis import RedisBreakerStore
from buttress.breaker._service import (
    BREAKER_CREATED,
    BreakerRegistry,
    BreakerStats,
    CircuitBreaker,
    breakers,
)
from buttress.breaker._shared import SharedCircuitBreaker
from buttress.breaker._sql import PostgresBreakerStore
from buttress.breaker._store import MemoryBreakerStore, SharedStore, Snapshot, StepParams
from buttress.breaker._values import (
    BreakerConfig,
    BreakerState,
    CallEvent,
    CallFailed,
    CallIgnored,
    CallRejected,
    CallSucceeded,
    CircuitOpenError,
    StateChange,
)

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
    "SharedCircuitBreaker",
    "SharedStore",
    "Snapshot",
    "StateChange",
    "StepParams",
    "breakers",
]
