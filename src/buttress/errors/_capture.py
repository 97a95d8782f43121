"""``capture`` and ``with_error_handling``: exceptions into logged ``Err(ContextualError)``."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar, overload

from buttress._exceptions import ValidationError
from buttress._guard import routed
from buttress.errors._classify import classify
from buttress.errors._taxonomy import (
    ContextualError,
    ErrorCategory,
    ErrorContext,
    Severity,
    _freeze_attributes,
)

if TYPE_CHECKING:
    from buttress.result import Err, Ok

P = ParamSpec("P")
R = TypeVar("R")


def _error_code(exc: BaseException) -> str | None:
    # Codes are safe to log (no values, no SQL): SQLSTATE, sqlite result
    # name, errno.
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate
    name = getattr(exc, "sqlite_errorname", None)
    if isinstance(name, str):
        return name
    if isinstance(exc, OSError) and exc.errno is not None:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    return None


def _qualified_name(exc_type: type[BaseException]) -> str:
    module = exc_type.__module__
    return exc_type.__qualname__ if module == "builtins" else f"{module}.{exc_type.__qualname__}"


_LOG_METHOD: Final = {
    Severity.LOW: "info",
    Severity.MEDIUM: "warning",
    Severity.HIGH: "error",
    Severity.CRITICAL: "critical",
}


def _build_context(
    context: ErrorContext | None,
    component: str | None,
    operation: str | None,
    attributes: Mapping[str, object] | None,
) -> ErrorContext:
    if context is not None and not isinstance(context, ErrorContext):
        raise ValidationError("context", "must be an ErrorContext")
    if context is None:
        return ErrorContext(
            component if component is not None else "unknown", operation, attributes
        )
    if component is None and operation is None and not attributes:
        return context
    return ErrorContext(
        component if component is not None else context.component,
        operation if operation is not None else context.operation,
        {**context.attributes, **_freeze_attributes(attributes)},
    )


E = TypeVar("E", ErrorCategory, Severity)


def _as_member(field: str, kind: type[E], value: E | str | None) -> E | None:
    """``value`` as a member of ``kind`` (given as the member or its value), or None."""
    if value is None or isinstance(value, kind):
        return value
    try:
        return kind(value)
    except ValueError:
        known = ", ".join(member.value for member in kind)
        raise ValidationError(field, f"must be one of {known}") from None


def _as_user_message(value: object) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ValidationError("user_message", "must be a non-empty string")
    return value


def capture(
    exc: BaseException,
    *,
    context: ErrorContext | None = None,
    component: str | None = None,
    operation: str | None = None,
    attributes: Mapping[str, object] | None = None,
    user_message: str | None = None,
    category: ErrorCategory | str | None = None,
    severity: Severity | str | None = None,
) -> Err[ContextualError]:
    """Classify ``exc``, wrap it in a ``ContextualError`` (cause = ``exc``), log it once.

    ``component``/``operation``/``attributes`` extend or override ``context``;
    ``category`` and ``severity`` replace what the classification found (the
    retryable verdict stays the classification's); ``user_message`` replaces
    the category's fixed text. An exception that already is a
    ``ContextualError`` (or an ``UnwrapError`` raised from one) is returned as
    is and not logged again.
    """
    from buttress.result import Err, UnwrapError

    if not isinstance(exc, BaseException):
        raise ValidationError("exc", "must be an exception instance")
    chosen_category = _as_member("category", ErrorCategory, category)
    chosen_severity = _as_member("severity", Severity, severity)
    user_message = _as_user_message(user_message)
    if isinstance(exc, ContextualError):
        return Err(exc)
    if isinstance(exc, UnwrapError) and isinstance(exc.__cause__, ContextualError):
        return Err(exc.__cause__)
    ctx = _build_context(context, component, operation, attributes)
    found = classify(exc)
    error = ContextualError(
        category=chosen_category or found.category,
        severity=chosen_severity or found.severity,
        retryable=found.retryable,
        context=ctx,
        user_message=user_message,
        error_type=_qualified_name(type(exc)),
        error_code=_error_code(exc),
    )
    error.__cause__ = exc
    _log_captured(error)
    if _LISTENERS:
        _notify(error)
    return Err(error)


CaptureListener = Callable[[ContextualError], None]

# A tuple swapped whole, so ``capture`` in any thread reads a consistent set
# without a lock; with no listener the hook costs one truth test.
_LISTENERS: tuple[CaptureListener, ...] = ()


def add_capture_listener(listener: CaptureListener) -> None:
    """Call ``listener(error)`` after each new capture (error statistics use this)."""
    global _LISTENERS
    if not callable(listener):
        raise ValidationError("listener", "must be callable")
    if listener not in _LISTENERS:
        _LISTENERS = (*_LISTENERS, listener)


def remove_capture_listener(listener: CaptureListener) -> None:
    """Stop calling ``listener``; a listener never added is ignored."""
    global _LISTENERS
    _LISTENERS = tuple(known for known in _LISTENERS if known != listener)


def _notify(error: ContextualError) -> None:
    # Counting an error must never turn the capture itself into a failure.
    for listener in _LISTENERS:
        with contextlib.suppress(Exception):
            listener(error)


def _log_captured(error: ContextualError) -> None:
    from buttress.log import get_logger

    # The exception's message is deliberately absent: driver messages carry
    # SQL text, row values and DSNs. Type, code and context locate the bug;
    # the message stays on ``__cause__`` for whoever handles the Err.
    logger = get_logger(error.context.component)
    log_method = getattr(logger, _LOG_METHOD[error.severity])
    log_method(
        "error_captured",
        operation=error.context.operation,
        category=error.category.value,
        severity=error.severity.value,
        retryable=error.retryable,
        error_type=error.error_type,
        error_code=error.error_code,
        attributes=dict(error.context.attributes),
    )


class ErrorHandler:
    """Turns exceptions of ``catch`` into ``Err(ContextualError)``: see ``with_error_handling``."""

    __slots__ = (
        "_attributes",
        "_catch",
        "_category",
        "_component",
        "_context",
        "_operation",
        "_severity",
        "_user_message",
    )

    def __init__(
        self,
        *,
        context: ErrorContext | None,
        component: str | None,
        operation: str | None,
        attributes: Mapping[str, object] | None,
        catch: tuple[type[Exception], ...],
        category: ErrorCategory | None = None,
        severity: Severity | None = None,
        user_message: str | None = None,
    ) -> None:
        self._context = context
        self._component = component
        self._operation = operation
        self._attributes = _freeze_attributes(attributes)
        self._catch = catch
        self._category = category
        self._severity = severity
        self._user_message = user_message

    def _capture(self, exc: BaseException, fn: Callable[..., object]) -> Err[ContextualError]:
        return capture(
            exc,
            context=self._context,
            component=self._component
            or (None if self._context else getattr(fn, "__module__", None)),
            operation=self._operation
            or (None if self._context and self._context.operation else _fn_name(fn)),
            attributes=self._attributes,
            category=self._category,
            severity=self._severity,
            user_message=self._user_message,
        )

    def call(
        self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> Ok[R] | Err[ContextualError]:
        """Call a sync ``fn`` now; ``Ok(return value)`` or ``Err(ContextualError)``."""
        from buttress.result import Ok

        try:
            return Ok(fn(*args, **kwargs))
        except self._catch as exc:
            return self._capture(exc, fn)

    async def acall(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Ok[R] | Err[ContextualError]:
        """Await an async ``fn`` now; ``Ok(result)`` or ``Err(ContextualError)``."""
        from buttress.result import Ok

        try:
            return Ok(await fn(*args, **kwargs))
        except self._catch as exc:
            return self._capture(exc, fn)

    @overload
    def __call__(  # type: ignore[overload-overlap]  # coroutine functions match first, on purpose
        self, fn: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, Ok[R] | Err[ContextualError]]]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, Ok[R] | Err[ContextualError]]: ...
    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        if not callable(fn):
            raise ValidationError("fn", "must be callable")
        return routed(fn, self.call, self.acall)


def _fn_name(fn: Callable[..., object]) -> str | None:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return name if isinstance(name, str) and name else None


def with_error_handling(
    *,
    context: ErrorContext | None = None,
    component: str | None = None,
    operation: str | None = None,
    attributes: Mapping[str, object] | None = None,
    catch: tuple[type[Exception], ...] = (Exception,),
    category: ErrorCategory | str | None = None,
    severity: Severity | str | None = None,
    user_message: str | None = None,
) -> ErrorHandler:
    """Decorator (sync or async) and caller whose failures become ``Err(ContextualError)``.

    ``@with_error_handling(component="billing")`` on ``def f(...) -> T`` gives
    ``f(...) -> Result[T, ContextualError]`` (awaitable for ``async def``);
    ``.call(fn, ...)`` / ``await .acall(fn, ...)`` run a function once.
    Component and operation default to the function's module and qualified
    name. Exceptions outside ``catch`` (and BaseExceptions such as
    cancellation) propagate. ``category``, ``severity`` and ``user_message``
    declare what a failure of this operation means, replacing the automatic
    classification's category and severity and the category's fixed user
    text (``@with_error_handling(category="business_logic", severity="low",
    user_message="That coupon has expired.")``).
    """
    given: object = catch  # checked at run time: callers may not be type-checked
    if not isinstance(given, tuple) or not given:
        raise ValidationError("catch", "must be a non-empty tuple of Exception subclasses")
    for exc_type in catch:
        if not (isinstance(exc_type, type) and issubclass(exc_type, Exception)):
            raise ValidationError("catch", "must be a non-empty tuple of Exception subclasses")
    if context is not None and not isinstance(context, ErrorContext):
        raise ValidationError("context", "must be an ErrorContext")
    for field_name, value in (("component", component), ("operation", operation)):
        if value is not None and (not isinstance(value, str) or not value):
            raise ValidationError(field_name, "must be a non-empty string")
    return ErrorHandler(
        context=context,
        component=component,
        operation=operation,
        attributes=attributes,
        catch=catch,
        category=_as_member("category", ErrorCategory, category),
        severity=_as_member("severity", Severity, severity),
        user_message=_as_user_message(user_message),
    )
