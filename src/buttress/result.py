"""Explicit success and failure values: ``Ok``, ``Err`` and ``Result``.

``Result[T, E]`` is ``Ok[T] | Err[E]``; both are frozen, slotted and support
``match``. ``as_result`` turns listed exceptions of a function into ``Err``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import (
    Any,
    Generic,
    Literal,
    NoReturn,
    ParamSpec,
    Protocol,
    TypeAlias,
    TypeVar,
    overload,
)

from buttress._exceptions import ButtressError

__all__ = ["AsResultDecorator", "Err", "Ok", "Result", "UnwrapError", "as_result"]

T = TypeVar("T", covariant=True)
E = TypeVar("E", covariant=True)
U = TypeVar("U")
F = TypeVar("F")
D = TypeVar("D")
P = ParamSpec("P")
R = TypeVar("R")
X = TypeVar("X", bound=BaseException)


class UnwrapError(ButtressError):
    """Raised by ``Err.unwrap()`` / ``Ok.unwrap_err()``; ``.result`` is the offender."""

    def __init__(self, result: Ok[object] | Err[object], message: str) -> None:
        self.result = result
        super().__init__(message)


class Ok(Generic[T]):
    """A success carrying ``value``."""

    __slots__ = ("_value",)
    __match_args__ = ("value",)
    _value: T

    def __init__(self, value: T) -> None:
        object.__setattr__(self, "_value", value)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("Ok is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("Ok is immutable")

    @property
    def value(self) -> T:
        return self._value

    def __repr__(self) -> str:
        return f"Ok({self._value!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ok) and self._value == other._value

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash((Ok, self._value))

    def __reduce__(self) -> tuple[type[Ok[Any]], tuple[object]]:
        return (Ok, (self._value,))

    def is_ok(self) -> Literal[True]:
        return True

    def is_err(self) -> Literal[False]:
        return False

    def unwrap(self) -> T:
        return self._value

    def unwrap_err(self) -> NoReturn:
        raise UnwrapError(self, "called unwrap_err() on an Ok value")

    def unwrap_or(self, default: object) -> T:
        return self._value

    def unwrap_or_else(self, op: Callable[[Any], object]) -> T:
        return self._value

    def map(self, op: Callable[[T], U]) -> Ok[U]:
        return Ok(op(self._value))

    def map_err(self, op: Callable[[Any], object]) -> Ok[T]:
        return self

    def and_then(self, op: Callable[[T], Result[U, F]]) -> Result[U, F]:
        return op(self._value)

    def or_else(self, op: Callable[[Any], object]) -> Ok[T]:
        return self


class Err(Generic[E]):
    """A failure carrying ``error`` (often, but not necessarily, an exception)."""

    __slots__ = ("_error",)
    __match_args__ = ("error",)
    _error: E

    def __init__(self, error: E) -> None:
        object.__setattr__(self, "_error", error)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("Err is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("Err is immutable")

    @property
    def error(self) -> E:
        return self._error

    def __repr__(self) -> str:
        return f"Err({self._error!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Err) and self._error == other._error

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash((Err, self._error))

    def __reduce__(self) -> tuple[type[Err[Any]], tuple[object]]:
        return (Err, (self._error,))

    def is_ok(self) -> Literal[False]:
        return False

    def is_err(self) -> Literal[True]:
        return True

    def unwrap(self) -> NoReturn:
        if isinstance(self._error, BaseException):
            # Name the type only: exception messages (driver errors above all)
            # can carry DSNs or SQL, and the original is chained as the cause.
            kind = type(self._error).__qualname__
            raise UnwrapError(self, f"called unwrap() on an Err value: {kind}") from self._error
        raise UnwrapError(self, f"called unwrap() on an Err value: {self._error!r}")

    def unwrap_err(self) -> E:
        return self._error

    def unwrap_or(self, default: D) -> D:
        return default

    def unwrap_or_else(self, op: Callable[[E], D]) -> D:
        return op(self._error)

    def map(self, op: Callable[[Any], object]) -> Err[E]:
        return self

    def map_err(self, op: Callable[[E], F]) -> Err[F]:
        return Err(op(self._error))

    def and_then(self, op: Callable[[Any], object]) -> Err[E]:
        return self

    def or_else(self, op: Callable[[E], Result[U, F]]) -> Result[U, F]:
        return op(self._error)


Result: TypeAlias = Ok[T] | Err[E]
"""``Ok[T] | Err[E]``: narrow it with ``match`` or ``isinstance``."""

XC = TypeVar("XC", bound=BaseException, covariant=True)


class AsResultDecorator(Protocol[XC]):
    """What ``as_result(...)`` returns: wraps sync and async callables alike."""

    @overload
    def __call__(  # type: ignore[overload-overlap]  # coroutine functions match first, on purpose
        self, fn: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, Result[R, XC]]]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, Result[R, XC]]: ...


def as_result(*exception_types: type[X]) -> AsResultDecorator[X]:
    """Decorate a sync or async function so listed exceptions become ``Err(exc)``.

    Exceptions not listed propagate unchanged. At least one type is required.
    """
    if not exception_types:
        raise TypeError("as_result() needs at least one exception type")
    for exc_type in exception_types:
        if not (isinstance(exc_type, type) and issubclass(exc_type, BaseException)):
            raise TypeError(f"as_result(): {exc_type!r} is not an exception type")
    caught = tuple(exception_types)

    def decorator(fn: Callable[P, Any]) -> Callable[P, Any]:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                try:
                    return Ok(await fn(*args, **kwargs))
                except caught as exc:
                    return Err(exc)

            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            try:
                return Ok(fn(*args, **kwargs))
            except caught as exc:
                return Err(exc)

        return wrapper

    return decorator
