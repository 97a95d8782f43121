"""``RateLimiter``: sync and async twins over the pure algorithms, an in-process
fast path, the shared-store path with its outage policy, leased quotas (units
taken from the shared store in batches and spent in process), and ``hit_all``.

The limiter owns validation, key naming and the outage policy; admission
arithmetic lives in ``_algorithms`` and I/O in the stores.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
import time
from collections.abc import Awaitable, Callable, Generator, Hashable, Iterable, Sequence
from contextlib import ExitStack, suppress
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal, ParamSpec, TypeVar, cast

from buttress._exceptions import (
    BackendError,
    SchemaMissingError,
    UnsupportedBackendError,
    ValidationError,
)
from buttress._seam import resolve_store
from buttress.clock import SYSTEM_CLOCK, Clock, SystemClock
from buttress.log import get_logger
from buttress.ratelimit._core import (
    ALGORITHMS,
    MAX_KEY_LENGTH,
    binding,
    decide_all,
    lease_duration,
    lease_expiry,
    lease_grant,
    lease_held_back,
    lease_live,
    lease_spend,
    lease_terms,
    memory_key,
    storage_key,
)
from buttress.ratelimit._store import (
    DEFAULT_MAX_KEYS,
    RATELIMIT_STORES,
    Check,
    MemoryStore,
    MemoryTable,
    Store,
)
from buttress.ratelimit._values import (
    NS_PER_SECOND,
    RATELIMIT_DECIDED,
    Decision,
    Lease,
    Rate,
    RateLimitDecided,
    RateLimitExceeded,
)
from buttress.switches import ENVIRON as _ENVIRON
from buttress.switches import RATE_LIMIT as _SWITCH

if TYPE_CHECKING:
    from buttress.backends import Backend

__all__ = ["OnBackendError", "RateLimiter", "ahit_all", "hit_all"]

P = ParamSpec("P")
R = TypeVar("R")

OnBackendError = Literal["raise", "allow", "deny"]

OUTAGE_RETRY_AFTER: Final = 1.0
"""``retry_after`` of the refusals made by ``on_backend_error="deny"``."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US: Final = timedelta(microseconds=1)
_logger = get_logger("ratelimit")
_SWITCH_KEY = _SWITCH.key  # not in _ENVIRON: limiters not switched off


def _wall_ns(clock: Clock) -> Callable[[], int]:
    """A reader of ``clock``'s wall time in integer nanoseconds since the epoch."""
    if type(clock) is SystemClock:
        return time.time_ns

    def read() -> int:
        # Exact (datetime has microseconds); floats would blur window edges.
        return (clock.now() - _EPOCH) // _ONE_US * 1000

    return read


def _check_cost(cost: object, limit: int, *, allow_zero: bool = False) -> int:
    if isinstance(cost, bool) or not isinstance(cost, int):
        raise ValidationError("cost", "must be an integer")
    if cost < (0 if allow_zero else 1):
        raise ValidationError("cost", "must be >= 0" if allow_zero else "must be >= 1")
    if cost > limit:
        raise ValidationError(
            "cost", f"must not exceed the limit ({limit}); such a request could never pass"
        )
    return cost


def _check_key(key: object) -> str:
    if not isinstance(key, str):
        raise ValidationError("key", "must be a string")
    return key


# Kept in step with RATELIMIT_DECIDED's listeners, so an unobserved hit pays one
# global read (metrics adapters subscribe; nothing else does).
_observed = False


def _follow(active: bool) -> None:
    global _observed
    _observed = active


RATELIMIT_DECIDED.watch(_follow)

_new = tuple.__new__

# What a hit does after looking at its key's lease (under the lease lock).
_DONE, _RENEW_EARLY, _RENEW, _WAIT = 0, 1, 2, 3


def _us_ns(seconds: float) -> int:
    """A store's duration (whole microseconds as a float) in nanoseconds."""
    return round(seconds * 1e6) * 1000


def _up_us(ns: int) -> float:
    """``ns`` rounded up to whole microseconds, in seconds (as ``_core`` does)."""
    return -(-max(0, ns) // 1000) / 1e6


_WAIT_AT_MOST: Final = 30.0
"""Seconds a hit waits for another's lease request before looking again."""


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _Held:
    """One key's lease in this process, guarded by its limiter's lease lock."""

    __slots__ = (
        "asked",
        "blocked_until",
        "grants",
        "refusal",
        "renewing",
        "reset_at",
        "shared",
        "waiters",
    )

    def __init__(self) -> None:
        self.waiters: list[asyncio.Future[None]] = []  # tasks waiting for the renewal
        self.grants: tuple[tuple[int, int], ...] = ()
        self.renewing = False  # one lease request in flight per key and process
        self.blocked_until = 0  # the store refused `asked` units until then
        self.asked = 0
        self.refusal: Decision | None = None
        self.shared = 0  # units the store had left after the last grant
        self.reset_at = 0


class RateLimiter:
    """Admits at most ``rate.limit`` units per ``rate.per_seconds`` per key.

    ``burst`` (GCRA only) makes it a token bucket: up to ``burst`` units at once,
    refilled at ``rate``.

    >>> from buttress.testing import FakeClock
    >>> limiter = RateLimiter(Rate(2, 1.0), clock=FakeClock())
    >>> [limiter.hit("alice").allowed for _ in range(3)]
    [True, True, False]
    """

    __slots__ = (
        "_algorithm",
        "_backend",
        "_fallback",
        "_lease",
        "_lease_duration",
        "_lease_lock",
        "_lease_low",
        "_lease_renewed",
        "_leases",
        "_limit",
        "_max_keys",
        "_namespace",
        "_now",
        "_on_backend_error",
        "_outage",
        "_period",
        "_rate",
        "_step",
        "_store",
        "_store_limit",
        "_store_period",
        "_table",
        "lease_clock",
        "name",
    )

    def __init__(
        self,
        rate: Rate,
        *,
        algorithm: str = "gcra",
        backend: Backend | Store | None = None,
        clock: Clock = SYSTEM_CLOCK,
        prefix: str = "buttress",
        on_backend_error: OnBackendError = "raise",
        fallback: RateLimiter | None = None,
        burst: int | None = None,
        name: str | None = None,
        max_keys: int = DEFAULT_MAX_KEYS,
        lease: Lease | None = None,
    ) -> None:
        if isinstance(max_keys, bool) or not isinstance(max_keys, int) or max_keys < 1:
            raise ValidationError("max_keys", "must be an integer >= 1")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValidationError("name", "must be a non-empty string")
        if not isinstance(rate, Rate):
            raise ValidationError("rate", "must be a buttress.Rate")
        if algorithm not in ALGORITHMS:
            raise ValidationError("algorithm", f"must be one of {', '.join(sorted(ALGORITHMS))}")
        if not isinstance(prefix, str) or not prefix:
            raise ValidationError("prefix", "must be a non-empty string")
        if on_backend_error not in ("raise", "allow", "deny"):
            raise ValidationError("on_backend_error", "must be 'raise', 'allow' or 'deny'")
        if fallback is not None and (
            not isinstance(fallback, RateLimiter) or fallback._table is None
        ):
            raise ValidationError("fallback", "must be an in-memory RateLimiter")
        # Names the limiter in metrics and logs (never a key); defaults to the prefix.
        self.name = name or prefix
        self._rate = rate
        self._algorithm = ALGORITHMS[algorithm]
        self._step = self._algorithm.step
        self._limit = rate.limit
        self._period = rate.per_ns
        if burst is not None:
            if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
                raise ValidationError("burst", "must be an integer >= 1")
            if algorithm != "gcra":
                raise ValidationError("burst", "applies to algorithm='gcra' only")
            # A token bucket of `burst` refilled at rate.limit per period is GCRA
            # over `burst` units per burst/limit periods (rounded up: never looser).
            self._limit = burst
            self._period = -(-rate.per_ns * burst // rate.limit)
        self._now = _wall_ns(clock)
        self._namespace = f"{prefix}:rl:{algorithm}:{self._limit}:{self._period}"
        self._on_backend_error = on_backend_error
        self._fallback = fallback
        self._outage = False
        self._backend = backend
        self._table: MemoryTable | None = None
        self._store: Store | None = None
        self._max_keys = max_keys
        self._store_limit, self._store_period = self._limit, self._period
        self._lease: Lease | None = None
        self._lease_duration = 0
        self._lease_low = 0
        self._leases: dict[str, _Held] = {}
        self._lease_lock = threading.Lock()
        self._lease_renewed = threading.Condition(self._lease_lock)
        self.lease_clock: Callable[[], int] = time.monotonic_ns
        """The clock leases expire on (a store's clock is the server's; only the
        durations it reports are used, measured from before each request)."""
        if lease is not None and not isinstance(lease, Lease):
            raise ValidationError("lease", "must be a buttress.Lease or None")
        store = resolve_store(backend, RATELIMIT_STORES)
        if isinstance(store, MemoryStore):
            # In process there is no round trip to save: decide on the table itself
            # (a lease is accepted and has nothing to do: ``lease`` reads None).
            self._table = store.table(self._namespace, self._algorithm, self._period, max_keys)
        else:
            self._store = store
            if lease is not None:
                self._take_lease(lease)

    def _take_lease(self, lease: Lease) -> None:
        limit, period, name = self._limit, self._period, self._algorithm.name
        if lease.units > limit:
            raise ValidationError(
                "lease.units", f"must not exceed the limiter's capacity ({limit})"
            )
        seconds = None if lease.seconds is None else round(lease.seconds * NS_PER_SECOND)
        duration = lease_duration(name, limit, period, lease.units, seconds)
        held_back = lease_held_back(name, limit, period, duration)
        if held_back + lease.units > limit:
            raise ValidationError(
                "lease",
                f"GCRA gives up the burst refilled while a lease lasts ({held_back} units in "
                f"{duration / 1e9:g}s) and lease.units ({lease.units}) must fit in the rest of "
                f"{limit}: shorten lease.seconds or lease fewer units",
            )
        self._lease = lease
        self._lease_duration = duration
        self._lease_low = lease.units // 4
        self._store_limit, self._store_period = lease_terms(name, limit, period, duration)

    @property
    def rate(self) -> Rate:
        return self._rate

    @property
    def algorithm(self) -> str:
        return self._algorithm.name

    @property
    def capacity(self) -> int:
        """Units a fresh key can take at once (``burst`` if given, else the limit);
        what ``Decision.limit`` reports."""
        return self._limit

    @property
    def lease(self) -> Lease | None:
        """The lease this limiter takes its shared store's units by (None: every
        decision is a round trip, and always None in memory)."""
        return self._lease

    @property
    def in_process(self) -> bool:
        """Decides in this process (a memory backend): ``hit`` does no I/O, and
        ``ahit`` is ``hit`` (async callers on a hot path may call ``hit``)."""
        return self._table is not None

    @property
    def window(self) -> float:
        """Seconds in which ``capacity`` units are granted on average (the policy
        window of the rate-limit headers)."""
        return self._period / 1e9

    def __repr__(self) -> str:
        where = "memory" if self._store is None else self._store.kind
        leased = "" if self._lease is None else f", lease={self._lease!r}"
        return (
            f"RateLimiter({self._rate}, algorithm={self._algorithm.name!r}, "
            f"backend={where}{leased})"
        )

    def hit(self, key: str, cost: int = 1) -> Decision:
        """Check and consume ``cost`` units for ``key`` (memory, SQLite or Redis)."""
        table = self._table
        if (
            _observed
            or table is None
            or cost != 1
            or type(cost) is not int
            or type(key) is not str
            or len(key) > MAX_KEY_LENGTH
        ):
            return self._announce(self._hit_checked(key, cost), cost)
        now = self._now()
        with table.lock:
            data = table.data
            decision, state = self._step(data.get(key), now, self._limit, self._period, 1)
            if decision[0]:
                data[key] = state
                if len(data) > table.sweep_at:
                    table.sweep(now)
                return decision
        if _SWITCH_KEY in _ENVIRON and _SWITCH.bypass():
            return self._switched_off()
        return decision

    def _hit_checked(self, key: str, cost: int) -> Decision:
        _check_key(key)
        _check_cost(cost, self._limit)
        if self._table is not None:
            return hit_all([(self, key)], cost=cost)
        if self._lease is not None:
            return self._leased_hit(key, cost)
        return self._shared_sync([(self, key, cost)], consume=True)[0]

    async def ahit(self, key: str, cost: int = 1) -> Decision:
        """Async twin of ``hit``; the only way to use PostgreSQL."""
        if self._table is not None:
            return self.hit(key, cost)
        if type(key) is not str or type(cost) is not int or not 1 <= cost <= self._limit:
            _check_key(key)
            _check_cost(cost, self._limit)
        if self._lease is not None:
            return self._announce(await self._leased_ahit(key, cost), cost)
        decision = (await self._shared_async(((self, key, cost),), consume=True))[0]
        return self._announce(decision, cost)

    def _announce(self, decision: Decision, cost: int) -> Decision:
        if _observed:
            RATELIMIT_DECIDED.publish(RateLimitDecided(self.name, decision.allowed, cost))
        return decision

    def peek(self, key: str, cost: int = 1) -> Decision:
        """The decision ``hit(key, cost)`` would return now, consuming nothing
        (``cost=0`` reports what is left)."""
        _check_key(key)
        _check_cost(cost, self._limit, allow_zero=True)
        table = self._table
        if table is None:
            return self._relabel(self._shared_sync([(self, key, cost)], consume=False)[0])
        state = table.data.get(memory_key(key))
        decision: Decision = self._step(state, self._now(), self._limit, self._period, cost)[0]
        if not decision.allowed and _SWITCH.off():
            return self._switched_off()
        return decision

    async def apeek(self, key: str, cost: int = 1) -> Decision:
        """Async twin of ``peek``."""
        if self._table is not None:
            return self.peek(key, cost)
        _check_key(key)
        _check_cost(cost, self._limit, allow_zero=True)
        return self._relabel((await self._shared_async([(self, key, cost)], consume=False))[0])

    def reset(self, key: str) -> None:
        """Forget ``key``: its next hit sees a full quota."""
        _check_key(key)
        table = self._table
        if table is None:
            self._drop_lease(key)
            self._sync_store().reset([self._storage_key(key)])
            return
        with table.lock:
            table.data.pop(memory_key(key), None)

    async def areset(self, key: str) -> None:
        """Async twin of ``reset``."""
        if self._store is None:
            self.reset(key)
            return
        _check_key(key)
        self._drop_lease(key)
        await self._store.areset([self._storage_key(key)])

    def limit(
        self,
        key: str | Callable[..., str] = "default",
        *,
        cost: int | Callable[..., int] = 1,
    ) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Decorate a sync or async function so each call first takes ``cost`` units
        for ``key`` (a string, or a callable given the call's arguments); a refusal
        raises ``RateLimitExceeded``."""
        if not isinstance(cost, int) or isinstance(cost, bool):
            if not callable(cost):
                raise ValidationError("cost", "must be an integer or a callable")
        else:
            _check_cost(cost, self._limit)
        if not isinstance(key, str) and not callable(key):
            raise ValidationError("key", "must be a string or a callable")

        def arguments(args: tuple[object, ...], kwargs: dict[str, object]) -> tuple[str, int]:
            k = key(*args, **kwargs) if callable(key) else key
            c = cost(*args, **kwargs) if callable(cost) else cost
            return k, c

        def decorate(fn: Callable[P, R]) -> Callable[P, R]:
            if inspect.iscoroutinefunction(fn):
                afn = cast(Callable[..., Awaitable[object]], fn)

                @functools.wraps(fn)
                async def async_wrapper(*args: object, **kwargs: object) -> object:
                    decision = await self.ahit(*arguments(args, kwargs))
                    if not decision.allowed:
                        raise RateLimitExceeded(decision)
                    return await afn(*args, **kwargs)

                return cast(Callable[P, R], async_wrapper)

            @functools.wraps(fn)
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
                decision = self.hit(*arguments(args, kwargs))
                if not decision.allowed:
                    raise RateLimitExceeded(decision)
                return fn(*args, **kwargs)

            return wrapper

        return decorate

    def _storage_key(self, key: str) -> str:
        return f"{self._namespace}:{storage_key(key)}"

    def _check(self, key: str, cost: int) -> Check:
        return (
            self._algorithm,
            self._storage_key(key),
            self._store_limit,
            self._store_period,
            cost,
        )

    def _lease_check(self, skey: str, cost: int) -> Check:
        return (self._algorithm, skey, self._store_limit, self._store_period, cost)

    def _relabel(self, decision: Decision) -> Decision:
        """``decision`` as this limiter reports it (a leased GCRA's store decides
        on a smaller burst; callers still see the capacity as the limit)."""
        if decision.limit == self._limit:
            return decision
        return decision._replace(limit=self._limit)

    # Leased quotas. A hit spends from its key's lease under the lease lock (no I/O
    # there); the hit that finds the lease empty, or low, asks the store for more
    # (one request in flight per key and process: others that find it empty
    # meanwhile wait for it). The request plan is one generator for both twins.

    def _drop_lease(self, key: str) -> None:
        if self._lease is not None:
            with self._lease_lock:
                held = self._leases.pop(self._storage_key(key), None)
                if held is not None and held.renewing:
                    self._renewed(held)  # its waiters look again, at a fresh entry

    def _lease_take(self, skey: str, cost: int, now: int) -> tuple[Decision | None, int]:
        with self._lease_lock:
            held = self._leases.get(skey)
            if held is None:
                if len(self._leases) >= self._max_keys:
                    self._sweep_leases(now)
                held = self._leases[skey] = _Held()
            spent = lease_spend(held.grants, now, cost)
            if spent is not None:
                left, held.grants = spent
                decision = _new(
                    Decision,
                    (
                        True,
                        self._limit,
                        min(self._limit, left + held.shared),
                        _up_us(held.reset_at - now),
                        0.0,
                    ),
                )
                if left <= self._lease_low and not held.renewing and held.blocked_until <= now:
                    held.renewing = True
                    return decision, _RENEW_EARLY
                return decision, _DONE
            held.grants = lease_live(held.grants, now)
            if held.blocked_until > now and cost >= held.asked:
                return self._lease_refusal(held, now), _DONE
            if held.renewing:
                return None, _WAIT
            held.renewing = True
            return None, _RENEW

    def _lease_refusal(self, held: _Held, now: int) -> Decision:
        refusal = held.refusal
        remaining = 0 if refusal is None else refusal.remaining
        wait = _up_us(held.blocked_until - now)
        reset = wait if refusal is None else max(wait, refusal.reset_after)
        return _new(Decision, (False, self._limit, remaining, reset, wait))

    def _sweep_leases(self, now: int) -> None:
        """Forget keys holding nothing (call with the lease lock held)."""
        self._leases = {
            k: h
            for k, h in self._leases.items()
            if h.renewing or h.blocked_until > now or lease_live(h.grants, now)
        }

    def _renewal(
        self, skey: str, cost: int, admitted: Decision | None, action: int
    ) -> Generator[Check, Decision, Decision]:
        """After ``_lease_take`` did not settle a hit: ask the store for a lease
        (``yield check`` sends one request) and return the hit's decision, the one
        ``admitted`` already (a renewal ahead of time) or one from the new lease.

        A full lease first. A fixed window refills only when it ends, so when that
        is refused the window's last units (at least what the hit needs) are asked
        for in a second request rather than stranded; GCRA and the sliding window
        refill continuously, so they wait for a full lease rather than trickle a
        unit per round trip. A refusal blocks requests of as many units until the
        store's ``retry_after``.
        """
        if action == _DONE:  # the renewal that was awaited settled it
            return cast(Decision, admitted)
        need = cost if action == _RENEW else 0
        units = cast(Lease, self._lease).units
        sent = self.lease_clock()
        last = yield self._lease_check(skey, units)
        asked = units
        tail = self._algorithm.name == "fixed_window"
        if not last.allowed and tail and (need or last.remaining):
            asked = max(need, min(units, last.remaining))
            sent = self.lease_clock()
            last = yield self._lease_check(skey, asked)
        if self._outage:
            self._recovered()
        with self._lease_lock:
            held = self._leases.get(skey)
            if held is None:
                held = self._leases[skey] = _Held()
            self._renewed(held)
            now = self.lease_clock()
            if last.allowed:
                expires_at = lease_expiry(
                    self._algorithm.name, sent, self._lease_duration, last.reset_after
                )
                held.grants = lease_grant(lease_live(held.grants, now), asked, expires_at)
                held.shared = last.remaining
                held.reset_at = sent + _us_ns(last.reset_after)
                held.blocked_until = 0
            else:
                held.blocked_until = sent + _us_ns(last.retry_after)
                held.asked = asked if tail else 1
                held.refusal = last
            if not need:
                return cast(Decision, admitted)
            spent = lease_spend(held.grants, now, need)
            if spent is None:
                # Refused, or granted units that expired on the way back (a fixed
                # window's last microseconds): nothing may be admitted now.
                wait = last.retry_after if not last.allowed else _up_us(1000)
                return _new(Decision, (False, self._limit, 0, last.reset_after, wait))
            left, held.grants = spent
            reset = _up_us(held.reset_at - now)
            return _new(
                Decision, (True, self._limit, min(self._limit, left + held.shared), reset, 0.0)
            )

    def _renewed(self, held: _Held) -> None:
        """The renewal of ``held`` is over: wake whoever waits for it (lock held)."""
        held.renewing = False
        self._lease_renewed.notify_all()
        waiters, held.waiters = held.waiters, []
        for waiter in waiters:
            waiter.get_loop().call_soon_threadsafe(_wake, waiter)

    def _lease_failed(self, skey: str) -> None:
        with self._lease_lock:
            held = self._leases.get(skey)
            if held is not None:
                self._renewed(held)

    def _wait_renewal(self, skey: str, cost: int) -> tuple[Decision | None, int]:
        """Wait for the renewal another hit is making, then take again."""
        with self._lease_lock:
            held = self._leases.get(skey)
            if held is not None and held.renewing:
                self._lease_renewed.wait(_WAIT_AT_MOST)
        return self._lease_take(skey, cost, self.lease_clock())

    async def _await_renewal(self, skey: str, cost: int) -> tuple[Decision | None, int]:
        """Async twin of ``_wait_renewal``."""
        with self._lease_lock:
            held = self._leases.get(skey)
            waiter = None
            if held is not None and held.renewing:
                waiter = asyncio.get_running_loop().create_future()
                held.waiters.append(waiter)
        if waiter is not None:
            with suppress(TimeoutError):
                await asyncio.wait_for(waiter, _WAIT_AT_MOST)
        return self._lease_take(skey, cost, self.lease_clock())

    def _renewal_failed(
        self, exc: BaseException, key: str, cost: int, admitted: Decision | None
    ) -> Decision:
        """A renewal's request raised ``exc``: re-raised unless it is a store outage,
        which the hit meets with its outage policy (unless it was admitted already)."""
        self._lease_failed(self._storage_key(key))
        if not isinstance(exc, BackendError) or isinstance(
            exc, UnsupportedBackendError | SchemaMissingError
        ):
            raise exc
        if admitted is not None:
            return admitted  # the next empty lease meets the outage
        return self._outage_decisions(exc, [(self, key, cost)], True)[0]

    def _leased_hit(self, key: str, cost: int) -> Decision:
        if _SWITCH_KEY in _ENVIRON and _SWITCH.bypass():
            return self._switched_off()
        if cost > cast(Lease, self._lease).units:
            return self._relabel(self._shared_sync([(self, key, cost)], consume=True)[0])
        skey = self._storage_key(key)
        decision, action = self._lease_take(skey, cost, self.lease_clock())
        if action == _DONE:
            return cast(Decision, decision)
        while action == _WAIT:
            decision, action = self._wait_renewal(skey, cost)
        plan = self._renewal(skey, cost, decision, action)
        try:
            check = next(plan)
            while True:
                check = plan.send(self._sync_store().decide([check], True, self._now)[0])
        except StopIteration as done:
            return cast(Decision, done.value)
        except BaseException as exc:  # noqa: BLE001 - re-raised there unless an outage
            return self._renewal_failed(exc, key, cost, decision)

    async def _leased_ahit(self, key: str, cost: int) -> Decision:
        if _SWITCH_KEY in _ENVIRON and _SWITCH.bypass():
            return self._switched_off()
        if cost > cast(Lease, self._lease).units:
            return self._relabel((await self._shared_async([(self, key, cost)], consume=True))[0])
        skey = self._storage_key(key)
        decision, action = self._lease_take(skey, cost, self.lease_clock())
        if action == _DONE:
            return cast(Decision, decision)
        while action == _WAIT:
            decision, action = await self._await_renewal(skey, cost)
        plan = self._renewal(skey, cost, decision, action)
        try:
            check = next(plan)
            while True:
                check = plan.send((await self._sync_store().adecide([check], True, self._now))[0])
        except StopIteration as done:
            return cast(Decision, done.value)
        except BaseException as exc:  # noqa: BLE001 - re-raised there unless an outage
            return self._renewal_failed(exc, key, cost, decision)

    def _sync_store(self) -> Store:
        assert self._store is not None
        return self._store

    def _shared_sync(self, items: Sequence[_Item], *, consume: bool) -> list[Decision]:
        if _SWITCH.bypass():
            return [lim._switched_off() for lim, _, _ in items]  # no store round trip
        checks = [lim._check(key, cost) for lim, key, cost in items]
        try:
            decisions = self._sync_store().decide(checks, consume, self._now)
        except BackendError as exc:
            return self._outage_decisions(exc, items, consume)
        if self._outage:
            self._recovered()
        return decisions

    async def _shared_async(self, items: Sequence[_Item], *, consume: bool) -> list[Decision]:
        if _SWITCH.bypass():
            return [lim._switched_off() for lim, _, _ in items]  # no store round trip
        if len(items) == 1:  # one hit: the common case, without a comprehension
            lim, key, cost = items[0]
            checks = [lim._check(key, cost)]
        else:
            checks = [lim._check(key, cost) for lim, key, cost in items]
        try:
            decisions = await self._sync_store().adecide(checks, consume, self._now)
        except BackendError as exc:
            return self._outage_decisions(exc, items, consume)
        if self._outage:
            self._recovered()
        return decisions

    def _outage_decisions(
        self, exc: BackendError, items: Sequence[_Item], consume: bool
    ) -> list[Decision]:
        """Each limiter's ``on_backend_error`` (or fallback limiter) decides its check.

        A misuse (a store kind that cannot serve, tables never created) is not an
        outage: it is raised, whatever the policy.
        """
        if isinstance(exc, UnsupportedBackendError | SchemaMissingError) or any(
            lim._fallback is None and lim._on_backend_error == "raise" for lim, _, _ in items
        ):
            raise exc
        if not self._outage:
            self._outage = True
            _logger.warning(
                "ratelimit.backend_unavailable",
                backend=self._sync_store().kind,
                error=type(exc).__name__,
                policy="fallback" if self._fallback else self._on_backend_error,
            )
        return [lim._outage_decision(key, cost, consume) for lim, key, cost in items]

    def _switched_off(self) -> Decision:
        """What every decision is while ``ENABLE_RATE_LIMIT`` switches limiters off."""
        limit = self._limit
        return Decision(True, limit, limit, 0.0, 0.0)

    def _outage_decision(self, key: str, cost: int, consume: bool) -> Decision:
        fallback = self._fallback
        if fallback is not None:
            return fallback.hit(key, cost) if consume else fallback.peek(key, cost)
        limit = self._limit
        if self._on_backend_error == "allow":
            return Decision(True, limit, limit - cost, 0.0, 0.0)
        return Decision(False, limit, 0, OUTAGE_RETRY_AFTER, OUTAGE_RETRY_AFTER)

    def _recovered(self) -> None:
        self._outage = False
        _logger.info("ratelimit.backend_recovered", backend=self._sync_store().kind)


_Item = tuple[RateLimiter, str, int]


def _pairs(pairs: Iterable[tuple[RateLimiter, str]], cost: int) -> list[tuple[RateLimiter, str]]:
    items = list(pairs)
    if not items:
        raise ValidationError("limits", "must name at least one (limiter, key) pair")
    for limiter, key in items:
        if not isinstance(limiter, RateLimiter):
            raise ValidationError("limits", "must be (RateLimiter, key) pairs")
        _check_key(key)
        _check_cost(cost, limiter._limit)
    first = items[0][0]
    if first._store is not None and any(lim._backend is not first._backend for lim, _ in items):
        raise ValidationError("limits", "must all use the same backend")
    if first._store is None and any(lim._store is not None for lim, _ in items):
        raise ValidationError("limits", "must all use the same backend")
    return items


def _memory_hit_all(items: Sequence[tuple[RateLimiter, str]], cost: int) -> Decision:
    tables = {id(lim._table): cast(MemoryTable, lim._table) for lim, _ in items}
    checks = [
        (
            lim._algorithm,
            (id(lim._table), memory_key(key)),
            lim._limit,
            lim._period,
            cost,
            lim._now(),
        )
        for lim, key in items
    ]

    def load(ref: Hashable) -> Any:
        table_id, key = cast(tuple[int, str], ref)
        return tables[table_id].data.get(key)

    with ExitStack() as stack:
        # A fixed lock order, so two hit_all calls over the same tables cannot deadlock.
        for table_id in sorted(tables):
            stack.enter_context(tables[table_id].lock)
        decisions, states = decide_all(checks, load)
        if all(d.allowed for d in decisions):
            for ref, state in states.items():
                table_id, key = cast(tuple[int, str], ref)
                tables[table_id].data[key] = state
            now = checks[0][5]
            for table in tables.values():
                if len(table.data) > table.sweep_at:
                    table.sweep(now)
            return binding(decisions)
    if _SWITCH.bypass():
        return binding([lim._switched_off() for lim, _ in items])
    return binding(decisions)


def hit_all(pairs: Iterable[tuple[RateLimiter, str]], *, cost: int = 1) -> Decision:
    """Take ``cost`` from every ``(limiter, key)`` or from none, in one step; returns
    the binding decision (the refusal with the longest wait, else the tightest
    admission). Memory, SQLite and Redis (one script call); use ``ahit_all`` for
    PostgreSQL."""
    items = _pairs(pairs, cost)
    first = items[0][0]
    if first._store is None:
        return _memory_hit_all(items, cost)
    shared = [(lim, key, cost) for lim, key in items]
    decisions = first._shared_sync(shared, consume=True)
    return binding([lim._relabel(d) for (lim, _), d in zip(items, decisions, strict=True)])


async def ahit_all(pairs: Iterable[tuple[RateLimiter, str]], *, cost: int = 1) -> Decision:
    """Async twin of ``hit_all``: one round trip on Redis and PostgreSQL."""
    items = _pairs(pairs, cost)
    first = items[0][0]
    if first._store is None:
        return _memory_hit_all(items, cost)
    shared = [(lim, key, cost) for lim, key in items]
    decisions = await first._shared_async(shared, consume=True)
    return binding([lim._relabel(d) for (lim, _), d in zip(items, decisions, strict=True)])
