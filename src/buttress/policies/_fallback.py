"""``fallback``: answer with a value (or a computed one) when the call fails or is refused."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar, cast

from buttress._exceptions import ValidationError
from buttress.policies._base import ExceptionFilter, Policy, exception_matcher

__all__ = ["Fallback", "fallback"]

P = ParamSpec("P")
R = TypeVar("R")

_MISSING = object()

FallbackOn = ExceptionFilter


class Fallback(Policy):
    """Replace selected failures by a value (build it with ``fallback``).

    The value's type is the caller's promise: it should match what the
    protected function returns.
    """

    __slots__ = ("_factory", "_matches", "_value")

    def __init__(
        self,
        value: object = _MISSING,
        *,
        factory: Callable[[Exception], object] | None = None,
        on: FallbackOn = Exception,
    ) -> None:
        if (value is _MISSING) == (factory is None):
            raise ValidationError("value", "give exactly one of value= or factory=")
        if factory is not None and not callable(factory):
            raise ValidationError("factory", "must be callable")
        self._value = value
        self._factory = factory
        self._matches = exception_matcher("on", on)

    def __repr__(self) -> str:
        return "fallback(factory=...)" if self._factory is not None else "fallback(value=...)"

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn``; on a matching exception return the fallback instead."""
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if not self._matches(exc):
                raise
            substitute = self._substitute(exc)
            if self._factory is not None and inspect.isawaitable(substitute):
                if inspect.iscoroutine(substitute):
                    substitute.close()  # never awaited: close it rather than leak a warning
                raise ValidationError(
                    "factory", "returned an awaitable for a sync call; use acall"
                ) from exc
            return cast(R, substitute)

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn``; on a matching exception return (or await) the fallback instead."""
        try:
            return await fn(*args, **kwargs)
        except Exception as exc:
            if not self._matches(exc):
                raise
            substitute = self._substitute(exc)
            if self._factory is not None and inspect.isawaitable(substitute):
                substitute = await substitute
            return cast(R, substitute)

    def _substitute(self, exc: Exception) -> object:
        """The answer instead of ``exc``: the value, or what the factory makes of ``exc``."""
        return self._value if self._factory is None else self._factory(exc)


def fallback(
    value: object = _MISSING,
    *,
    factory: Callable[[Exception], object] | None = None,
    on: FallbackOn = Exception,
) -> Fallback:
    """On an exception matching ``on``, return ``value`` or ``factory(exc)`` instead.

    ``factory`` may be async when the policy wraps async calls. Put it outermost
    in a pipeline to also cover refusals (``CircuitOpenError``, ``BulkheadFullError``).
    """
    return Fallback(value, factory=factory, on=on)
