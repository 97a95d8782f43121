"""What the limiter asks of a store, and the all-or-nothing step over several keys.

A store answers a batch of checks atomically: either every check in it is
admitted and consumed, or nothing is consumed. A single hit is a batch of one.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any, Protocol, TypeAlias

from buttress.ratelimit._algorithms import Algorithm
from buttress.ratelimit._values import Decision

__all__ = ["Check", "Store", "binding", "decide_all"]

Check: TypeAlias = tuple[Algorithm[Any], str, int, int, int]
"""One check: (algorithm, storage key, limit, period ns, cost)."""


class Store(Protocol):
    """A shared store (SQLite, Redis, PostgreSQL) seen by the limiter."""

    kind: str

    def decide(self, checks: Sequence[Check], consume: bool) -> list[Decision]:
        """Sync twin of ``adecide``; async-only stores raise ``UnsupportedBackendError``."""
        ...

    async def adecide(self, checks: Sequence[Check], consume: bool) -> list[Decision]:
        """Decide every check against the store's clock; when ``consume`` and all
        are allowed, consume them all, atomically."""
        ...

    def reset(self, keys: Sequence[str]) -> None: ...

    async def areset(self, keys: Sequence[str]) -> None: ...


def decide_all(
    checks: Sequence[tuple[Algorithm[Any], Hashable, int, int, int, int]],
    load: Callable[[Hashable], Any],
) -> tuple[list[Decision], dict[Hashable, Any]]:
    """Run each ``(algorithm, key, limit, period, cost, now)`` check in order, a
    repeated key seeing the state left by its earlier check; returns the decisions
    and the new states to store if all were allowed."""
    pending: dict[Hashable, Any] = {}
    decisions = []
    for algorithm, key, limit, period, cost, now in checks:
        state = pending[key] if key in pending else load(key)
        decision, new_state = algorithm.step(state, now, limit, period, cost)
        decisions.append(decision)
        pending[key] = new_state
    return decisions, pending


def binding(decisions: Sequence[Decision]) -> Decision:
    """The decision that limits the caller: the refusal with the longest wait, else
    the admission with the fewest units left (longest reset on ties)."""
    refused = [d for d in decisions if not d.allowed]
    if refused:
        return max(refused, key=lambda d: d.retry_after)
    return min(decisions, key=lambda d: (d.remaining, -d.reset_after))
