"""A resilient, instrumented PostgreSQL client over an asyncpg pool.

``Database`` adds statement timeouts, retries of idempotent statements on
transient errors, per-kind circuit breakers and bounded statistics;
``database_check`` turns those statistics into a health check; ``fingerprint``
names a statement's shape without its values.
"""

from buttress.db._client import Database, Isolation
from buttress.db._faults import ConnectionLostError, counts_as_failure, is_transient
from buttress.db._health import database_check
from buttress.db._sqltext import Fingerprint, fingerprint, is_read_only, normalize
from buttress.db._stats import DatabaseStats, OperationKind
from buttress.db._transaction import Transaction

__all__ = [
    "ConnectionLostError",
    "Database",
    "DatabaseStats",
    "Fingerprint",
    "Isolation",
    "OperationKind",
    "Transaction",
    "counts_as_failure",
    "database_check",
    "fingerprint",
    "is_read_only",
    "is_transient",
    "normalize",
]
