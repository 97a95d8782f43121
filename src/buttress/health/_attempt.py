"""The pieces one check execution is made of, shared by the registry's runs.

``Registered`` is a check with its options, ``Attempt`` one execution of it
(task, timer, waiting runs), ``Waiter`` one run waiting on several attempts;
``interpret`` turns what a check returned into a ``ComponentStatus``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeAlias, TypeVar

import attrs

from buttress._checks import check_seconds
from buttress.health.report import ComponentStatus
from buttress.health.status import Status

__all__ = [
    "Attempt",
    "Busy",
    "CheckResult",
    "HealthCheck",
    "Registered",
    "TimerGroup",
    "Waiter",
    "consume",
    "interpret",
    "is_async_callable",
    "seconds",
]

CheckResult: TypeAlias = ComponentStatus | bool | None
"""What a check returns: ``None``/``True`` healthy, ``False`` unhealthy, or a status."""

HealthCheck: TypeAlias = Callable[[], CheckResult | Awaitable[CheckResult]]
"""A sync or async callable taking no arguments."""


@attrs.frozen(slots=True)
class Registered:
    name: str
    fn: HealthCheck
    in_thread: bool
    timeout: float
    critical: bool
    groups: frozenset[str]
    success_ttl: float
    failure_ttl: float


class Waiter:
    """One run waiting for several attempts; a counter instead of a future per check."""

    __slots__ = ("future", "remaining")

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future
        self.remaining = 0

    def one_done(self) -> None:
        self.remaining -= 1
        if self.remaining == 0 and not self.future.done():
            self.future.set_result(None)


class TimerGroup:
    """One timer for all attempts a run starts with the same timeout.

    A timer per check would cost a heap entry and a cancellation each; checks
    that finish in time only count down here, and the last one cancels it.
    """

    __slots__ = ("handle", "pending")

    def __init__(self, pending: int) -> None:
        self.pending = pending
        self.handle: asyncio.TimerHandle | None = None

    def one_done(self) -> None:
        self.pending -= 1
        if self.pending == 0 and self.handle is not None:
            self.handle.cancel()


class Attempt:
    """One execution of one check, shared by every run that asks meanwhile."""

    __slots__ = ("loop", "reg", "started", "status", "task", "timers", "waiters")

    def __init__(self, reg: Registered, loop: asyncio.AbstractEventLoop, started: float) -> None:
        self.reg = reg
        self.loop = loop
        self.started = started
        self.status: ComponentStatus | None = None
        self.task: asyncio.Task[None] | None = None
        self.timers: TimerGroup | None = None
        self.waiters: list[Waiter] = []


def seconds(field: str, value: float, *, allow_zero: bool) -> float:
    return check_seconds(field, value, allow_zero=allow_zero)


def is_async_callable(fn: object) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - callable objects with async __call__
    return inspect.iscoroutinefunction(call)


_HEALTHY = ComponentStatus(Status.HEALTHY)


def interpret(outcome: object) -> ComponentStatus:
    if outcome is None or outcome is True:
        return _HEALTHY
    if outcome is False:
        return ComponentStatus(Status.UNHEALTHY, "check returned False")
    if isinstance(outcome, ComponentStatus):
        return outcome
    return ComponentStatus(
        Status.UNHEALTHY,
        f"check returned {type(outcome).__name__}; expected None, a bool or ComponentStatus",
    )


class Busy(Protocol):
    """The part of a future that tells whether a check's work has ended."""

    def done(self) -> bool: ...


T = TypeVar("T")


def consume(future: asyncio.Future[T]) -> None:
    # Work abandoned after a timeout may still fail later; reading its outcome
    # keeps asyncio from logging "exception was never retrieved".
    if not future.cancelled():
        future.exception()
