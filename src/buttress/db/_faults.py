"""Which database errors are worth another attempt, and which are the database's fault.

``is_transient`` and ``counts_as_failure`` are read off ``errors.classify``;
``ConnectionLostError`` names a session the server ended under the driver;
``rolled_back`` knows which SQLSTATEs guarantee a transaction left no trace.
"""

from __future__ import annotations

from typing import Final, Protocol

from buttress._exceptions import BackendUnavailableError
from buttress.errors import ErrorCategory, Severity, classify

__all__ = [
    "NOT_RETRIED_NOTE",
    "ConnectionLostError",
    "connection_lost",
    "counts_as_failure",
    "is_transient",
    "rolled_back",
]

# SQLSTATEs after which PostgreSQL has rolled the whole transaction back, so
# running it again cannot apply anything twice: serialization failure,
# deadlock (class 40) and lock_not_available.
ROLLED_BACK_CLASS: Final = "40"
ROLLED_BACK_CODES: Final = frozenset({"55P03"})
NOT_RETRIED_NOTE: Final = (
    "buttress db: not retried because the statement may not be idempotent; "
    "pass idempotent=True if running it twice is safe"
)


class _Closable(Protocol):
    def is_closed(self) -> bool: ...


class ConnectionLostError(BackendUnavailableError):
    """The connection closed under a statement and the driver's own error did not say so.

    asyncpg reports a session ended by the server (restart, failover,
    ``pg_terminate_backend``) while the connection sat idle in the pool as an
    internal state error; this names what happened. The driver's error is
    ``__cause__``. Transient: ``classify`` sees a ``BackendUnavailableError``.
    """


def connection_lost(conn: _Closable, exc: Exception) -> Exception | None:
    # Server errors carry a SQLSTATE and are classified on their own; timeouts
    # close nothing. What is left, on a connection that is now closed, is the
    # driver tripping over a session the server already ended.
    if getattr(exc, "sqlstate", None) is not None or isinstance(exc, TimeoutError):
        return None
    if is_transient(exc) or not conn.is_closed():
        return None
    return ConnectionLostError("the database connection closed during the statement")


def is_transient(exc: BaseException) -> bool:
    """Worth another attempt: a lost connection, a serialization failure, a deadlock, a lock wait.

    ``classify`` decides; timeouts are left out on purpose (a statement that
    ran out of time is likely to do so again, and repeating it doubles the load).
    """
    found = classify(exc)
    return found.retryable and found.category is not ErrorCategory.TIMEOUT


def counts_as_failure(exc: BaseException) -> bool:
    """For ``CircuitBreaker(failure_on_exception=...)``: the database's fault, not the caller's.

    Syntax errors, constraint violations and bad parameters are the caller's
    and leave a breaker closed; lost connections, timeouts, overload and
    critical server errors count.
    """
    found = classify(exc)
    return found.retryable or found.severity is Severity.CRITICAL


def rolled_back(exc: BaseException) -> bool:
    code = getattr(exc, "sqlstate", None)
    return isinstance(code, str) and (
        code.startswith(ROLLED_BACK_CLASS) or code in ROLLED_BACK_CODES
    )
