"""``classify``: category, severity and retryability of any exception.

Driver exceptions (asyncpg, redis, sqlite3) are recognised by their qualified
class names and codes, so classifying never imports a driver.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Final

from buttress._exceptions import ValidationError
from buttress.errors._taxonomy import Classification, ContextualError, ErrorCategory, Severity

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
