"""What every resilience policy shares: call forms, decorator, Result variants, ``>>``.

A policy implements ``call`` and ``acall``; ``Policy`` derives the decorator,
``execute``/``aexecute`` and composition from them. ``Pipeline`` chains
policies (and circuit breakers) outermost first: ``a >> b >> c`` runs
``a(b(c(fn)))``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import Any, ParamSpec, Protocol, TypeVar, overload, runtime_checkable

from buttress._exceptions import ValidationError
from buttress.result import Err, Ok, Result

__all__ = ["Guard", "Pipeline", "Policy"]

P = ParamSpec("P")
R = TypeVar("R")


@runtime_checkable
class Guard(Protocol):
    """Anything that can run a call on the caller's behalf: a policy or a breaker."""

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R: ...

    async def acall(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R: ...


class Policy:
    """Base of retry, timeout, bulkhead, fallback and ``Pipeline``."""

    __slots__ = ()

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        raise NotImplementedError

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        raise NotImplementedError

    def execute(
        self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> Result[R, Exception]:
        """Like ``call`` but returns ``Ok(value)`` or ``Err(exception)``; never raises."""
        try:
            return Ok(self.call(fn, *args, **kwargs))
        except Exception as exc:  # noqa: BLE001  (execute's contract: never raise)
            return Err(exc)

    async def aexecute(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Result[R, Exception]:
        """Like ``acall`` but returns ``Ok(value)`` or ``Err(exception)``; never raises."""
        try:
            return Ok(await self.acall(fn, *args, **kwargs))
        except Exception as exc:  # noqa: BLE001  (aexecute's contract: never raise)
            return Err(exc)

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate a sync or async function with this policy."""
        return decorate(self, fn)

    def __rshift__(self, inner: Guard) -> Pipeline:
        """``outer >> inner``: ``outer`` wraps ``inner``, which wraps the call."""
        return Pipeline([self, inner])


def decorate(guard: Guard, fn: Callable[P, Any]) -> Callable[P, Any]:
    """Wrap ``fn`` so that every call goes through ``guard``."""
    if not callable(fn):
        raise ValidationError("fn", "must be callable")
    if inspect.iscoroutinefunction(fn):
        acall = guard.acall

        @functools.wraps(fn)
        async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            return await acall(fn, *args, **kwargs)

        return async_wrapper
    call = guard.call

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
        return call(fn, *args, **kwargs)

    return wrapper


class Pipeline(Policy):
    """Guards applied in order, the first outermost.

    ``Pipeline([retry(...), breaker, timeout(2.0)])`` (or the same with ``>>``)
    retries calls that go through the breaker, each attempt limited to 2 s:
    the breaker sees every attempt, and an open circuit stops the retries.
    """

    __slots__ = ("guards",)

    def __init__(self, guards: Iterable[Guard]) -> None:
        flat: list[Guard] = []
        for guard in guards:
            if isinstance(guard, Pipeline):
                flat.extend(guard.guards)
            elif isinstance(guard, Guard):
                flat.append(guard)
            else:
                raise ValidationError(
                    "guards", f"must provide call() and acall(), got {type(guard).__name__}"
                )
        if not flat:
            raise ValidationError("guards", "must name at least one policy")
        self.guards: Sequence[Guard] = tuple(flat)

    def __repr__(self) -> str:
        return " >> ".join(repr(guard) for guard in self.guards)

    def __rshift__(self, inner: Guard) -> Pipeline:
        return Pipeline([*self.guards, inner])

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        guards = self.guards

        def run(level: int) -> R:
            if level == len(guards):
                return fn(*args, **kwargs)
            return guards[level].call(run, level + 1)

        return run(0)

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        guards = self.guards

        async def run(level: int) -> R:
            if level == len(guards):
                return await fn(*args, **kwargs)
            return await guards[level].acall(run, level + 1)

        return await run(0)
