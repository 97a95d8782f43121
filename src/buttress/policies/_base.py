"""What every resilience policy shares: the ``Guard`` shape and composition with ``>>``.

A policy implements ``call`` and ``acall``; ``CallGuard`` derives the
decorator and ``execute``/``aexecute`` from them. ``Pipeline`` chains policies
(and circuit breakers) outermost first: ``a >> b >> c`` runs ``a(b(c(fn)))``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import ParamSpec, Protocol, TypeVar, cast, runtime_checkable

from buttress._exceptions import ValidationError
from buttress._guard import CallGuard

__all__ = ["ExceptionFilter", "Guard", "Pipeline", "Policy", "exception_matcher"]

P = ParamSpec("P")
R = TypeVar("R")

ExceptionFilter = (
    Callable[[BaseException], bool] | type[BaseException] | tuple[type[BaseException], ...]
)
"""Which exceptions a policy acts on: a type, a tuple of types, or a predicate."""


@runtime_checkable
class Guard(Protocol):
    """Anything that can run a call on the caller's behalf: a policy or a breaker."""

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R: ...

    async def acall(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R: ...


class Policy(CallGuard):
    """Base of retry, timeout, bulkhead, fallback and ``Pipeline``."""

    __slots__ = ()

    def __rshift__(self, inner: Guard) -> Pipeline:
        """``outer >> inner``: ``outer`` wraps ``inner``, which wraps the call."""
        return Pipeline([self, inner])


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


def exception_matcher(field: str, selector: ExceptionFilter) -> Callable[[BaseException], bool]:
    """``selector`` as a predicate; ``ValidationError`` naming ``field`` when it is not one."""
    if isinstance(selector, type) and issubclass(selector, BaseException):
        single = selector
        return lambda exc: isinstance(exc, single)
    if isinstance(selector, tuple):
        for item in selector:
            if not (isinstance(item, type) and issubclass(item, BaseException)):
                raise ValidationError(field, "must contain exception types only")
        types = selector
        return lambda exc: isinstance(exc, types)
    if callable(selector):
        return cast(Callable[[BaseException], bool], selector)
    raise ValidationError(field, "must be an exception type, a tuple of them, or a predicate")
