"""The buttress exception hierarchy, the error taxonomy and error capture.

Owns ``ButtressError`` and its subclasses, ``classify`` (category, severity,
retryability of any exception, drivers recognised by name, never imported) and
``capture``/``with_error_handling``, which turn exceptions into logged
``Err(ContextualError)``. Messages never carry a secret, a DSN or SQL text.
"""

from __future__ import annotations

import enum
import errno
import functools
import inspect
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar, overload

import attrs

if TYPE_CHECKING:
    from buttress.result import Err, Ok

__all__ = [
    "UNKNOWN",
    "BackendError",
    "BackendUnavailableError",
    "ButtressError",
    "Classification",
    "ContextualError",
    "ErrorCategory",
    "ErrorContext",
    "ErrorHandler",
    "InvalidDSNError",
    "MissingDependencyError",
    "Severity",
    "UnsupportedBackendError",
    "ValidationError",
    "capture",
    "classify",
    "register_classification",
    "user_message_for",
    "with_error_handling",
]

P = ParamSpec("P")
R = TypeVar("R")


class ButtressError(Exception):
    """Root of every exception buttress raises on purpose."""


class ValidationError(ButtressError, ValueError):
    """Bad input, refused before anything was written.

    ``field`` names the offending argument or key and ``rule`` the constraint.
    """

    def __init__(self, field: str, rule: str, *, message: str | None = None) -> None:
        self.field = field
        self.rule = rule
        super().__init__(message or f"{field}: {rule}")


class InvalidDSNError(ValidationError):
    """A DSN that cannot be used (unknown scheme, malformed)."""

    def __init__(self, rule: str) -> None:
        super().__init__("dsn", rule)


class MissingDependencyError(ButtressError, ImportError):
    """An optional driver is not installed; the message names the extra."""

    def __init__(self, package: str, extra: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"{package} is not installed; install it with: pip install 'buttress[{extra}]'"
        )


class BackendError(ButtressError):
    """A storage backend failed to do what was asked."""


class BackendUnavailableError(BackendError, ConnectionError):
    """The backend cannot be reached (connection refused, timed out, closed)."""


class UnsupportedBackendError(BackendError):
    """A component was given a backend kind it cannot work with."""


class ErrorCategory(enum.StrEnum):
    """What kind of thing went wrong, independent of the library that raised it."""

    DATABASE = "database"
    VALIDATION = "validation"
    AUTHENTICATION = "authentication"
    NETWORK = "network"
    TIMEOUT = "timeout"
    RATE_LIMIT = "rate_limit"
    BUSINESS_LOGIC = "business_logic"
    SYSTEM = "system"


class Severity(enum.StrEnum):
    """How urgently a human should look at it (LOW < MEDIUM < HIGH < CRITICAL)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for LOW up to 3 for CRITICAL, for comparisons and thresholds."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK: Final = {
    Severity.LOW: 0,
    Severity.MEDIUM: 1,
    Severity.HIGH: 2,
    Severity.CRITICAL: 3,
}


def _freeze_attributes(value: Mapping[str, object] | None) -> Mapping[str, object]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping):
        raise ValidationError("attributes", "must be a mapping of str to values")
    for key in value:
        if not isinstance(key, str):
            raise ValidationError("attributes", "keys must be strings")
    return MappingProxyType(dict(value))


def _redacted_repr(attributes: Mapping[str, object]) -> str:
    # Attributes are free-form: mask them in reprs exactly as in logs.
    from buttress.log import redact

    return repr(redact(None, "repr", dict(attributes)))


def _check_name(field_name: str) -> Callable[[object, attrs.Attribute[Any], object], None]:
    def check(_instance: object, _attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None and field_name == "operation":
            return
        if not isinstance(value, str) or not value:
            raise ValidationError(field_name, "must be a non-empty string")

    return check


@attrs.frozen
class ErrorContext:
    """Where an error happened: ``component`` (e.g. "billing"), ``operation`` and free attributes.

    ``attributes`` is copied into a read-only mapping; it is logged (through
    redaction) but never shown to end users.
    """

    component: str = attrs.field(validator=_check_name("component"))
    operation: str | None = attrs.field(default=None, validator=_check_name("operation"))
    # Compared, but left out of the hash: attribute values need not be hashable.
    attributes: Mapping[str, object] = attrs.field(
        factory=dict, converter=_freeze_attributes, hash=False, repr=_redacted_repr
    )

    def __reduce__(self) -> tuple[type[ErrorContext], tuple[object, ...]]:
        # The read-only mapping proxy cannot be pickled; its contents can.
        return (ErrorContext, (self.component, self.operation, dict(self.attributes)))


@attrs.frozen
class Classification:
    """What ``classify`` decided about an exception."""

    category: ErrorCategory
    severity: Severity
    retryable: bool


# (when retrying may help, when it will not) per category; fixed text only.
_USER_MESSAGES: Final[Mapping[ErrorCategory, tuple[str, str]]] = {
    ErrorCategory.DATABASE: (
        "The database is temporarily unavailable. Please try again shortly.",
        "The request could not be completed because of a database error.",
    ),
    ErrorCategory.VALIDATION: (
        "The request contains invalid data.",
        "The request contains invalid data.",
    ),
    ErrorCategory.AUTHENTICATION: (
        "Authentication is temporarily unavailable. Please try again.",
        "Authentication failed or access is not allowed.",
    ),
    ErrorCategory.NETWORK: (
        "A service we depend on is temporarily unreachable. Please try again shortly.",
        "A service we depend on could not be reached.",
    ),
    ErrorCategory.TIMEOUT: (
        "The operation took too long. Please try again.",
        "The operation took too long.",
    ),
    ErrorCategory.RATE_LIMIT: (
        "Too many requests. Please wait and try again.",
        "Too many requests.",
    ),
    ErrorCategory.BUSINESS_LOGIC: (
        "The request cannot be completed right now. Please try again.",
        "The request cannot be completed in the current state.",
    ),
    ErrorCategory.SYSTEM: (
        "An internal error occurred. Please try again.",
        "An internal error occurred.",
    ),
}


def user_message_for(category: ErrorCategory, *, retryable: bool) -> str:
    """The fixed end-user message for a category: never derived from the exception text."""
    transient, permanent = _USER_MESSAGES[ErrorCategory(category)]
    return transient if retryable else permanent


class ContextualError(ButtressError):
    """An exception classified and placed in context; the original is ``__cause__``.

    ``str()`` names the category, component, operation and the original
    exception's *type* only: driver messages can carry SQL text, values and
    DSNs, so they stay on ``__cause__`` for developers and never reach
    ``str``, ``user_message`` or the log.
    """

    def __init__(
        self,
        *,
        category: ErrorCategory,
        severity: Severity,
        retryable: bool,
        context: ErrorContext,
        user_message: str | None = None,
        error_type: str = "",
        error_code: str | None = None,
    ) -> None:
        self.category = ErrorCategory(category)
        self.severity = Severity(severity)
        self.retryable = bool(retryable)
        self.context = context
        self.user_message = (
            user_message
            if user_message is not None
            else user_message_for(self.category, retryable=self.retryable)
        )
        self.error_type = error_type
        self.error_code = error_code
        where = context.component + (f".{context.operation}" if context.operation else "")
        cause = f" ({error_type})" if error_type else ""
        super().__init__(f"{self.category.value} error in {where}{cause}")

    @property
    def classification(self) -> Classification:
        return Classification(self.category, self.severity, self.retryable)

    def __repr__(self) -> str:
        return (
            f"ContextualError(category={self.category.value!r}, severity={self.severity.value!r}, "
            f"retryable={self.retryable!r}, component={self.context.component!r}, "
            f"operation={self.context.operation!r}, error_type={self.error_type!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_contextual_error,
            (
                self.category,
                self.severity,
                self.retryable,
                self.context,
                self.user_message,
                self.error_type,
                self.error_code,
            ),
        )


def _rebuild_contextual_error(
    category: ErrorCategory,
    severity: Severity,
    retryable: bool,
    context: ErrorContext,
    user_message: str,
    error_type: str,
    error_code: str | None,
) -> ContextualError:
    return ContextualError(
        category=category,
        severity=severity,
        retryable=retryable,
        context=context,
        user_message=user_message,
        error_type=error_type,
        error_code=error_code,
    )


_Cat = ErrorCategory
_Sev = Severity


def _rule(category: ErrorCategory, severity: Severity, retryable: bool) -> Classification:
    return Classification(category, severity, retryable)


UNKNOWN: Final = _rule(_Cat.SYSTEM, _Sev.HIGH, False)
"""What ``classify`` says about an exception it knows nothing about."""

# Keyed by "module.qualname" of a class in the exception's MRO, so that driver
# exceptions are recognised without importing the driver. The most specific
# class wins (the MRO is walked in order).
_BY_NAME: Final[Mapping[str, Classification]] = {
    # builtins
    "builtins.TimeoutError": _rule(_Cat.TIMEOUT, _Sev.MEDIUM, True),
    "builtins.ConnectionError": _rule(_Cat.NETWORK, _Sev.HIGH, True),
    # A file or OS permission problem is deployment configuration, not a user
    # failing to authenticate: SYSTEM, and retrying will not help.
    "builtins.PermissionError": _rule(_Cat.SYSTEM, _Sev.HIGH, False),
    "builtins.OSError": _rule(_Cat.SYSTEM, _Sev.HIGH, False),
    "builtins.ValueError": _rule(_Cat.VALIDATION, _Sev.LOW, False),
    "builtins.TypeError": _rule(_Cat.VALIDATION, _Sev.LOW, False),
    "builtins.MemoryError": _rule(_Cat.SYSTEM, _Sev.CRITICAL, False),
    "socket.gaierror": _rule(_Cat.NETWORK, _Sev.HIGH, True),
    "ssl.SSLError": _rule(_Cat.NETWORK, _Sev.HIGH, False),
    # buttress
    "buttress.errors.ValidationError": _rule(_Cat.VALIDATION, _Sev.LOW, False),
    "buttress.errors.BackendUnavailableError": _rule(_Cat.NETWORK, _Sev.HIGH, True),
    "buttress.errors.UnsupportedBackendError": _rule(_Cat.SYSTEM, _Sev.HIGH, False),
    "buttress.errors.BackendError": _rule(_Cat.DATABASE, _Sev.HIGH, False),
    "buttress.errors.MissingDependencyError": _rule(_Cat.SYSTEM, _Sev.CRITICAL, False),
    "buttress.errors.ButtressError": UNKNOWN,
    # sqlite3 (OperationalError is decided per instance, below)
    "sqlite3.IntegrityError": _rule(_Cat.VALIDATION, _Sev.LOW, False),
    "sqlite3.DataError": _rule(_Cat.VALIDATION, _Sev.LOW, False),
    "sqlite3.InternalError": _rule(_Cat.DATABASE, _Sev.CRITICAL, False),
    "sqlite3.Error": _rule(_Cat.DATABASE, _Sev.HIGH, False),
    # asyncpg client-side errors (server errors are decided by SQLSTATE, below)
    "asyncpg.exceptions._base.ClientConfigurationError": _rule(_Cat.SYSTEM, _Sev.HIGH, False),
    "asyncpg.exceptions._base.DataError": _rule(_Cat.VALIDATION, _Sev.LOW, False),
    "asyncpg.exceptions._base.OutdatedSchemaCacheError": _rule(_Cat.DATABASE, _Sev.LOW, True),
    "asyncpg.exceptions._base.TargetServerAttributeNotMatched": _rule(
        _Cat.NETWORK, _Sev.MEDIUM, True
    ),
    "asyncpg.exceptions._base.InterfaceError": _rule(_Cat.DATABASE, _Sev.HIGH, False),
    "asyncpg.exceptions._base.InternalClientError": _rule(_Cat.DATABASE, _Sev.HIGH, False),
    # redis
    "redis.exceptions.AuthenticationError": _rule(_Cat.AUTHENTICATION, _Sev.HIGH, False),
    "redis.exceptions.AuthorizationError": _rule(_Cat.AUTHENTICATION, _Sev.HIGH, False),
    "redis.exceptions.AuthenticationWrongNumberOfArgsError": _rule(
        _Cat.AUTHENTICATION, _Sev.HIGH, False
    ),
    "redis.exceptions.NoPermissionError": _rule(_Cat.AUTHENTICATION, _Sev.HIGH, False),
    "redis.exceptions.BusyLoadingError": _rule(_Cat.NETWORK, _Sev.MEDIUM, True),
    "redis.exceptions.MaxConnectionsError": _rule(_Cat.NETWORK, _Sev.MEDIUM, True),
    "redis.exceptions.ConnectionError": _rule(_Cat.NETWORK, _Sev.HIGH, True),
    "redis.exceptions.TimeoutError": _rule(_Cat.TIMEOUT, _Sev.MEDIUM, True),
    "redis.exceptions.ReadOnlyError": _rule(_Cat.DATABASE, _Sev.MEDIUM, True),
    "redis.exceptions.TryAgainError": _rule(_Cat.DATABASE, _Sev.MEDIUM, True),
    "redis.exceptions.ClusterDownError": _rule(_Cat.NETWORK, _Sev.HIGH, True),
    "redis.exceptions.AskError": _rule(_Cat.DATABASE, _Sev.LOW, True),
    "redis.exceptions.WatchError": _rule(_Cat.DATABASE, _Sev.LOW, True),
    "redis.exceptions.NoScriptError": _rule(_Cat.DATABASE, _Sev.LOW, True),
    "redis.exceptions.OutOfMemoryError": _rule(_Cat.DATABASE, _Sev.CRITICAL, False),
    "redis.exceptions.DataError": _rule(_Cat.VALIDATION, _Sev.LOW, False),
    "redis.exceptions.ResponseError": _rule(_Cat.DATABASE, _Sev.HIGH, False),
    "redis.exceptions.RedisError": _rule(_Cat.DATABASE, _Sev.HIGH, False),
    "redis.exceptions.RedisClusterException": _rule(_Cat.DATABASE, _Sev.HIGH, False),
}

# PostgreSQL SQLSTATE codes (asyncpg exposes them as ``exc.sqlstate``): exact
# codes first, then the two-character class.
_SQLSTATE: Final[Mapping[str, Classification]] = {
    "57014": _rule(_Cat.TIMEOUT, _Sev.MEDIUM, True),  # query_canceled (statement_timeout)
    "25P03": _rule(_Cat.TIMEOUT, _Sev.MEDIUM, True),  # idle_in_transaction_session_timeout
    "57P01": _rule(_Cat.NETWORK, _Sev.HIGH, True),  # admin_shutdown
    "57P02": _rule(_Cat.NETWORK, _Sev.HIGH, True),  # crash_shutdown
    "57P03": _rule(_Cat.NETWORK, _Sev.MEDIUM, True),  # cannot_connect_now
    "57P04": _rule(_Cat.DATABASE, _Sev.HIGH, False),  # database_dropped
    "53300": _rule(_Cat.NETWORK, _Sev.MEDIUM, True),  # too_many_connections
    "53100": _rule(_Cat.DATABASE, _Sev.CRITICAL, False),  # disk_full
    "55P03": _rule(_Cat.DATABASE, _Sev.MEDIUM, True),  # lock_not_available
    "55006": _rule(_Cat.DATABASE, _Sev.MEDIUM, True),  # object_in_use
    "25006": _rule(_Cat.DATABASE, _Sev.MEDIUM, True),  # read_only_sql_transaction (failover)
    "40002": _rule(_Cat.VALIDATION, _Sev.LOW, False),  # integrity violation at commit
    "42501": _rule(_Cat.AUTHENTICATION, _Sev.HIGH, False),  # insufficient_privilege
}
_SQLSTATE_CLASS: Final[Mapping[str, Classification]] = {
    "08": _rule(_Cat.NETWORK, _Sev.HIGH, True),  # connection exception
    "40": _rule(_Cat.DATABASE, _Sev.MEDIUM, True),  # serialization failure, deadlock
    "53": _rule(_Cat.DATABASE, _Sev.HIGH, True),  # insufficient resources
    "57": _rule(_Cat.DATABASE, _Sev.HIGH, True),  # operator intervention
    "22": _rule(_Cat.VALIDATION, _Sev.LOW, False),  # data exception
    "23": _rule(_Cat.VALIDATION, _Sev.LOW, False),  # unique, foreign key, not null, check
    "28": _rule(_Cat.AUTHENTICATION, _Sev.HIGH, False),  # invalid password / authorization
    "3D": _rule(_Cat.SYSTEM, _Sev.HIGH, False),  # database does not exist
    "42": _rule(_Cat.DATABASE, _Sev.HIGH, False),  # syntax error or access rule
    "54": _rule(_Cat.DATABASE, _Sev.HIGH, False),  # program limit exceeded
    "55": _rule(_Cat.DATABASE, _Sev.MEDIUM, False),  # object not in prerequisite state
    "58": _rule(_Cat.DATABASE, _Sev.CRITICAL, False),  # system error (I/O)
    "XX": _rule(_Cat.DATABASE, _Sev.CRITICAL, False),  # internal error
    "P0": _rule(_Cat.BUSINESS_LOGIC, _Sev.MEDIUM, False),  # RAISE EXCEPTION in PL/pgSQL
}
_POSTGRES_DEFAULT: Final = _rule(_Cat.DATABASE, _Sev.HIGH, False)

# sqlite3 primary result codes (``exc.sqlite_errorcode & 0xFF``).
_SQLITE_CODES: Final[Mapping[int, Classification]] = {
    5: _rule(_Cat.DATABASE, _Sev.MEDIUM, True),  # SQLITE_BUSY: database is locked
    6: _rule(_Cat.DATABASE, _Sev.MEDIUM, True),  # SQLITE_LOCKED: table is locked
    9: _rule(_Cat.TIMEOUT, _Sev.MEDIUM, True),  # SQLITE_INTERRUPT
    3: _rule(_Cat.SYSTEM, _Sev.HIGH, False),  # SQLITE_PERM
    8: _rule(_Cat.SYSTEM, _Sev.HIGH, False),  # SQLITE_READONLY
    10: _rule(_Cat.DATABASE, _Sev.CRITICAL, False),  # SQLITE_IOERR
    11: _rule(_Cat.DATABASE, _Sev.CRITICAL, False),  # SQLITE_CORRUPT
    13: _rule(_Cat.DATABASE, _Sev.CRITICAL, False),  # SQLITE_FULL
    14: _rule(_Cat.SYSTEM, _Sev.HIGH, False),  # SQLITE_CANTOPEN
    23: _rule(_Cat.AUTHENTICATION, _Sev.HIGH, False),  # SQLITE_AUTH
}
_SQLITE_DEFAULT: Final = _rule(_Cat.DATABASE, _Sev.HIGH, False)


def _classify_postgres(exc: BaseException) -> Classification:
    sqlstate = getattr(exc, "sqlstate", None)
    if not isinstance(sqlstate, str) or len(sqlstate) != 5:
        return _POSTGRES_DEFAULT
    sqlstate = sqlstate.upper()
    return _SQLSTATE.get(sqlstate) or _SQLSTATE_CLASS.get(sqlstate[:2], _POSTGRES_DEFAULT)


def _classify_sqlite_operational(exc: BaseException) -> Classification:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return _SQLITE_CODES.get(code & 0xFF, _SQLITE_DEFAULT)
    # Constructed by hand or by an older wrapper: fall back on the message,
    # which is read here and never logged.
    text = str(exc).lower()
    if "is locked" in text or "database is busy" in text:
        return _SQLITE_CODES[5]
    return _SQLITE_DEFAULT


def _classify_contextual(exc: BaseException) -> Classification:
    assert isinstance(exc, ContextualError)
    return exc.classification


# Rules that look at the instance, not only at its type.
_BY_NAME_DYNAMIC: Final[Mapping[str, Callable[[BaseException], Classification]]] = {
    "asyncpg.exceptions._base.PostgresError": _classify_postgres,
    "sqlite3.OperationalError": _classify_sqlite_operational,
    "buttress.errors.ContextualError": _classify_contextual,
}

_Rule = Classification | Callable[[BaseException], Classification]
_registered: dict[type[BaseException], Classification] = {}
_rule_cache: dict[type[BaseException], _Rule] = {}
_registry_lock = threading.Lock()


def register_classification(exc_type: type[BaseException], classification: Classification) -> None:
    """Teach ``classify`` about an exception type (and its subclasses).

    Registered types take precedence over the built-in tables at the same
    level of the MRO; a more specific built-in rule still wins.
    """
    if not (isinstance(exc_type, type) and issubclass(exc_type, BaseException)):
        raise ValidationError("exc_type", "must be an exception class")
    if not isinstance(classification, Classification):
        raise ValidationError("classification", "must be a Classification")
    with _registry_lock:
        _registered[exc_type] = classification
        _rule_cache.clear()


def _resolve(exc_type: type[BaseException]) -> _Rule:
    for cls in exc_type.__mro__:
        registered = _registered.get(cls)
        if registered is not None:
            return registered
        name = f"{cls.__module__}.{cls.__qualname__}"
        dynamic = _BY_NAME_DYNAMIC.get(name)
        if dynamic is not None:
            return dynamic
        static = _BY_NAME.get(name)
        if static is not None:
            return static
    return UNKNOWN


def classify(exc: BaseException) -> Classification:
    """Category, severity and retryability of ``exc``; never raises, never imports a driver.

    Knows builtins, sqlite3, asyncpg (by SQLSTATE), redis and buttress's own
    errors; anything else is ``UNKNOWN`` (SYSTEM, HIGH, not retryable).
    """
    exc_type = type(exc)
    rule = _rule_cache.get(exc_type)
    if rule is None:
        rule = _resolve(exc_type)
        if len(_rule_cache) < 4096:
            _rule_cache[exc_type] = rule
    if isinstance(rule, Classification):
        return rule
    return rule(exc)


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


def capture(
    exc: BaseException,
    *,
    context: ErrorContext | None = None,
    component: str | None = None,
    operation: str | None = None,
    attributes: Mapping[str, object] | None = None,
    user_message: str | None = None,
) -> Err[ContextualError]:
    """Classify ``exc``, wrap it in a ``ContextualError`` (cause = ``exc``), log it once.

    ``component``/``operation``/``attributes`` extend or override ``context``.
    An exception that already is a ``ContextualError`` (or an ``UnwrapError``
    raised from one) is returned as is and not logged again.
    """
    from buttress.result import Err, UnwrapError

    if not isinstance(exc, BaseException):
        raise ValidationError("exc", "must be an exception instance")
    if isinstance(exc, ContextualError):
        return Err(exc)
    if isinstance(exc, UnwrapError) and isinstance(exc.__cause__, ContextualError):
        return Err(exc.__cause__)
    ctx = _build_context(context, component, operation, attributes)
    found = classify(exc)
    error = ContextualError(
        category=found.category,
        severity=found.severity,
        retryable=found.retryable,
        context=ctx,
        user_message=user_message,
        error_type=_qualified_name(type(exc)),
        error_code=_error_code(exc),
    )
    error.__cause__ = exc
    _log_captured(error)
    return Err(error)


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

    __slots__ = ("_attributes", "_catch", "_component", "_context", "_operation")

    def __init__(
        self,
        *,
        context: ErrorContext | None,
        component: str | None,
        operation: str | None,
        attributes: Mapping[str, object] | None,
        catch: tuple[type[Exception], ...],
    ) -> None:
        self._context = context
        self._component = component
        self._operation = operation
        self._attributes = _freeze_attributes(attributes)
        self._catch = catch

    def _capture(self, exc: BaseException, fn: Callable[..., object]) -> Err[ContextualError]:
        return capture(
            exc,
            context=self._context,
            component=self._component
            or (None if self._context else getattr(fn, "__module__", None)),
            operation=self._operation
            or (None if self._context and self._context.operation else _fn_name(fn)),
            attributes=self._attributes,
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
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                return await self.acall(fn, *args, **kwargs)

            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            return self.call(fn, *args, **kwargs)

        return wrapper


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
) -> ErrorHandler:
    """Decorator (sync or async) and caller whose failures become ``Err(ContextualError)``.

    ``@with_error_handling(component="billing")`` on ``def f(...) -> T`` gives
    ``f(...) -> Result[T, ContextualError]`` (awaitable for ``async def``);
    ``.call(fn, ...)`` / ``await .acall(fn, ...)`` run a function once.
    Component and operation default to the function's module and qualified
    name. Exceptions outside ``catch`` (and BaseExceptions such as
    cancellation) propagate.
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
    )
