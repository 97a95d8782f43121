"""``CircuitBreaker``: sync and async call wrappers over one in-process ``BreakerMachine``,
and ``BreakerRegistry``, which finds breakers by name.

This module owns the clock reads, the lock and the listeners; every decision
comes from ``_core`` (an open circuit's refusals from
``BreakerMachine.open_rejection``). The lock guards the machine for a few
microseconds at a time and is never held while the protected call runs, so
calls through one breaker proceed in parallel. A breaker given a backend that
shares circuits across a fleet is built as ``SharedCircuitBreaker`` (``_shared``)
instead: the strategy is picked once, at construction, never per call.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal, ParamSpec, Self, TypeVar

import attrs

from buttress._checks import check_seconds
from buttress._exceptions import ValidationError
from buttress._guard import CallGuard
from buttress._seam import resolve_store
from buttress._topic import Topic
from buttress.breaker._core import BreakerMachine
from buttress.breaker._store import BREAKER_STORES
from buttress.breaker._values import (
    BreakerConfig,
    BreakerState,
    BreakerStats,
    CallEvent,
    CallIgnored,
    CallListener,
    CircuitOpenError,
    Outcome,
    Permit,
    Rejected,
    StateChange,
    StateListener,
    Transition,
    call_failed,
    call_rejected,
    call_succeeded,
    wall_time,
)
from buttress.clock import SYSTEM_CLOCK, Clock, SystemClock
from buttress.log import get_logger
from buttress.switches import CIRCUIT_BREAKER as _SWITCH
from buttress.switches import ENVIRON as _ENVIRON

if TYPE_CHECKING:
    from buttress.policies import Guard, Pipeline


__all__ = [
    "BREAKER_CREATED",
    "STORE_ERROR_POLICIES",
    "BreakerRegistry",
    "BreakerStats",
    "CircuitBreaker",
    "StoreErrorPolicy",
    "breakers",
]

P = ParamSpec("P")
R = TypeVar("R")

StoreErrorPolicy = Literal["local", "open", "closed"]
"""What a shared breaker does while its store is unreachable (docs/breaker.md)."""
STORE_ERROR_POLICIES: tuple[StoreErrorPolicy, ...] = ("local", "open", "closed")


@attrs.frozen(slots=True)
class SharingOptions:
    """How a breaker that shares its circuit uses the store (``CircuitBreaker``'s options)."""

    sync_interval: float
    on_store_error: StoreErrorPolicy
    store_timeout: float


_CLOSED = BreakerState.CLOSED
_OPEN = BreakerState.OPEN
_SUCCESS = Outcome.SUCCESS
_FAILURE = Outcome.FAILURE
_IGNORED = Outcome.IGNORED
_SWITCH_KEY = _SWITCH.key  # not in _ENVIRON: breakers not switched off
_DEFAULT_REGISTRY: Any = object()
logger = get_logger("breaker")


class _Frame:
    """One ``with breaker:`` block in progress (a linked stack per context)."""

    __slots__ = ("permit", "previous", "start")

    def __init__(self, permit: object, start: float | None, previous: _Frame | None) -> None:
        self.permit = permit
        self.start = start
        self.previous = previous


class CircuitBreaker(CallGuard):
    """Stops calling a failing dependency, fails fast, and probes for recovery.

    >>> breaker = CircuitBreaker("payments", failure_threshold=3, recovery_timeout=10)
    >>> breaker.call(lambda: 42)
    42

    Use it as ``breaker.call(fn, ...)``, ``await breaker.acall(fn, ...)``, a
    decorator on sync or async functions, or ``with``/``async with`` around a
    block. ``execute``/``aexecute`` return a ``Result`` instead of raising.
    """

    __slots__ = (
        "__weakref__",
        "_call_listeners",
        "_clock",
        "_frames",
        "_lock",
        "_log",
        "_machine",
        "_now",
        "_simple",
        "_state_listeners",
        "_timed",
        "config",
        "name",
    )

    _shared_strategy: ClassVar[type[CircuitBreaker] | None] = None
    """``SharedCircuitBreaker``, which registers itself here when ``_shared`` loads."""

    def __new__(cls, *args: Any, backend: object | None = None, **kwargs: Any) -> Self:
        # The strategy is picked here, once: a backend that shares circuits gets the
        # shared subclass; memory (or no backend) keeps the circuit in this process.
        shared = CircuitBreaker._shared_strategy
        if (
            cls is CircuitBreaker
            and backend is not None
            and shared is not None
            and resolve_store(backend, BREAKER_STORES) is not None
        ):
            return super().__new__(shared)  # type: ignore[return-value]  # a subclass of cls
        return super().__new__(cls)

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int | None = 5,
        recovery_timeout: float = 30.0,
        half_open_max_calls: int = 1,
        exclude: Iterable[type[BaseException]] | type[BaseException] = (),
        clock: Clock = SYSTEM_CLOCK,
        backend: object | None = None,
        probe_timeout: float = 60.0,
        failure_rate_threshold: float | None = None,
        window_size: int | None = None,
        window_duration: float | None = None,
        minimum_calls: int | None = None,
        slow_call_threshold: float | None = None,
        failure_on_exception: Callable[[BaseException], bool] | None = None,
        failure_on_result: Callable[[Any], bool] | None = None,
        registry: BreakerRegistry | None = _DEFAULT_REGISTRY,
        sync_interval: float = 1.0,
        on_store_error: StoreErrorPolicy = "local",
        store_timeout: float = 1.0,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ValidationError("name", "must be a non-empty string")
        if not isinstance(clock, Clock):
            raise ValidationError("clock", "must provide monotonic(), now() and sleep()")
        self.name = name
        self.config = BreakerConfig(
            failure_threshold=failure_threshold,
            recovery_timeout=recovery_timeout,
            half_open_max_calls=half_open_max_calls,
            probe_timeout=probe_timeout,
            failure_rate_threshold=failure_rate_threshold,
            window_size=window_size,
            window_duration=window_duration,
            minimum_calls=minimum_calls,
            slow_call_threshold=slow_call_threshold,
            exclude=exclude,
            failure_on_exception=failure_on_exception,
            failure_on_result=failure_on_result,
        )
        self._clock = clock
        # The system clock's method is a Python-level hop; the builtin is cheaper.
        self._now: Callable[[], float] = (
            time.monotonic if type(clock) is SystemClock else clock.monotonic
        )
        self._machine = BreakerMachine(self.config)
        self._lock = threading.Lock()
        self._state_listeners: tuple[StateListener, ...] = ()
        self._call_listeners: tuple[CallListener, ...] = ()
        self._frames: contextvars.ContextVar[_Frame | None] = contextvars.ContextVar(
            f"buttress.breaker.{name}", default=None
        )
        self._log = logger.bind(breaker=name)
        # Checked for every breaker, so a mistake shows before a backend is added.
        interval = check_seconds("sync_interval", sync_interval)
        store_wait = check_seconds("store_timeout", store_timeout)
        if on_store_error not in STORE_ERROR_POLICIES:
            raise ValidationError("on_store_error", "must be one of 'local', 'open', 'closed'")
        self._attach(backend, SharingOptions(interval, on_store_error, store_wait))
        self._simple = False
        self._timed = False
        self._refresh_modes()
        if registry is _DEFAULT_REGISTRY:
            registry = breakers
        if registry is not None:
            if not isinstance(registry, BreakerRegistry):
                raise ValidationError("registry", "must be a BreakerRegistry or None")
            registry.register(self)
        if BREAKER_CREATED.listeners:
            # Metrics adapters attach their listeners here; calls never publish on the bus.
            BREAKER_CREATED.publish(self)

    def _attach(self, backend: object | None, sharing: SharingOptions) -> None:
        """Where the shared strategy connects to its store; in process there is nothing to do."""
        return

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self.state.value})"

    # -- reading the state ------------------------------------------------

    @property
    def state(self) -> BreakerState:
        """The current state; reads HALF_OPEN as soon as the recovery timeout has passed."""
        machine = self._machine
        if machine.closed_permit is not None:
            return _CLOSED
        return machine.state_at(self._now())

    def stats(self) -> BreakerStats:
        """A consistent snapshot of the state and counters."""
        now = self._now()
        with self._lock:
            m = self._machine
            state = m.state_at(now)
            window_calls, window_failures = m.window_totals(now)
            streak, opened_at, probes = m.consecutive_failures, m.opened_at, len(m.probes)
        return self._stats(now, state, streak, opened_at, probes, window_calls, window_failures)

    def _stats(
        self,
        now: float,
        state: BreakerState,
        streak: int,
        opened_at: float | None,
        probes: int,
        window_calls: int,
        window_failures: int,
        *,
        store_available: bool | None = None,
    ) -> BreakerStats:
        m = self._machine
        failure_count, success_count = m.failure_count, m.success_count
        rejected_count, last_failure_at = m.rejected_count, m.last_failure_at
        wall = self._clock.now()
        return BreakerStats(
            name=self.name,
            state=state,
            failure_count=failure_count,
            success_count=success_count,
            consecutive_failures=streak,
            rejected_count=rejected_count,
            last_failure_at=wall_time(wall, now, last_failure_at),
            opened_at=wall_time(wall, now, opened_at) if state is not _CLOSED else None,
            probes_in_flight=probes,
            window_calls=window_calls,
            window_failures=window_failures,
            shared=store_available is not None,
            store_available=store_available,
        )

    # -- operator controls ------------------------------------------------

    def reset(self) -> None:
        """Close the circuit and clear the failure history (cumulative counters stay)."""
        now = self._now()
        with self._lock:
            transition = self._machine.reset(now)
        if transition is not None:
            self._announce(transition)

    def force_open(self) -> None:
        """Open the circuit and keep it open, rejecting every call, until ``reset()``."""
        now = self._now()
        with self._lock:
            transition = self._machine.force_open(now)
        if transition is not None:
            self._announce(transition)

    async def areset(self) -> None:
        """``reset()`` that also works on a shared breaker (closing it fleet-wide)."""
        self.reset()

    async def aforce_open(self) -> None:
        """``force_open()`` that also works on a shared breaker (opening it fleet-wide)."""
        self.force_open()

    # -- listeners --------------------------------------------------------

    def on_state_change(self, callback: StateListener) -> StateListener:
        """Call ``callback(StateChange)`` after every transition; usable as a decorator."""
        if not callable(callback):
            raise ValidationError("callback", "must be callable")
        self._state_listeners = (*self._state_listeners, callback)
        return callback

    def on_call(self, callback: CallListener) -> CallListener:
        """Call ``callback(event)`` for every success, failure, ignored call and rejection.

        Events carry durations, for metrics. Registering one makes every call
        read the clock twice, so the closed path costs a little more.
        """
        if not callable(callback):
            raise ValidationError("callback", "must be callable")
        self._call_listeners = (*self._call_listeners, callback)
        self._refresh_modes()
        return callback

    def remove_listener(self, callback: StateListener | CallListener) -> None:
        """Forget ``callback`` (registered with either ``on_*`` method); unknown is a no-op."""
        self._state_listeners = tuple(c for c in self._state_listeners if c is not callback)
        self._call_listeners = tuple(c for c in self._call_listeners if c is not callback)
        self._refresh_modes()

    # -- calling ----------------------------------------------------------

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn(*args, **kwargs)`` through the breaker; raises ``CircuitOpenError`` if open."""
        # The decorator's wrappers in __call__ repeat this body, to save a frame per call.
        machine = self._machine
        permit = machine.closed_permit
        if permit is None or not self._simple:
            if permit is None:
                # The open hot path: no _admit frame, nothing built but the error.
                retry_after = machine.open_rejection(self._now)
                if retry_after >= 0.0:
                    if _SWITCH_KEY in _ENVIRON and self._pass_through():
                        return fn(*args, **kwargs)
                    if self._call_listeners:
                        raise self._refusal(retry_after)
                    raise CircuitOpenError(self.name, retry_after)
            # Closed but watched (listeners, window...): the permit is already in hand.
            admitted = permit if permit is not None else self._admit()
            if type(admitted) is not Permit:
                if admitted is None:  # refused, but breakers are switched off
                    return fn(*args, **kwargs)
                assert type(admitted) is CircuitOpenError
                raise admitted
            assert type(admitted) is Permit
            return self._run_admitted(admitted, fn, args, kwargs)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._finish_error(permit, exc, None)
            raise
        if machine.consecutive_failures or permit is not machine.closed_permit:
            self._finish(permit, _SUCCESS, None, None)
        else:
            # Lock-free on purpose: a lost update could only undercount a statistic.
            machine.success_count += 1
        return result

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn(*args, **kwargs)`` through the breaker; cancellation counts as neither."""
        machine = self._machine
        permit = machine.closed_permit
        if permit is None or not self._simple:
            if permit is None:
                # The open hot path: no _admit frame, nothing built but the error.
                retry_after = machine.open_rejection(self._now)
                if retry_after >= 0.0:
                    if _SWITCH_KEY in _ENVIRON and self._pass_through():
                        return await fn(*args, **kwargs)
                    if self._call_listeners:
                        raise self._refusal(retry_after)
                    raise CircuitOpenError(self.name, retry_after)
            # Closed but watched (listeners, window...): the permit is already in hand.
            admitted = permit if permit is not None else self._admit()
            if type(admitted) is not Permit:
                if admitted is None:  # refused, but breakers are switched off
                    return await fn(*args, **kwargs)
                assert type(admitted) is CircuitOpenError
                raise admitted
            assert type(admitted) is Permit
            return await self._arun_admitted(admitted, fn, args, kwargs)
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self._finish_error(permit, exc, None)
            raise
        if machine.consecutive_failures or permit is not machine.closed_permit:
            self._finish(permit, _SUCCESS, None, None)
        else:
            machine.success_count += 1
        return result

    def _decorate(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        # CallGuard's wrappers with call/acall inlined: one frame less per call.
        machine = self._machine
        finish, finish_error = self._finish, self._finish_error
        admit, refusal, now_fn = self._admit, self._refusal, self._now
        open_rejection, name = machine.open_rejection, self.name
        if inspect.iscoroutinefunction(fn):
            arun_admitted = self._arun_admitted

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                # ``acall`` inlined: one coroutine less per call, one frame less per refusal.
                permit = machine.closed_permit
                if permit is None or not self._simple:
                    if permit is None:
                        retry_after = open_rejection(now_fn)
                        if retry_after >= 0.0:
                            if _SWITCH_KEY in _ENVIRON and self._pass_through():
                                return await fn(*args, **kwargs)
                            if self._call_listeners:
                                raise refusal(retry_after)
                            raise CircuitOpenError(name, retry_after)
                    admitted = permit if permit is not None else admit()
                    if type(admitted) is not Permit:
                        if admitted is None:
                            return await fn(*args, **kwargs)
                        assert type(admitted) is CircuitOpenError
                        raise admitted
                    assert type(admitted) is Permit
                    return await arun_admitted(admitted, fn, args, kwargs)
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as exc:
                    finish_error(permit, exc, None)
                    raise
                if machine.consecutive_failures or permit is not machine.closed_permit:
                    finish(permit, _SUCCESS, None, None)
                else:
                    machine.success_count += 1
                return result

            return async_wrapper
        run_admitted = self._run_admitted

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            # ``call`` inlined: one frame less per call and per refusal.
            permit = machine.closed_permit
            if permit is None or not self._simple:
                if permit is None:
                    retry_after = open_rejection(now_fn)
                    if retry_after >= 0.0:
                        if _SWITCH_KEY in _ENVIRON and self._pass_through():
                            return fn(*args, **kwargs)
                        if self._call_listeners:
                            raise refusal(retry_after)
                        raise CircuitOpenError(name, retry_after)
                admitted = permit if permit is not None else admit()
                if type(admitted) is not Permit:
                    if admitted is None:
                        return fn(*args, **kwargs)
                    assert type(admitted) is CircuitOpenError
                    raise admitted
                assert type(admitted) is Permit
                return run_admitted(admitted, fn, args, kwargs)
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                finish_error(permit, exc, None)
                raise
            if machine.consecutive_failures or permit is not machine.closed_permit:
                finish(permit, _SUCCESS, None, None)
            else:
                machine.success_count += 1
            return result

        return wrapper

    def __rshift__(self, inner: Guard) -> Pipeline:
        """``breaker >> policy``: the breaker wraps ``policy``, which wraps the call."""
        from buttress.policies import Pipeline

        return Pipeline([self, inner])

    def __enter__(self) -> CircuitBreaker:
        permit = self._admit()
        if type(permit) is CircuitOpenError:
            raise permit
        # A switched-off refusal (None) enters an unrecorded block.
        self._push_frame(permit, self._now() if self._timed else None)
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        frame = self._pop_frame()
        if frame is None or (frame.permit is not None and type(frame.permit) is not Permit):
            raise RuntimeError("CircuitBreaker.__exit__ without a matching __enter__")
        if frame.permit is None:
            return  # the block ran with breakers switched off: not recorded
        if exc is None:
            self._finish(frame.permit, _SUCCESS, frame.start, None)
        else:
            self._finish_error(frame.permit, exc, frame.start)

    # The async block is the sync one, without a hop through AsyncContext's hooks:
    # in process there is nothing to await.
    async def __aenter__(self) -> CircuitBreaker:
        return self.__enter__()

    async def __aexit__(self, *exc_info: Any) -> None:
        self.__exit__(*exc_info)

    # -- internals --------------------------------------------------------

    def _push_frame(self, permit: object, start: float | None) -> None:
        self._frames.set(_Frame(permit, start, self._frames.get()))

    def _pop_frame(self) -> _Frame | None:
        frame = self._frames.get()
        if frame is not None:
            self._frames.set(frame.previous)
        return frame

    def _refresh_modes(self) -> None:
        config = self.config
        self._timed = config.slow_call_threshold is not None or bool(self._call_listeners)
        self._simple = (
            not self._timed
            and config.failure_rate_threshold is None
            and config.failure_on_result is None
        )

    def _admit(self) -> Permit | CircuitOpenError | None:
        # Returns the refusal rather than raising it, so that it is raised from the
        # public method's frame: a traceback one frame shorter is measurably cheaper.
        # None: refused, but breakers are switched off (run the call unrecorded).
        machine = self._machine
        permit = machine.closed_permit
        if permit is not None:
            return permit
        retry_after = machine.open_rejection(self._now)  # lock-free: the common case while open
        if retry_after >= 0.0:
            return None if self._pass_through() else self._refusal(retry_after)
        now = self._now()
        with self._lock:
            decision = machine.admit(now)
        if decision.transition is not None:
            self._announce(decision.transition)
        if isinstance(decision, Rejected):
            return None if self._pass_through() else self._refusal(decision.retry_after)
        return decision.permit

    def _pass_through(self) -> bool:
        """Breakers are switched off: the refusal the machine just counted is not made."""
        if _SWITCH.bypass():
            self._machine.rejected_count -= 1
            return True
        return False

    def _refusal(self, retry_after: float) -> CircuitOpenError:
        if self._call_listeners:
            self._emit(call_rejected(self.name, retry_after))
        return CircuitOpenError(self.name, retry_after)

    def _run_admitted(
        self, permit: Permit, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> R:
        start = self._now() if self._timed else None
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._finish_error(permit, exc, start)
            raise
        predicate = self.config.failure_on_result
        outcome = _SUCCESS if predicate is None else self._result_outcome(result)
        self._finish(permit, outcome, start, None)
        return result

    async def _arun_admitted(
        self,
        permit: Permit,
        fn: Callable[..., Awaitable[R]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> R:
        start = self._now() if self._timed else None
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self._finish_error(permit, exc, start)
            raise
        predicate = self.config.failure_on_result
        outcome = _SUCCESS if predicate is None else self._result_outcome(result)
        self._finish(permit, outcome, start, None)
        return result

    def _result_outcome(self, result: object) -> Outcome:
        predicate = self.config.failure_on_result
        if predicate is None:
            return _SUCCESS
        try:
            failed = predicate(result)
        except Exception:  # noqa: BLE001  (a broken predicate must not break the call)
            self._log.exception("breaker.result_predicate_failed")
            failed = True
        return _FAILURE if failed else _SUCCESS

    def _finish_error(self, permit: Permit, exc: BaseException, start: float | None) -> None:
        self._finish(permit, self._classify(exc), start, exc)

    def _classify(self, exc: BaseException) -> Outcome:
        config = self.config
        if config.exclude and isinstance(exc, config.exclude):
            return _SUCCESS
        if not isinstance(exc, Exception):
            return _IGNORED
        predicate = config.failure_on_exception
        if predicate is None:
            return _FAILURE
        try:
            return _FAILURE if predicate(exc) else _SUCCESS
        except Exception:  # noqa: BLE001  (a broken predicate must not mask the call's error)
            self._log.exception("breaker.exception_predicate_failed")
            return _FAILURE

    def _finish(
        self,
        permit: Permit,
        outcome: Outcome,
        start: float | None,
        error: BaseException | None,
    ) -> None:
        machine = self._machine
        now = self._now()
        duration = None
        if start is not None:
            duration = now - start
            if self.config.slow_call_threshold is not None:
                outcome = machine.classify_duration(outcome, duration)
        with self._lock:
            transition = machine.record(permit, outcome, now)
        if transition is not None:
            self._announce(transition)
        if self._call_listeners:
            self._emit_outcome(outcome, 0.0 if duration is None else duration, error)

    def _emit_outcome(self, outcome: Outcome, duration: float, error: BaseException | None) -> None:
        if not self._call_listeners:
            return
        event: CallEvent
        if outcome is _SUCCESS:
            event = call_succeeded(self.name, duration)
        elif outcome is _FAILURE:
            event = call_failed(self.name, duration, error)
        else:
            assert error is not None
            event = CallIgnored(self.name, duration, error)
        # _emit's loop, inlined: this runs on every watched call.
        for listener in self._call_listeners:
            try:
                listener(event)
            except Exception:  # noqa: BLE001  (a listener must never break the protected call)
                self._log.exception("breaker.listener_failed", listener=repr(listener))

    def _announce(self, transition: Transition) -> None:
        at = self._clock.now() - timedelta(seconds=max(0.0, self._now() - transition.at))
        change = StateChange(self.name, transition.old, transition.new, transition.event.value, at)
        log = self._log.warning if transition.new is _OPEN else self._log.info
        log(
            "breaker.state_changed",
            old=transition.old.value,
            new=transition.new.value,
            reason=transition.event.value,
        )
        for listener in self._state_listeners:
            try:
                listener(change)
            except Exception:  # noqa: BLE001  (a listener must never break the protected call)
                self._log.exception("breaker.listener_failed", listener=repr(listener))

    def _emit(self, event: CallEvent) -> None:
        for listener in self._call_listeners:
            try:
                listener(event)
            except Exception:  # noqa: BLE001  (a listener must never break the protected call)
                self._log.exception("breaker.listener_failed", listener=repr(listener))


BREAKER_CREATED: Topic[CircuitBreaker] = Topic("breaker.created")
"""Every new ``CircuitBreaker`` (registered or not), so adapters can attach listeners."""


class BreakerRegistry:
    """Breakers by name; the newest breaker built with a name wins the name."""

    def __init__(self) -> None:
        self._by_name: weakref.WeakValueDictionary[str, CircuitBreaker] = (
            weakref.WeakValueDictionary()
        )
        self._lock = threading.Lock()

    def register(self, breaker: CircuitBreaker) -> None:
        with self._lock:
            self._by_name[breaker.name] = breaker

    def unregister(self, name: str) -> None:
        with self._lock:
            self._by_name.pop(name, None)

    def get(self, name: str) -> CircuitBreaker:
        """The breaker called ``name``; ``ValidationError`` when there is none."""
        breaker = self._by_name.get(name)
        if breaker is None:
            raise ValidationError("name", f"no circuit breaker is registered as {name!r}")
        return breaker

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._by_name.keys())

    def stats(self) -> dict[str, BreakerStats]:
        """Every live breaker's ``stats()``, by name."""
        with self._lock:
            items = sorted(self._by_name.items())
        return {name: breaker.stats() for name, breaker in items}

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[CircuitBreaker]:
        with self._lock:
            items = sorted(self._by_name.items())
        return iter([breaker for _, breaker in items])

    def __len__(self) -> int:
        return len(self._by_name)

    def clear(self) -> None:
        with self._lock:
            self._by_name.clear()


breakers = BreakerRegistry()
"""The default registry every ``CircuitBreaker`` joins unless told otherwise."""
