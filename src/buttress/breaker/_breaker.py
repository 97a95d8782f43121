"""``CircuitBreaker``: sync and async call wrappers over one ``BreakerMachine``.

This module owns the clock reads, the lock and the listeners; decisions come
from ``_state.py``. The lock guards the machine for a few microseconds at a
time and is never held while the protected call runs, so calls through one
breaker proceed in parallel.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from buttress._topic import Topic
from buttress.breaker._config import BreakerConfig
from buttress.breaker._errors import CircuitOpenError
from buttress.breaker._events import (
    CallEvent,
    CallIgnored,
    CallListener,
    StateChange,
    StateListener,
    call_failed,
    call_rejected,
    call_succeeded,
)
from buttress.breaker._log import logger
from buttress.breaker._registry import BreakerRegistry, breakers
from buttress.breaker._shared import SharedCircuit, SharedPermit, StoreErrorPolicy, attach
from buttress.breaker._state import (
    BreakerMachine,
    BreakerState,
    Outcome,
    Permit,
    Rejected,
    Transition,
)
from buttress.breaker._stats import BreakerStats, wall_time
from buttress.clock import SYSTEM_CLOCK, Clock, SystemClock
from buttress.errors import ValidationError
from buttress.policies._errors import SyncCallNotSupportedError
from buttress.result import Err, Ok, Result

if TYPE_CHECKING:
    from buttress.policies import Guard, Pipeline

__all__ = ["BREAKER_CREATED", "BreakerStats", "CircuitBreaker"]

P = ParamSpec("P")
R = TypeVar("R")

_CLOSED = BreakerState.CLOSED
_OPEN = BreakerState.OPEN
_SUCCESS = Outcome.SUCCESS
_FAILURE = Outcome.FAILURE
_IGNORED = Outcome.IGNORED
_DEFAULT_REGISTRY: Any = object()


class _Frame:
    """One ``with breaker:`` block in progress (a linked stack per context)."""

    __slots__ = ("permit", "previous", "start")

    def __init__(
        self, permit: Permit | SharedPermit, start: float | None, previous: _Frame | None
    ) -> None:
        self.permit = permit
        self.start = start
        self.previous = previous


class CircuitBreaker:
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
        "_shared",
        "_simple",
        "_state_listeners",
        "_timed",
        "config",
        "name",
    )

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
        self._shared: SharedCircuit | None = None
        if backend is not None:
            self._shared = attach(
                self,
                backend,
                sync_interval=sync_interval,
                on_store_error=on_store_error,
                store_timeout=store_timeout,
            )
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

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self.state.value})"

    # -- reading the state ------------------------------------------------

    @property
    def state(self) -> BreakerState:
        """The current state; reads HALF_OPEN as soon as the recovery timeout has passed."""
        if self._shared is not None:
            return self._shared.state_at(self._now())
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
            failure_count, success_count = m.failure_count, m.success_count
            rejected_count, last_failure_at = m.rejected_count, m.last_failure_at
            streak, opened_at, probes = m.consecutive_failures, m.opened_at, len(m.probes)
        shared = self._shared
        if shared is not None:
            state = shared.state_at(now)
            if shared.available:
                streak, opened_at, probes = shared.failures, shared.opened_at, 0
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
            shared=shared is not None,
            store_available=None if shared is None else shared.available,
        )

    # -- operator controls ------------------------------------------------

    def reset(self) -> None:
        """Close the circuit and clear the failure history (cumulative counters stay)."""
        if self._shared is not None:
            raise SyncCallNotSupportedError("a shared CircuitBreaker", "areset")
        now = self._now()
        with self._lock:
            transition = self._machine.reset(now)
        if transition is not None:
            self._announce(transition)

    def force_open(self) -> None:
        """Open the circuit and keep it open, rejecting every call, until ``reset()``."""
        if self._shared is not None:
            raise SyncCallNotSupportedError("a shared CircuitBreaker", "aforce_open")
        now = self._now()
        with self._lock:
            transition = self._machine.force_open(now)
        if transition is not None:
            self._announce(transition)

    async def areset(self) -> None:
        """``reset()`` that also works on a shared breaker (closing it fleet-wide)."""
        if self._shared is None:
            self.reset()
        else:
            await self._shared.step("reset")

    async def aforce_open(self) -> None:
        """``force_open()`` that also works on a shared breaker (opening it fleet-wide)."""
        if self._shared is None:
            self.force_open()
        else:
            await self._shared.step("force_open")

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
            if self._shared is not None:
                raise SyncCallNotSupportedError("a shared CircuitBreaker", "acall")
            if permit is None and machine.state is _OPEN:
                # The open hot path, inlined: no _admit frame, nothing built but the error.
                now = self._now()
                if now < machine.open_until:
                    machine.rejected_count += 1
                    retry_after = (
                        self.config.recovery_timeout if machine.forced else machine.open_until - now
                    )
                    if self._call_listeners:
                        raise self._refusal(retry_after)
                    raise CircuitOpenError(self.name, retry_after)
            # Closed but watched (listeners, window...): the permit is already in hand.
            admitted = permit if permit is not None else self._admit()
            if type(admitted) is CircuitOpenError:
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
            if self._shared is not None:
                return await self._acall_shared(self._shared, fn, args, kwargs)
            if permit is None and machine.state is _OPEN:
                # The open hot path, inlined: no _admit frame, nothing built but the error.
                now = self._now()
                if now < machine.open_until:
                    machine.rejected_count += 1
                    retry_after = (
                        self.config.recovery_timeout if machine.forced else machine.open_until - now
                    )
                    if self._call_listeners:
                        raise self._refusal(retry_after)
                    raise CircuitOpenError(self.name, retry_after)
            # Closed but watched (listeners, window...): the permit is already in hand.
            admitted = permit if permit is not None else self._admit()
            if type(admitted) is CircuitOpenError:
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

    def execute(
        self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> Result[R, Exception]:
        """Like ``call`` but never raises an ``Exception``: returns ``Ok`` or ``Err``.

        A refusal is ``Err(CircuitOpenError)``; the call's own error is ``Err(exc)``.
        """
        try:
            return Ok(self.call(fn, *args, **kwargs))
        except Exception as exc:  # noqa: BLE001  (the contract: execute never raises)
            return Err(exc)

    async def aexecute(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Result[R, Exception]:
        """Like ``acall`` but never raises an ``Exception``: returns ``Ok`` or ``Err``."""
        try:
            return Ok(await self.acall(fn, *args, **kwargs))
        except Exception as exc:  # noqa: BLE001  (the contract: aexecute never raises)
            return Err(exc)

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate a sync or async function so every call goes through the breaker."""
        if not callable(fn):
            raise ValidationError("fn", "must be callable")
        machine = self._machine
        finish, finish_error = self._finish, self._finish_error
        admit, refusal, now_fn = self._admit, self._refusal, self._now
        config, name = self.config, self.name
        if inspect.iscoroutinefunction(fn):
            aguarded, arun_admitted = self.acall, self._arun_admitted

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                # ``acall`` inlined: one coroutine less per call, one frame less per refusal.
                permit = machine.closed_permit
                if permit is None or not self._simple:
                    if self._shared is not None:
                        return await aguarded(fn, *args, **kwargs)
                    if permit is None and machine.state is _OPEN:
                        now = now_fn()
                        if now < machine.open_until:
                            machine.rejected_count += 1
                            retry_after = (
                                config.recovery_timeout
                                if machine.forced
                                else machine.open_until - now
                            )
                            if self._call_listeners:
                                raise refusal(retry_after)
                            raise CircuitOpenError(name, retry_after)
                    admitted = permit if permit is not None else admit()
                    if type(admitted) is CircuitOpenError:
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
        guarded, run_admitted = self.call, self._run_admitted

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            # ``call`` inlined: one frame less per call and per refusal.
            permit = machine.closed_permit
            if permit is None or not self._simple:
                if self._shared is not None:
                    return guarded(fn, *args, **kwargs)
                if permit is None and machine.state is _OPEN:
                    now = now_fn()
                    if now < machine.open_until:
                        machine.rejected_count += 1
                        retry_after = (
                            config.recovery_timeout if machine.forced else machine.open_until - now
                        )
                        if self._call_listeners:
                            raise refusal(retry_after)
                        raise CircuitOpenError(name, retry_after)
                admitted = permit if permit is not None else admit()
                if type(admitted) is CircuitOpenError:
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
        if self._shared is not None:
            raise SyncCallNotSupportedError("a shared CircuitBreaker", "__aenter__ (async with)")
        permit = self._admit()
        if type(permit) is CircuitOpenError:
            raise permit
        assert type(permit) is Permit
        start = self._now() if self._timed else None
        self._frames.set(_Frame(permit, start, self._frames.get()))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        frame = self._frames.get()
        if frame is None or not isinstance(frame.permit, Permit):
            raise RuntimeError("CircuitBreaker.__exit__ without a matching __enter__")
        self._frames.set(frame.previous)
        if exc is None:
            self._finish(frame.permit, _SUCCESS, frame.start, None)
        else:
            self._finish_error(frame.permit, exc, frame.start)

    async def __aenter__(self) -> CircuitBreaker:
        shared = self._shared
        if shared is None:
            return self.__enter__()
        admitted = await shared.admit()
        if isinstance(admitted, CircuitOpenError):
            raise admitted
        self._frames.set(_Frame(admitted, self._now(), self._frames.get()))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        shared = self._shared
        if shared is None:
            self.__exit__(exc_type, exc, tb)
            return
        frame = self._frames.get()
        if frame is None or not isinstance(frame.permit, SharedPermit):
            raise RuntimeError("CircuitBreaker.__aexit__ without a matching __aenter__")
        self._frames.set(frame.previous)
        assert frame.start is not None
        outcome = _SUCCESS if exc is None else self._classify(exc)
        await shared.finish(frame.permit, outcome, frame.start, exc)

    # -- internals --------------------------------------------------------

    def _refresh_modes(self) -> None:
        config = self.config
        self._timed = config.slow_call_threshold is not None or bool(self._call_listeners)
        self._simple = (
            not self._timed
            and config.failure_rate_threshold is None
            and config.failure_on_result is None
            and self._shared is None
        )

    def _admit(self) -> Permit | CircuitOpenError:
        # Returns the refusal rather than raising it, so that it is raised from the
        # public method's frame: a traceback one frame shorter is measurably cheaper.
        machine = self._machine
        permit = machine.closed_permit
        if permit is not None:
            return permit
        now = self._now()
        if machine.state is _OPEN and now < machine.open_until:
            # Lock-free rejection: the common case while open, and a statistic at worst.
            # Built inline rather than through _refusal(): this is the open hot path.
            machine.rejected_count += 1
            retry_after = (
                self.config.recovery_timeout if machine.forced else machine.open_until - now
            )
            if self._call_listeners:
                self._emit(call_rejected(self.name, retry_after))
            return CircuitOpenError(self.name, retry_after)
        with self._lock:
            decision = machine.admit(now)
        if decision.transition is not None:
            self._announce(decision.transition)
        if isinstance(decision, Rejected):
            return self._refusal(decision.retry_after)
        return decision.permit

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

    async def _acall_shared(
        self,
        shared: SharedCircuit,
        fn: Callable[..., Awaitable[R]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> R:
        admitted = await shared.admit()
        if isinstance(admitted, CircuitOpenError):
            raise admitted
        start = self._now()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            await shared.finish(admitted, self._classify(exc), start, exc)
            raise
        await shared.finish(admitted, self._result_outcome(result), start, None)
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
