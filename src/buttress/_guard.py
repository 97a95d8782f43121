"""What every call guard derives from ``call`` and ``acall``: the decorator and ``execute``.

A guard (a resilience policy, a circuit breaker) runs calls on the caller's
behalf. ``CallGuard`` turns its two methods into ``@guard`` for sync and async
functions and the never-raising ``execute``/``aexecute``; ``routed`` is the
plain decorator, for guards that return something else (the error handler).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar, overload

from buttress._exceptions import ValidationError
from buttress.result import Err, Ok, Result

__all__ = ["CallGuard", "routed"]

P = ParamSpec("P")
R = TypeVar("R")


class CallGuard:
    """Base of the guards: subclasses implement ``call`` and ``acall``."""

    __slots__ = ()

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        raise NotImplementedError

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        raise NotImplementedError

    def execute(
        self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> Result[R, Exception]:
        """Like ``call`` but returns ``Ok(value)`` or ``Err(exception)``; never raises.

        A refusal (an open circuit, a full bulkhead) is an ``Err`` like the call's own error.
        """
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
        """Decorate a sync or async function so that every call goes through this guard."""
        if not callable(fn):
            raise ValidationError("fn", "must be callable")
        return self._decorate(fn)

    def _decorate(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        # A guard on a hot path overrides this to inline its call path in the wrappers.
        return routed(fn, self.call, self.acall)


def routed(
    fn: Callable[P, Any],
    call: Callable[..., Any],
    acall: Callable[..., Awaitable[Any]],
) -> Callable[P, Any]:
    """``fn`` wrapped so that each call goes through ``call`` (or ``acall`` if it is async)."""
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            return await acall(fn, *args, **kwargs)

        return async_wrapper

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
        return call(fn, *args, **kwargs)

    return wrapper
