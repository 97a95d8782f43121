"""The rate-limit arithmetic: pure functions ``(state, now, limit, period, cost) ->
(Decision, new state)``, one per algorithm.

Everything that decides admission lives here and nothing here does I/O, reads a
clock or knows where state is kept. Times are integer nanoseconds since the Unix
epoch, so equal inputs always give equal answers (no float drift at boundaries).
States are plain ints and tuples, cheap to keep in a dict or serialise.

``cost == 0`` is a report: always allowed, nothing consumed (used by ``peek``).
``decide_all`` runs several checks as one all-or-nothing step and ``binding``
picks the decision that limits the caller. The ``lease_*`` functions are the
arithmetic of leased quotas (units taken from a shared store in one batch and
spent in process) that keeps a fleet within the algorithm's bound. Callers guarantee ``1 <= limit``,
``1 <= period`` and ``0 <= cost <= limit``.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Final, Generic, TypeAlias, TypeVar

import attrs

from buttress._keys import HASHED, digest_key
from buttress.ratelimit._values import Decision

__all__ = [
    "ALGORITHMS",
    "MAX_KEY_LENGTH",
    "Algorithm",
    "FixedState",
    "GcraState",
    "LeaseGrants",
    "LogState",
    "binding",
    "decide_all",
    "fixed_window",
    "gcra",
    "lease_duration",
    "lease_expiry",
    "lease_grant",
    "lease_held_back",
    "lease_live",
    "lease_spend",
    "lease_terms",
    "memory_key",
    "sliding_window",
    "storage_key",
]

GcraState: TypeAlias = int
"""GCRA: the theoretical arrival time of the next unit (ns)."""
FixedState: TypeAlias = tuple[int, int]
"""Fixed window: (window start ns, units used in it)."""
LogState: TypeAlias = tuple[int, ...]
"""Sliding window: admission times (ns), one entry per unit, oldest first."""

S = TypeVar("S")

_new = tuple.__new__
_US: Final = 1e6

# Durations in a Decision are rounded *up* to whole microseconds (written inline
# as ``-(-ns // 1000) / _US`` on the hot path), so that sleeping ``retry_after``
# on any clock with microsecond resolution is always enough.


def gcra(
    state: GcraState | None, now: int, limit: int, period: int, cost: int
) -> tuple[Decision, GcraState | None]:
    """Generic cell rate algorithm: a burst of ``limit``, then one unit per
    ``period / limit``.

    The emission interval is rounded *up* to a whole nanosecond and the burst
    tolerance is ``limit`` intervals, so a full burst always passes and over any
    span ``t`` at most ``limit + floor(t * limit / period)`` units are admitted.
    """
    interval = -(-period // limit)
    tolerance = interval * limit
    tat = state if state is not None and state > now else now
    new_tat = tat + cost * interval
    ahead = new_tat - now
    if ahead <= tolerance:
        decision = _new(
            Decision, (True, limit, (tolerance - ahead) // interval, -(-ahead // 1000) / _US, 0.0)
        )
        return decision, new_tat
    return _new(
        Decision,
        (
            False,
            limit,
            max(0, (tolerance - (tat - now)) // interval),
            -(-(tat - now) // 1000) / _US,
            -(-(ahead - tolerance) // 1000) / _US,
        ),
    ), state


def _gcra_expires_at(state: GcraState, period: int) -> int:
    return state


def fixed_window(
    state: FixedState | None, now: int, limit: int, period: int, cost: int
) -> tuple[Decision, FixedState | None]:
    """At most ``limit`` units per window ``[k * period, (k + 1) * period)`` since
    the Unix epoch. A clock that steps back keeps the newer window (never
    re-grants a spent quota)."""
    start = now - now % period
    if state is not None and state[0] >= start:
        start, used = state
    else:
        used = 0
    left = -(-(start + period - now) // 1000) / _US
    if used + cost <= limit:
        used += cost
        decision = _new(Decision, (True, limit, limit - used, left if used else 0.0, 0.0))
        return decision, (start, used)
    return _new(Decision, (False, limit, limit - used, left, left)), state


def _fixed_expires_at(state: FixedState, period: int) -> int:
    return state[0] + period


def sliding_window(
    state: LogState | None, now: int, limit: int, period: int, cost: int
) -> tuple[Decision, LogState | None]:
    """Exact sliding window: at most ``limit`` units in any window of ``period``.

    A unit admitted at ``t`` counts until ``t + period``. The log keeps one entry
    per admitted unit still inside the window, so memory grows with ``limit``.
    """
    log: LogState = state or ()
    first_live = bisect_right(log, now - period)
    live = len(log) - first_live
    if live + cost <= limit:
        if cost == 0:
            reset = -(-(log[-1] + period - now) // 1000) / _US if live else 0.0
            return _new(Decision, (True, limit, limit - live, reset, 0.0)), state
        # A clock that stepped back must not unsort the log.
        stamp = now if not log or log[-1] <= now else log[-1]
        new_log = log[first_live:] + (stamp,) * cost
        reset = -(-(stamp + period - now) // 1000) / _US
        return _new(Decision, (True, limit, limit - live - cost, reset, 0.0)), new_log
    # The request fits once enough of the oldest live units have expired.
    blocking = log[first_live + live + cost - limit - 1]
    reset = -(-(log[-1] + period - now) // 1000) / _US
    retry = -(-(blocking + period - now) // 1000) / _US
    return _new(Decision, (False, limit, limit - live, reset, retry)), state


def _log_expires_at(state: LogState, period: int) -> int:
    return state[-1] + period if state else 0


def _load_int(text: str) -> GcraState:
    return int(text)


def _load_pair(text: str) -> FixedState:
    start, used = json.loads(text)
    return int(start), int(used)


def _load_log(text: str) -> LogState:
    return tuple(int(t) for t in json.loads(text))


@attrs.frozen(slots=True)
class Algorithm(Generic[S]):
    """One algorithm: its step, when a state stops mattering (``expires_at(state,
    period)``: from then on it decides exactly like no state), and how it is stored."""

    name: str
    step: Callable[[S | None, int, int, int, int], tuple[Decision, S | None]]
    expires_at: Callable[[S, int], int]
    load: Callable[[str], S]

    def dump(self, state: S) -> str:
        return json.dumps(state)


ALGORITHMS: Final[dict[str, Algorithm[Any]]] = {
    "gcra": Algorithm("gcra", gcra, _gcra_expires_at, _load_int),
    "fixed_window": Algorithm("fixed_window", fixed_window, _fixed_expires_at, _load_pair),
    "sliding_window": Algorithm("sliding_window", sliding_window, _log_expires_at, _load_log),
}
"""Algorithms by the name ``RateLimiter(algorithm=...)`` accepts."""


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


LeaseGrants: TypeAlias = tuple[tuple[int, int], ...]
"""Units one instance holds for one key: ``(units left, expires at ns)`` pairs,
soonest expiry first, on the instance's own monotonic clock."""


def lease_duration(
    algorithm: str, limit: int, period: int, units: int, seconds_ns: int | None
) -> int:
    """How long (ns) a lease of ``units`` may be spent: ``seconds_ns``, else a whole
    fixed window (leases end with it anyway, at no cost), else the time the rate
    takes to grant ``units`` (rounded up: what GCRA and the sliding window give up
    for it is then about ``units``)."""
    if seconds_ns is not None:
        return seconds_ns
    if algorithm == "fixed_window":
        return period
    return -(-units * period // limit)


def lease_held_back(algorithm: str, limit: int, period: int, duration: int) -> int:
    """Units of capacity a lease of ``duration`` ns takes from the store's terms:
    GCRA gives up the burst the rate refills in ``duration`` (rounded up to whole
    emission intervals); the windows give up none."""
    if algorithm != "gcra":
        return 0
    interval = -(-period // limit)
    return -(-duration // interval)


def lease_terms(algorithm: str, limit: int, period: int, duration: int) -> tuple[int, int]:
    """The ``(limit, period)`` a shared store decides leases with, so that units spent
    up to ``duration`` ns after the store granted them stay within ``algorithm``'s
    bound for ``(limit, period)`` at every moment.

    A unit leased at ``t`` is spent at some ``s`` in ``[t, t + duration]``:

    - fixed window: unchanged; the lease ends with the store's window
      (``lease_expiry``), so a window's units are spent in that window.
    - sliding window: the period grows by ``duration``: the spends in any window of
      ``period`` were leased in one of ``period + duration``, which holds at most
      ``limit``.
    - GCRA: the burst shrinks by ``lease_held_back`` units at the same emission
      interval: the spends in ``[a, b]`` were leased in ``[a - duration, b]``,
      where the store admits at most ``limit - held + floor((b - a + duration) /
      interval) <= limit + floor((b - a) / interval)``.

    Callers guarantee ``lease_held_back(...) < limit``.
    """
    if algorithm == "sliding_window":
        return limit, period + duration
    if algorithm == "gcra":
        interval = -(-period // limit)
        burst = limit - lease_held_back(algorithm, limit, period, duration)
        return burst, interval * burst
    return limit, period


def lease_expiry(algorithm: str, sent_at: int, duration: int, reset_after: float) -> int:
    """When units granted by a store decision (``reset_after``, asked at ``sent_at``
    on the instance's clock) stop being spendable. The store decided at or after
    ``sent_at``, so ends measured from ``sent_at`` are never late; a fixed window's
    lease also ends a microsecond before the store's window does."""
    if algorithm == "fixed_window":
        window_left = round(reset_after * _US) * 1000 - 1000
        return sent_at + min(duration, window_left)
    return sent_at + duration


def lease_live(grants: LeaseGrants, now: int) -> LeaseGrants:
    """``grants`` without the spent and the expired ones."""
    for units, expires_at in grants:
        if units <= 0 or expires_at <= now:
            return tuple(g for g in grants if g[0] > 0 and g[1] > now)
    return grants


def lease_grant(grants: LeaseGrants, units: int, expires_at: int) -> LeaseGrants:
    """``grants`` with ``units`` more, usable until ``expires_at`` (kept in expiry order)."""
    return tuple(sorted((*grants, (units, expires_at)), key=lambda g: g[1]))


def lease_spend(grants: LeaseGrants, now: int, cost: int) -> tuple[int, LeaseGrants] | None:
    """Take ``cost`` live units, soonest-expiring first: ``(units left, grants)``, or
    None when the live units do not cover ``cost`` (nothing is taken)."""
    if len(grants) == 1:
        units, expires_at = grants[0]
        if expires_at > now and units >= cost:
            return units - cost, ((units - cost, expires_at),)
        return None
    live = lease_live(grants, now)
    held = sum(g[0] for g in live)
    if held < cost:
        return None
    owed = cost
    spent: list[tuple[int, int]] = []
    for units, expires_at in live:
        take = min(units, owed)
        owed -= take
        if units > take:
            spent.append((units - take, expires_at))
    return held - cost, tuple(spent)


MAX_KEY_LENGTH: Final = 200
"""Longer keys are replaced by a digest before they reach any store."""


def storage_key(key: str) -> str:
    """``key`` as every shared store can hold it: itself when it is at most
    ``MAX_KEY_LENGTH`` printable characters, else a 128-bit digest of it.

    Keys often come from requests (an API key header, a path): a long key, a
    NUL or a lone surrogate would fail in a store, and a store error must not
    become an outage that lets the request through. Distinct keys stay distinct
    (up to the digest's collisions); a key that looks like a digest is itself
    digested, so no raw key can stand for another.
    """
    if len(key) <= MAX_KEY_LENGTH and key.isprintable() and not key.startswith(HASHED):
        if key.isascii():
            return key
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            return digest_key(key)
        return key
    return digest_key(key)


def memory_key(key: str) -> str:
    """``key`` as the in-process store keeps it: bounded in length, anything else
    is fine in a dict (the hot path checks only the length)."""
    return key if len(key) <= MAX_KEY_LENGTH else digest_key(key)
